import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { BenchSummary } from "../../bench/report/summary.js";
import { type RealEtcd, startRealEtcd } from "../support/realEtcd.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const execFileAsync = promisify(execFile);
const prefix = "/etcdctl-check-perf/";

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `npm run bench -- ...` the way npm does (node --import tsx bench/cli.ts), as a child process. */
function runBench(args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/cli.ts", ...args], {
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

async function etcdctl(endpoint: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("etcdctl", [`--endpoints=${endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
  });
  return stdout;
}

/** The store revision, read with etcdctl (independently of the bench's own wire code). */
async function revisionOf(endpoint: string): Promise<number> {
  const body = JSON.parse(await etcdctl(endpoint, "get", "/revision-probe", "-w", "json")) as {
    header: { revision: number };
  };
  return body.header.revision;
}

describe("npm run bench (check perf mirror) against a real etcd", () => {
  let etcd: RealEtcd;
  let outDir: string;

  before(async () => {
    etcd = await startRealEtcd();
    outDir = mkdtempSync(join(tmpdir(), "bench-report-"));
  });

  after(async () => {
    await etcd.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  for (const transport of ["grpc-js", "http2"]) {
    it(`runs load s for 3 s over ${transport}: verdict lines, exit code, reports, counts that add up`, async () => {
      const reportDir = join(outDir, transport);
      const revisionBefore = await revisionOf(etcd.endpoint);
      const run = await runBench([
        "--load",
        "s",
        "--duration",
        "3",
        "--transport",
        transport,
        "--endpoints",
        etcd.endpoint,
        "--out",
        reportDir,
        // The second run also exercises etcdctl's optional cleanup steps.
        ...(transport === "http2" ? ["--auto-compact", "--auto-defrag"] : []),
      ]);
      const lines = run.stdout.split("\n");

      // The three criteria, in etcdctl's words, then the final PASS or FAIL that sets the exit code.
      const throughput = lines.findIndex((line) =>
        /^(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes\/s$/.test(line),
      );
      assert.ok(throughput >= 0, run.stdout);
      assert.match(
        lines[throughput + 1]!,
        /^(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s$/,
      );
      assert.match(lines[throughput + 2]!, /^(PASS: Stddev is|Stddev too high:) \d+\.\d{6}s$/);
      const final = lines[throughput + 3];
      assert.ok(final === "PASS" || final === "FAIL", run.stdout);
      assert.equal(run.code, final === "PASS" ? 0 : 1);
      assert.equal(run.stderr, "", "no progress line when stderr is not a terminal, no errors");

      const summary = JSON.parse(readFileSync(join(reportDir, "summary.json"), "utf8")) as BenchSummary;
      assert.equal(summary.targets.length, 1);
      const target = summary.targets[0]!;
      const series = target.series[0]!;
      assert.equal(series.sent, series.succeeded + series.failed, "every request sent was answered once");
      assert.ok(series.succeeded > 0);
      if (!target.generator.blocked) assert.equal(series.sent, 450, "150/s for 3 s is exactly 450 puts");
      assert.deepEqual(target.verdict?.lines, lines.slice(throughput, throughput + 4));
      assert.equal(target.server.cpuMicrosPerRequest, null, "an external endpoint's CPU is not ours to read");
      assert.equal(
        series.throughputPerSecond.reduce((sum, count) => sum + count, 0),
        series.succeeded,
      );

      // The .hgrm: HdrHistogram's percentile distribution, its total count = the successes.
      const hgrm = readFileSync(join(reportDir, series.hgrmFile!), "utf8");
      assert.match(hgrm, /^\s+Value\s+Percentile\s+TotalCount\s+1\/\(1-Percentile\)$/m);
      const percentileLines = hgrm.split("\n").filter((line) => /^\s+\d+\.\d+\s+\d\.\d{12}\s+\d+/.test(line));
      assert.ok(percentileLines.length >= 10);
      const values = percentileLines.map((line) => Number(line.trim().split(/\s+/)[0]));
      assert.deepEqual(
        values,
        [...values].sort((a, b) => a - b),
        "values rise with the percentile",
      );
      const total = /#\[Max\s+=\s+[\d.]+,\s+Total count\s+=\s+(\d+)\]/.exec(hgrm);
      assert.equal(Number(total?.[1]), series.succeeded);

      const html = readFileSync(join(reportDir, "report.html"), "utf8");
      assert.match(html, /<svg[\s\S]*<polyline/);
      assert.doesNotMatch(
        html,
        /<script|<link|src=/,
        "self-contained: no script, stylesheet or remote resource",
      );

      // etcd's revision moved by exactly one per successful put plus the cleanup delete, and the
      // cleanup removed every key it wrote.
      const revisionAfter = await revisionOf(etcd.endpoint);
      assert.equal(revisionAfter, revisionBefore + series.succeeded + 1);
      assert.equal(target.keyspace.deleted, String(series.succeeded));
      assert.equal(target.keyspace.deleteRevision, String(revisionAfter));
      assert.equal(await etcdctl(etcd.endpoint, "get", "--prefix", prefix, "--keys-only"), "");
      const cleanupLines =
        transport === "http2"
          ? [
              `Compacting with revision ${revisionAfter}`,
              `Compacted with revision ${revisionAfter}`,
              `Defragmenting "${etcd.endpoint}"`,
              `Defragmented "${etcd.endpoint}"`,
            ]
          : [];
      assert.deepEqual(lines.slice(0, throughput), cleanupLines, "etcdctl prints these before the verdict");
    });
  }

  it("refuses a prefix that has keys with etcdctl's message and exit code 3", async () => {
    await etcdctl(etcd.endpoint, "put", `${prefix}left-over`, "x");
    try {
      const run = await runBench(["--duration", "1", "--endpoints", etcd.endpoint, "--out", outDir]);
      assert.equal(run.code, 3);
      assert.equal(
        run.stderr,
        `Error: prefix "${prefix}" has keys. Delete with etcdctl del --prefix ${prefix} first\n`,
      );
      assert.equal(run.stdout, "");
    } finally {
      await etcdctl(etcd.endpoint, "del", "--prefix", prefix);
    }
  });

  it("an unknown load is one line on stderr and exit code 4, as etcdctl does", async () => {
    const run = await runBench(["--load", "huge", "--endpoints", etcd.endpoint]);
    assert.equal(run.code, 4);
    assert.equal(run.stderr, "Error: unknown load option huge\n");
    assert.equal(run.stdout, "");
  });

  it("an unreachable endpoint fails fast with one line and exit code 2", async () => {
    const run = await runBench(["--endpoints", "127.0.0.1:1", "--dial-timeout", "500ms", "--duration", "1"]);
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr,
      "Error: cannot connect to 127.0.0.1:1 within 500 ms (is an etcd server listening there?)\n",
    );
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  });
});
