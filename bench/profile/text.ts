import { alignColumns } from "../report/text.js";
import type { ThreadProfileSummary } from "./cpuProfile.js";
import { cpuMicrosPerRequest, type ProfileReport } from "./session.js";

/** Functions below this share of busy time are left out of the per-category lists. */
const functionPercentMin = 0.1;
/** Worker threads busy less than this share of the timed phase are counted, not listed. */
const workerBusyPercentMin = 1;

/**
 * The category table with each category's top functions indented under it. `microsPerRequest`
 * turns a self time into CPU µs per request (null: no request count, the column shows n/a).
 */
export function categoryTable(
  thread: ThreadProfileSummary,
  microsPerRequest: (selfMs: number) => number | null,
): string[] {
  const perRequest = (selfMs: number): string => microsPerRequest(selfMs)?.toFixed(1) ?? "n/a";
  const rows: string[][] = [["category / function", "self ms", "busy %", "CPU µs/req"]];
  for (const category of thread.categories) {
    rows.push([
      category.category,
      category.selfMs.toFixed(1),
      `${category.percent.toFixed(1)}%`,
      perRequest(category.selfMs),
    ]);
    for (const fn of category.top) {
      if (fn.percent < functionPercentMin) continue;
      const where = `${fn.location === "" ? "" : `  ${fn.location}`}${fn.via === null ? "" : `  via ${fn.via}`}`;
      rows.push([
        `    ${fn.functionName}${where}`,
        fn.selfMs.toFixed(1),
        `${fn.percent.toFixed(1)}%`,
        perRequest(fn.selfMs),
      ]);
    }
  }
  return alignColumns(rows);
}

function workerLine(thread: ThreadProfileSummary): string {
  const shares = thread.categories
    .slice(0, 4)
    .map((category) => `${category.category} ${category.percent.toFixed(0)}%`)
    .join(", ");
  return (
    `worker thread ${thread.threadId ?? "?"}: ${thread.busyMs.toFixed(0)} ms not idle of ` +
    `${thread.sampledMs.toFixed(0)} ms sampled${shares === "" ? "" : ` (${shares})`}`
  );
}

/** What `--profile` prints for one target after its run (`listFiles`: false where files are linked). */
export function profileLines(targetName: string, report: ProfileReport, listFiles = true): string[] {
  const lines: string[] = [];
  const main = report.main;
  const cpu = report.threadsCpu;
  if (main === null) {
    lines.push(`CPU profile of ${targetName}: ${report.note ?? "no main-thread profile"}`);
  } else {
    lines.push(
      `CPU profile of ${targetName}, main thread, timed phase ${report.windowSeconds.toFixed(1)} s: ` +
        `${main.busyMs.toFixed(0)} ms busy and ${main.idleMs.toFixed(0)} ms idle in ${main.samples} samples ` +
        `(every ${report.intervalUs} µs)`,
    );
    lines.push(
      cpu === null
        ? `CPU µs/req = sampled self time / ${report.acknowledged} acknowledged requests`
        : `CPU µs/req = busy share × the main thread's ${cpu.mainSeconds.toFixed(2)} s of CPU (/proc) / ` +
            `${report.acknowledged} acknowledged requests`,
    );
    lines.push(...categoryTable(main, (selfMs) => cpuMicrosPerRequest(report, selfMs)));
  }
  const gc = report.gc;
  lines.push(
    `GC in the timed phase (--trace-gc, all isolates): ${gc.scavenges} scavenges, ${gc.markCompacts} mark-compacts, ` +
      `${gc.pauseMs.toFixed(1)} ms paused`,
  );
  if (cpu !== null) {
    lines.push(
      `process CPU in the timed phase: ${cpu.processSeconds.toFixed(2)} s = main thread ${cpu.mainSeconds.toFixed(2)} s` +
        ` + ${cpu.otherThreads} other threads ${cpu.otherSeconds.toFixed(2)} s + V8's profiler ${cpu.profilerSeconds.toFixed(2)} s`,
      "(other threads: worker threads, V8's parallel and concurrent GC, compilers, libuv's pool; Node 20 names them all alike)",
    );
  }
  const windowMs = report.windowSeconds * 1000;
  const busyWorkers = report.workers.filter(
    (worker) => worker.busyMs >= (windowMs * workerBusyPercentMin) / 100,
  );
  for (const worker of busyWorkers) lines.push(workerLine(worker));
  if (busyWorkers.length > 0) {
    lines.push("(a worker's samples include time blocked in Atomics.wait: V8 samples wall time, not CPU)");
  }
  const idleWorkers = report.workers.length - busyWorkers.length;
  if (idleWorkers > 0) {
    lines.push(
      `${idleWorkers} worker thread(s) busy under ${workerBusyPercentMin}% of the phase (tsx's loader is one)`,
    );
  }
  if (listFiles && report.files.length > 0) {
    lines.push(`profiles: ${report.files.map((file) => `${report.dir}/${file}`).join(" ")}`);
  }
  return lines;
}
