import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type ResolvedEntry, resolveEntry } from "../build/compiled.js";
import type { WorkloadName } from "./config.js";
import { BenchError } from "./errors.js";

/**
 * What the bench runs a workload against. Each target is started (or just named, for an external
 * endpoint), measured, and stopped; the report shows all of them side by side. A new server is one
 * more `Target` here: the etcd-ts server already has its seam (`etcdTsTarget`).
 */
export type TargetKind = "external" | "etcd" | "etcd-ts" | "null";

export interface RunningTarget {
  endpoints: string[];
  /**
   * The server process when we started it (for CPU and RSS from /proc); null for an external endpoint.
   * For a cluster, the leader's process (the one the load reaches).
   */
  pid: number | null;
  /** The members when the bench started a cluster (--cluster), else null. */
  cluster: RunningCluster | null;
  /** Stops the process and deletes its data dir; a no-op for an external endpoint. */
  stop(): Promise<void>;
  /** Which code a Node server runs ("etcd-ts entry: node_modules/.cache/etcd-ts-bench/... (build up to date)"), else null. */
  entryLine: string | null;
}

/** One started member of a cluster. */
export interface RunningMember {
  name: string;
  /** The member id as its Status reports it (hex, as etcdctl prints it). */
  idHex: string;
  endpoint: string;
  pid: number;
  /** Leader when the load started. */
  leader: boolean;
}

export interface RunningCluster {
  members: RunningMember[];
  /** The member every member names as leader now, or null when they disagree or one does not answer. */
  currentLeader(): Promise<string | null>;
}

/** How a started Node server runs: extra node flags (--cpu-prof ...) and a reader of its stdout. */
export interface StartOptions {
  /** Flags for `node` itself, before the entry point; only Node targets (`profilable`) take them. */
  nodeFlags: readonly string[];
  /** Called with each line the server writes on stdout (--trace-gc's lines), or null. */
  stdoutLine: ((line: string) => void) | null;
  /** How long the server gets after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
}

export const defaultStartOptions: StartOptions = {
  nodeFlags: [],
  stdoutLine: null,
  stopTimeoutMs: 5_000,
};

export interface Target {
  name: string;
  kind: TargetKind;
  /** A Node process we start, so --profile can run it under --cpu-prof. */
  profilable: boolean;
  /** Why this target cannot run `workload`, or null if it can. */
  unsupported(workload: WorkloadName): string | null;
  start(options: StartOptions): Promise<RunningTarget>;
}

/** How long a started server gets to answer before we give up. */
export const targetStartTimeoutMs = 30_000;
/** Server stderr kept for the error message if it dies while starting. */
const stderrKeptBytesMax = 16 * 1024;

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port assigned"));
        else resolve(address.port);
      });
    });
  });
}

export function externalTarget(endpoints: readonly string[]): Target {
  return {
    name: "endpoint",
    kind: "external",
    profilable: false,
    unsupported: () => null,
    start: async () => ({
      endpoints: [...endpoints],
      pid: null,
      cluster: null,
      stop: async () => {},
      entryLine: null,
    }),
  };
}

export interface ManagedChild {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<void>;
  stop: () => Promise<void>;
}

export function manage(child: ChildProcess, options: StartOptions, cleanup: () => void): ManagedChild {
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < stderrKeptBytesMax) stderr += chunk.toString();
  });
  const stdoutLine = options.stdoutLine;
  if (stdoutLine !== null && child.stdout !== null) {
    createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY }).on("line", stdoutLine);
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => {});
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), options.stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    }
    cleanup();
  };
  return { child, stderr: () => stderr, exited, stop };
}

/** Characters of a server's exit reason kept for the one-line error. */
const exitReasonCharsMax = 400;

/**
 * The line of a dead server's stderr that says why: a JS error ("SyntaxError: ...", "Error: ...")
 * or a zap log line at fatal/panic/error level (etcd); else the last three lines. A Node stack's
 * last lines ("at ...", "Node.js v20") say nothing.
 */
export function whyItExited(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const reason =
    lines.find((line) => /^([A-Z]\w*)?Error\b/.test(line)) ??
    lines.find((line) => /"level":"(fatal|panic|error)"/.test(line)) ??
    lines.slice(-3).join(" | ");
  return reason.length > exitReasonCharsMax ? `${reason.slice(0, exitReasonCharsMax)}...` : reason;
}

/** Waits until `url`/health says healthy, failing early if the process exits. */
export async function waitHealthy(name: string, managed: ManagedChild, clientUrl: string): Promise<void> {
  const deadline = Date.now() + targetStartTimeoutMs;
  for (;;) {
    if (managed.child.exitCode !== null || managed.child.signalCode !== null) {
      await managed.stop();
      throw new BenchError(
        "BENCH_TARGET_START",
        `${name} exited before it was ready: ${whyItExited(managed.stderr())}`,
      );
    }
    try {
      const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { health?: unknown };
      if (body.health === "true" || body.health === true) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await managed.stop();
      throw new BenchError(
        "BENCH_TARGET_START",
        `${name} did not become healthy in ${targetStartTimeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** etcd's flags for a one-member cluster on loopback in a fresh temp dir (etcd-ts takes the same flags). */
async function etcdFlags(
  name: string,
): Promise<{ flags: string[]; dataDir: string; clientUrl: string; endpoint: string }> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), `${name}-bench-`));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const flags = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    "--log-level=error",
  ];
  return { flags, dataDir, clientUrl, endpoint: `127.0.0.1:${clientPort}` };
}

/** The etcd the bench runs: $ETCD_BIN or `etcd` from PATH. */
export function etcdBinary(): string {
  return process.env.ETCD_BIN ?? "etcd";
}

/** A real etcd from PATH (or $ETCD_BIN), with etcd's defaults otherwise. */
export function etcdTarget(): Target {
  return {
    name: "etcd",
    kind: "etcd",
    profilable: false,
    unsupported: () => null,
    start: async (options) => {
      const { flags, dataDir, clientUrl, endpoint } = await etcdFlags("etcd");
      const binary = etcdBinary();
      const child = spawn(binary, flags, { stdio: ["ignore", "ignore", "pipe"] });
      const managed = manage(child, options, () => rmSync(dataDir, { recursive: true, force: true }));
      await new Promise((resolve) => setImmediate(resolve));
      if (child.pid === undefined) {
        await managed.stop();
        throw new BenchError("BENCH_TARGET_START", `cannot start ${binary}: is etcd installed and on PATH?`);
      }
      await waitHealthy("etcd", managed, clientUrl);
      return { endpoints: [endpoint], pid: child.pid, cluster: null, stop: managed.stop, entryLine: null };
    },
  };
}

/** `node` with tsx when the entry is TypeScript (we run from source), so children work either way. */
export function nodeArgsFor(entryPath: string): string[] {
  if (!entryPath.endsWith(".ts")) return [entryPath];
  return ["--import", import.meta.resolve("tsx"), entryPath];
}

const resolvedEntries = new Map<string, ResolvedEntry>();
/** The first build this process resolved: later servers of the run start from it too. */
let pinnedBuildDir: string | null = null;

/**
 * The file a Node server the bench starts runs, resolved once per process (the build is checked, and
 * made when stale, before the first server starts; a cluster's members all run the same build).
 */
function resolvedEntry(sourceRelativePath: string, label: string, fromSource: boolean): ResolvedEntry {
  const envEntry = sourceRelativePath === etcdTsSource ? process.env.ETCD_TS_ENTRY : undefined;
  const key = `${sourceRelativePath}\n${fromSource}\n${envEntry ?? ""}`;
  let entry = resolvedEntries.get(key);
  if (entry === undefined) {
    entry = resolveEntry({ sourceRelativePath, label, fromSource, envEntry, pinnedBuildDir });
    resolvedEntries.set(key, entry);
    pinnedBuildDir ??= entry.buildDir;
  }
  return entry;
}

const etcdTsSource = "src/bin/etcd-ts.ts";

/**
 * The etcd-ts server's entry point: $ETCD_TS_ENTRY, else the compiled build (bench/build/compiled.ts,
 * rebuilt when src/ changed), else with `fromSource` src/bin/etcd-ts.ts under tsx. A clear error when
 * missing.
 */
export function etcdTsEntry(fromSource = false): ResolvedEntry {
  return resolvedEntry(etcdTsSource, "etcd-ts", fromSource);
}

/** The etcd-ts server, started exactly like etcd (it takes etcd's flags). */
export function etcdTsTarget(fromSource = false): Target {
  return {
    name: "etcd-ts",
    kind: "etcd-ts",
    profilable: true,
    unsupported: () => null,
    start: async (options) => {
      const entry = etcdTsEntry(fromSource);
      const { flags, dataDir, clientUrl, endpoint } = await etcdFlags("etcd-ts");
      const child = spawn(
        process.execPath,
        [...options.nodeFlags, ...nodeArgsFor(entry.entryPath), ...flags],
        { stdio: ["ignore", options.stdoutLine === null ? "ignore" : "pipe", "pipe"] },
      );
      const managed = manage(child, options, () => rmSync(dataDir, { recursive: true, force: true }));
      await waitHealthy("etcd-ts", managed, clientUrl);
      return {
        endpoints: [endpoint],
        pid: child.pid ?? null,
        cluster: null,
        stop: managed.stop,
        entryLine: entry.line,
      };
    },
  };
}

/** The no-op gRPC KV server of bench/null, in its own process so its CPU is its own. */
export function nullTarget(fromSource = false): Target {
  return {
    name: "null",
    kind: "null",
    profilable: true,
    unsupported: (workload) =>
      workload === "watch-latency" ? "the no-op server stores nothing, so it has no events to watch" : null,
    start: async (options) => {
      const { entryPath: entry, line: entryLine } = resolvedEntry(
        "bench/null/server.ts",
        "null server",
        fromSource,
      );
      // stdin stays open as a lifeline: the server exits when the bench does, even on SIGKILL.
      const child = spawn(
        process.execPath,
        [...options.nodeFlags, ...nodeArgsFor(entry), "--listen", "127.0.0.1:0"],
        { stdio: ["pipe", "pipe", "pipe"] },
      );
      const managed = manage(child, options, () => {});
      const endpoint = await new Promise<string | null>((resolve) => {
        let stdout = "";
        let found = false;
        const timer = setTimeout(() => resolve(null), targetStartTimeoutMs);
        child.stdout?.on("data", (chunk: Buffer) => {
          // Only the first line matters; later output (--trace-gc) is not kept.
          if (found) return;
          stdout += chunk.toString();
          const match = /listening on (\S+)/.exec(stdout);
          if (match?.[1] !== undefined) {
            found = true;
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
        void managed.exited.then(() => {
          clearTimeout(timer);
          resolve(null);
        });
      });
      if (endpoint === null) {
        await managed.stop();
        throw new BenchError(
          "BENCH_TARGET_START",
          `the no-op server did not start: ${whyItExited(managed.stderr())}`,
        );
      }
      return { endpoints: [endpoint], pid: child.pid ?? null, cluster: null, stop: managed.stop, entryLine };
    },
  };
}
