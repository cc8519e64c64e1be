import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";

/**
 * etcd-ts started as a child process for one test, the way test/support/realEtcd.ts starts a real etcd:
 * loopback only, free ports, its own temp data dir (or the caller's, to restart on it), ready once it
 * logs "ready to serve client requests" (printed only after the member published itself through raft).
 */
export interface EtcdTs {
  /** host:port of the client URL, as etcdctl's --endpoints takes it. */
  endpoint: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process: ChildProcess;
  /** Everything the process wrote on stderr so far (its JSON log lines), capped at STDERR_KEEP_BYTES. */
  stderr(): string;
  /** Resolves with the exit code (null if killed by a signal) once the process is gone. */
  exited: Promise<number | null>;
  /**
   * SIGTERM and wait for the exit (SIGKILL after `killAfterMs`); removes the data dir unless the caller
   * gave it or `keepDataDir` was set. Resolves with the exit code (null when it had to be killed).
   */
  stop(): Promise<number | null>;
  /** SIGKILL and wait; the data dir is kept (to restart on it); removed only if the helper made it and `keepDataDir` is false. */
  kill9(): Promise<void>;
}

export interface EtcdTsOptions {
  /** Extra flags, e.g. ["--quota-backend-bytes=1048576"]. */
  flags?: string[];
  /** Reuse a data dir (restart); the caller removes it. Default: a new temp dir the helper removes. */
  dataDir?: string;
  /** Keep the helper-made data dir after stop()/kill9(). */
  keepDataDir?: boolean;
  /** Client and peer ports to use (a restart on the same ports); free ones by default. */
  clientPort?: number;
  peerPort?: number;
  /** Member name (--name); default "etcd-ts". */
  name?: string;
  /** How long to wait for readiness. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  killAfterMs?: number;
  /** Extra environment (ETCD_* variables). */
  env?: Record<string, string>;
}

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const ETCD_TS_BIN = join(REPO_ROOT, "src", "bin", "etcd-ts.ts");
const READY_LINE = '"msg":"ready to serve client requests"';
const STDERR_KEEP_BYTES = 1024 * 1024;

/** The command line that runs the etcd-ts bin from source (under tsx), for tests that spawn it themselves. */
export function etcdTsCommand(args: readonly string[]): { command: string; args: string[]; cwd: string } {
  return { command: process.execPath, args: ["--import", "tsx", ETCD_TS_BIN, ...args], cwd: REPO_ROOT };
}

export async function startEtcdTs(options: EtcdTsOptions = {}): Promise<EtcdTs> {
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-"));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const name = options.name ?? "etcd-ts";
  const { command, args, cwd } = etcdTsCommand([
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    ...(options.flags ?? []),
  ]);
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  let onReady: (() => void) | null = null;
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < STDERR_KEEP_BYTES) stderr += chunk.toString();
    if (onReady !== null && stderr.includes(READY_LINE)) onReady();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // A test process that ends (a failed assertion, a runner that gives up) must not leave servers behind.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));
  const removeDataDir = (): void => {
    if (ownsDataDir && options.keepDataDir !== true) rmSync(dataDir, { recursive: true, force: true });
  };
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<number | null> => {
    if (running()) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs ?? 10_000);
      await exited;
      clearTimeout(timer);
    }
    removeDataDir();
    return child.exitCode;
  };
  const kill9 = async (): Promise<void> => {
    if (running()) child.kill("SIGKILL");
    await exited;
    removeDataDir();
  };

  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const outcome = await new Promise<"ready" | "exited" | "timeout">((resolve) => {
    const timer = setTimeout(() => resolve("timeout"), timeoutMs);
    onReady = () => {
      clearTimeout(timer);
      resolve("ready");
    };
    if (stderr.includes(READY_LINE)) onReady();
    void exited.then(() => {
      clearTimeout(timer);
      resolve("exited");
    });
  });
  onReady = null;
  if (outcome !== "ready") {
    await kill9();
    throw new Error(
      outcome === "exited"
        ? `etcd-ts exited with code ${child.exitCode} before it was ready:\n${stderr}`
        : `etcd-ts was not ready within ${timeoutMs} ms:\n${stderr}`,
    );
  }
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    clientUrl,
    peerUrl,
    dataDir,
    process: child,
    stderr: () => stderr,
    exited,
    stop,
    kill9,
  };
}
