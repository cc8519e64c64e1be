import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

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
