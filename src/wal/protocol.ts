import type { WalFaults } from "./fs.js";
import type { WalHardState, WalMetadata } from "./types.js";

/**
 * What the main thread and the WAL worker share.
 *
 * Ring frames: each ring frame carries one or more whole WAL frames (exactly the bytes that go to disk,
 * CRC fields left for the worker to fill in, since only the worker knows the chain across segment
 * cuts). The ring frame's tag says whether it ends an append call; the worker counts those, and after
 * each fdatasync publishes the count of durable append calls in the `durable` SharedIndex.
 */
export const TAG_END_OF_APPEND = 1;

export interface WalWorkerData {
  dir: string;
  ring: SharedArrayBuffer;
  /** SharedIndex: number of append calls (including snapshot markers) that are durable. */
  durable: SharedArrayBuffer;
  /** Float64 counters, see StatSlot. */
  stats: SharedArrayBuffer;
  tail: { name: string; seq: number; offsetBytes: number };
  chainCrc: number;
  lastIndex: number;
  hardState: WalHardState | null;
  metadata: WalMetadata;
  segmentSizeBytes: number;
  preallocate: boolean;
  batchFramesMax: number;
  slowFsyncWarnMs: number;
  faults: WalFaults | null;
}

export type WalWorkerMessage =
  | { kind: "ready" }
  | { kind: "log"; level: "info" | "warn" | "error"; msg: string; fields: Record<string, unknown> }
  | { kind: "fatal"; msg: string; errno: string | null; op: string };

/**
 * Counters the worker keeps in shared memory for metrics (etcd_disk_wal_fsync_duration_seconds,
 * etcd_disk_wal_write_bytes_total). Plain stores from one writer; readers may see a slightly stale mix,
 * which is fine for metrics.
 */
export const StatSlot = {
  FSYNC_COUNT: 0,
  FSYNC_SECONDS_SUM: 1,
  WRITE_BYTES: 2,
  BATCHES: 3,
  APPENDS_DURABLE: 4,
  SEGMENTS_CUT: 5,
  FSYNC_SECONDS_MAX: 6,
  /** First of FSYNC_BUCKETS cumulative-free bucket counts: bucket k counts fsyncs <= 0.001 * 2^k s. */
  FSYNC_BUCKET0: 8,
} as const;
/** etcd's fsync histogram: 0.001 * 2^k seconds, k = 0..13 (1 ms .. 8.192 s). */
export const FSYNC_BUCKETS = 14;
export const STAT_SLOTS = StatSlot.FSYNC_BUCKET0 + FSYNC_BUCKETS + 1;
