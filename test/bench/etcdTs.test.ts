import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { whyItExited } from "../../bench/load/targets.js";
import { threadIdOfFile } from "../../bench/profile/cpuProfile.js";
import type { BenchSummary } from "../../bench/report/summary.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/cli.ts", ...args], {
      cwd: repoRoot,
      env,
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

describe("npm run bench -- --compare-etcd-ts --compare-null --profile (the etcd-ts server as a target)", () => {
  let outDir: string;
  let run: CliRun;
  let summary: BenchSummary;

  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), "bench-etcd-ts-"));
    run = await runBench([
      "--compare-etcd-ts",
      "--compare-null",
      "--profile",
      "--load",
      "s",
      "--duration",
      "2",
      "--out",
      outDir,
    ]);
    summary = JSON.parse(readFileSync(join(outDir, "summary.json"), "utf8")) as BenchSummary;
  });

  after(() => rmSync(outDir, { recursive: true, force: true }));

  it("runs check perf on both started servers and prints the verdict for each", () => {
    assert.match(run.stdout, /^generator transport: http2 /m, "check perf's default transport");
    assert.ok(run.code === 0 || run.code === 1, `exit code ${run.code}: ${run.stderr}`);
    assert.equal(run.stderr, "");
    assert.deepEqual(
      summary.targets.map((target) => [target.name, target.kind, target.skipped]),
      [
        ["etcd-ts", "etcd-ts", null],
        ["null", "null", null],
      ],
    );
    assert.equal(run.stdout.match(/^(PASS|FAIL)$/gm)?.length, 2, run.stdout);
    assert.match(run.stdout, /^target\s+req\/s\s+p50 ms/m);
  });

  it("measures etcd-ts's server CPU per write and peak RSS, and every put was answered and cleaned up", () => {
    const target = summary.targets[0]!;
    const series = target.series[0]!;
    assert.equal(series.failed, 0, JSON.stringify(series.errors));
    assert.equal(series.sent, series.succeeded);
    assert.ok(series.succeeded > 0);
    assert.ok(target.server.cpuMicrosPerRequest !== null && target.server.cpuMicrosPerRequest > 0);
    assert.ok(target.server.peakRssBytes !== null && target.server.peakRssBytes > 0);
    // RSS sampled through the timed phase, and the peak read again after the cleanup (never lower).
    const memory = target.server.memory;
    assert.ok(memory !== null && memory.samples.length >= 2, "a sample at the start and at the end");
    assert.equal(memory.startRssBytes, memory.samples[0]![1]);
    assert.ok(target.server.peakRssAfterCleanupBytes! >= target.server.peakRssBytes);
    assert.match(run.stdout, /^server RSS in the timed phase: [\d.]+ MiB at its start/m);
    // etcd-ts stored the keys: the cleanup's DeleteRange removed exactly the ones written.
    assert.equal(target.keyspace.deleted, String(series.succeeded));
    assert.equal(
      BigInt(target.keyspace.deleteRevision!),
      BigInt(target.keyspace.revisionBefore!) + BigInt(series.succeeded) + 1n,
    );
  });

  it("stopped etcd-ts with SIGTERM so it wrote its profile, kept in the report directory", () => {
    const profile = summary.targets[0]!.profile!;
    assert.equal(profile.note, null);
    assert.ok(profile.main !== null);
    assert.equal(threadIdOfFile(profile.files[0]!), 0);
    for (const file of profile.files) assert.ok(existsSync(join(outDir, profile.dir, file)));
    const categories = profile.main.categories.map((entry) => entry.category);
    assert.ok(categories.includes("grpc-js"), categories.join(", "));
    assert.match(run.stdout, /^CPU profile of etcd-ts, main thread/m);
    assert.match(run.stdout, /^CPU profile of null, main thread/m);
  });
});

describe("a compared target that fails", () => {
  it("is reported as skipped with its reason, the others still run, and the exit code is 1", async () => {
    const outDir = mkdtempSync(join(tmpdir(), "bench-failed-target-"));
    try {
      const entry = join(outDir, "missing-etcd-ts.ts");
      const run = await runBench(
        ["--compare-etcd-ts", "--compare-null", "--load", "s", "--duration", "1", "--out", outDir],
        { ...process.env, ETCD_TS_ENTRY: entry },
      );
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`^skipped: etcd-ts server entry point not found: ${entry}`, "m"));
      const summary = JSON.parse(readFileSync(join(outDir, "summary.json"), "utf8")) as BenchSummary;
      assert.equal(summary.targets[1]!.name, "null");
      assert.equal(summary.targets[1]!.skipped, null);
      assert.ok(summary.targets[1]!.series[0]!.succeeded > 0, "the no-op server still ran");
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  });
});

describe("why a started server died, in one line", () => {
  it("picks the JS error out of a Node stack", () => {
    const stderr = [
      "/work/main/src/server/bootstrap.ts:23",
      'import { lmdbBackendExists } from "../backend/lmdb.js";',
      "         ^",
      "",
      "SyntaxError: The requested module '../backend/lmdb.js' does not provide an export named 'lmdbBackendExists'",
      "    at ModuleJob._instantiate (node:internal/modules/esm/module_job:213:21)",
      "",
      "Node.js v20.20.2",
    ].join("\n");
    assert.equal(
      whyItExited(stderr),
      "SyntaxError: The requested module '../backend/lmdb.js' does not provide an export named 'lmdbBackendExists'",
    );
  });

  it("picks etcd's fatal log line, else keeps the last three lines", () => {
    const fatal =
      '{"level":"info","msg":"starting"}\n{"level":"fatal","msg":"listen tcp: address already in use"}\n';
    assert.equal(whyItExited(fatal), '{"level":"fatal","msg":"listen tcp: address already in use"}');
    assert.equal(whyItExited("a\nb\nc\nd\n"), "b | c | d");
    assert.equal(whyItExited(`Error: ${"x".repeat(1000)}`).length, 403);
  });
});
