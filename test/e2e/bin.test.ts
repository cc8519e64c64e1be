import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { type EtcdTs, etcdTsCommand, startEtcdTs } from "../support/etcdTs.js";
import { freePort } from "../support/ports.js";

/** The etcd-ts bin as a child process, driven by the real etcdctl 3.4. */

const execFileAsync = promisify(execFile);
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-bin-"));
  dirs.push(dir);
  return dir;
}

async function etcdctl(server: EtcdTs, ...args: string[]): Promise<string> {
  return (await etcdctlOutput(server, ...args)).stdout;
}

async function etcdctlOutput(server: EtcdTs, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return await execFileAsync("etcdctl", [`--endpoints=${server.endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
  });
}

/** Runs the bin to completion (for flag errors, --version); no server is expected to start. */
async function runBin(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { command, args: argv, cwd } = etcdTsCommand(args);
  const child = spawn(command, argv, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stdout, stderr };
}

function logLines(server: EtcdTs): Array<{ level: string; msg: string; [field: string]: unknown }> {
  return server
    .stderr()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: string; msg: string });
}

async function waitForLog(server: EtcdTs, msg: string): Promise<void> {
  while (!logLines(server).some((line) => line.msg === msg)) {
    if (server.process.exitCode !== null) throw new Error(`exited before logging "${msg}"`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("etcd-ts bin", () => {
  it("serves etcdctl, exits 0 on SIGTERM, and keeps acknowledged data across a restart and a kill -9", async () => {
    const dataDir = tempDir();
    const clientPort = await freePort();
    const peerPort = await freePort();
    const ports = { dataDir, clientPort, peerPort, killAfterMs: 10_000 };

    const first = await startEtcdTs(ports);
    assert.match(first.stderr(), /"msg":"ready to serve client requests"/);
    assert.equal((await etcdctl(first, "put", "greeting", "hello")).trim(), "OK");
    assert.equal(await etcdctl(first, "get", "greeting"), "greeting\nhello\n");
    // etcdctl 3.4 prints the health line on stderr.
    const health = await etcdctlOutput(first, "endpoint", "health");
    assert.match(health.stderr, /is healthy: successfully committed proposal/);
    // Exit 0 after a graceful shutdown; a shutdown that hangs is killed after killAfterMs and fails here.
    assert.equal(await first.stop(), 0);
    const messages = logLines(first).map((line) => line.msg);
    assert.ok(messages.indexOf("received signal; shutting down") < messages.indexOf("closed etcd server"));
    assert.deepEqual(
      logLines(first).find((line) => line.msg === "received signal; shutting down")?.signal,
      "terminated",
    );

    const second = await startEtcdTs(ports);
    assert.equal(await etcdctl(second, "get", "greeting", "--print-value-only"), "hello\n");
    const acknowledged: string[] = [];
    for (let i = 0; i < 20; i++) {
      await etcdctl(second, "put", `k${i}`, `v${i}`);
      acknowledged.push(`k${i}`);
    }
    await second.kill9();

    const third = await startEtcdTs(ports);
    try {
      const keys = (await etcdctl(third, "get", "k", "--prefix", "--keys-only")).split("\n").filter(Boolean);
      assert.deepEqual(keys.sort(), [...acknowledged].sort());
      assert.equal(await etcdctl(third, "get", "greeting", "--print-value-only"), "hello\n");
    } finally {
      assert.equal(await third.stop(), 0);
    }
  });

  it("exits 0 on SIGINT as on SIGTERM", async () => {
    const server = await startEtcdTs({ killAfterMs: 10_000 });
    server.process.kill("SIGINT");
    assert.equal(await server.exited, 0);
    assert.equal(
      logLines(server).find((line) => line.msg === "received signal; shutting down")?.signal,
      "interrupt",
    );
    await server.stop();
  });

  it("exits at once on a second signal while the first is still draining requests", async () => {
    const server = await startEtcdTs();
    // A request whose headers never finish keeps its connection busy, so the graceful drain waits.
    const socket = connect(Number(server.endpoint.split(":")[1]), "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    try {
      server.process.kill("SIGTERM");
      await waitForLog(server, "closing etcd server");
      server.process.kill("SIGTERM");
      // Ended by the signal itself (a shell shows 143, as for etcd), not the 0 of a finished shutdown. A
      // process that does not end is killed after a bound (and then shows SIGKILL, failing the test).
      const killer = setTimeout(() => server.process.kill("SIGKILL"), 10_000);
      assert.equal(await server.exited, null);
      clearTimeout(killer);
      assert.equal(server.process.signalCode, "SIGTERM");
      assert.ok(!logLines(server).some((line) => line.msg === "closed etcd server"));
    } finally {
      socket.destroy();
      await server.stop();
    }
  });

  it("answers an unknown flag with Go's flag message, the usage, and exit code 2", async () => {
    const result = await runBin(["--bogus"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^flag provided but not defined: -bogus\nUsage:\n/);
    assert.match(result.stderr, /etcd-ts \[flags\]/);
  });

  it("refuses a configuration etcd refuses, with etcd's log line and exit code 1", async () => {
    const result = await runBin(["--election-timeout=1"]);
    assert.equal(result.code, 1);
    const line = JSON.parse(result.stderr.trim().split("\n").at(-1)!) as Record<string, unknown>;
    assert.equal(line.level, "warn");
    assert.equal(line.msg, "failed to verify flags");
    assert.equal(
      line.error,
      "--election-timeout[1ms] should be at least as 5 times as --heartbeat-interval[100ms]",
    );
  });

  it("fails a start that the data dir and flags do not allow as etcd does: warn, fatal, exit 1", async () => {
    const dataDir = tempDir();
    const result = await runBin([
      "--name=a",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${await freePort()}`,
      `--advertise-client-urls=http://127.0.0.1:${await freePort()}`,
      "--initial-advertise-peer-urls=http://127.0.0.1:2380",
      "--initial-cluster=a=http://127.0.0.1:1",
    ]);
    assert.equal(result.code, 1);
    const lines = result.stderr
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const expected =
      '--initial-cluster has a=http://127.0.0.1:1 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380 (resolved urls: "http://127.0.0.1:2380" != "http://127.0.0.1:1")';
    assert.deepEqual(
      lines.slice(-2).map((line) => [line.level, line.msg, line.error]),
      [
        ["warn", "failed to start etcd", expected],
        ["fatal", "discovery failed", expected],
      ],
    );
  });

  it("prints its version and the etcd version it implements", async () => {
    const result = await runBin(["--version"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^etcd-ts Version: \d+\.\d+\.\d+\n/);
    assert.match(result.stdout, /\netcd Version: 3\.4\.23\n/);
  });
});
