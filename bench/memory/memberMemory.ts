/**
 * Where an etcd-ts member's memory goes: starts one member (compiled, as the benches run it; or
 * --from-source under tsx) with bench/memory/heapProbe.cjs preloaded, lets it idle, and splits its RSS
 * into the V8 heap of each thread (main, WAL writer, backend writer, watch fan-out, ...), the rest of
 * the anonymous memory (native: malloc, V8 code and metadata outside the heap, thread stacks, the
 * SharedArrayBuffer rings, lmdb's own allocations) and file-backed pages (the node binary, lmdb's
 * memory-mapped data.mdb, native addons). With --load it then runs `npm run bench -- --load <level>`
 * against the member and measures again once it is idle.
 *
 *   node --import tsx bench/memory/memberMemory.ts [--from-source] [--idle-seconds 5]
 *        [--load m --duration 10] [--node-flags="--max-semi-space-size=1 ..."] [--gc] [--json]
 *
 * --gc: after each snapshot, a full GC of the main thread (node --expose-gc, asked through the probe)
 * and the same figures again: what an idle member holds as garbage rather than live data.
 *
 * The figures are one process on a shared machine: compare runs made one after the other.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { assert } from "../../src/assert.js";
import { findRepoRoot } from "../build/compiled.js";
import { parseNodeFlags } from "../load/config.js";
import { defaultStartOptions, etcdTsTarget } from "../load/targets.js";

const repoRoot = findRepoRoot();
const probePath = join(repoRoot, "bench", "memory", "heapProbe.cjs");
/** The probe writes every 500 ms; a snapshot waits this long for every thread's first record. */
const probeWaitMs = 3_000;
/** Bound on the threads listed from the probe's files (a member runs a handful). */
const threadsMax = 64;
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

interface HeapRecord {
  threadId: number;
  isMainThread: boolean;
  atMs: number;
  heap: {
    total_heap_size: number;
    used_heap_size: number;
    malloced_memory: number;
    external_memory?: number;
    peak_malloced_memory: number;
  };
  spaces: { name: string; sizeBytes: number; usedBytes: number }[];
  memoryUsage?: NodeJS.MemoryUsage;
  eventLoopUtilization?: number;
  /** Full GCs the probe ran on request (main thread). */
  gcCount?: number;
  workerModules?: Record<string, string>;
}

interface Snapshot {
  label: string;
  rssBytes: number;
  peakRssBytes: number;
  rssAnonBytes: number;
  rssFileBytes: number;
  rssShmemBytes: number;
  threadCount: number;
  threadNames: Record<string, number>;
  /** Resident bytes of file mappings by file (basename), largest first. */
  fileMappings: { file: string; rssBytes: number }[];
  /** Resident anonymous bytes by mapping size (-1: "[heap]"), largest first. */
  anonymousBySize: { sizeBytes: number; count: number; rssBytes: number }[];
  threads: {
    threadId: number;
    name: string;
    heapUsedBytes: number;
    heapTotalBytes: number;
    mallocedBytes: number;
    /** How old the thread's record was (a worker asleep in Atomics.wait does not write). */
    ageMs: number;
    /** Committed bytes per V8 heap space ("new_space", "old_space", "code_space", ...). */
    spaces: Record<string, number>;
  }[];
  memoryUsage: NodeJS.MemoryUsage | null;
  mainEventLoopUtilization: number | null;
}

function statusField(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(status);
  return match === null ? Number.NaN : Number(match[1]) * (field === "Threads" ? 1 : 1024);
}

interface Mapping {
  /** The mapped file, "[heap]", "[stack]", or "" for anonymous memory. */
  path: string;
  sizeBytes: number;
  rssBytes: number;
}

/** Every mapping of /proc/<pid>/smaps with its virtual size and resident bytes. */
function mappings(pid: number): Mapping[] {
  const all: Mapping[] = [];
  let current: Mapping | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header !== null) {
      const sizeBytes = Number.parseInt(header[2] ?? "0", 16) - Number.parseInt(header[1] ?? "0", 16);
      current = { path: header[3] ?? "", sizeBytes, rssBytes: 0 };
      all.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && current !== null) current.rssBytes = Number(rss[1]) * 1024;
  }
  return all;
}

/** Resident bytes of file-backed mappings, summed per file, largest first. */
function fileMappingRss(all: readonly Mapping[]): { file: string; rssBytes: number }[] {
  const byFile = new Map<string, number>();
  for (const mapping of all) {
    if (!mapping.path.startsWith("/")) continue;
    byFile.set(mapping.path, (byFile.get(mapping.path) ?? 0) + mapping.rssBytes);
  }
  return [...byFile.entries()]
    .map(([file, rssBytes]) => ({ file: basename(file), rssBytes }))
    .filter((entry) => entry.rssBytes > 0)
    .sort((a, b) => b.rssBytes - a.rssBytes);
}

/**
 * Anonymous resident memory by the virtual size of its mapping, which tells owners apart: V8 heap
 * pages are 256 KiB chunks, glibc's per-thread malloc arenas reserve 64 MiB, a ring's
 * SharedArrayBuffer is one mapping of its capacity (+ a page), "[heap]" is the main malloc arena.
 */
function anonymousBySize(all: readonly Mapping[]): { sizeBytes: number; count: number; rssBytes: number }[] {
  const bySize = new Map<number, { count: number; rssBytes: number }>();
  for (const mapping of all) {
    if (mapping.path.startsWith("/") || mapping.rssBytes === 0) continue;
    const key = mapping.path === "[heap]" ? -1 : mapping.sizeBytes;
    const entry = bySize.get(key) ?? { count: 0, rssBytes: 0 };
    entry.count += 1;
    entry.rssBytes += mapping.rssBytes;
    bySize.set(key, entry);
  }
  return [...bySize.entries()]
    .map(([sizeBytes, entry]) => ({ sizeBytes, ...entry }))
    .sort((a, b) => b.rssBytes - a.rssBytes);
}

function threadNames(pid: number): Record<string, number> {
  const names: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      names[name] = (names[name] ?? 0) + 1;
    } catch {
      // the thread ended while we listed
    }
  }
  return names;
}

/** "walWorker" from a worker's module URL, or the module named inside tsx's eval bootstrap. */
function workerName(module: string | undefined): string {
  if (module === undefined) return "worker (module unknown)";
  const match = /([A-Za-z0-9_-]+)\.(?:js|ts)\b/.exec(module);
  return match?.[1] ?? module.slice(0, 40);
}

function readProbe(probeDir: string): HeapRecord[] {
  const records: HeapRecord[] = [];
  for (const name of readdirSync(probeDir)) {
    if (!/^thread-\d+\.json$/.test(name)) continue;
    records.push(JSON.parse(readFileSync(join(probeDir, name), "utf8")) as HeapRecord);
  }
  assert(records.length <= threadsMax, `more than ${threadsMax} probed threads`);
  return records.sort((a, b) => a.threadId - b.threadId);
}

/** Asks the probe for a full GC in the main thread (needs --expose-gc) and waits until it ran. */
async function requestGc(probeDir: string): Promise<void> {
  const before = readProbe(probeDir).find((record) => record.isMainThread)?.gcCount ?? 0;
  writeFileSync(join(probeDir, "gc-request"), "");
  const deadline = Date.now() + probeWaitMs;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const main = readProbe(probeDir).find((record) => record.isMainThread);
    if ((main?.gcCount ?? 0) > before) return;
  }
  throw new Error("the probe did not run the requested GC (is --expose-gc set?)");
}

async function snapshot(label: string, pid: number, probeDir: string): Promise<Snapshot> {
  // A fresh record from the main thread; a worker asleep in Atomics.wait wrote its last one before it
  // slept, and its heap has not changed since (its age is shown).
  const sinceMs = Date.now();
  const deadline = sinceMs + probeWaitMs;
  const mainIsFresh = (all: HeapRecord[]) =>
    all.some((record) => record.isMainThread && record.atMs >= sinceMs);
  let records = readProbe(probeDir);
  while (Date.now() < deadline && !mainIsFresh(records)) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    records = readProbe(probeDir);
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mapped = mappings(pid);
  const main = records.find((record) => record.isMainThread) ?? null;
  const modules = main?.workerModules ?? {};
  return {
    label,
    rssBytes: statusField(status, "VmRSS"),
    peakRssBytes: statusField(status, "VmHWM"),
    rssAnonBytes: statusField(status, "RssAnon"),
    rssFileBytes: statusField(status, "RssFile"),
    rssShmemBytes: statusField(status, "RssShmem"),
    threadCount: statusField(status, "Threads"),
    threadNames: threadNames(pid),
    fileMappings: fileMappingRss(mapped),
    anonymousBySize: anonymousBySize(mapped),
    threads: records.map((record) => ({
      threadId: record.threadId,
      name: record.isMainThread ? "main" : workerName(modules[String(record.threadId)]),
      heapUsedBytes: record.heap.used_heap_size,
      heapTotalBytes: record.heap.total_heap_size,
      mallocedBytes: record.heap.malloced_memory,
      ageMs: sinceMs - record.atMs,
      spaces: Object.fromEntries(record.spaces.map((space) => [space.name, space.sizeBytes])),
    })),
    memoryUsage: main?.memoryUsage ?? null,
    mainEventLoopUtilization: main?.eventLoopUtilization ?? null,
  };
}

function printSnapshot(s: Snapshot): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`== ${s.label} ==`);
  out(
    `RSS ${mib(s.rssBytes)} MiB (peak ${mib(s.peakRssBytes)}): anon ${mib(s.rssAnonBytes)}, ` +
      `file ${mib(s.rssFileBytes)}, shmem ${mib(s.rssShmemBytes)}; ${s.threadCount} threads ` +
      Object.entries(s.threadNames)
        .map(([name, count]) => `${name} x${count}`)
        .join(", "),
  );
  out("thread              heap used  heap total (committed)  malloced MiB  record age s");
  let heapTotalSum = 0;
  let mallocedSum = 0;
  for (const thread of s.threads) {
    heapTotalSum += thread.heapTotalBytes;
    mallocedSum += thread.mallocedBytes;
    out(
      `${`${thread.name} (#${thread.threadId})`.padEnd(20)}${mib(thread.heapUsedBytes).padStart(9)}` +
        `${mib(thread.heapTotalBytes).padStart(12)}${mib(thread.mallocedBytes).padStart(22)}` +
        `${Math.max(0, thread.ageMs / 1000)
          .toFixed(1)
          .padStart(14)}`,
    );
  }
  out(
    `all isolates: heap committed ${mib(heapTotalSum)} MiB, V8 malloced ${mib(mallocedSum)} MiB; ` +
      `anon RSS minus heaps ${mib(s.rssAnonBytes - heapTotalSum)} MiB (native: malloc, code, stacks, rings, lmdb)`,
  );
  const main = s.threads.find((thread) => thread.name === "main");
  if (main !== undefined) {
    out(
      `main heap spaces (committed MiB): ${Object.entries(main.spaces)
        .filter(([, sizeBytes]) => sizeBytes >= 512 * 1024)
        .map(([name, sizeBytes]) => `${name} ${mib(sizeBytes)}`)
        .join(", ")}`,
    );
  }
  if (s.memoryUsage !== null) {
    const usage = s.memoryUsage;
    out(
      `main process.memoryUsage: external ${mib(usage.external)} MiB (arrayBuffers ${mib(usage.arrayBuffers)}), ` +
        `main event loop utilisation since start ${((s.mainEventLoopUtilization ?? 0) * 100).toFixed(1)}%`,
    );
  }
  out(
    `file-backed RSS: ${s.fileMappings
      .slice(0, 6)
      .map((entry) => `${entry.file} ${mib(entry.rssBytes)}`)
      .join(", ")}`,
  );
  out(
    `anonymous RSS by mapping size: ${s.anonymousBySize
      .slice(0, 8)
      .map(
        (entry) =>
          `${entry.sizeBytes === -1 ? "[heap]" : `${(entry.sizeBytes / 1024).toFixed(0)} KiB`} x${entry.count} ${mib(entry.rssBytes)}`,
      )
      .join(", ")}`,
  );
}

async function runLoad(endpoint: string, load: string, durationSeconds: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(repoRoot, "bench", "cli.ts"),
      "--endpoints",
      endpoint,
      "--load",
      load,
      "--duration",
      durationSeconds,
      "--out",
      mkdtempSync(join(tmpdir(), "member-memory-load-")),
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
  );
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const summary = stdout.split("\n").filter((line) => /^(PASS|FAIL|put:)/.test(line));
  process.stdout.write(`load ${load} for ${durationSeconds} s (exit ${code}): ${summary.join("; ")}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "from-source": { type: "boolean" },
      "idle-seconds": { type: "string" },
      load: { type: "string" },
      duration: { type: "string" },
      "node-flags": { type: "string" },
      json: { type: "boolean" },
      gc: { type: "boolean" },
    },
  });
  const idleMs = Number(values["idle-seconds"] ?? "5") * 1000;
  assert(Number.isFinite(idleMs) && idleMs >= 0, "--idle-seconds must be a number");
  const probeDir = mkdtempSync(join(tmpdir(), "heap-probe-"));
  process.env.HEAP_PROBE_DIR = probeDir;
  const snapshots: Snapshot[] = [];
  const gc = values.gc ?? false;
  const nodeFlags = [
    ...parseNodeFlags(values["node-flags"] ?? ""),
    ...(gc ? ["--expose-gc"] : []),
    "--require",
    probePath,
  ];
  /** Each snapshot, then (--gc) the same after a full GC of the main thread. */
  const measure = async (label: string, pid: number): Promise<void> => {
    snapshots.push(await snapshot(label, pid, probeDir));
    if (!gc) return;
    await requestGc(probeDir);
    snapshots.push(await snapshot(`${label}, then a full GC of the main thread`, pid, probeDir));
  };
  const running = await etcdTsTarget(values["from-source"] ?? false).start({
    ...defaultStartOptions,
    nodeFlags,
  });
  try {
    assert(running.pid !== null, "the bench started the member");
    process.stdout.write(`${running.entryLine}\nnode flags: ${nodeFlags.join(" ")}\n`);
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    await measure(`idle ${idleMs / 1000} s after start`, running.pid);
    if (values.load !== undefined) {
      const endpoint = running.endpoints[0] as string;
      await runLoad(endpoint, values.load, values.duration ?? "10");
      await new Promise((resolve) => setTimeout(resolve, idleMs));
      await measure(`idle ${idleMs / 1000} s after --load ${values.load}`, running.pid);
    }
  } finally {
    await running.stop();
    rmSync(probeDir, { recursive: true, force: true });
  }
  if (values.json === true) process.stdout.write(`${JSON.stringify(snapshots, null, 2)}\n`);
  else for (const s of snapshots) printSnapshot(s);
}

await main();
