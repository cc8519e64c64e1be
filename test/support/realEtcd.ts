import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

/** A real etcd (Debian's etcd-server) started for one test: loopback only, its own temp data dir. */
export interface RealEtcd {
  /** host:port of the client URL, as etcdctl's --endpoints takes it. */
  endpoint: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process: ChildProcess;
  /** Kills etcd (SIGTERM, then SIGKILL after 5 s) and removes its data dir. */
  stop(): Promise<void>;
}

export interface RealEtcdOptions {
  /** Extra flags, e.g. ["--quota-backend-bytes=1048576"]. */
  flags?: string[];
  /** How long to wait for the client port to answer /health. */
  startTimeoutMs?: number;
}

export function etcdBinary(): string {
  return process.env.ETCD_BIN ?? "etcd";
}

export async function startRealEtcd(options: RealEtcdOptions = {}): Promise<RealEtcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-ref-"));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    etcdBinary(),
    [
      "--name=ref",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=ref=${peerUrl}`,
      "--log-level=error",
      ...(options.flags ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited with code ${child.exitCode} before it was ready:\n${stderr}`);
    }
    try {
      const response = await fetch(`${clientUrl}/health`);
      const body = (await response.json()) as { health?: string };
      if (body.health === "true") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy in time:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { endpoint: `127.0.0.1:${clientPort}`, clientUrl, peerUrl, dataDir, process: child, stop };
}
