import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  type Builder,
  buildStaleness,
  compiledPath,
  currentBuildDir,
  type ResolveOptions,
  resolveEntry,
} from "../../bench/build/compiled.js";
import { parseConfig } from "../../bench/load/config.js";
import { BenchError } from "../../bench/load/errors.js";

/*
 * The rule that decides when the benches recompile etcd-ts, on a small fake repository: every input
 * gets an mtime in 2020 and builds "start" in 2021 (an injected clock), so no case depends on how
 * fast this machine is or on the kernel's file clock.
 */

const sourceMs2020 = Date.UTC(2020, 0, 1);
const buildStartMs2021 = Date.UTC(2021, 0, 1);
const laterMs2022 = Date.UTC(2022, 0, 1);
const entrySource = "src/bin/etcd-ts.ts";

let repoRoot: string;
let cacheDir: string;
let builds: string[];
/** What the fake tsc does besides emitting the entry; replaced by cases. */
let duringBuild: (outDir: string) => string | null;

const fakeTsc: Builder = (_repoRoot, outDir) => {
  builds.push(outDir);
  mkdirSync(dirname(compiledPath(outDir, entrySource)), { recursive: true });
  writeFileSync(compiledPath(outDir, entrySource), "// compiled\n");
  return duringBuild(outDir);
};

function setMtime(path: string, mtimeMs: number): void {
  utimesSync(path, new Date(mtimeMs), new Date(mtimeMs));
}

/** Sets every input (files and directories) to 2020. */
function ageInputs(): void {
  for (const top of ["src", "bench", "tsconfig.json", "tsconfig.build.json"]) {
    const pending = [join(repoRoot, top)];
    while (pending.length > 0) {
      const path = pending.pop() as string;
      if (statSync(path).isDirectory()) for (const name of readdirSync(path)) pending.push(join(path, name));
      setMtime(path, sourceMs2020);
    }
  }
}

function resolve(extra: Partial<ResolveOptions> = {}) {
  return resolveEntry({
    sourceRelativePath: entrySource,
    label: "etcd-ts",
    fromSource: false,
    repoRoot,
    cacheDir,
    builder: fakeTsc,
    nowMs: () => buildStartMs2021,
    ...extra,
  });
}

beforeEach(() => {
  repoRoot = mkdtempSync(join(tmpdir(), "bench-build-test-"));
  cacheDir = join(repoRoot, "cache");
  builds = [];
  duringBuild = () => null;
  mkdirSync(join(repoRoot, "src", "bin"), { recursive: true });
  mkdirSync(join(repoRoot, "bench", "results"), { recursive: true });
  writeFileSync(join(repoRoot, entrySource), "export {};\n");
  writeFileSync(join(repoRoot, "src", "other.ts"), "export {};\n");
  writeFileSync(join(repoRoot, "tsconfig.json"), "{}\n");
  writeFileSync(join(repoRoot, "tsconfig.build.json"), "{}\n");
  ageInputs();
});

afterEach(() => rmSync(repoRoot, { recursive: true, force: true }));

describe("the compiled etcd-ts the benches run (bench/build/compiled.ts)", () => {
  it("builds when there is no build, and says so", () => {
    assert.deepEqual(buildStaleness(currentBuildDir(cacheDir), repoRoot, entrySource), {
      stale: true,
      reason: "no build yet",
    });
    const entry = resolve();
    assert.equal(builds.length, 1);
    assert.equal(entry.origin, "build");
    assert.equal(entry.rebuilt, true);
    assert.equal(entry.entryPath, compiledPath(builds[0]!, entrySource));
    assert.equal(currentBuildDir(cacheDir), builds[0]);
    assert.match(
      entry.line,
      /^etcd-ts entry: cache\/b-\d+-\d+\/src\/bin\/etcd-ts\.js \(rebuilt in \d+ ms: no build yet\)$/,
    );
  });

  it("reuses a build newer than every input, without running tsc", () => {
    resolve();
    const again = resolve();
    assert.equal(builds.length, 1, "tsc ran once");
    assert.equal(again.rebuilt, false);
    assert.equal(again.entryPath, compiledPath(builds[0]!, entrySource));
    assert.match(again.line, /\(build up to date\)$/);
  });

  it("rebuilds when a source under src/ is newer than the build, and names it", () => {
    resolve();
    setMtime(join(repoRoot, "src", "other.ts"), laterMs2022);
    const entry = resolve({ nowMs: () => laterMs2022 + 60_000 });
    assert.equal(builds.length, 2);
    assert.equal(entry.rebuilt, true);
    assert.match(entry.line, /src\/other\.ts changed/);
    assert.equal(resolve({ nowMs: () => laterMs2022 + 60_000 }).rebuilt, false, "and then it is up to date");
  });

  it("rebuilds when a tsconfig changed", () => {
    resolve();
    setMtime(join(repoRoot, "tsconfig.build.json"), laterMs2022);
    assert.match(resolve().line, /tsconfig\.build\.json changed/);
  });

  it("counts a source saved while tsc ran as newer than the build (the stamp is the start time)", () => {
    duringBuild = () => {
      setMtime(join(repoRoot, "src", "other.ts"), buildStartMs2021 + 1_000);
      return null;
    };
    resolve();
    duringBuild = () => null;
    const next = resolve({ nowMs: () => laterMs2022 });
    assert.equal(next.rebuilt, true);
    assert.match(next.line, /src\/other\.ts changed/);
  });

  it("counts a source saved just before tsc started as newer (file clocks lag Date.now by a tick)", () => {
    setMtime(join(repoRoot, "src", "other.ts"), buildStartMs2021 - 50);
    resolve();
    assert.equal(resolve({ nowMs: () => laterMs2022 }).rebuilt, true, "one extra build, never a stale one");
  });

  it("rebuilds when a source was deleted (its directory's mtime moved)", () => {
    resolve();
    unlinkSync(join(repoRoot, "src", "other.ts"));
    const entry = resolve({ nowMs: () => Date.now() + 60_000 });
    assert.equal(entry.rebuilt, true);
    assert.match(entry.line, /\(rebuilt in \d+ ms: src changed\)/);
  });

  it("rebuilds when the build lost its entry file", () => {
    resolve();
    unlinkSync(compiledPath(builds[0]!, entrySource));
    assert.deepEqual(buildStaleness(currentBuildDir(cacheDir), repoRoot, entrySource), {
      stale: true,
      reason: `the build has no ${entrySource}`,
    });
    assert.equal(resolve().rebuilt, true);
  });

  it("ignores the reports the bench writes under bench/results/", () => {
    resolve();
    writeFileSync(join(repoRoot, "bench", "results", "summary.json"), "{}\n");
    setMtime(join(repoRoot, "bench", "results"), laterMs2022);
    assert.equal(resolve().rebuilt, false);
  });

  it("rebuilds for a newer file under bench/ (the no-op server is compiled too)", () => {
    resolve();
    writeFileSync(join(repoRoot, "bench", "server.ts"), "export {};\n");
    setMtime(join(repoRoot, "bench", "server.ts"), laterMs2022);
    setMtime(join(repoRoot, "bench"), sourceMs2020);
    assert.match(resolve().line, /bench\/server\.ts changed/);
  });

  it("removes builds over an hour older than the new one, keeps younger ones (other benches may use them)", () => {
    resolve(); // 2021-01-01
    // Another bench's build, started a minute before the next one and still running (no stamp yet).
    const concurrent = join(cacheDir, `b-${laterMs2022 - 60_000}-1`);
    mkdirSync(concurrent, { recursive: true });
    setMtime(join(repoRoot, "src", "other.ts"), laterMs2022 - 3_600_000);
    resolve({ nowMs: () => laterMs2022 });
    assert.equal(builds.length, 2);
    const kept = readdirSync(cacheDir)
      .filter((name) => name.startsWith("b-"))
      .map((name) => join(cacheDir, name))
      .sort();
    assert.deepEqual(kept, [concurrent, builds[1]!].sort(), "the 2021 build went, the running one stayed");
  });

  it("uses what tsc emitted despite type errors, and says so", () => {
    duringBuild = () => "tsc exited with 2: src/x.ts(1,1): error TS2322";
    const entry = resolve();
    assert.equal(entry.origin, "build");
    assert.match(
      entry.line,
      /; tsc exited with 2: src\/x\.ts\(1,1\): error TS2322, the emitted JS is used\)$/,
    );
  });

  it("fails with BENCH_TARGET_START when the build has no entry", () => {
    const emptyTsc: Builder = (_repoRoot, outDir) => {
      mkdirSync(outDir, { recursive: true });
      return "tsc exited with 1: error TS5058: The specified path does not exist";
    };
    assert.throws(
      () => resolve({ builder: emptyTsc }),
      (error: unknown) =>
        error instanceof BenchError &&
        error.code === "BENCH_TARGET_START" &&
        /the build has no src\/bin\/etcd-ts\.ts .*TS5058/.test(error.message),
    );
  });

  it("runs $ETCD_TS_ENTRY as is, without building", () => {
    const entry = resolve({ envEntry: join(repoRoot, entrySource) });
    assert.equal(builds.length, 0);
    assert.equal(entry.origin, "env");
    assert.equal(entry.entryPath, join(repoRoot, entrySource));
    const missing = join(repoRoot, "missing.js");
    assert.throws(
      () => resolve({ envEntry: missing }),
      (error: unknown) =>
        error instanceof BenchError &&
        error.message === `etcd-ts server entry point not found: ${missing} (set ETCD_TS_ENTRY)`,
    );
  });

  it("runs the .ts source under tsx with --from-source, without building", () => {
    const entry = resolve({ fromSource: true });
    assert.equal(builds.length, 0);
    assert.equal(entry.origin, "source");
    assert.equal(entry.entryPath, join(repoRoot, entrySource));
    assert.match(entry.line, /under tsx \(--from-source/);
  });

  it("keeps a run on the build it started with, even when sources change meanwhile", () => {
    const first = resolve();
    setMtime(join(repoRoot, "src", "other.ts"), laterMs2022);
    const second = resolve({ pinnedBuildDir: first.buildDir });
    assert.equal(builds.length, 1);
    assert.equal(second.entryPath, first.entryPath);
    assert.match(second.line, /the build this run started with/);
  });
});

describe("--from-source on the bench CLI", () => {
  it("is off by default and on with the flag", () => {
    assert.equal(parseConfig(["--compare-etcd-ts"]).fromSource, false);
    assert.equal(parseConfig(["--compare-etcd-ts", "--from-source"]).fromSource, true);
    assert.equal(parseConfig(["--compare-null", "--from-source"]).fromSource, true);
  });

  it("needs a Node server the bench starts", () => {
    assert.throws(
      () => parseConfig(["--from-source"]),
      (error: unknown) =>
        error instanceof BenchError &&
        error.code === "BENCH_BAD_ARGS" &&
        /--from-source applies to a Node server the bench starts/.test(error.message),
    );
  });
});
