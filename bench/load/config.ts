import { parseArgs } from "node:util";
import { BenchError } from "./errors.js";
import { type TransportKind, transportKinds } from "./transport.js";

/** etcdctl check perf's load levels (etcdctl/ctlv3/command/check.go, 3.4.23). */
export const loadLevels = {
  s: { clients: 50, permitsPerSecond: 150, durationSeconds: 60 },
  m: { clients: 200, permitsPerSecond: 1000, durationSeconds: 60 },
  l: { clients: 500, permitsPerSecond: 8000, durationSeconds: 60 },
  xl: { clients: 1000, permitsPerSecond: 15000, durationSeconds: 60 },
} as const;
export type LoadLevel = keyof typeof loadLevels;

const loadAliases: Record<string, LoadLevel> = {
  s: "s",
  small: "s",
  m: "m",
  medium: "m",
  l: "l",
  large: "l",
  xl: "xl",
  xLarge: "xl",
};

export const workloadNames = [
  "check-perf",
  "put",
  "range",
  "txn-put",
  "watch-latency",
  "lease-keepalive",
] as const;
export type WorkloadName = (typeof workloadNames)[number];

export const checkPerfPrefixDefault = "/etcdctl-check-perf/";
export const benchPrefixDefault = "/etcd-ts-bench/";
/** check perf's key is the prefix plus this many bytes; its value is this many zero bytes. */
export const checkPerfKeySuffixBytes = 256;
export const checkPerfValueBytes = 1024;
/** etcd's request size limit (1.5 MiB) bounds key + value; the bench refuses bigger on its side. */
export const requestSizeBytesMax = 1_572_864;
/** Connections and clients are bounded so a typo cannot open a million sockets. */
export const clientsMax = 100_000;
export const connectionsMax = 10_000;
/** etcdctl's default --dial-timeout. */
export const dialTimeoutMsDefault = 2000;
/**
 * --cluster's bound: etcd recommends at most 7 voting members, and each member of a cluster the bench
 * starts is a process on this one machine.
 */
export const clusterMembersMax = 7;

export interface BenchConfig {
  workload: WorkloadName;
  endpoints: string[];
  /** false when --endpoints was left at its default. */
  endpointsGiven: boolean;
  load: LoadLevel;
  prefix: string;
  /** Stop issuing after this many seconds (null: stop after totalRequests). */
  durationSeconds: number | null;
  /** Stop after this many requests (null: stop at the duration). */
  totalRequests: number | null;
  /** Logical clients, each with one request in flight at a time. */
  clients: number;
  /** gRPC connections (distinct channels and TCP connections); clients are spread over them. */
  connections: number;
  /** Target request rate; null is unlimited (closed loop). */
  permitsPerSecond: number | null;
  keySizeBytes: number;
  valueSizeBytes: number;
  keySpaceSize: number;
  sequentialKeys: boolean;
  consistency: "l" | "s";
  txnOps: number;
  streams: number;
  watchersPerStream: number;
  autoCompact: boolean;
  autoDefrag: boolean;
  compareEtcd: boolean;
  compareNull: boolean;
  compareEtcdTs: boolean;
  /**
   * --cluster N: --compare-etcd and --compare-etcd-ts start N-member clusters (one after the other)
   * and the load goes to each cluster's leader; null runs single members as before.
   */
  clusterSize: number | null;
  /** Report directory; null picks bench/results/<timestamp>. */
  outDir: string | null;
  dialTimeoutMs: number;
  /** How the timed phase's unary calls are sent (setup and cleanup always use grpc-js). */
  transport: TransportKind;
  /** Run the Node servers the bench starts under --cpu-prof and summarise where their CPU went. */
  profile: boolean;
  /** Extra `node` flags for the Node servers the bench starts (etcd-ts, the no-op server). */
  serverNodeFlags: string[];
  /**
   * --from-source: run the Node servers the bench starts from the TypeScript sources under tsx (for
   * debugging) instead of the compiled build (bench/build/compiled.ts), which is what users run.
   */
  fromSource: boolean;
  help: boolean;
}

const optionSpec = {
  workload: { type: "string" },
  endpoints: { type: "string" },
  load: { type: "string" },
  prefix: { type: "string" },
  duration: { type: "string" },
  total: { type: "string" },
  clients: { type: "string" },
  conns: { type: "string" },
  rate: { type: "string" },
  "key-size": { type: "string" },
  "val-size": { type: "string" },
  "key-space-size": { type: "string" },
  "sequential-keys": { type: "boolean" },
  consistency: { type: "string" },
  "txn-ops": { type: "string" },
  streams: { type: "string" },
  "watchers-per-stream": { type: "string" },
  "auto-compact": { type: "boolean" },
  "auto-defrag": { type: "boolean" },
  "compare-etcd": { type: "boolean" },
  "compare-null": { type: "boolean" },
  "compare-etcd-ts": { type: "boolean" },
  cluster: { type: "string" },
  out: { type: "string" },
  "dial-timeout": { type: "string" },
  transport: { type: "string" },
  profile: { type: "boolean" },
  "server-node-flags": { type: "string" },
  "from-source": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Options that only the etcd-benchmark-style workloads take (check perf's load level fixes them). */
const notForCheckPerf = [
  "total",
  "clients",
  "conns",
  "rate",
  "key-size",
  "val-size",
  "key-space-size",
  "sequential-keys",
] as const;

export const usage = `usage: npm run bench -- [workload] [options]

workloads: check-perf (default; mirrors etcdctl check perf), put, range, txn-put, watch-latency,
           lease-keepalive

common options:
  --endpoints host:port[,host:port]  target endpoints (default 127.0.0.1:2379)
  --compare-etcd                     also start a real etcd (from PATH) on loopback and run against it
  --compare-null                     also start the built-in no-op gRPC KV server and run against it
  --compare-etcd-ts                  also start the etcd-ts server and run against it: compiled JS as
                                     users run it ($ETCD_TS_ENTRY, else a build in node_modules/.cache,
                                     remade with tsc when src/ changed), one line says which
  --cluster n                        --compare-etcd / --compare-etcd-ts start an n-member cluster
                                     (1 to ${clusterMembersMax}) on loopback instead of one member,
                                     find its leader (Maintenance.Status) and send the load there;
                                     server CPU is summed over all members, peak RSS shown per member
  --duration seconds                 run length (check-perf default 60)
  --prefix p                         key prefix; must hold no keys (check-perf default ${checkPerfPrefixDefault})
  --out dir                          report directory (default bench/results/<timestamp>)
  --dial-timeout 2s                  connect deadline per endpoint
  --transport http2|grpc-js          how timed unary calls are sent: the gRPC wire protocol on raw
                                     node:http2 sessions (check-perf's default: half the generator
                                     CPU per request of grpc-js, so more of the machine is left to
                                     the server), or @grpc/grpc-js channels (--transport grpc; the
                                     other workloads' default)
  --profile                          run the started etcd-ts / no-op server under node --cpu-prof and
                                     --trace-gc; print self time by category (GC, grpc-js, http2,
                                     codec, raft, wal, mvcc, ...) for the timed phase; keep the
                                     .cpuprofile files in the report directory
  --server-node-flags="flags"        node flags for the etcd-ts / no-op server the bench starts, e.g.
                                     --server-node-flags="--max-semi-space-size=32" (with the "=":
                                     space-separated, each --name[=value])
  --from-source                      run the started etcd-ts / no-op server from the .ts sources under
                                     tsx (debugging; tsx adds memory and threads to every figure)
check-perf: --load s|m|l|xl  --auto-compact  --auto-defrag
put, txn-put: --clients n --conns n --total n --rate n --key-size n --val-size n --key-space-size n
              --sequential-keys (put)  --txn-ops n (txn-put)
range: --consistency l|s --key-space-size n (keys written first) plus the put options
watch-latency: --streams n --watchers-per-stream n --total n (puts) --rate n (puts/s)
lease-keepalive: --clients n --conns n --total n --rate n
`;

function badArgs(message: string): BenchError {
  return new BenchError("BENCH_BAD_ARGS", message);
}

function positiveInteger(name: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw badArgs(`--${name} must be an integer from 1 to ${max}, got "${text}"`);
  }
  return value;
}

function nonNegativeInteger(name: string, text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw badArgs(`--${name} must be a whole number, got "${text}"`);
  }
  return Number(text);
}

/** Seconds as a positive decimal ("60", "2.5"). */
function positiveSeconds(name: string, text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(value) || value <= 0 || value > 366 * 86_400) {
    throw badArgs(`--${name} must be a positive number of seconds, got "${text}"`);
  }
  return value;
}

/** A Go-style duration as etcdctl takes it ("2s", "500ms", "1m"); a bare number is seconds. */
export function parseDurationMs(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  const amount = match?.[1] === undefined ? Number.NaN : Number(match[1]);
  if (match === null || !Number.isFinite(amount) || amount <= 0) {
    throw badArgs(`--${name} must be a duration such as 2s or 500ms, got "${text}"`);
  }
  const unit = match[2] ?? "s";
  return Math.round(amount * (unit === "ms" ? 1 : unit === "s" ? 1000 : 60_000));
}

export function parseLoad(text: string): LoadLevel {
  const level = loadAliases[text];
  if (level === undefined) throw new BenchError("BENCH_UNKNOWN_LOAD", `unknown load option ${text}`);
  return level;
}

/** host:port list; IPv6 hosts in brackets. */
export function parseEndpoints(text: string): string[] {
  const endpoints = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => part.replace(/^https?:\/\//, ""));
  if (endpoints.length === 0) throw badArgs("--endpoints is empty");
  for (const endpoint of endpoints) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/]+):(\d{1,5})$/.exec(endpoint);
    const port = Number(match?.[2]);
    if (match === null || port < 1 || port > 65535) {
      throw badArgs(`--endpoints: "${endpoint}" is not host:port`);
    }
  }
  return endpoints;
}

/**
 * check perf sends over raw HTTP/2 unless told otherwise: at loads l and xl the generator shares
 * the machine with the server. Against the no-op server on this 2-core VM (one run each, machine
 * otherwise quiet): load l for 10 s, grpc-js 4,025 writes/s at 176 µs of generator CPU per request,
 * http2 6,851 writes/s at 89 µs; load xl for 5 s, grpc-js 4,657 at 193 µs, http2 9,026 at 91 µs.
 * The etcd-benchmark-style workloads keep grpc-js, a full gRPC client, as their default.
 */
export function defaultTransport(workload: WorkloadName): TransportKind {
  return workload === "check-perf" ? "http2" : "grpc-js";
}

/**
 * `--server-node-flags`: space-separated node options, each `--name` or `--name=value` (a value
 * cannot hold a space). Only options: an entry point or a stray word would change what runs.
 */
export function parseNodeFlags(text: string): string[] {
  const flags = text.split(/\s+/).filter((flag) => flag.length > 0);
  for (const flag of flags) {
    if (!/^--[a-z0-9][a-z0-9-_]*(=\S*)?$/i.test(flag)) {
      throw badArgs(`--server-node-flags: "${flag}" is not a node option (--name or --name=value)`);
    }
  }
  return flags;
}

function isWorkloadName(text: string): text is WorkloadName {
  return (workloadNames as readonly string[]).includes(text);
}

export function parseConfig(argv: readonly string[]): BenchConfig {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof optionSpec; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: optionSpec, allowPositionals: true, strict: true });
  } catch (error) {
    throw badArgs(error instanceof Error ? error.message.split("\n")[0]! : String(error));
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw badArgs(`unexpected arguments: ${positionals.slice(1).join(" ")}`);
  const workloadText = values.workload ?? positionals[0] ?? "check-perf";
  if (values.workload !== undefined && positionals[0] !== undefined && positionals[0] !== values.workload) {
    throw badArgs(`workload given twice: ${positionals[0]} and --workload ${values.workload}`);
  }
  if (!isWorkloadName(workloadText)) {
    throw badArgs(`unknown workload "${workloadText}" (expected one of ${workloadNames.join(", ")})`);
  }
  const workload = workloadText;
  const checkPerf = workload === "check-perf";
  if (checkPerf) {
    for (const name of notForCheckPerf) {
      if (values[name] !== undefined)
        throw badArgs(`--${name} does not apply to check-perf (--load sets it)`);
    }
  } else {
    for (const name of ["load", "auto-compact", "auto-defrag"] as const) {
      if (values[name] !== undefined) throw badArgs(`--${name} applies to check-perf only`);
    }
  }
  const load = parseLoad(values.load ?? "s");
  const level = loadLevels[load];
  const durationSeconds =
    values.duration !== undefined
      ? positiveSeconds("duration", values.duration)
      : checkPerf
        ? level.durationSeconds
        : null;
  const totalRequests =
    values.total !== undefined
      ? positiveInteger("total", values.total)
      : checkPerf || durationSeconds !== null
        ? null
        : workload === "watch-latency"
          ? 1000
          : 10_000;
  const clients = checkPerf
    ? level.clients
    : values.clients !== undefined
      ? positiveInteger("clients", values.clients, clientsMax)
      : 1;
  const connections = checkPerf
    ? level.clients
    : values.conns !== undefined
      ? positiveInteger("conns", values.conns, connectionsMax)
      : 1;
  if (connections > clients && workload !== "watch-latency") {
    throw badArgs(`--conns (${connections}) must not exceed --clients (${clients})`);
  }
  const rateText = values.rate;
  const rateGiven = rateText === undefined ? null : nonNegativeInteger("rate", rateText);
  const permitsPerSecond = checkPerf
    ? level.permitsPerSecond
    : rateGiven === null || rateGiven === 0
      ? workload === "watch-latency"
        ? 100
        : null
      : rateGiven;
  const keySizeBytes = checkPerf
    ? checkPerfKeySuffixBytes
    : positiveInteger("key-size", values["key-size"] ?? (workload === "watch-latency" ? "32" : "8"), 65_536);
  const valueSizeBytes = checkPerf
    ? checkPerfValueBytes
    : nonNegativeInteger("val-size", values["val-size"] ?? (workload === "watch-latency" ? "32" : "8"));
  const prefix = values.prefix ?? (checkPerf ? checkPerfPrefixDefault : benchPrefixDefault);
  if (prefix.length === 0)
    throw badArgs("--prefix must not be empty (the cleanup deletes everything under it)");
  if (Buffer.byteLength(prefix) + keySizeBytes + valueSizeBytes > requestSizeBytesMax) {
    throw badArgs(`key and value exceed etcd's ${requestSizeBytesMax}-byte request limit`);
  }
  const consistency = values.consistency ?? "l";
  if (consistency !== "l" && consistency !== "s") {
    throw badArgs(`--consistency must be l (linearizable) or s (serializable), got "${consistency}"`);
  }
  const txnOps = positiveInteger("txn-ops", values["txn-ops"] ?? "1", 10_000);
  const keySpaceSize = positiveInteger(
    "key-space-size",
    values["key-space-size"] ?? (workload === "range" ? "1000" : "1"),
  );
  if (workload === "txn-put" && txnOps > keySpaceSize) {
    throw badArgs(`--txn-ops (${txnOps}) must not exceed --key-space-size (${keySpaceSize})`);
  }
  const transportText = values.transport ?? defaultTransport(workload);
  const transport = transportText === "grpc" ? "grpc-js" : transportText;
  if (!(transportKinds as readonly string[]).includes(transport)) {
    throw badArgs(`--transport must be http2 or grpc-js (grpc), got "${transportText}"`);
  }
  if (transport === "http2" && (workload === "watch-latency" || workload === "lease-keepalive")) {
    throw badArgs("--transport http2 applies to the unary workloads: check-perf, put, range, txn-put");
  }
  const profile = values.profile ?? false;
  if (profile && values["compare-etcd-ts"] !== true && values["compare-null"] !== true) {
    throw badArgs(
      "--profile profiles a Node server the bench starts: add --compare-etcd-ts or --compare-null",
    );
  }
  const clusterSize =
    values.cluster === undefined ? null : positiveInteger("cluster", values.cluster, clusterMembersMax);
  if (clusterSize !== null) {
    if (values["compare-etcd"] !== true && values["compare-etcd-ts"] !== true) {
      throw badArgs("--cluster sizes the servers the bench starts: add --compare-etcd or --compare-etcd-ts");
    }
    if (values["compare-null"] === true) {
      throw badArgs("--cluster does not apply to --compare-null (the no-op server has no peers)");
    }
  }
  const serverNodeFlags = parseNodeFlags(values["server-node-flags"] ?? "");
  if (serverNodeFlags.length > 0 && values["compare-etcd-ts"] !== true && values["compare-null"] !== true) {
    throw badArgs(
      "--server-node-flags applies to a Node server the bench starts: add --compare-etcd-ts or --compare-null",
    );
  }
  const fromSource = values["from-source"] ?? false;
  if (fromSource && values["compare-etcd-ts"] !== true && values["compare-null"] !== true) {
    throw badArgs(
      "--from-source applies to a Node server the bench starts: add --compare-etcd-ts or --compare-null",
    );
  }
  return {
    workload,
    transport: transport as TransportKind,
    profile,
    serverNodeFlags,
    fromSource,
    endpoints: parseEndpoints(values.endpoints ?? "127.0.0.1:2379"),
    endpointsGiven: values.endpoints !== undefined,
    load,
    prefix,
    durationSeconds,
    totalRequests,
    clients,
    connections,
    permitsPerSecond,
    keySizeBytes,
    valueSizeBytes,
    keySpaceSize,
    sequentialKeys: values["sequential-keys"] ?? false,
    consistency,
    txnOps,
    streams: positiveInteger("streams", values.streams ?? "10", connectionsMax),
    watchersPerStream: positiveInteger("watchers-per-stream", values["watchers-per-stream"] ?? "10", 10_000),
    autoCompact: values["auto-compact"] ?? false,
    autoDefrag: values["auto-defrag"] ?? false,
    compareEtcd: values["compare-etcd"] ?? false,
    compareNull: values["compare-null"] ?? false,
    compareEtcdTs: values["compare-etcd-ts"] ?? false,
    clusterSize,
    outDir: values.out ?? null,
    dialTimeoutMs: parseDurationMs("dial-timeout", values["dial-timeout"] ?? "2s"),
    help: values.help ?? false,
  };
}
