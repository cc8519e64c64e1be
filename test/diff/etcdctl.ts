import { spawn } from "node:child_process";

/** What one etcdctl run printed. */
export interface EtcdctlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export function etcdctlBinary(): string {
  return process.env.ETCDCTL_BIN ?? "etcdctl";
}

/** A run that hangs longer than this is killed (a server that never answers must not stall the suite). */
const ETCDCTL_RUN_MS_MAX = 20_000;

function etcdctlArgs(endpoint: string, args: readonly string[]): string[] {
  return [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=5s", ...args];
}

/** Runs the installed etcdctl (3.4, API v3) against `endpoint` with `args`, feeding `stdin` if given. */
export function etcdctl(
  endpoint: string,
  args: readonly string[],
  stdin?: string,
  env?: Readonly<Record<string, string>>,
): Promise<EtcdctlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(etcdctlBinary(), etcdctlArgs(endpoint, args), {
      env: { ...process.env, ETCDCTL_API: "3", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), ETCDCTL_RUN_MS_MAX);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, exitCode: code ?? (signal === null ? -1 : 128) });
    });
    // etcdctl may exit before it reads its input (a usage error): the write then fails with EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(stdin ?? "");
  });
}

/** A long-running etcdctl (watch): its output so far, its stdin open for `watch -i` lines. */
export interface BackgroundEtcdctl {
  /** Writes to its standard input (a line for `watch -i`). */
  write(text: string): void;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Date.now() of its last output (or of its start). */
  lastOutputAt(): number;
  /** Whether it is still running. */
  running(): boolean;
  /** Ends it (SIGTERM unless it already exited; SIGKILL after ETCDCTL_RUN_MS_MAX) and resolves with everything it printed. */
  stop(): Promise<EtcdctlResult>;
}

/** Starts etcdctl with `args` (and `env`) and leaves it running (its stdin stays open until stop()). */
export function spawnEtcdctl(
  endpoint: string,
  args: readonly string[],
  env?: Readonly<Record<string, string>>,
): BackgroundEtcdctl {
  const child = spawn(etcdctlBinary(), etcdctlArgs(endpoint, args), {
    env: { ...process.env, ETCDCTL_API: "3", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let lastOutputAt = Date.now();
  let exitCode: number | null = null;
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    lastOutputAt = Date.now();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    lastOutputAt = Date.now();
  });
  child.stdin.on("error", () => {});
  const closed = new Promise<void>((resolve) => {
    child.on("close", (code, signal) => {
      exitCode = code ?? (signal === null ? -1 : 128);
      resolve();
    });
    child.on("error", () => {
      exitCode = -1;
      resolve();
    });
  });
  // A test process that ends early must not leave watchers behind.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  void closed.then(() => process.off("exit", killOnExit));
  return {
    write: (text) => {
      child.stdin.write(text);
    },
    stdout: () => stdout,
    stderr: () => stderr,
    lastOutputAt: () => lastOutputAt,
    running: () => exitCode === null,
    async stop() {
      if (exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), ETCDCTL_RUN_MS_MAX);
      await closed;
      clearTimeout(timer);
      return { stdout, stderr, exitCode: exitCode ?? -1 };
    },
  };
}
