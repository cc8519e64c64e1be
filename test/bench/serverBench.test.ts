import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function runServerBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/server/server.bench.ts", ...args], {
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

describe("bench/server: the member's CPU per write without gRPC", () => {
  it("writes through a real member and prints per-round and median figures", async () => {
    const run = await runServerBench([
      "--clients",
      "20",
      "--seconds",
      "0.5",
      "--rounds",
      "2",
      "--warmup-seconds",
      "0",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const rounds = [
      ...run.stdout.matchAll(
        /^round \d: (\d+) writes\/s, main thread ([\d.]+) µs\/write, process ([\d.]+) µs\/write/gm,
      ),
    ];
    assert.equal(rounds.length, 2, run.stdout);
    for (const [, writesPerSecond, main, whole] of rounds) {
      assert.ok(Number(writesPerSecond) > 0, "puts were acknowledged");
      // The process figure includes the main thread's.
      assert.ok(Number(whole) >= Number(main), `${whole} >= ${main}`);
    }
    assert.match(run.stdout, /^median: main thread [\d.]+ µs\/write \([\d.]+-[\d.]+\)/m);
  });

  it("refuses a bad option value with a message, not a run", async () => {
    const run = await runServerBench(["--clients", "0"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /--clients must be a number/);
  });
});
