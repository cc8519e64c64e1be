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

/** Runs the installed etcdctl (3.4, API v3) against `endpoint` with `args`, feeding `stdin` if given. */
export function etcdctl(endpoint: string, args: readonly string[], stdin?: string): Promise<EtcdctlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      etcdctlBinary(),
      [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=5s", ...args],
      { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["pipe", "pipe", "pipe"] },
    );
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
