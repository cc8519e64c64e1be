/**
 * WAL group-commit benchmark.
 *
 * For 256 B and 1 KiB records and 1, 16, 256 and 1024 concurrent appenders (each appends one entry,
 * awaits durability, repeats), prints appended-and-durable records per second with p50/p99/p99.9
 * latency (hdr-histogram-js), beside this disk's raw limit measured in the same run: a plain
 * write+fdatasync loop into a preallocated file, one record per fdatasync. The ratio shows what group
 * commit gains. Also prints the main thread's busy time per record (event-loop utilisation: the main
 * thread does no blocking I/O here, so its busy time is its CPU time) beside the whole process's CPU
 * per record (main thread + writer thread + libuv), to show the ring keeps the disk work off the main
 * thread. Throughput is the median of the rounds with [min-max].
 *
 * Usage: npm run bench:wal [-- --quick] [-- --seconds S --rounds R --dir PATH --segment-mb M]
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as hdr from "hdr-histogram-js";
import type { WalLogger } from "../../src/wal/log.js";
import type { WalEntry } from "../../src/wal/types.js";
import { Wal } from "../../src/wal/wal.js";

const RECORD_SIZES_BYTES = [256, 1024];
const APPENDERS = [1, 16, 256, 1024];
const METADATA = { memberId: 1n, clusterId: 2n };
/** Chunk used to zero-fill the raw baseline's file, as the WAL preallocates its segments. */
const ZERO_CHUNK_BYTES = 1 << 20;

interface Args {
  seconds: number;
  rounds: number;
  dir: string;
  segmentMb: number;
}

function parseArgs(): Args {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const args: Args = {
    seconds: quick ? 0.4 : 3,
    rounds: quick ? 1 : 3,
    dir: tmpdir(),
    segmentMb: quick ? 8 : 64,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--quick") continue;
    const value = argv[++i];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    if (flag === "--dir") args.dir = value;
    else if (flag === "--seconds") args.seconds = Number(value);
    else if (flag === "--rounds") args.rounds = Number(value);
    else if (flag === "--segment-mb") args.segmentMb = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

function histogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Slow-fsync warnings and errors still show; routine segment messages do not. */
const benchLogger: WalLogger = {
  info: () => {},
  warn: (fields, msg) => console.error(`warn: ${msg} ${JSON.stringify(fields)}`),
  error: (fields, msg) => console.error(`error: ${msg} ${JSON.stringify(fields)}`),
};

interface Round {
  recordsPerSecond: number;
  fsyncs: number;
  records: number;
  mainBusyUsPerRecord: number;
  processCpuUsPerRecord: number;
}

/** The disk's raw limit: one write + fdatasync per record into a zero-filled file. */
function rawLoop(dir: string, recordBytes: number, seconds: number, latency: hdr.Histogram): number {
  const path = join(dir, `raw-${recordBytes}.bin`);
  const fd = openSync(path, "w+");
  try {
    const fileBytes = 64 * ZERO_CHUNK_BYTES;
    const zeros = new Uint8Array(ZERO_CHUNK_BYTES);
    for (let pos = 0; pos < fileBytes; pos += zeros.length) writeSync(fd, zeros, 0, zeros.length, pos);
    fdatasyncSync(fd);
    const record = new Uint8Array(recordBytes).fill(0x5a);
    let count = 0;
    let pos = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    for (let now = start; now < end; ) {
      writeSync(fd, record, 0, record.length, pos);
      fdatasyncSync(fd);
      const after = performance.now();
      latency.recordValue(Math.max(1, Math.round((after - now) * 1000)));
      now = after;
      pos = (pos + recordBytes) % (fileBytes - recordBytes);
      count++;
    }
    return count / ((performance.now() - start) / 1000);
  } finally {
    closeSync(fd);
  }
}

async function walRound(
  dir: string,
  recordBytes: number,
  appenders: number,
  seconds: number,
  segmentBytes: number,
  latency: hdr.Histogram,
): Promise<Round> {
  const wal = await Wal.create(dir, METADATA, { segmentSizeBytes: segmentBytes, logger: benchLogger });
  const data = new Uint8Array(recordBytes).fill(0xa5);
  let next = 1;
  let records = 0;
  let running = true;
  // Each appender reuses its entry object, only after its previous append resolved (the WAL has copied
  // the data by then), so the harness allocates little per record.
  const appender = async (): Promise<void> => {
    const entry: WalEntry = { term: 1, index: 0, type: 0, data };
    const entries = [entry];
    while (running) {
      entry.index = next++;
      const start = performance.now();
      await wal.append(null, entries);
      latency.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
      records++;
    }
  };
  const statsBefore = wal.stats();
  const eluBefore = performance.eventLoopUtilization();
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const timer = setTimeout(() => {
    running = false;
  }, seconds * 1000);
  await Promise.all(Array.from({ length: appenders }, appender));
  clearTimeout(timer);
  const elapsedS = (performance.now() - start) / 1000;
  const elu = performance.eventLoopUtilization(eluBefore);
  const cpu = process.cpuUsage(cpuBefore);
  const fsyncs = wal.stats().fsyncCount - statsBefore.fsyncCount;
  await wal.close();
  return {
    recordsPerSecond: records / elapsedS,
    fsyncs,
    records,
    mainBusyUsPerRecord: (elu.active * 1000) / records,
    processCpuUsPerRecord: (cpu.user + cpu.system) / records,
  };
}

function ms(us: number): string {
  return (us / 1000).toFixed(2);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function spread(values: number[]): string {
  const r = (v: number) => Math.round(v).toString();
  return values.length > 1
    ? `${r(median(values))} [${r(Math.min(...values))}-${r(Math.max(...values))}]`
    : r(values[0]!);
}

async function main(): Promise<void> {
  const args = parseArgs();
  const base = await mkdtemp(join(args.dir, "etcd-ts-wal-bench-"));
  console.log(
    `WAL bench: ${args.rounds} round(s) of ${args.seconds}s per case, segments ${args.segmentMb} MiB, dir ${base}`,
  );
  try {
    for (const recordBytes of RECORD_SIZES_BYTES) {
      const rawLatency = histogram();
      const raw: number[] = [];
      for (let round = 0; round < args.rounds; round++)
        raw.push(rawLoop(base, recordBytes, args.seconds, rawLatency));
      const rawRate = median(raw);
      console.log(
        `\n${recordBytes} B records. raw write+fdatasync: ${spread(raw)} fsyncs/s, ` +
          `p50 ${ms(rawLatency.getValueAtPercentile(50))} ms, p99 ${ms(rawLatency.getValueAtPercentile(99))} ms, ` +
          `p99.9 ${ms(rawLatency.getValueAtPercentile(99.9))} ms`,
      );
      console.log(
        "appenders | durable records/s        | x raw | p50 ms | p99 ms | p99.9 ms | records/fsync | main µs/rec | process CPU µs/rec",
      );
      for (const appenders of APPENDERS) {
        const latency = histogram();
        const rounds: Round[] = [];
        for (let round = 0; round < args.rounds; round++) {
          const dir = join(base, `wal-${recordBytes}-${appenders}-${round}`);
          rounds.push(
            await walRound(dir, recordBytes, appenders, args.seconds, args.segmentMb * 1024 * 1024, latency),
          );
          await rm(dir, { recursive: true, force: true });
        }
        const rates = rounds.map((r) => r.recordsPerSecond);
        const records = rounds.reduce((sum, r) => sum + r.records, 0);
        const fsyncs = rounds.reduce((sum, r) => sum + r.fsyncs, 0);
        console.log(
          [
            String(appenders).padStart(9),
            spread(rates).padEnd(24),
            (median(rates) / rawRate).toFixed(1).padStart(5),
            ms(latency.getValueAtPercentile(50)).padStart(6),
            ms(latency.getValueAtPercentile(99)).padStart(6),
            ms(latency.getValueAtPercentile(99.9)).padStart(8),
            (records / Math.max(1, fsyncs)).toFixed(1).padStart(13),
            median(rounds.map((r) => r.mainBusyUsPerRecord))
              .toFixed(1)
              .padStart(11),
            median(rounds.map((r) => r.processCpuUsPerRecord))
              .toFixed(1)
              .padStart(18),
          ].join(" | "),
        );
      }
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

await main();
