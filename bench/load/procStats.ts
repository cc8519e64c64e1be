import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** Kernel clock ticks per second for /proc/<pid>/stat times; 100 on every Linux we run on. */
function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    if (Number.isSafeInteger(ticks) && ticks > 0) return ticks;
  } catch {
    // getconf missing: fall through to the Linux default
  }
  return 100;
}

let ticksPerSecond: number | undefined;

/**
 * CPU seconds (user + system) from a /proc stat file, fields 14 and 15. The command name (field 2)
 * may hold spaces and parentheses, so fields are counted after the last ")". Null when it is gone.
 */
function statCpuSeconds(path: string): number | null {
  let stat: string;
  try {
    stat = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const afterName = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // afterName[0] is field 3 (state), so field N is afterName[N - 3].
  const userTicks = Number(afterName[11]);
  const systemTicks = Number(afterName[12]);
  if (!Number.isFinite(userTicks) || !Number.isFinite(systemTicks)) return null;
  ticksPerSecond ??= clockTicksPerSecond();
  return (userTicks + systemTicks) / ticksPerSecond;
}

/** CPU seconds (user + system) a process has used so far; null when it is gone or /proc is missing. */
export function processCpuSeconds(pid: number): number | null {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

export interface ThreadCpu {
  tid: number;
  /** The thread's name (/proc/<pid>/task/<tid>/comm): Node 20 names its threads "node", V8's profiler thread "v8:ProfEvntProc". */
  name: string;
  cpuSeconds: number;
}

/** Every thread of `pid` with its CPU seconds so far (empty when the process is gone). */
export function threadCpuSeconds(pid: number): ThreadCpu[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const threads: ThreadCpu[] = [];
  for (const entry of tids) {
    const tid = Number(entry);
    const cpuSeconds = statCpuSeconds(`/proc/${pid}/task/${entry}/stat`);
    if (!Number.isSafeInteger(tid) || cpuSeconds === null) continue; // exited between the two reads
    let name = "";
    try {
      name = readFileSync(`/proc/${pid}/task/${entry}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    threads.push({ tid, name, cpuSeconds });
  }
  return threads;
}

/** Peak resident set size (VmHWM) in bytes, or null when the process is gone. */
export function processPeakRssBytes(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  return match?.[1] === undefined ? null : Number(match[1]) * 1024;
}

/** A process's resident memory now, from /proc/<pid>/status, in bytes. */
export interface RssReading {
  rssBytes: number;
  /** Private anonymous pages: JS heaps, ArrayBuffers, malloc, thread stacks. */
  anonBytes: number;
  /** Mapped file pages (the binary, shared libraries, a memory-mapped database such as lmdb's or bbolt's). */
  fileBytes: number;
  /** Peak RSS over the process's life so far (VmHWM). */
  peakBytes: number;
}

/** One `Name:   123 kB` field of a /proc status text, in bytes; 0 when the kernel does not report it. */
function statusKilobytes(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, "m").exec(status);
  return match?.[1] === undefined ? 0 : Number(match[1]) * 1024;
}

/** Parses the memory fields of a /proc/<pid>/status text; null when it has no VmRSS (a zombie). */
export function parseRssStatus(status: string): RssReading | null {
  if (!/^VmRSS:/m.test(status)) return null;
  return {
    rssBytes: statusKilobytes(status, "VmRSS"),
    anonBytes: statusKilobytes(status, "RssAnon"),
    fileBytes: statusKilobytes(status, "RssFile"),
    peakBytes: statusKilobytes(status, "VmHWM"),
  };
}

/** Resident memory of `pid` now, or null when it is gone or /proc is missing. */
export function processRss(pid: number): RssReading | null {
  try {
    return parseRssStatus(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return null;
  }
}

/** How often the timed phase samples a server's RSS: enough to draw growth, cheap (one small read). */
export const rssSampleIntervalMs = 1000;
/** Samples kept at most (an hour at one a second); later samples replace every other one kept. */
export const rssSamplesMax = 3600;

/** [seconds since the sampler started, RSS bytes, anonymous bytes, file bytes]. */
export type RssSample = [number, number, number, number];

/**
 * Samples a server's RSS once a second through a timed phase, so a report shows whether memory grows
 * with the requests served (retention) or levels off (a working set). The timer is unref'd.
 */
export class RssSampler {
  readonly samples: RssSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private startMs = 0;
  /** Samples are taken every `stride` ticks once the buffer was halved (keeps a long run bounded). */
  private stride = 1;
  private ticks = 0;

  constructor(
    private readonly pid: number,
    private readonly read: (pid: number) => RssReading | null = processRss,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  start(): void {
    this.startMs = this.nowMs();
    this.sample();
    this.timer = setInterval(() => {
      this.ticks++;
      if (this.ticks % this.stride === 0) this.sample();
    }, rssSampleIntervalMs);
    this.timer.unref();
  }

  /** Takes a last sample and stops; returns the samples. */
  stop(): RssSample[] {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this.samples;
  }

  sample(): void {
    const reading = this.read(this.pid);
    if (reading === null) return;
    if (this.samples.length >= rssSamplesMax) {
      // Keep every other sample and sample half as often from now on.
      let kept = 0;
      for (let i = 0; i < this.samples.length; i += 2) this.samples[kept++] = this.samples[i]!;
      this.samples.length = kept;
      this.stride *= 2;
    }
    const seconds = (this.nowMs() - this.startMs) / 1000;
    this.samples.push([seconds, reading.rssBytes, reading.anonBytes, reading.fileBytes]);
  }
}

/**
 * The slope of RSS over requests served, in bytes per request, measured over the second half of the
 * timed phase: the first half also holds warm-up (connections opened, JIT, allocator pools), which
 * levels off, while retention (a log or cache that keeps every write) goes on at the same slope.
 * `successesPerSecond[i]` counts the requests completed in second i of the phase. Null when the
 * second half has fewer than two samples or no requests.
 */
export function rssGrowthBytesPerRequest(
  samples: readonly RssSample[],
  successesPerSecond: readonly number[],
): number | null {
  const last = samples[samples.length - 1];
  if (last === undefined) return null;
  const first = samples.find((sample) => sample[0] >= last[0] / 2);
  if (first === undefined || first === last) return null;
  const requests = completedBetween(successesPerSecond, first[0], last[0]);
  return requests <= 0 ? null : (last[1] - first[1]) / requests;
}

/** Requests completed from `fromSeconds` to `toSeconds`, a part-second counted pro rata. */
function completedBetween(perSecond: readonly number[], fromSeconds: number, toSeconds: number): number {
  let total = 0;
  for (let second = Math.floor(fromSeconds); second < toSeconds && second < perSecond.length; second++) {
    const covered = Math.min(second + 1, toSeconds) - Math.max(second, fromSeconds);
    if (covered > 0) total += perSecond[second]! * covered;
  }
  return total;
}
