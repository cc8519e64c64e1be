/**
 * Frames carried from the main thread to the backend writer thread through the SharedArrayBuffer ring
 * (src/workers/ring.ts). The ring tag is the opcode; payload layouts (little-endian):
 *
 *   PUT    [table u8][keyLength u32][key][value]      value = the rest of the payload
 *   DELETE [table u8][key]
 *   SEAL   [seq f64][consistentIndex f64][term f64]   ends a unit (safe integers, stored as doubles)
 *   FLUSH  (empty)   commit at the next unit boundary without waiting for the batch interval
 *   STOP   (empty)   commit, close the environment, exit
 */
export const FrameOp = {
  PUT: 1,
  DELETE: 2,
  SEAL: 3,
  FLUSH: 4,
  STOP: 5,
} as const;

export const PUT_HEADER_BYTES = 5;
export const DELETE_HEADER_BYTES = 1;
export const SEAL_BYTES = 24;

/**
 * Slots of the small Int32 control array shared with the writer (beside the ring and the SharedIndex
 * counters): RELEASES counts ring releases so that a producer blocked on a full ring can wait for one;
 * FATAL is set by the writer before it dies so that a blocked producer notices.
 */
export const Control = {
  RELEASES: 0,
  FATAL: 1,
  SLOTS: 4,
} as const;

/** What the main thread hands to the writer thread at start (worker_threads workerData). */
export interface BackendWorkerData {
  dir: string;
  mapSizeBytes: number;
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** SharedIndex: the last unit sequence committed (visible to new read transactions and durable). */
  committedSeq: SharedArrayBuffer;
  /** SharedIndex: the consistent index of that unit. */
  committedIndex: SharedArrayBuffer;
  /** SharedIndex: the data file's size in bytes after the last commit. */
  fileSizeBytes: SharedArrayBuffer;
  batchIntervalMs: number;
  batchLimitOps: number;
  /** How long the writer sleeps between drains while a batch is open (bounds wake-ups per batch). */
  drainSliceMs: number;
  /** Failpoint for tests: the commit of the batch holding this unit sequence throws. */
  failCommitAtSeq?: number;
}

/** Messages from the writer thread to the main thread. */
export type BackendWorkerMessage = { type: "ready" } | { type: "fatal"; message: string };
