import { BenchError } from "../load/errors.js";
import { BuildFrameMapper } from "./sourceMaps.js";

/**
 * Reads V8 .cpuprofile files (what `node --cpu-prof` writes) and sums self time by category: where a
 * server's main thread spends its CPU (GC, grpc-js, node's http2, our codecs, raft, wal, mvcc, ...).
 *
 * The format: `nodes` is the call tree (each node a call frame with its children's ids), `samples[i]`
 * is the id of the node on top of the stack at sample i, and `timeDeltas[i]` the µs since sample
 * i - 1 (from `startTime` for the first). Timestamps are V8's monotonic clock in µs, the clock of
 * `process.hrtime` (CLOCK_MONOTONIC on Linux), so the bench can cut the profile to its timed phase.
 * A sample stands for the interval up to the next sample (as Chrome DevTools counts it).
 */

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

export interface CpuProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Categories in the order they are printed; every sample lands in exactly one. */
export const profileCategories = [
  "GC",
  "grpc-js",
  "node http2",
  "node core",
  "protobuf codec",
  "api",
  "server",
  "raft",
  "wal",
  "mvcc",
  "backend",
  "workers",
  "bench",
  "V8 (program)",
  "other",
] as const;
export type ProfileCategory = (typeof profileCategories)[number];

/** Path fragments of a frame's url and the category they mean; the first match wins. */
const urlCategories: ReadonlyArray<readonly [string, ProfileCategory]> = [
  ["/node_modules/@grpc/", "grpc-js"],
  ["/node_modules/protobufjs/", "protobuf codec"],
  ["/node_modules/lmdb/", "backend"],
  ["/node_modules/msgpackr/", "backend"],
  ["/src/proto/", "protobuf codec"],
  ["/src/api/", "api"],
  ["/src/server/", "server"],
  ["/src/raft/", "raft"],
  ["/src/wal/", "wal"],
  ["/src/mvcc/", "mvcc"],
  ["/src/backend/", "backend"],
  ["/native-free/", "backend"],
  ["/src/workers/", "workers"],
  ["/bench/", "bench"],
];

/** V8's pseudo frames: not JS functions but states of the VM. */
const idleFunction = "(idle)";
const gcFunction = "(garbage collector)";
const programFunction = "(program)";
const rootFunction = "(root)";

/**
 * The category of a frame from its url alone, or null when the url says nothing (a native function
 * such as a libuv binding has no url: it is charged to the nearest caller that has one).
 */
export function categoryOfUrl(url: string): ProfileCategory | null {
  if (url === "") return null;
  if (url.startsWith("node:internal/http2/") || url === "node:http2") return "node http2";
  if (url.startsWith("node:")) return "node core";
  for (const [fragment, category] of urlCategories) {
    if (url.includes(fragment)) return category;
  }
  return "other";
}

/** Top functions kept per category in a summary (the rest are in the category's total). */
export const topFunctionsPerCategory = 5;

export interface FunctionCost {
  functionName: string;
  /** url:line shortened to the repository or node_modules path. */
  location: string;
  selfMs: number;
  /** Share of the thread's busy (non-idle) time, 0..100. */
  percent: number;
  /**
   * For code outside the project (Node, grpc-js, natives): the project function ("name location")
   * under which most of its time was spent, e.g. the caller that made `statSync` hot; else null.
   */
  via: string | null;
}

export interface CategoryCost {
  category: ProfileCategory;
  selfMs: number;
  percent: number;
  top: FunctionCost[];
}

export interface ThreadProfileSummary {
  /** V8's thread id from the file name (0 is the main thread), or null if the name has none. */
  threadId: number | null;
  file: string;
  /** Time covered by the samples counted (inside the window). */
  sampledMs: number;
  samples: number;
  /** Time the thread sat in its event loop waiting for I/O. */
  idleMs: number;
  /** sampledMs - idleMs: the base of every percentage. */
  busyMs: number;
  categories: CategoryCost[];
}

/** A time window on the profile's clock (µs, CLOCK_MONOTONIC); null bounds are open. */
export interface ProfileWindow {
  startUs: number | null;
  endUs: number | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function formatError(file: string, what: string): BenchError {
  return new BenchError("BENCH_PROFILE", `${file} is not a V8 .cpuprofile: ${what}`);
}

/** Checks the shape of a parsed .cpuprofile (JSON from a file we did not write ourselves). */
export function parseCpuProfile(json: unknown, file: string): CpuProfile {
  if (!isRecord(json)) throw formatError(file, "not an object");
  const { nodes, startTime, endTime, samples, timeDeltas } = json;
  if (!Array.isArray(nodes)) throw formatError(file, "no nodes");
  if (typeof startTime !== "number" || typeof endTime !== "number")
    throw formatError(file, "no start/end time");
  if (!Array.isArray(samples) || !Array.isArray(timeDeltas) || samples.length !== timeDeltas.length) {
    throw formatError(file, "samples and timeDeltas missing or of different lengths");
  }
  for (const node of nodes) {
    if (!isRecord(node) || typeof node.id !== "number" || !isRecord(node.callFrame)) {
      throw formatError(file, "a node without id or callFrame");
    }
    const frame = node.callFrame;
    if (typeof frame.functionName !== "string" || typeof frame.url !== "string") {
      throw formatError(file, "a call frame without functionName or url");
    }
    if (node.children !== undefined && !Array.isArray(node.children)) throw formatError(file, "bad children");
  }
  if (!samples.every((id) => typeof id === "number") || !timeDeltas.every((d) => typeof d === "number")) {
    throw formatError(file, "non-numeric samples or timeDeltas");
  }
  return json as unknown as CpuProfile;
}

/** V8's thread id from Node's default file name CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile. */
export function threadIdOfFile(file: string): number | null {
  const match = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(file);
  return match?.[2] === undefined ? null : Number(match[2]);
}

/** url:line relative to the repository (or from node_modules/ on), for reading in a terminal. */
export function shortLocation(frame: CallFrame, repoRoot: string): string {
  let url = frame.url;
  if (url === "") return "(native)";
  if (url.startsWith("file://")) url = decodeURIComponent(url.slice("file://".length));
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) url = url.slice(modules + 1);
  else if (url.startsWith(repoRoot)) url = url.slice(repoRoot.length);
  // V8's lineNumber is 0-based; editors count from 1. tsx compiles each .ts file to one line, so
  // a line 0 says nothing there (mapping columns back needs the source map, not in the profile).
  return frame.lineNumber > 0 ? `${url}:${frame.lineNumber + 1}` : url;
}

interface ResolvedNode {
  category: ProfileCategory | "idle";
  /** Identifies the function (name and location) across the call tree's many nodes for it. */
  key: string;
  functionName: string;
  location: string;
  isProject: boolean;
  /** For a frame outside our code: the nearest caller in our code ("name location"), or null. */
  projectCaller: string | null;
}

/** Whether a frame is the project's own code (src/, bench/, native-free/), not a dependency or Node. */
function isProjectUrl(url: string, repoRoot: string): boolean {
  return url.includes(repoRoot) && !url.includes("/node_modules/");
}

/**
 * Resolves every node's category once, walking the tree from the root so each node knows its
 * nearest ancestor with a url (an explicit stack, bounded by the node count, not recursion).
 */
function resolveNodes(profile: CpuProfile, repoRoot: string): Map<number, ResolvedNode> {
  const byId = new Map<number, CpuProfileNode>();
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const resolved = new Map<number, ResolvedNode>();
  // Frames of the compiled build the benches run read as their .ts sources.
  const mapper = new BuildFrameMapper(repoRoot);
  const resolve = (id: number): ResolvedNode => {
    const done = resolved.get(id);
    if (done !== undefined) return done;
    const node = byId.get(id);
    if (node === undefined) throw formatError("profile", `sample of unknown node ${id}`);
    const frame = mapper.map(node.callFrame);
    let result: ResolvedNode;
    const location = shortLocation(frame, repoRoot);
    const name = frame.functionName || "(anonymous)";
    const pseudo = { key: name, functionName: name, location: "", isProject: false, projectCaller: null };
    if (frame.functionName === idleFunction) {
      result = { category: "idle", ...pseudo };
    } else if (frame.functionName === gcFunction) {
      result = { category: "GC", ...pseudo };
    } else if (frame.functionName === programFunction || frame.functionName === rootFunction) {
      result = { category: "V8 (program)", ...pseudo };
    } else {
      const own = categoryOfUrl(frame.url);
      let category: ProfileCategory = own ?? "other";
      const parentId = parentOf.get(id);
      const parent = parentId === undefined ? null : resolve(parentId);
      // A native (no url): charge its time to the category of the nearest caller with a url.
      if (own === null && parent !== null && parent.category !== "idle") category = parent.category;
      const isProject = isProjectUrl(frame.url, repoRoot);
      const projectCaller =
        isProject || parent === null ? null : parent.isProject ? parent.key : parent.projectCaller;
      result = {
        category,
        key: `${name} ${location}`,
        functionName: name,
        location,
        isProject,
        projectCaller,
      };
    }
    resolved.set(id, result);
    return result;
  };
  // Parents before children, so `resolve` recurses at most one level.
  const order: number[] = [];
  const roots = profile.nodes.filter((node) => !parentOf.has(node.id)).map((node) => node.id);
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop()!;
    order.push(id);
    for (const child of byId.get(id)?.children ?? []) stack.push(child);
  }
  for (const id of order) resolve(id);
  return resolved;
}

/** The key with the largest value, or null for an empty map. */
function mostOf(usByKey: ReadonlyMap<string, number>): string | null {
  let best: string | null = null;
  let bestUs = -1;
  for (const [key, us] of usByKey) {
    if (us > bestUs) {
      best = key;
      bestUs = us;
    }
  }
  return best;
}

/**
 * Self time by category (and each category's top functions) for the samples inside `window`.
 * Percentages are of the busy time: samples in "(idle)" are the event loop waiting, not CPU.
 */
export function summarizeCpuProfile(
  profile: CpuProfile,
  options: { file: string; repoRoot: string; window: ProfileWindow },
): ThreadProfileSummary {
  const resolved = resolveNodes(profile, options.repoRoot);
  const startUs = options.window.startUs ?? Number.NEGATIVE_INFINITY;
  const endUs = options.window.endUs ?? Number.POSITIVE_INFINITY;
  const selfUsByKey = new Map<string, { node: ResolvedNode; us: number; usByCaller: Map<string, number> }>();
  let sampledUs = 0;
  let idleUs = 0;
  let counted = 0;
  let timestampUs = profile.startTime;
  const sampleCount = profile.samples.length;
  for (let index = 0; index < sampleCount; index++) {
    timestampUs += profile.timeDeltas[index]!;
    const nextUs = index + 1 < sampleCount ? timestampUs + profile.timeDeltas[index + 1]! : profile.endTime;
    if (timestampUs < startUs || timestampUs > endUs) continue;
    const durationUs = Math.max(0, Math.min(nextUs, endUs) - timestampUs);
    const node = resolved.get(profile.samples[index]!);
    if (node === undefined)
      throw formatError(options.file, `sample of unknown node ${profile.samples[index]}`);
    counted++;
    sampledUs += durationUs;
    if (node.category === "idle") {
      idleUs += durationUs;
      continue;
    }
    let entry = selfUsByKey.get(node.key);
    if (entry === undefined) {
      entry = { node, us: 0, usByCaller: new Map() };
      selfUsByKey.set(node.key, entry);
    }
    entry.us += durationUs;
    if (node.projectCaller !== null) {
      entry.usByCaller.set(node.projectCaller, (entry.usByCaller.get(node.projectCaller) ?? 0) + durationUs);
    }
  }
  const busyUs = sampledUs - idleUs;
  const percentOf = (us: number): number => (busyUs > 0 ? (100 * us) / busyUs : 0);
  const byCategory = new Map<ProfileCategory, { us: number; functions: FunctionCost[] }>();
  for (const { node, us, usByCaller } of selfUsByKey.values()) {
    if (node.category === "idle") continue;
    let entry = byCategory.get(node.category);
    if (entry === undefined) {
      entry = { us: 0, functions: [] };
      byCategory.set(node.category, entry);
    }
    entry.us += us;
    entry.functions.push({
      functionName: node.functionName,
      location: node.location,
      selfMs: us / 1000,
      percent: percentOf(us),
      via: mostOf(usByCaller),
    });
  }
  const categories: CategoryCost[] = [];
  for (const category of profileCategories) {
    const entry = byCategory.get(category);
    if (entry === undefined || entry.us === 0) continue;
    entry.functions.sort((a, b) => b.selfMs - a.selfMs);
    categories.push({
      category,
      selfMs: entry.us / 1000,
      percent: percentOf(entry.us),
      top: entry.functions.slice(0, topFunctionsPerCategory),
    });
  }
  categories.sort((a, b) => b.selfMs - a.selfMs);
  return {
    threadId: threadIdOfFile(options.file),
    file: options.file,
    sampledMs: sampledUs / 1000,
    samples: counted,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    categories,
  };
}
