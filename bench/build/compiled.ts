/**
 * Which etcd-ts code the benches run: the compiled build, as users run the package (package.json's
 * bin is dist/src/bin/etcd-ts.js), not the TypeScript sources under tsx. tsx transpiles in the main
 * thread and again in every worker thread; an idle member measured 265 MB RSS / 18 threads under tsx
 * against 165 MB / 14 threads compiled, so figures compared with etcd must come from the build.
 *
 * The build is `tsc -p tsconfig.build.json --outDir <cache>/b-<time>-<pid>` (cache: buildCacheDirName),
 * made again when anything under src/ (or bench/, test/support/, a tsconfig) changed since the last
 * build started. Each build goes to a fresh directory and the symlink `<cache>/current` is swapped to it
 * atomically, so two benches that rebuild at once
 * both end with a complete build, and a running member keeps the files it started from.
 *
 * Choice, first match wins: $ETCD_TS_ENTRY (a path to run as is), --from-source (the .ts sources
 * under tsx, for debugging with original line numbers), the build.
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert } from "../../src/assert.js";
import { BenchError } from "../load/errors.js";

/**
 * The cache directory, inside the repository so the compiled code resolves packages from its
 * node_modules as the sources do; under node_modules/.cache (the usual home of tool caches) so git,
 * biome and `find test` already ignore it, and `npm ci` just drops it (the next bench rebuilds).
 */
export const buildCacheDirName = join("node_modules", ".cache", "etcd-ts-bench");
const currentLinkName = "current";
const stampFileName = "bench-build-stamp.json";
const buildDirPrefix = "b-";
/**
 * A file's mtime may read up to a kernel tick (a few ms) behind Date.now() at the moment it is written
 * (the kernel stamps files from a coarse clock). A file edited this close before a build started is
 * counted as newer: at worst one extra rebuild, never a stale build.
 */
const mtimeSlackMs = 100;
/** Directories walked under the inputs, at most: a bound on the walk, far above src/'s size. */
const inputEntriesMax = 100_000;
/** How long one tsc run may take before the bench gives up on it. */
const buildTimeoutMs = 300_000;
/**
 * How long an older build is kept after a newer one (each is ~4 MB): longer than any bench run that may
 * still start members from it, and than any tsc run building into its own directory meanwhile.
 */
export const buildKeepMs = 3_600_000;
/** Characters of tsc's output kept for the error or warning line. */
const buildOutputCharsMax = 600;

/** The repository: the nearest directory up from here that holds package.json and src/. */
export function findRepoRoot(fromUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "src"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no repository (package.json beside src/) above ${fromUrl}`);
    dir = parent;
  }
}

/**
 * What the build is made from: a change to any of these makes it stale. src/ is the server; bench/ and
 * test/support/ (which bench imports) are compiled too, for the no-op server and the watch doubles.
 */
export function buildInputs(repoRoot: string): { paths: string[]; skipped: string[] } {
  return {
    paths: ["src", "bench", join("test", "support"), "tsconfig.json", "tsconfig.build.json"].map((path) =>
      join(repoRoot, path),
    ),
    // Reports the bench writes on every run are not sources.
    skipped: [join(repoRoot, "bench", "results")],
  };
}

/** The newest file or directory under `paths` (a directory's mtime moves when a file is added or deleted). */
export function newestInput(
  paths: readonly string[],
  skipped: readonly string[] = [],
): { path: string; mtimeMs: number } | null {
  let newest: { path: string; mtimeMs: number } | null = null;
  const pending = paths.filter((path) => !skipped.includes(path));
  let visited = 0;
  while (pending.length > 0) {
    const path = pending.pop() as string;
    visited += 1;
    assert(visited <= inputEntriesMax, `more than ${inputEntriesMax} build inputs under ${paths.join(", ")}`);
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(path);
    } catch {
      continue; // a missing tsconfig, or a file deleted while we walk: its directory's mtime says so
    }
    if (newest === null || stat.mtimeMs > newest.mtimeMs) newest = { path, mtimeMs: stat.mtimeMs };
    if (stat.isDirectory()) {
      for (const name of readdirSync(path)) {
        const child = join(path, name);
        if (!skipped.includes(child)) pending.push(child);
      }
    }
  }
  return newest;
}

interface Stamp {
  /** Date.now() when tsc started: inputs changed after this are not (all) in the build. */
  startedAtMs: number;
}

function readStamp(buildDir: string): Stamp | null {
  try {
    const value = JSON.parse(readFileSync(join(buildDir, stampFileName), "utf8")) as Partial<Stamp>;
    return typeof value.startedAtMs === "number" ? { startedAtMs: value.startedAtMs } : null;
  } catch {
    return null;
  }
}

/** The build `current` points at (absolute), or null when there is none. */
export function currentBuildDir(cacheDir: string): string | null {
  try {
    return join(cacheDir, readlinkSync(join(cacheDir, currentLinkName)));
  } catch {
    return null;
  }
}

/** The entry's path inside a build: src/bin/etcd-ts.ts -> <build>/src/bin/etcd-ts.js. */
export function compiledPath(buildDir: string, sourceRelativePath: string): string {
  assert(sourceRelativePath.endsWith(".ts"), `not a TypeScript source: ${sourceRelativePath}`);
  return join(buildDir, `${sourceRelativePath.slice(0, -".ts".length)}.js`);
}

export type Staleness = { stale: false } | { stale: true; reason: string };

/**
 * Whether the build in `buildDir` must be made again before running `sourceRelativePath` from it:
 * missing, without a stamp, without that file, or older than an input.
 */
export function buildStaleness(
  buildDir: string | null,
  repoRoot: string,
  sourceRelativePath: string,
): Staleness {
  if (buildDir === null || !existsSync(buildDir)) return { stale: true, reason: "no build yet" };
  const stamp = readStamp(buildDir);
  if (stamp === null) return { stale: true, reason: "the build has no stamp" };
  if (!existsSync(compiledPath(buildDir, sourceRelativePath))) {
    return { stale: true, reason: `the build has no ${sourceRelativePath}` };
  }
  const inputs = buildInputs(repoRoot);
  const newest = newestInput(inputs.paths, inputs.skipped);
  if (newest !== null && newest.mtimeMs > stamp.startedAtMs - mtimeSlackMs) {
    return { stale: true, reason: `${relative(repoRoot, newest.path) || newest.path} changed` };
  }
  return { stale: false };
}

/** Compiles the project into `outDir`; returns tsc's complaint when it reported errors, else null. */
export type Builder = (repoRoot: string, outDir: string) => string | null;

/** tsc from the project's node_modules (not npx: no network, no npm's warnings). */
export const tscBuilder: Builder = (repoRoot, outDir) => {
  const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  const result = spawnSync(
    process.execPath,
    [tsc, "-p", join(repoRoot, "tsconfig.build.json"), "--outDir", outDir, "--declaration", "false"],
    { cwd: repoRoot, encoding: "utf8", timeout: buildTimeoutMs },
  );
  if (result.error !== undefined) {
    throw new BenchError("BENCH_TARGET_START", `cannot run tsc (${tsc}): ${result.error.message}`);
  }
  if (result.status === 0) return null;
  const output = `${result.stdout}${result.stderr}`.trim().split("\n")[0] ?? "";
  return `tsc exited with ${result.status}: ${output.slice(0, buildOutputCharsMax)}`;
};

/** Makes a new build and points `current` at it; returns it and tsc's complaint (type errors) or null. */
function rebuild(
  cacheDir: string,
  repoRoot: string,
  builder: Builder,
  nowMs: () => number,
): { buildDir: string; complaint: string | null } {
  mkdirSync(cacheDir, { recursive: true });
  const startedAtMs = nowMs();
  const dirName = `${buildDirPrefix}${startedAtMs}-${process.pid}`;
  const buildDir = join(cacheDir, dirName);
  rmSync(buildDir, { recursive: true, force: true });
  const complaint = builder(repoRoot, buildDir);
  // The stamp holds the start time: a source saved while tsc ran is newer than the build.
  writeFileSync(join(buildDir, stampFileName), `${JSON.stringify({ startedAtMs } satisfies Stamp)}\n`);
  const temporaryLink = join(cacheDir, `${currentLinkName}.${process.pid}`);
  rmSync(temporaryLink, { force: true });
  symlinkSync(dirName, temporaryLink);
  renameSync(temporaryLink, join(cacheDir, currentLinkName));
  // Builds older than buildKeepMs go, except the current one. Not just "all but the newest": other
  // benches may be building into their own directory right now, or running members from an older
  // build for a long run (a cluster starts members one by one).
  for (const name of readdirSync(cacheDir)) {
    const match = /^b-(\d+)-\d+$/.exec(name);
    if (match === null || name === dirName) continue;
    if (Number(match[1]) < startedAtMs - buildKeepMs)
      rmSync(join(cacheDir, name), { recursive: true, force: true });
  }
  return { buildDir, complaint };
}

export interface ResolvedEntry {
  /** What to run: a .js path (node), or a .ts path (node --import tsx). */
  entryPath: string;
  /** Where it came from. */
  origin: "env" | "source" | "build";
  /** Whether this call compiled the build. */
  rebuilt: boolean;
  /** The build it runs from (origin "build"), else null. */
  buildDir: string | null;
  /** One line for the bench's output: which entry and why. */
  line: string;
}

export interface ResolveOptions {
  /** --from-source: run the .ts sources under tsx. */
  fromSource: boolean;
  /** The source file, relative to the repository: "src/bin/etcd-ts.ts". */
  sourceRelativePath: string;
  /** Names the entry in the printed line: "etcd-ts", "null server". */
  label: string;
  /** $ETCD_TS_ENTRY's value, or undefined; only for the etcd-ts entry. */
  envEntry?: string | undefined;
  repoRoot?: string;
  /** Default: <repoRoot>/<buildCacheDirName>. */
  cacheDir?: string;
  builder?: Builder;
  nowMs?: () => number;
  /**
   * A build this process already runs from: used as is when it has the entry, so every server of one
   * bench run runs the same build even if sources change meanwhile.
   */
  pinnedBuildDir?: string | null;
}

/**
 * The file to run for `sourceRelativePath`, building first when the build is missing or stale.
 * Throws BENCH_TARGET_START when the entry does not exist (or the build did not produce it).
 */
export function resolveEntry(options: ResolveOptions): ResolvedEntry {
  const repoRoot = options.repoRoot ?? findRepoRoot();
  if (options.envEntry !== undefined && options.envEntry !== "") {
    const entryPath = options.envEntry;
    if (!existsSync(entryPath)) {
      throw new BenchError(
        "BENCH_TARGET_START",
        `etcd-ts server entry point not found: ${entryPath} (set ETCD_TS_ENTRY)`,
      );
    }
    return {
      entryPath,
      origin: "env",
      rebuilt: false,
      buildDir: null,
      line: `${options.label} entry: ${entryPath} ($ETCD_TS_ENTRY)`,
    };
  }
  if (options.fromSource) {
    const entryPath = join(repoRoot, options.sourceRelativePath);
    if (!existsSync(entryPath)) {
      throw new BenchError("BENCH_TARGET_START", `${options.label} entry point not found: ${entryPath}`);
    }
    return {
      entryPath,
      origin: "source",
      rebuilt: false,
      buildDir: null,
      line: `${options.label} entry: ${options.sourceRelativePath} under tsx (--from-source; RSS and CPU include tsx's loader)`,
    };
  }
  const pinned = options.pinnedBuildDir ?? null;
  if (pinned !== null && existsSync(compiledPath(pinned, options.sourceRelativePath))) {
    const entryPath = compiledPath(pinned, options.sourceRelativePath);
    return {
      entryPath,
      origin: "build",
      rebuilt: false,
      buildDir: pinned,
      line: `${options.label} entry: ${relative(repoRoot, entryPath)} (the build this run started with)`,
    };
  }
  const cacheDir = options.cacheDir ?? join(repoRoot, buildCacheDirName);
  const staleness = buildStaleness(currentBuildDir(cacheDir), repoRoot, options.sourceRelativePath);
  let complaint: string | null = null;
  // Ours when we built (another bench may swap `current` to its own build meanwhile).
  let buildDir = currentBuildDir(cacheDir);
  let rebuiltMs: number | null = null;
  if (staleness.stale) {
    const startedAtMs = Date.now();
    ({ buildDir, complaint } = rebuild(
      cacheDir,
      repoRoot,
      options.builder ?? tscBuilder,
      options.nowMs ?? Date.now,
    ));
    rebuiltMs = Date.now() - startedAtMs;
  }
  assert(buildDir !== null, "a build exists after rebuild");
  const entryPath = compiledPath(buildDir, options.sourceRelativePath);
  if (!existsSync(entryPath)) {
    throw new BenchError(
      "BENCH_TARGET_START",
      `the build has no ${options.sourceRelativePath} (${entryPath})${complaint === null ? "" : `: ${complaint}`}`,
    );
  }
  const shown = relative(repoRoot, entryPath);
  const line = staleness.stale
    ? `${options.label} entry: ${shown} (rebuilt in ${rebuiltMs} ms: ${staleness.reason}` +
      `${complaint === null ? "" : `; ${complaint}, the emitted JS is used`})`
    : `${options.label} entry: ${shown} (build up to date)`;
  return { entryPath, origin: "build", rebuilt: staleness.stale, buildDir, line };
}
