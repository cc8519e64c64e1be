/**
 * The member's own CPU per write, without gRPC (issue 8): puts go straight to `EtcdServer.put` in this
 * process, from `--clients` concurrent callers, through raft, the WAL worker's fsync, apply and the
 * backend worker, exactly as a gRPC Put would after decoding. What `npm run bench` measures end to end
 * is this plus grpc-js, node:http2 and the GC their allocations cause (the no-op server's share).
 *
 *   node --import tsx bench/server/server.bench.ts [--clients 500] [--seconds 5] [--rounds 3]
 *        [--key-size 256] [--value-size 1024]
 *
 * Why: on a shared 2-core machine an end-to-end run's server CPU per write moves by ±15% from one run
 * to the next, while changes to the member's own code are worth a few µs of ~40. Without a load
 * generator and sockets on the same cores, this figure moves by a few percent, so such a change shows.
 * Keys are check perf's shape (a prefix and random bytes, every put a new key), values zeros.
 *
 * Figures per acknowledged write, per round: main-thread CPU (raft, apply, mvcc, the proposal path and
 * the main isolate's GC; from /proc in 10 ms ticks), the whole process's CPU (adds the WAL and backend
 * worker threads and V8's GC helper threads), writes/s, the main isolate's GC pauses, and RSS growth.
 * The key generator's own cost (one 276-byte buffer and a copy per put) is in the main-thread figure;
 * the load average is printed because a loaded machine inflates every figure.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { startMember } from "../../src/server/member.js";
import { processRss } from "../load/procStats.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "500" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    "warmup-seconds": { type: "string", default: "1" },
    "key-size": { type: "string", default: "256" },
    "value-size": { type: "string", default: "1024" },
  },
});

/** A bad command line: printed as one line, without a stack. */
class UsageError extends Error {}

function positive(name: string, text: string | undefined, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > max) {
    throw new UsageError(`--${name} must be a number in (0, ${max}], got "${text}"`);
  }
  return value;
}

/** Bounds so a typo cannot start a million callers or an hour-long run. */
const CLIENTS_MAX = 100_000;
const SECONDS_MAX = 3600;
const ROUNDS_MAX = 100;
const KEY_SIZE_BYTES_MAX = 65_536;
const VALUE_SIZE_BYTES_MAX = 1_048_576;

interface Options {
  clients: number;
  roundSeconds: number;
  rounds: number;
  warmupSeconds: number;
  keySuffixBytes: number;
  valueBytes: number;
}

function readOptions(): Options {
  const warmupSeconds = Number(values["warmup-seconds"]);
  if (!(warmupSeconds >= 0 && warmupSeconds <= SECONDS_MAX)) {
    throw new UsageError(
      `--warmup-seconds must be a number in [0, ${SECONDS_MAX}], got "${values["warmup-seconds"]}"`,
    );
  }
  return {
    clients: Math.floor(positive("clients", values.clients, CLIENTS_MAX)),
    roundSeconds: positive("seconds", values.seconds, SECONDS_MAX),
    rounds: Math.floor(positive("rounds", values.rounds, ROUNDS_MAX)),
    warmupSeconds,
    keySuffixBytes: Math.floor(positive("key-size", values["key-size"], KEY_SIZE_BYTES_MAX)),
    valueBytes: Math.floor(positive("value-size", values["value-size"], VALUE_SIZE_BYTES_MAX)),
  };
}

const { clients, roundSeconds, rounds, warmupSeconds, keySuffixBytes, valueBytes } = (() => {
  try {
    return readOptions();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`Error: ${error.message}\n`);
    process.exit(1);
  }
})();

const PREFIX = Buffer.from("/etcdctl-check-perf/");
/** Random bytes the keys are cut from: each key is the prefix, a counter and 248 of these. */
const RANDOM_POOL_BYTES = 1 << 20;
const randomPool = randomBytes(RANDOM_POOL_BYTES);
const value = new Uint8Array(valueBytes);
let keyCounter = 0;

/** A new key per put (check perf's random keys): the counter makes it unique, the pool varies the rest. */
function nextKey(): Uint8Array {
  const key = new Uint8Array(PREFIX.length + keySuffixBytes);
  key.set(PREFIX, 0);
  const n = keyCounter++;
  const view = new DataView(key.buffer);
  // A counter in the first 8 suffix bytes keeps keys unique; the rest spreads them over the key space.
  view.setFloat64(PREFIX.length, n);
  const offset = (n * 977) % (RANDOM_POOL_BYTES - keySuffixBytes);
  key.set(randomPool.subarray(offset, offset + Math.max(0, keySuffixBytes - 8)), PREFIX.length + 8);
  return key;
}

/** CPU seconds of one thread of this process (Linux /proc, 10 ms ticks). */
function threadCpuSeconds(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function processCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

let gcCount = 0;
let gcPauseMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcCount++;
    gcPauseMs += entry.duration;
  }
}).observe({ entryTypes: ["gc"] });

interface RoundResult {
  writes: number;
  seconds: number;
  mainCpuUsPerWrite: number;
  processCpuUsPerWrite: number;
  gcPauseUsPerWrite: number;
  gcCount: number;
  rssGrowthBytesPerWrite: number;
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-bench-server-"));
  const member = await startMember({
    name: "bench",
    dataDir: join(dataDir, "bench.etcd"),
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "bench=http://127.0.0.1:2380",
    logLevel: "error",
  });
  const server = member.server;
  let stopAtMs = 0;
  let acknowledged = 0;
  const caller = async (): Promise<void> => {
    while (performance.now() < stopAtMs) {
      await server.put({
        key: nextKey(),
        value,
        lease: 0n,
        prevKv: false,
        ignoreValue: false,
        ignoreLease: false,
      });
      acknowledged++;
    }
  };
  const runFor = async (seconds: number): Promise<void> => {
    stopAtMs = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: clients }, caller));
  };

  process.stdout.write(
    `member CPU per write without gRPC: ${clients} callers, keys ${PREFIX.length + keySuffixBytes} B, ` +
      `values ${valueBytes} B, ${rounds} rounds of ${roundSeconds} s; load average ${loadavg()[0]!.toFixed(2)}\n`,
  );
  if (warmupSeconds > 0) await runFor(warmupSeconds);
  const results: RoundResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    acknowledged = 0;
    const gcCountBefore = gcCount;
    const gcPauseBefore = gcPauseMs;
    const mainBefore = threadCpuSeconds(process.pid);
    const processBefore = processCpuSeconds();
    const rssBefore = processRss(process.pid)?.rssBytes ?? 0;
    const startMs = performance.now();
    await runFor(roundSeconds);
    const seconds = (performance.now() - startMs) / 1000;
    const writes = acknowledged;
    const result: RoundResult = {
      writes,
      seconds,
      mainCpuUsPerWrite: ((threadCpuSeconds(process.pid) - mainBefore) * 1e6) / writes,
      processCpuUsPerWrite: ((processCpuSeconds() - processBefore) * 1e6) / writes,
      gcPauseUsPerWrite: ((gcPauseMs - gcPauseBefore) * 1000) / writes,
      gcCount: gcCount - gcCountBefore,
      rssGrowthBytesPerWrite: ((processRss(process.pid)?.rssBytes ?? 0) - rssBefore) / writes,
    };
    results.push(result);
    process.stdout.write(
      `round ${round}: ${(writes / seconds).toFixed(0)} writes/s, main thread ${result.mainCpuUsPerWrite.toFixed(1)} µs/write, ` +
        `process ${result.processCpuUsPerWrite.toFixed(1)} µs/write, main-isolate GC ${result.gcPauseUsPerWrite.toFixed(1)} µs/write ` +
        `(${result.gcCount} pauses), RSS ${(result.rssGrowthBytesPerWrite / 1024).toFixed(2)} KiB/write, ` +
        `load ${loadavg()[0]!.toFixed(2)}\n`,
    );
  }
  const pick = (f: (r: RoundResult) => number): string => median(results.map(f)).toFixed(1);
  const spread = (f: (r: RoundResult) => number): string => {
    const all = results.map(f);
    return `${Math.min(...all).toFixed(1)}-${Math.max(...all).toFixed(1)}`;
  };
  process.stdout.write(
    `median: main thread ${pick((r) => r.mainCpuUsPerWrite)} µs/write (${spread((r) => r.mainCpuUsPerWrite)}), ` +
      `process ${pick((r) => r.processCpuUsPerWrite)} µs/write (${spread((r) => r.processCpuUsPerWrite)}), ` +
      `${pick((r) => r.writes / r.seconds)} writes/s\n`,
  );
  await member.close();
  rmSync(dataDir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
