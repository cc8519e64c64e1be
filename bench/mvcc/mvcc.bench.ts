/**
 * MVCC store benchmark (issue 7): applied puts per second with the lmdb writer thread committing, range
 * latency for 1, 100 and 10,000 keys, reads per second while writes stream in, and memory and disk for a
 * large store (1M keys of 256 B with 1 KiB values in the full run).
 *
 *   npm run bench:mvcc              full run (minutes, ~2 GB of disk)
 *   npm run bench:mvcc -- --quick   smoke run (seconds)
 *   --no-prev-kv                     the store's events carry no prevKv (MvccStoreOptions.eventsWithPrevKv
 *                                    false, as a server does when the watch hub looks prev_kv up itself)
 *
 * Everything runs in this process on the main thread, as the server's apply loop will: no gRPC, no raft.
 * "Main-thread CPU" is read from /proc (Linux) for the main thread alone, so the writer thread's work and
 * time spent waiting for a core on a busy machine are not in it; wall-clock rates include both. The load
 * average is printed because the figures mean little on a loaded machine. There is no reference etcd
 * figure at this layer (etcd's mvcc is not reachable without its server): `npm run bench` compares ends.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type LmdbBackend, openLmdbBackend } from "../../src/backend/lmdb.js";
import { MvccStore } from "../../src/mvcc/store.js";

const quick = process.argv.includes("--quick");
const eventsWithPrevKv = !process.argv.includes("--no-prev-kv");
const KEY_BYTES = 256;
const VALUE_BYTES = 1024;
const config = quick
  ? { loadKeys: 20_000, putOps: 20_000, rangeSamples: 200, mixedMs: 1000, batchIntervals: [100] }
  : { loadKeys: 1_000_000, putOps: 200_000, rangeSamples: 2000, mixedMs: 5000, batchIntervals: [10, 100] };

function key(i: number): Uint8Array {
  const k = Buffer.alloc(KEY_BYTES, 0x61);
  k.write(`/registry/bench/${String(i).padStart(10, "0")}`, 0, "latin1");
  return k;
}

/** CPU milliseconds used by the main thread so far (Linux /proc, 10 ms ticks), or NaN elsewhere. */
function mainThreadCpuMs(): number {
  const path = `/proc/self/task/${process.pid}/stat`;
  if (!existsSync(path)) return Number.NaN;
  const stat = readFileSync(path, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

async function openStore(
  batchIntervalMs: number,
): Promise<{ dir: string; backend: LmdbBackend; store: MvccStore }> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-bench-mvcc-"));
  const backend = await openLmdbBackend({ dir, batchIntervalMs });
  return { dir, backend, store: MvccStore.open({ backend, eventsWithPrevKv }) };
}

/** One put per raft entry, first to new keys, then updating them (events carry prevKv unless --no-prev-kv). */
async function benchPuts(batchIntervalMs: number): Promise<void> {
  const { dir, backend, store } = await openStore(batchIntervalMs);
  const value = Buffer.alloc(VALUE_BYTES, 0x62);
  const keys = Array.from({ length: config.putOps }, (_, i) => key(i));
  let index = 0;
  for (const phase of ["new keys", "updates"]) {
    const cpuBefore = mainThreadCpuMs();
    const blockedBefore = backend.fullRingWaitMs;
    const started = performance.now();
    for (let i = 0; i < config.putOps; i++) {
      store.apply(++index, 1, { type: "put", request: { key: keys[i] as Uint8Array, value } });
      // Yield now and then, as an apply loop between raft batches would.
      if (i % 1000 === 999) await yieldToLoop();
    }
    const appliedMs = performance.now() - started;
    const cpuMs = mainThreadCpuMs() - cpuBefore;
    await backend.forceCommit();
    const durableMs = performance.now() - started;
    console.log(
      `puts, ${phase}${eventsWithPrevKv ? "" : " without prevKv"} (batch ${batchIntervalMs} ms or 10k ops): ${fmt(config.putOps / (appliedMs / 1000), 0)} applied/s, ` +
        `${fmt((cpuMs * 1000) / config.putOps, 2)} µs main-thread CPU/put, ` +
        `${fmt((backend.fullRingWaitMs - blockedBefore) / 1000, 2)} s blocked on a full ring, ` +
        `all durable at ${fmt(config.putOps / (durableMs / 1000), 0)}/s`,
    );
  }
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

async function benchLoadedStore(): Promise<void> {
  const { dir, backend, store } = await openStore(100);
  const value = Buffer.alloc(VALUE_BYTES, 0x63);
  (globalThis as { gc?: () => void }).gc?.();
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  let index = 0;
  // Bulk load in txns of 100 puts.
  for (let i = 0; i < config.loadKeys; i += 100) {
    const success = [];
    for (let j = i; j < Math.min(i + 100, config.loadKeys); j++)
      success.push({ requestPut: { key: key(j), value } });
    store.apply(++index, 1, { type: "txn", request: { success } });
    if (index % 20 === 0) await yieldToLoop();
  }
  await backend.forceCommit();
  const loadMs = performance.now() - started;
  store.range({ key: key(0) }); // lets the backend trim its buffer of committed writes
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  console.log(
    `${fmt(config.loadKeys, 0)} keys (${KEY_BYTES} B keys, ${VALUE_BYTES} B values) loaded in ${fmt(loadMs / 1000, 2)} s: ` +
      `RSS ${fmt(memory.rss / 2 ** 20)} MiB (+${fmt((memory.rss - rssBefore) / 2 ** 20)} MiB for the store, ` +
      `JS heap ${fmt(memory.heapUsed / 2 ** 20)} MiB), disk ${fmt(backend.sizeBytes() / 2 ** 20)} MiB ` +
      `(in use ${fmt(backend.sizeInUseBytes() / 2 ** 20)} MiB)`,
  );

  for (const n of [1, 100, 10_000]) {
    if (n > config.loadKeys) continue;
    const samples: number[] = [];
    const count = n === 10_000 ? Math.max(20, config.rangeSamples / 20) : config.rangeSamples;
    for (let s = 0; s < count; s++) {
      const first = Math.floor(Math.random() * (config.loadKeys - n));
      const request = n === 1 ? { key: key(first) } : { key: key(first), rangeEnd: key(first + n) };
      const t0 = performance.now();
      const response = store.range(request);
      samples.push(performance.now() - t0);
      if (response.kvs.length !== n) throw new Error(`range of ${n} returned ${response.kvs.length}`);
    }
    samples.sort((a, b) => a - b);
    console.log(
      `range of ${fmt(n, 0)} key(s): p50 ${fmt(percentile(samples, 50) * 1000, 0)} µs, ` +
        `p99 ${fmt(percentile(samples, 99) * 1000, 0)} µs (${count} samples, random start)`,
    );
  }

  // Reads while writes stream in at 10k puts/s: a timer applies the puts due since its last run, and in
  // between single-key reads of random keys at the current revision run back to back.
  const writesPerSecond = 10_000;
  let reads = 0;
  let writes = 0;
  const mixedStarted = performance.now();
  const deadline = mixedStarted + config.mixedMs;
  const writer = setInterval(() => {
    const due = Math.floor(((performance.now() - mixedStarted) / 1000) * writesPerSecond) - writes;
    for (let i = 0; i < due; i++, writes++) {
      const k = key(Math.floor(Math.random() * config.loadKeys));
      store.apply(++index, 1, { type: "put", request: { key: k, value } });
    }
  }, 1);
  while (performance.now() < deadline) {
    for (let i = 0; i < 200; i++, reads++)
      store.range({ key: key(Math.floor(Math.random() * config.loadKeys)) });
    await yieldToLoop();
  }
  clearInterval(writer);
  const seconds = (performance.now() - mixedStarted) / 1000;
  console.log(
    `reads at the current revision while writing: ${fmt(reads / seconds, 0)} reads/s with ${fmt(writes / seconds, 0)} ` +
      `puts/s applied (target ${fmt(writesPerSecond, 0)}/s), one thread`,
  );
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

const [load1, load5] = loadavg();
console.log(
  `mvcc bench ${quick ? "(quick)" : "(full)"}: Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ` +
    `load average ${fmt(load1 ?? 0, 2)}/${fmt(load5 ?? 0, 2)}, lmdb writer thread, synced commits`,
);
for (const interval of config.batchIntervals) await benchPuts(interval);
await benchLoadedStore();
