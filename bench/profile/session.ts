import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ThreadCpu, threadCpuSeconds } from "../load/procStats.js";
import { parseCpuProfile, summarizeCpuProfile, type ThreadProfileSummary } from "./cpuProfile.js";

/**
 * `--profile`: a Node server the bench starts (etcd-ts, the no-op server) runs under `--cpu-prof`
 * and `--trace-gc`; the bench marks its timed phase on the shared monotonic clock, stops the server
 * with SIGTERM (Node writes the profiles as it exits), then summarises the samples inside the timed
 * phase only, so start-up (tsx compiling our sources) and cleanup are not in the figures.
 */

/** V8's sampling interval: 1 ms gives ~10,000 samples in a 10 s run at ~1-2% overhead. */
export const cpuProfileIntervalUs = 1000;

/** A profiled server gets this long to write its profile and exit after SIGTERM (then SIGKILL). */
export const profiledStopTimeoutMs = 30_000;

/** The node flags that make a child write its profiles (one file per thread) into `dir`. */
export function nodeProfileFlags(dir: string): string[] {
  return ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${cpuProfileIntervalUs}`, "--trace-gc"];
}

export interface GcCounts {
  /** Young-generation collections (Scavenge, Minor Mark-Compact). */
  scavenges: number;
  /** Full collections (Mark-Compact, Mark-sweep). */
  markCompacts: number;
  /** Sum of the pauses --trace-gc reports, in ms (all isolates: main thread and workers). */
  pauseMs: number;
}

/** Where the server process's CPU went in the timed phase, per OS thread (from /proc). */
export interface ThreadsCpu {
  processSeconds: number;
  /** The thread that runs JS's event loop: gRPC, raft, apply. */
  mainSeconds: number;
  /** V8's profiler thread: the cost of profiling itself, left out of the server's figures. */
  profilerSeconds: number;
  /** Worker threads, V8's helpers (concurrent marking, compilers) and libuv's pool: Node 20 names them all "node". */
  otherSeconds: number;
  /** Threads of the process (excluding the profiler's) at the end of the phase. */
  otherThreads: number;
}

export interface ProfileReport {
  /** The directory (relative to the report dir) holding the .cpuprofile files. */
  dir: string;
  files: string[];
  intervalUs: number;
  /** The timed phase the summaries cover. */
  windowSeconds: number;
  acknowledged: number;
  /** The main thread's summary; null if no profile was written. */
  main: ThreadProfileSummary | null;
  /** One summary per worker thread. Their samples include time blocked in Atomics.wait (V8 samples wall time). */
  workers: ThreadProfileSummary[];
  threadsCpu: ThreadsCpu | null;
  gc: GcCounts;
  /** Why something is missing, or null. */
  note: string | null;
}

/**
 * Main-thread CPU µs per acknowledged request for `selfMs` of samples. V8 samples wall time: under
 * contention (two cores shared with the generator) a thread descheduled mid-function is still
 * "in" it, so sampled busy time exceeds CPU time. The samples give the shares; /proc gives the
 * main thread's CPU; their product is the CPU per request. Falls back to sampled time without /proc.
 */
export function cpuMicrosPerRequest(report: ProfileReport, selfMs: number): number | null {
  if (report.main === null || report.acknowledged === 0) return null;
  const cpuMs = report.threadsCpu === null ? report.main.busyMs : report.threadsCpu.mainSeconds * 1000;
  const scale = report.main.busyMs > 0 ? cpuMs / report.main.busyMs : 0;
  return (selfMs * scale * 1000) / report.acknowledged;
}

const profilerThreadName = "v8:ProfEvntProc";
const scavengeKinds = new Set(["Scavenge", "Minor Mark-Compact", "Minor Mark-Sweep"]);

/** One --trace-gc line: `[pid:0xisolate]   1234 ms: Scavenge 4.9 (5.0) -> 4.4 (6.0) MB, 1.63 / 0.01 ms ...`. */
export function parseTraceGcLine(
  line: string,
): { kind: "scavenge" | "mark-compact"; pauseMs: number } | null {
  const match =
    /^\[\d+:0x[0-9a-f]+\]\s+\d+ ms: ([A-Za-z -]+?)(?: \([a-z ]+\))? [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, ([\d.]+) \//.exec(
      line,
    );
  if (match?.[1] === undefined || match[2] === undefined) return null;
  return { kind: scavengeKinds.has(match[1]) ? "scavenge" : "mark-compact", pauseMs: Number(match[2]) };
}

/**
 * Whether a `--cpu-prof` file (`CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`) was written by
 * process `pid`: a report directory reused with --out may hold an earlier run's profiles.
 */
export function profileOfProcess(fileName: string, pid: number | null): boolean {
  if (pid === null) return true;
  return fileName.split(".")[3] === String(pid);
}

function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function cpuByThread(threads: readonly ThreadCpu[]): Map<number, number> {
  return new Map(threads.map((thread) => [thread.tid, thread.cpuSeconds]));
}

/** One profiled server: collects GC lines and the timed-phase marks, then reads its profiles. */
export class ProfileSession {
  private windowStartUs: number | null = null;
  private windowEndUs: number | null = null;
  private threadsBefore = new Map<number, number>();
  private threadsCpu: ThreadsCpu | null = null;
  private readonly gc: GcCounts = { scavenges: 0, markCompacts: 0, pauseMs: 0 };
  private pid: number | null = null;

  /** `dir` is absolute; `relativeDir` is how the report names it. */
  constructor(
    readonly dir: string,
    readonly relativeDir: string,
  ) {}

  /** Every stdout line of the server; --trace-gc lines inside the timed phase are counted. */
  readonly stdoutLine = (line: string): void => {
    if (this.windowStartUs === null || this.windowEndUs !== null) return;
    const event = parseTraceGcLine(line);
    if (event === null) return;
    if (event.kind === "scavenge") this.gc.scavenges++;
    else this.gc.markCompacts++;
    this.gc.pauseMs += event.pauseMs;
  };

  begin(pid: number | null): void {
    this.pid = pid;
    if (pid !== null) this.threadsBefore = cpuByThread(threadCpuSeconds(pid));
    this.windowStartUs = monotonicMicros();
  }

  end(): void {
    this.windowEndUs = monotonicMicros();
    if (this.pid === null) return;
    const pid = this.pid;
    const cpu: ThreadsCpu = {
      processSeconds: 0,
      mainSeconds: 0,
      profilerSeconds: 0,
      otherSeconds: 0,
      otherThreads: 0,
    };
    for (const thread of threadCpuSeconds(pid)) {
      // A thread born during the phase started from zero.
      const seconds = thread.cpuSeconds - (this.threadsBefore.get(thread.tid) ?? 0);
      cpu.processSeconds += seconds;
      if (thread.tid === pid) cpu.mainSeconds += seconds;
      else if (thread.name === profilerThreadName) cpu.profilerSeconds += seconds;
      else {
        cpu.otherSeconds += seconds;
        cpu.otherThreads++;
      }
    }
    this.threadsCpu = cpu;
  }

  /** After the server exited: reads and summarises the profiles it wrote. */
  finish(acknowledged: number, repoRoot: string): ProfileReport {
    let files: string[] = [];
    try {
      files = readdirSync(this.dir)
        .filter((name) => name.endsWith(".cpuprofile") && profileOfProcess(name, this.pid))
        .sort();
    } catch {
      // no directory: the server wrote nothing
    }
    const window = { startUs: this.windowStartUs, endUs: this.windowEndUs };
    const summaries = files.map((file) =>
      summarizeCpuProfile(parseCpuProfile(JSON.parse(readFileSync(join(this.dir, file), "utf8")), file), {
        file,
        repoRoot,
        window,
      }),
    );
    const main = summaries.find((summary) => summary.threadId === 0) ?? null;
    const windowSeconds =
      this.windowStartUs === null || this.windowEndUs === null
        ? 0
        : (this.windowEndUs - this.windowStartUs) / 1e6;
    return {
      dir: this.relativeDir,
      files,
      intervalUs: cpuProfileIntervalUs,
      windowSeconds,
      acknowledged,
      main,
      workers: summaries.filter((summary) => summary !== main),
      threadsCpu: this.threadsCpu,
      gc: { ...this.gc },
      note:
        files.length === 0
          ? "the server wrote no .cpuprofile (it did not exit cleanly on SIGTERM in time)"
          : main === null
            ? "no main-thread profile among the files"
            : null,
    };
  }
}
