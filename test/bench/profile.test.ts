import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseConfig } from "../../bench/load/config.js";
import {
  type CpuProfile,
  type CpuProfileNode,
  categoryOfUrl,
  parseCpuProfile,
  summarizeCpuProfile,
  threadIdOfFile,
} from "../../bench/profile/cpuProfile.js";
import { parseTraceGcLine } from "../../bench/profile/session.js";
import type { BenchSummary } from "../../bench/report/summary.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const execFileAsync = promisify(execFile);

describe("cpu profile categories", () => {
  const cases: Array<[string, string | null]> = [
    [`file://${repoRoot}node_modules/@grpc/grpc-js/build/src/server.js`, "grpc-js"],
    ["node:internal/http2/core", "node http2"],
    ["node:internal/http2/util", "node http2"],
    ["node:internal/streams/readable", "node core"],
    ["node:events", "node core"],
    [`file://${repoRoot}src/proto/gen/etcdserverpb.ts`, "protobuf codec"],
    [`file://${repoRoot}node_modules/protobufjs/src/reader.js`, "protobuf codec"],
    [`file://${repoRoot}src/raft/raft.ts`, "raft"],
    [`file://${repoRoot}src/wal/wal.ts`, "wal"],
    [`file://${repoRoot}src/mvcc/store.ts`, "mvcc"],
    [`file://${repoRoot}src/backend/lmdb.ts`, "backend"],
    [`file://${repoRoot}node_modules/lmdb/write.js`, "backend"],
    [`file://${repoRoot}native-free/backend.ts`, "backend"],
    [`file://${repoRoot}src/api/kv.ts`, "api"],
    [`file://${repoRoot}src/server/etcdServer.ts`, "server"],
    [`file://${repoRoot}node_modules/pino/pino.js`, "other"],
    ["", null],
  ];
  for (const [url, category] of cases) {
    it(`${url || "(no url)"} is ${category ?? "its caller's"}`, () => {
      assert.equal(categoryOfUrl(url), category);
    });
  }

  it("reads V8's thread id from Node's file names", () => {
    assert.equal(threadIdOfFile("CPU.20261123.184345.16850.0.001.cpuprofile"), 0);
    assert.equal(threadIdOfFile("CPU.20261123.184346.16850.3.002.cpuprofile"), 3);
    assert.equal(threadIdOfFile("mine.cpuprofile"), null);
  });
});

/** A tiny hand-made profile: every sample's node and duration is known. */
function syntheticProfile(): CpuProfile {
  const frame = (functionName: string, url: string, lineNumber = 9): CpuProfileNode["callFrame"] => ({
    functionName,
    url,
    lineNumber,
    columnNumber: 0,
  });
  const nodes: CpuProfileNode[] = [
    { id: 1, callFrame: frame("(root)", "", -1), children: [2, 3, 4, 5, 7, 8] },
    { id: 2, callFrame: frame("(idle)", "", -1) },
    { id: 3, callFrame: frame("(garbage collector)", "", -1) },
    { id: 4, callFrame: frame("(program)", "", -1) },
    { id: 5, callFrame: frame("step", `file://${repoRoot}src/raft/raft.ts`), children: [6] },
    // A native function: its time belongs to the raft code that called it.
    { id: 6, callFrame: frame("writev", "") },
    { id: 7, callFrame: frame("respond", "node:internal/http2/core", 2791) },
    {
      id: 8,
      callFrame: frame("sendMessage", `file://${repoRoot}node_modules/@grpc/grpc-js/build/src/call.js`),
    },
  ];
  // [node, µs until the next sample]
  const timeline: Array<[number, number]> = [
    [2, 1000], // idle
    [3, 2000], // GC
    [5, 1000], // raft
    [6, 1000], // native under raft
    [7, 3000], // http2
    [8, 1000], // grpc-js
    [4, 1000], // program
    [2, 5000], // idle
    [3, 4000], // GC, after the window in the windowed test
  ];
  const startTime = 1_000_000;
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let previous = 0;
  for (const [node, durationUs] of timeline) {
    samples.push(node);
    timeDeltas.push(previous);
    previous = durationUs;
  }
  const endTime = startTime + timeline.reduce((sum, [, durationUs]) => sum + durationUs, 0);
  return { nodes, startTime, endTime, samples, timeDeltas };
}

describe("summarizeCpuProfile", () => {
  it("charges each sample's interval to its category, natives to their caller, idle to no one", () => {
    const summary = summarizeCpuProfile(syntheticProfile(), {
      file: "CPU.1.2.3.0.001.cpuprofile",
      repoRoot,
      window: { startUs: null, endUs: null },
    });
    assert.equal(summary.threadId, 0);
    assert.equal(summary.samples, 9);
    assert.equal(summary.sampledMs, 19);
    assert.equal(summary.idleMs, 6);
    assert.equal(summary.busyMs, 13);
    const byCategory = Object.fromEntries(summary.categories.map((entry) => [entry.category, entry.selfMs]));
    assert.deepEqual(byCategory, { GC: 6, "node http2": 3, raft: 2, "grpc-js": 1, "V8 (program)": 1 });
    assert.deepEqual(
      summary.categories.map((entry) => entry.category),
      ["GC", "node http2", "raft", "grpc-js", "V8 (program)"],
      "largest first",
    );
    const total = summary.categories.reduce((sum, entry) => sum + entry.percent, 0);
    assert.ok(Math.abs(total - 100) < 1e-9, "shares of busy time add up to 100%");
    const raft = summary.categories.find((entry) => entry.category === "raft")!;
    assert.deepEqual(
      raft.top.map((fn) => [fn.functionName, fn.location, fn.selfMs, fn.via]),
      [
        ["step", "src/raft/raft.ts:10", 1, null],
        // Outside our code: named after the project function that called it.
        ["writev", "(native)", 1, "step src/raft/raft.ts:10"],
      ],
    );
    const http2 = summary.categories.find((entry) => entry.category === "node http2")!;
    assert.equal(http2.top[0]!.location, "node:internal/http2/core:2792", "1-based lines");
  });

  it("counts only the samples inside the window (the bench's timed phase)", () => {
    // Samples start at 1.000, 1.001, 1.003, 1.004, 1.005, 1.008, 1.009, 1.010, 1.015 s.
    const summary = summarizeCpuProfile(syntheticProfile(), {
      file: "x.cpuprofile",
      repoRoot,
      window: { startUs: 1_001_000, endUs: 1_008_500 },
    });
    assert.equal(summary.threadId, null);
    assert.equal(summary.samples, 5);
    const byCategory = Object.fromEntries(summary.categories.map((entry) => [entry.category, entry.selfMs]));
    // The grpc-js sample at 1.008 is cut at the window's end after 0.5 ms.
    assert.deepEqual(byCategory, { GC: 2, "node http2": 3, raft: 2, "grpc-js": 0.5 });
    assert.equal(summary.idleMs, 0);
  });

  it("refuses JSON that is not a .cpuprofile with a typed error", () => {
    for (const bad of [null, {}, { nodes: [], startTime: 0, endTime: 1, samples: [1], timeDeltas: [] }]) {
      assert.throws(
        () => parseCpuProfile(bad, "bad.cpuprofile"),
        (error: unknown) => error instanceof Error && "code" in error && error.code === "BENCH_PROFILE",
      );
    }
    assert.doesNotThrow(() => parseCpuProfile(JSON.parse(JSON.stringify(syntheticProfile())), "ok"));
  });
});

describe("--trace-gc lines", () => {
  it("counts scavenges and full collections with their pauses", () => {
    assert.deepEqual(
      parseTraceGcLine(
        "[16850:0x34e99e80]      133 ms: Scavenge 4.9 (5.0) -> 4.4 (6.0) MB, 1.63 / 0.01 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ",
      ),
      { kind: "scavenge", pauseMs: 1.63 },
    );
    assert.deepEqual(
      parseTraceGcLine(
        "[4975:0x31e91eb0]      441 ms: Mark-Compact 18.9 (32.6) -> 14.7 (31.2) MB, 29.13 / 0.00 ms  (average mu = 1.000, current mu = 1.000) testing; GC in old space requested",
      ),
      { kind: "mark-compact", pauseMs: 29.13 },
    );
    assert.deepEqual(
      parseTraceGcLine(
        "[1:0x1]  9 ms: Mark-Compact (reduce) 10.1 (12.0) -> 9.0 (11.0) MB, 3.50 / 0.00 ms  (+ 1.2 ms in 3 steps) (average mu = 0.9)",
      ),
      { kind: "mark-compact", pauseMs: 3.5 },
    );
    assert.equal(parseTraceGcLine("listening on 127.0.0.1:1234"), null);
  });
});

describe("--profile options", () => {
  it("needs a Node server the bench starts", () => {
    assert.throws(() => parseConfig(["--profile"]), /--compare-etcd-ts or --compare-null/);
    assert.throws(() => parseConfig(["--profile", "--compare-etcd"]), /--compare-etcd-ts or --compare-null/);
    assert.equal(parseConfig(["--profile", "--compare-null"]).profile, true);
    assert.equal(parseConfig(["--compare-null"]).profile, false);
  });
});

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode(args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm run bench -- --compare-null --profile (a real profile of the no-op server)", () => {
  let outDir: string;
  let run: CliRun;
  let summary: BenchSummary;

  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), "bench-profile-"));
    run = await runNode([
      "bench/cli.ts",
      "put",
      "--compare-null",
      "--profile",
      "--total",
      "2000",
      "--clients",
      "10",
      "--conns",
      "2",
      "--out",
      outDir,
    ]);
    summary = JSON.parse(readFileSync(join(outDir, "summary.json"), "utf8")) as BenchSummary;
  });

  after(() => rmSync(outDir, { recursive: true, force: true }));

  it("exits 0 and prints the category table for the timed phase", () => {
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^CPU profile of null, main thread, timed phase \d+\.\d s:/m);
    assert.match(run.stdout, /^category \/ function\s+self ms\s+busy %\s+CPU µs\/req$/m);
    assert.match(run.stdout, /^GC in the timed phase \(--trace-gc, all isolates\): \d+ scavenges/m);
    assert.match(run.stdout, /^generator transport: grpc-js$/m);
  });

  it("keeps the .cpuprofile files in the report directory, main thread first", () => {
    const profile = summary.targets[0]!.profile!;
    assert.equal(profile.dir, "null-profile");
    assert.ok(profile.files.length >= 1);
    assert.equal(threadIdOfFile(profile.files[0]!), 0);
    for (const file of profile.files) {
      const json: unknown = JSON.parse(readFileSync(join(outDir, profile.dir, file), "utf8"));
      assert.doesNotThrow(() => parseCpuProfile(json, file));
    }
    assert.match(readFileSync(join(outDir, "report.html"), "utf8"), /Server main-thread CPU by category/);
  });

  it("finds grpc-js, node's http2 and our codec on the no-op server's main thread, and nothing of raft", () => {
    const profile = summary.targets[0]!.profile!;
    assert.equal(profile.acknowledged, summary.targets[0]!.series[0]!.succeeded);
    const main = profile.main!;
    const categories = new Set(main.categories.map((entry) => entry.category));
    for (const expected of ["grpc-js", "node http2", "protobuf codec"] as const) {
      assert.ok(categories.has(expected), `${expected} in ${[...categories].join(", ")}`);
    }
    assert.ok(!categories.has("raft") && !categories.has("wal") && !categories.has("mvcc"));
    const total = main.categories.reduce((sum, entry) => sum + entry.percent, 0);
    assert.ok(Math.abs(total - 100) < 1e-6);
    assert.ok(main.busyMs > 0 && main.busyMs <= main.sampledMs);
    // The window is the timed phase: well inside the whole profile, and no longer than the run.
    assert.ok(profile.windowSeconds > 0);
    assert.ok(main.sampledMs <= profile.windowSeconds * 1000 + 5);
    // 2,000 grpc-js round trips allocate tens of MB: young-generation GCs happened.
    assert.ok(profile.gc.scavenges >= 1, JSON.stringify(profile.gc));
    assert.ok(profile.threadsCpu !== null && profile.threadsCpu.mainSeconds > 0);
  });

  it("the standalone summariser reads the same files", async () => {
    const profile = summary.targets[0]!.profile!;
    const { stdout } = await execFileAsync(
      process.execPath,
      ["--import", "tsx", "bench/profile/summarize.ts", join(outDir, profile.dir), "--requests", "2000"],
      { cwd: repoRoot },
    );
    assert.match(stdout, /thread 0, \d+ ms busy/);
    assert.match(stdout, /^grpc-js\s+\d+\.\d\s+\d+\.\d%\s+\d+\.\d$/m);
  });
});
