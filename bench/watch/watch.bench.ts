/**
 * Watch event delivery (issue 9): put-to-receipt latency (p50/p99/p99.9) and events per second with 1,
 * 1,000 and 10,000 watchers on one prefix, and the server's RSS with them, for each target in one run.
 *
 *   node --import tsx bench/watch/watch.bench.ts [--quick] [--targets a,b,...] [--watchers 1,1000,10000]
 *     [--from-source]
 *
 * Targets: `etcd-ts` (a real etcd-ts member: the bin with raft, WAL and lmdb, compiled as users run it
 * (bench/build/compiled.ts; --from-source: src/bin/etcd-ts.ts under tsx), in a child process of its own,
 * started as `npm run bench -- --compare-etcd-ts` does: loopback, free ports, temp data dir),
 * `etcd` (a real etcd 3.4.23 from $ETCD_BIN or PATH, loopback, temp dir), `worker`, `inline`, `auto` (the
 * etcd-ts watch hub on the store double, no raft or WAL, fan-out mode as named, each in a child process:
 * isolates the watch path from the write path), or `external` (a running server: --endpoint host:port,
 * --pid N for its RSS). Default: etcd-ts,etcd (the member and the real etcd measured in the same run).
 *
 * Per target and watcher count: the watchers are spread over up to 100 streams on up to 10 connections
 * (etcd's benchmark `watch-latency` shape), all watching prefix "w/"; then
 * - latency: one putter at a fixed rate (put start -> event arrival, one sample per put and watcher),
 * - throughput: 8 putters back to back; events/s = events received / seconds, and the server's CPU per
 *   1,000 events (all its threads, and its main thread alone: what the worker takes off it),
 * - RSS of the server process: before the watchers, with them idle (per-watcher bytes), and the peak.
 * The client (this process) shares the machine's cores with the server: compare targets within a run.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as hdr from "hdr-histogram-js";
import { etcdserverpb } from "../../src/proto/index.js";
import { startRealEtcd } from "../../test/support/realEtcd.js";
import { channelOptions, methods, passThrough } from "../load/connections.js";
import { defaultStartOptions, etcdTsTarget } from "../load/targets.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const targetNames = (option("--targets") ?? "etcd-ts,etcd").split(",");
/** Run target etcd-ts from the .ts sources under tsx instead of the compiled build (debugging only). */
const fromSource = args.includes("--from-source");
/** The entry line is printed once per run, not once per case. */
const entryLinesPrinted = new Set<string | null>([null]);
const watcherCounts = (option("--watchers") ?? "1,1000,10000").split(",").map(Number);
const phaseSeconds = quick ? 2 : 8;
/** Puts per second of the latency phase, by watcher count: kept well below each case's ceiling. */
const latencyRate = (watchers: number) =>
  watchers <= 1 ? 500 : watchers <= 100 ? 250 : watchers <= 1000 ? 100 : 10;
const THROUGHPUT_PUTTERS = 8;
/** Streams the watchers are spread over, at most (--streams overrides: 10,000 gives one per stream). */
const STREAMS_MAX = Number(option("--streams") ?? 100);
const CONNECTIONS_MAX = 10;
const VALUE = Buffer.alloc(256, 118);
/** Guard for setup and drain (the run fails rather than hangs). */
const WAIT_MS_MAX = 60_000;

interface Server {
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
}

async function startDouble(fanout: string): Promise<Server> {
  const entry = fileURLToPath(new URL("./server.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", entry, "--fanout", fanout], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /READY (\S+)\n/.exec(out);
      if (match) resolve(match[1] as string);
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    endpoint,
    pid: child.pid as number,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function startTarget(name: string): Promise<Server> {
  if (name === "external") {
    const endpoint = option("--endpoint");
    if (endpoint === undefined)
      throw new Error("target external needs --endpoint host:port (and --pid for RSS)");
    return { endpoint, pid: Number(option("--pid") ?? Number.NaN), stop: async () => {} };
  }
  if (name === "etcd") {
    const etcd = await startRealEtcd();
    return { endpoint: etcd.endpoint, pid: etcd.process.pid as number, stop: () => etcd.stop() };
  }
  if (name === "etcd-ts") {
    const member = await etcdTsTarget(fromSource).start(defaultStartOptions);
    if (!entryLinesPrinted.has(member.entryLine)) {
      entryLinesPrinted.add(member.entryLine);
      process.stdout.write(`${member.entryLine}\n`);
    }
    return { endpoint: member.endpoints[0] as string, pid: member.pid as number, stop: () => member.stop() };
  }
  if (!["worker", "inline", "auto"].includes(name)) throw new Error(`unknown target ${name}`);
  return startDouble(name);
}

/** Resident set size of a process in bytes (Linux /proc), NaN elsewhere. */
function rssBytes(pid: number): number {
  const path = `/proc/${pid}/status`;
  if (!existsSync(path)) return Number.NaN;
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(path, "utf8"));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** CPU ms of a process (all threads) and of its main thread (Linux /proc, 10 ms ticks), NaN elsewhere. */
function cpuMs(pid: number): { total: number; main: number } {
  const read = (path: string): number => {
    if (!existsSync(path)) return Number.NaN;
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  return { total: read(`/proc/${pid}/stat`), main: read(`/proc/${pid}/task/${pid}/stat`) };
}

/**
 * Just enough of a WatchResponse for the bench, without decoding events: watch_id (2), created (3) and
 * the number of events (11).
 */
function scanWatchResponse(bytes: Buffer): { watchId: number; created: boolean; events: number } {
  let o = 0;
  let watchId = 0;
  let created = false;
  let events = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 1;
    for (;;) {
      const byte = bytes[o++] as number;
      result += (byte & 0x7f) * shift;
      if (byte < 0x80) return result;
      shift *= 128;
    }
  };
  while (o < bytes.length) {
    const tag = varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) {
      const value = varint();
      if (field === 2) watchId = value >= 2 ** 63 ? -1 : value;
      else if (field === 3) created = value !== 0;
    } else if (wire === 2) {
      const length = varint();
      if (field === 11) events++;
      o += length;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return { watchId, created, events };
}

const putRequest = etcdserverpb.PutRequest.encode({ key: Buffer.from("w/key"), value: VALUE });
const createRequest = etcdserverpb.WatchRequest.encode({
  requestUnion: { case: "createRequest", value: { key: Buffer.from("w/"), rangeEnd: Buffer.from("w0") } },
});

function unaryPut(client: grpc.Client): Promise<void> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(methods.put, passThrough, passThrough, putRequest, (error) =>
      error ? reject(error) : resolve(),
    );
  });
}

interface CaseResult {
  target: string;
  watchers: number;
  streams: number;
  latency: { p50: number; p99: number; p999: number; max: number; samples: number; missing: number };
  putsPerSecond: number;
  eventsPerSecond: number;
  /** Server CPU per 1,000 events delivered in the throughput phase: all threads, and the main thread. */
  cpuMsPerKiloEvent: number;
  mainCpuMsPerKiloEvent: number;
  rssIdleBytes: number;
  rssWatchersBytes: number;
  rssPeakBytes: number;
}

async function runCase(target: string, watchers: number): Promise<CaseResult> {
  const server = await startTarget(target);
  const connections: grpc.Client[] = [];
  const streams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rssIdle = rssBytes(server.pid);
    const streamCount = Math.min(watchers, STREAMS_MAX);
    const connectionCount = Math.min(streamCount, CONNECTIONS_MAX);
    for (let c = 0; c <= connectionCount; c++) {
      connections.push(
        new grpc.Client(server.endpoint, grpc.credentials.createInsecure(), channelOptions(c)),
      );
    }
    const putClient = connections[connectionCount] as grpc.Client;
    let created = 0;
    let events = 0;
    /** Per put (index), its start time; per watcher, how many events it has seen (its next put index). */
    const putStartMs: number[] = [];
    let countFrom = 0;
    let measuring = false;
    const seen = new Int32Array(watchers);
    const histogram = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000_000,
      numberOfSignificantValueDigits: 3,
    });
    for (let s = 0; s < streamCount; s++) {
      const perStream = Math.floor(watchers / streamCount) + (s < watchers % streamCount ? 1 : 0);
      const base = s * Math.floor(watchers / streamCount) + Math.min(s, watchers % streamCount);
      const stream = (connections[s % connectionCount] as grpc.Client).makeBidiStreamRequest(
        methods.watch,
        passThrough,
        passThrough,
      );
      stream.on("data", (bytes: Buffer) => {
        const now = performance.now();
        const response = scanWatchResponse(bytes);
        if (response.created) {
          created++;
          return;
        }
        const watcher = base + response.watchId;
        for (let e = 0; e < response.events; e++) {
          const put = seen[watcher] as number;
          seen[watcher] = put + 1;
          events++;
          if (measuring && put >= countFrom && put < putStartMs.length) {
            histogram.recordValue(Math.max(1, Math.round((now - (putStartMs[put] as number)) * 1000)));
          }
        }
      });
      stream.on("error", () => {});
      for (let w = 0; w < perStream; w++) stream.write(createRequest);
      streams.push(stream);
    }
    const deadline = Date.now() + WAIT_MS_MAX;
    while (created < watchers) {
      if (Date.now() > deadline)
        throw new Error(`${target}: only ${created} of ${watchers} watchers created`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rssWatchers = rssBytes(server.pid);
    let rssPeak = rssWatchers;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(server.pid));
    }, 100);

    // Latency: one putter at a fixed rate; every put's start is kept, events map to puts in order.
    const rate = latencyRate(watchers);
    const puts = Math.max(10, Math.round(rate * phaseSeconds));
    measuring = true;
    countFrom = 0;
    const startMs = performance.now();
    for (let i = 0; i < puts; i++) {
      const due = startMs + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      putStartMs.push(performance.now());
      await unaryPut(putClient);
    }
    const expected = puts * watchers;
    const drainDeadline = Date.now() + WAIT_MS_MAX;
    while (events < expected && Date.now() < drainDeadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const missing = expected - events;
    measuring = false;

    // Throughput: putters back to back; events counted at the watchers.
    const eventsBefore = events;
    const cpuBefore = cpuMs(server.pid);
    let putsDone = 0;
    const throughputStart = performance.now();
    const stopAt = throughputStart + phaseSeconds * 1000;
    await Promise.all(
      Array.from({ length: THROUGHPUT_PUTTERS }, async () => {
        while (performance.now() < stopAt) {
          await unaryPut(putClient);
          putsDone++;
        }
      }),
    );
    const eventsTarget = eventsBefore + putsDone * watchers;
    const tailDeadline = Date.now() + WAIT_MS_MAX;
    while (events < eventsTarget && Date.now() < tailDeadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const seconds = (performance.now() - throughputStart) / 1000;
    const cpuAfter = cpuMs(server.pid);
    const kiloEvents = (events - eventsBefore) / 1000;
    clearInterval(sampler);
    const us = (p: number) => histogram.getValueAtPercentile(p) / 1000;
    return {
      target,
      watchers,
      streams: streamCount,
      latency: {
        p50: us(50),
        p99: us(99),
        p999: us(99.9),
        max: histogram.maxValue / 1000,
        samples: histogram.totalCount,
        missing,
      },
      putsPerSecond: putsDone / seconds,
      eventsPerSecond: (events - eventsBefore) / seconds,
      cpuMsPerKiloEvent: (cpuAfter.total - cpuBefore.total) / kiloEvents,
      mainCpuMsPerKiloEvent: (cpuAfter.main - cpuBefore.main) / kiloEvents,
      rssIdleBytes: rssIdle,
      rssWatchersBytes: rssWatchers,
      rssPeakBytes: rssPeak,
    };
  } finally {
    for (const stream of streams) stream.cancel();
    for (const connection of connections) connection.close();
    await server.stop();
  }
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const num = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });

const results: CaseResult[] = [];
process.stdout.write(
  `watch bench (${quick ? "quick" : "full"}): ${phaseSeconds} s per phase, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}\n`,
);
process.stdout.write(
  "target   watchers streams | latency ms p50    p99  p99.9    max (samples, missing) | puts/s   events/s " +
    "CPU ms/1k ev (main) | RSS MiB idle watchers peak  B/watcher\n",
);
for (const watchers of watcherCounts) {
  for (const target of targetNames) {
    const r = await runCase(target, watchers);
    results.push(r);
    const perWatcher = watchers >= 1000 ? num((r.rssWatchersBytes - r.rssIdleBytes) / watchers) : "-";
    process.stdout.write(
      `${target.padEnd(8)} ${String(watchers).padStart(8)} ${String(r.streams).padStart(7)} | ` +
        `${r.latency.p50.toFixed(2).padStart(14)} ${r.latency.p99.toFixed(2).padStart(6)} ${r.latency.p999.toFixed(2).padStart(6)} ` +
        `${r.latency.max.toFixed(1).padStart(6)} (${r.latency.samples}, ${r.latency.missing}) | ` +
        `${num(r.putsPerSecond).padStart(6)} ${num(r.eventsPerSecond).padStart(10)} ` +
        `${r.cpuMsPerKiloEvent.toFixed(1).padStart(12)} (${r.mainCpuMsPerKiloEvent.toFixed(1)}) | ` +
        `${mib(r.rssIdleBytes).padStart(12)} ${mib(r.rssWatchersBytes).padStart(8)} ${mib(r.rssPeakBytes).padStart(5)} ${perWatcher.padStart(10)}\n`,
    );
  }
}
if (args.includes("--json")) process.stdout.write(`${JSON.stringify(results)}\n`);
