import { type FileHandle, mkdir, open, readdir, rename, rm, rmdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Worker } from "node:worker_threads";
import { assert } from "../assert.js";
import { createRingBuffer, RingProducer, SharedIndex } from "../workers/ring.js";
import { spawnWorker } from "../workers/spawn.js";
import { WalError } from "./errors.js";
import {
  assertEntryFields,
  assertHardStateFields,
  assertMetadataFields,
  assertSnapshotMarkerFields,
  CRC_FRAME_BYTES,
  encodeCrcRecord,
  encodeEntry,
  encodeHardState,
  encodeMetadata,
  encodeSnapshotMarker,
  entryFrameBytes,
  HARD_STATE_FRAME_BYTES,
  METADATA_FRAME_BYTES,
  sealFrame,
  snapshotFrameBytes,
} from "./format.js";
import type { WalFaults } from "./fs.js";
import { stderrLogger, type WalLogger, writeFatalLine } from "./log.js";
import {
  FSYNC_BUCKETS,
  STAT_SLOTS,
  StatSlot,
  TAG_END_OF_APPEND,
  type WalWorkerData,
  type WalWorkerMessage,
} from "./protocol.js";
import { readWal, type WalReadResult } from "./reader.js";
import { listSegments, releasableCount, segmentName } from "./segments.js";
import {
  isEmptyHardState,
  type WalEntry,
  type WalHardState,
  type WalMetadata,
  type WalSnapshotMarker,
  type WalSnapshotPosition,
} from "./types.js";

export type WalFatalHandler = (error: WalError) => void;

export interface WalOptions {
  /** Size a segment is preallocated to; a segment is cut once it reaches this. etcd: 64 MB. */
  segmentSizeBytes?: number;
  /** Old segments kept after releaseTo (etcd's --max-wals); 0 keeps all. */
  maxWals?: number;
  /** Shared ring between the main thread and the writer; bounds the bytes in flight to the disk. */
  ringCapacityBytes?: number;
  /**
   * Largest entry data (or snapshot conf state) one record may carry. Larger ones are refused with
   * WAL_RECORD_TOO_LARGE before anything is written. Must fit half the ring with its header.
   */
  maxRecordBytes?: number;
  /** Ring frames the writer takes per write+fdatasync; bounds one batch (libuv splits >1024 iovecs). */
  batchFramesMax?: number;
  /** Fill new segments with zeros ahead of time (etcd's file pipeline); off only for tests. */
  preallocate?: boolean;
  /** An fdatasync slower than this is logged as a warning (etcd's warnSyncDuration: 1 s). */
  slowFsyncWarnMs?: number;
  logger?: WalLogger;
  /** Called once on a fatal writer error. Default: one JSON line on stderr, then exit code 1. */
  onFatal?: WalFatalHandler;
  /** Fault injection for tests (plain data, passed to the writer thread). */
  faults?: WalFaults;
}

export const WAL_DEFAULTS = {
  segmentSizeBytes: 64 * 1000 * 1000,
  maxWals: 5,
  ringCapacityBytes: 16 * 1024 * 1024,
  maxRecordBytes: 4 * 1024 * 1024,
  batchFramesMax: 4096,
  preallocate: true,
  slowFsyncWarnMs: 1000,
} as const;

/**
 * Ring frames are filled with whole records up to this many bytes (one ring frame is one writev iovec).
 * Smaller than the ring so a frame finds room without waiting for the ring to drain completely.
 */
const RING_FRAME_BYTES_TARGET = 1024 * 1024;
/** How long a stalled append sleeps between looks at the ring when no space is released. */
const SPACE_WAIT_MS = 100;
/** How long the durability pump sleeps between looks at the durable count when nothing changes. */
const PUMP_WAIT_MS = 1000;
/** Append calls waiting for durability or for ring space. Callers bound themselves (one per raft Ready). */
const PENDING_APPENDS_MAX = 1 << 20;
/** How long open waits for the writer thread to report that it is ready. */
const WORKER_START_TIMEOUT_MS = 60_000;
/** Chunk of zeros written when preallocating or when zeroing a torn tail at open. */
const ZERO_CHUNK_BYTES = 1 << 20;

export interface WalOpenOptions {
  /** Read entries after this snapshot; its marker must be in the WAL. Default: from the start. */
  fromSnapshot?: WalSnapshotPosition;
}

export interface WalOpenResult {
  wal: Wal;
  metadata: WalMetadata;
  /** The last hard state written (all zero if none). */
  hardState: WalHardState;
  /** Entries after the snapshot, contiguous, overwritten tails replaced; may include uncommitted ones. */
  entries: WalEntry[];
  /** Snapshot markers read (from the segment holding the start snapshot onwards). */
  snapshotMarkers: WalSnapshotMarker[];
}

export interface WalStats {
  fsyncCount: number;
  fsyncSecondsSum: number;
  fsyncSecondsMax: number;
  /** Non-cumulative counts: bucket k holds fsyncs in (0.001 * 2^(k-1), 0.001 * 2^k] s; the last is +Inf. */
  fsyncBuckets: number[];
  writeBytesTotal: number;
  batches: number;
  appendsDurable: number;
  segmentsCut: number;
}

type Settings = Required<Omit<WalOptions, "faults" | "logger" | "onFatal">> & {
  faults: WalFaults | null;
  logger: WalLogger;
  onFatal: WalFatalHandler;
};

/** The default fatal handler: after a failed write or fsync the member must stop, not go on answering. */
export function exitOnFatal(error: WalError): void {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  writeFatalLine(error.message, { code: error.code, ...(cause === undefined ? {} : { cause }) });
  process.exit(1);
}

function settingsOf(options: WalOptions): Settings {
  const s: Settings = {
    segmentSizeBytes: options.segmentSizeBytes ?? WAL_DEFAULTS.segmentSizeBytes,
    maxWals: options.maxWals ?? WAL_DEFAULTS.maxWals,
    ringCapacityBytes: options.ringCapacityBytes ?? WAL_DEFAULTS.ringCapacityBytes,
    maxRecordBytes: options.maxRecordBytes ?? WAL_DEFAULTS.maxRecordBytes,
    batchFramesMax: options.batchFramesMax ?? WAL_DEFAULTS.batchFramesMax,
    preallocate: options.preallocate ?? WAL_DEFAULTS.preallocate,
    slowFsyncWarnMs: options.slowFsyncWarnMs ?? WAL_DEFAULTS.slowFsyncWarnMs,
    faults: options.faults ?? null,
    logger: options.logger ?? stderrLogger,
    onFatal: options.onFatal ?? exitOnFatal,
  };
  assert(Number.isSafeInteger(s.segmentSizeBytes) && s.segmentSizeBytes >= 4096, "segmentSizeBytes >= 4096");
  assert(Number.isSafeInteger(s.maxWals) && s.maxWals >= 0, "maxWals >= 0");
  assert(Number.isSafeInteger(s.maxRecordBytes) && s.maxRecordBytes >= 0, "maxRecordBytes >= 0");
  assert(Number.isSafeInteger(s.batchFramesMax) && s.batchFramesMax >= 1, "batchFramesMax >= 1");
  const largestFrame = Math.max(entryFrameBytes(s.maxRecordBytes), snapshotFrameBytes(s.maxRecordBytes));
  assert(largestFrame <= s.ringCapacityBytes / 2 - 8, "the largest record fits half the ring");
  return s;
}

function zeros(bytes: number): Uint8Array {
  return new Uint8Array(Math.min(ZERO_CHUNK_BYTES, Math.max(1, bytes)));
}

/** Writes zeros over [from, to) of an open file. */
async function writeZeros(handle: FileHandle, from: number, to: number): Promise<void> {
  const chunk = zeros(to - from);
  for (let pos = from; pos < to; ) {
    const length = Math.min(chunk.length, to - pos);
    const { bytesWritten } = await handle.write(chunk, 0, length, pos);
    assert(bytesWritten === length, "zero fill wrote the whole chunk");
    pos += length;
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Cuts the torn tail found by the reader: zeros everything after the last valid record that is not
 * zero already, so that later appends never sit in front of stale half-records. Then syncs the tail
 * segment and the directory, whether or not anything was cut: a process killed between a write and
 * its fdatasync (or between a segment's rename and the directory fsync) leaves records that this open
 * reads from the page cache and hands to raft as persisted, so they must be made durable before that.
 */
async function repairTail(dir: string, read: WalReadResult, logger: WalLogger): Promise<void> {
  const { tail, torn } = read;
  const discardedBytes = tail.lastNonZeroEnd - tail.endOffsetBytes;
  if (torn !== null) {
    logger.warn(
      { file: torn.file, offsetBytes: torn.offsetBytes, reason: torn.reason, discardedBytes },
      "wal: cut a torn tail",
    );
  } else if (discardedBytes > 0) {
    logger.warn(
      { file: tail.segment.name, offsetBytes: tail.endOffsetBytes, discardedBytes },
      "wal: zeroed leftovers of an unfinished write after the last record",
    );
  }
  const handle = await open(join(dir, tail.segment.name), "r+");
  try {
    if (discardedBytes > 0) await writeZeros(handle, tail.endOffsetBytes, tail.lastNonZeroEnd);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fsyncDirectory(dir);
}

/**
 * The write-ahead log, main-thread side. Records are encoded straight into a shared ring; a writer
 * thread (src/workers/walWorker.ts) writes and fdatasyncs them in batches (group commit) and publishes
 * how many append calls are durable; `append` resolves once its own call is.
 *
 * Life cycle: `Wal.create` (new member) or `Wal.open` (restart: returns the records too), then
 * `append`/`saveSnapshotMarker` any number of times, `releaseTo` after a snapshot, `close`.
 */
export class Wal {
  private readonly producer: RingProducer;
  private readonly ringView: DataView;
  private readonly ringBytes: Uint8Array;
  private readonly durable: SharedIndex;
  private readonly statsArray: Float64Array;
  private readonly groupBytesTarget: number;
  private worker: Worker | null = null;
  private appendSeq = 0;
  private lastIndexValue: number;
  private failure: WalError | null = null;
  private closing = false;
  private closed = false;
  private exited: Promise<number> | null = null;

  // Durability waiters, in append order (seq ascending); head..length are pending.
  private readonly waitSeq: number[] = [];
  private readonly waitPromise: Promise<void>[] = [];
  private readonly waitResolve: Array<() => void> = [];
  private readonly waitReject: Array<(error: Error) => void> = [];
  private waitHead = 0;
  /** A waiter created in this event-loop turn: later appends of the turn share it (one fsync batch). */
  private turnWaiter = -1;
  private publishScheduled = false;
  private pumping = false;

  // Appends that met a full ring, in order; the first may be partly in the ring already.
  private readonly stalled: Array<StalledAppend | undefined> = [];
  private stalledHead = 0;
  private draining = false;

  private constructor(
    readonly dir: string,
    private readonly settings: Settings,
    lastIndex: number,
  ) {
    const ring = createRingBuffer({ capacityBytes: settings.ringCapacityBytes });
    this.producer = new RingProducer(ring);
    this.ringView = new DataView(ring);
    this.ringBytes = new Uint8Array(ring);
    this.durable = new SharedIndex();
    this.statsArray = new Float64Array(new SharedArrayBuffer(STAT_SLOTS * 8));
    this.groupBytesTarget = Math.min(RING_FRAME_BYTES_TARGET, this.producer.maxPayloadBytes);
    this.lastIndexValue = lastIndex;
  }

  /** True when `dir` holds WAL segments (etcd's wal.Exist). */
  static async exists(dir: string): Promise<boolean> {
    try {
      const { segments } = await listSegments(dir);
      return segments.length > 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  /**
   * Creates a new WAL in `dir` (which must not exist or be empty) and opens it for appending. The first
   * segment is written under `dir + ".tmp"` and renamed into place, so a crash leaves no half-made WAL.
   */
  static async create(dir: string, metadata: WalMetadata, options: WalOptions = {}): Promise<Wal> {
    assertMetadataFields(metadata);
    const settings = settingsOf(options);
    dir = resolve(dir);
    let existing: string[] = [];
    try {
      existing = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (existing.length > 0) throw new WalError("WAL_EXISTS", `wal: ${dir} already exists and is not empty`);

    const tmp = `${dir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    const header = new Uint8Array(CRC_FRAME_BYTES + METADATA_FRAME_BYTES + snapshotFrameBytes(0));
    const view = new DataView(header.buffer);
    let off = encodeCrcRecord(view, 0, 0);
    let chain = 0;
    const metadataAt = off;
    off += encodeMetadata(view, header, off, metadata);
    chain = sealFrame(view, header, metadataAt, chain);
    // An empty snapshot marker, so the WAL can be opened at (0, 0), as etcd's Create does.
    const markerAt = off;
    off += encodeSnapshotMarker(view, header, off, { index: 0, term: 0, confState: new Uint8Array(0) });
    sealFrame(view, header, markerAt, chain);
    const handle = await open(join(tmp, segmentName(0, 0)), "w", 0o600);
    try {
      const { bytesWritten } = await handle.write(header, 0, off, 0);
      assert(bytesWritten === off, "the first segment's header is written whole");
      if (settings.preallocate) await writeZeros(handle, off, settings.segmentSizeBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsyncDirectory(tmp);
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
    await mkdir(dirname(dir), { recursive: true });
    await rename(tmp, dir);
    await fsyncDirectory(dirname(dir));
    const { wal } = await Wal.open(dir, {}, options);
    return wal;
  }

  /**
   * Opens the WAL in `dir` for appending and returns what it holds after `fromSnapshot`: metadata, the
   * last hard state, the entries (an overwritten tail replaced), the snapshot markers. A torn tail (a
   * write that never completed, so was never reported durable) is cut; any other bad record refuses the
   * open with WAL_CORRUPT naming the file and offset.
   */
  static async open(
    dir: string,
    openOptions: WalOpenOptions = {},
    options: WalOptions = {},
  ): Promise<WalOpenResult> {
    const settings = settingsOf(options);
    dir = resolve(dir);
    const start = openOptions.fromSnapshot ?? { index: 0, term: 0 };
    assert(Number.isSafeInteger(start.index) && start.index >= 0, "snapshot index is a safe integer");
    assert(Number.isSafeInteger(start.term) && start.term >= 0, "snapshot term is a safe integer");
    const read = await readWal(dir, start);
    const { state } = read;
    if (!state.startFound) {
      throw new WalError(
        "WAL_SNAPSHOT_NOT_FOUND",
        `wal: snapshot marker index ${start.index} term ${start.term} not found in ${dir}`,
      );
    }
    if (state.metadata === null) throw new WalError("WAL_CORRUPT", `wal: no metadata record in ${dir}`);
    for (const name of read.tempFiles) await rm(join(dir, name), { force: true });
    await repairTail(dir, read, settings.logger);

    const wal = new Wal(dir, settings, state.lastIndex);
    await wal.start({
      dir,
      ring: wal.producer.buffer,
      durable: wal.durable.buffer,
      stats: wal.statsArray.buffer as SharedArrayBuffer,
      tail: {
        name: read.tail.segment.name,
        seq: read.tail.segment.seq,
        offsetBytes: read.tail.endOffsetBytes,
      },
      chainCrc: state.chainCrc,
      lastIndex: state.lastIndex,
      hardState: isEmptyHardState(state.hardState) ? null : state.hardState,
      metadata: state.metadata,
      segmentSizeBytes: settings.segmentSizeBytes,
      preallocate: settings.preallocate,
      batchFramesMax: settings.batchFramesMax,
      slowFsyncWarnMs: settings.slowFsyncWarnMs,
      faults: settings.faults,
    });
    return {
      wal,
      metadata: state.metadata,
      hardState: state.hardState,
      entries: state.entries,
      snapshotMarkers: state.snapshotMarkers,
    };
  }

  /**
   * The snapshot markers in every segment on disk whose index is at or below the last hard state's
   * commit (etcd's ValidSnapshotEntries): the snapshots the WAL can be opened at. Read-only.
   */
  static async readSnapshotMarkers(dir: string): Promise<WalSnapshotMarker[]> {
    const { state } = await readWal(resolve(dir), { index: 0, term: 0 }, true);
    return state.snapshotMarkers.filter((m) => m.index <= state.hardState.commit);
  }

  private async start(data: WalWorkerData): Promise<void> {
    const worker = spawnWorker(import.meta.url, "../workers/walWorker", { workerData: data });
    this.worker = worker;
    this.exited = new Promise((resolveExit) => worker.once("exit", resolveExit));
    let settle: ((error: WalError | null) => void) | null = null;
    const ready = new Promise<WalError | null>((resolveReady) => {
      settle = resolveReady;
    });
    const startTimer = setTimeout(
      () => settle?.(new WalError("WAL_FATAL", "wal: the writer thread did not start in time")),
      WORKER_START_TIMEOUT_MS,
    );
    worker.on("message", (message: WalWorkerMessage) => {
      switch (message.kind) {
        case "ready":
          settle?.(null);
          return;
        case "log":
          this.settings.logger[message.level](message.fields, message.msg);
          return;
        case "fatal": {
          const error = new WalError(
            "WAL_FATAL",
            `${message.msg} (op ${message.op}, errno ${message.errno ?? "none"})`,
          );
          if (settle !== null) settle(error);
          else this.fail(error);
          return;
        }
        default: {
          const unknown: never = message;
          throw new Error(`unknown WAL worker message ${JSON.stringify(unknown)}`);
        }
      }
    });
    worker.on("error", (err) => {
      const error = new WalError("WAL_FATAL", `wal: the writer thread crashed: ${err.message}`, {
        cause: err,
      });
      if (settle !== null) settle(error);
      else this.fail(error);
    });
    worker.on("exit", (code) => {
      if (this.closing && code === 0) return;
      const error = new WalError("WAL_FATAL", `wal: the writer thread exited unexpectedly (code ${code})`);
      if (settle !== null) settle(error);
      else this.fail(error);
    });
    const startError = await ready;
    clearTimeout(startTimer);
    settle = null;
    if (startError !== null) {
      this.failure = startError;
      this.producer.close();
      await worker.terminate();
      throw startError;
    }
  }

  /** Index of the last entry (or snapshot marker) handed to the WAL; the next entry may not exceed it + 1. */
  get lastIndex(): number {
    return this.lastIndexValue;
  }

  /**
   * Appends `entries` (consecutive indexes) and then `hardState` (if not null) and resolves once they
   * are durable. An entry at or below the last index replaces the tail from there (raft overwriting an
   * uncommitted suffix). `append(null, [])` resolves once every earlier append is durable.
   *
   * Entry data is copied into the ring before this returns unless the ring is full; then the call waits
   * its turn and the caller must not change the data until the promise settles.
   */
  append(hardState: WalHardState | null, entries: readonly WalEntry[]): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new WalError("WAL_CLOSED", "wal: closed"));
    if (hardState === null && entries.length === 0) return this.waitFor(this.appendSeq);
    let index = this.lastIndexValue;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      assertEntryFields(entry);
      // The message is built only on failure: this loop runs per entry on the hot path.
      if (i === 0 && entry.index > index + 1)
        assert(false, `entry ${entry.index} leaves a gap after ${index}`);
      if (i > 0) assert(entry.index === index + 1, "entries of one append have consecutive indexes");
      index = entry.index;
      if (entry.data.length > this.settings.maxRecordBytes) {
        return Promise.reject(
          new WalError(
            "WAL_RECORD_TOO_LARGE",
            `wal: entry ${entry.index} of ${entry.data.length} bytes exceeds ${this.settings.maxRecordBytes}`,
          ),
        );
      }
    }
    if (hardState !== null) assertHardStateFields(hardState);
    this.lastIndexValue = index;
    return this.submit(hardState, entries, null);
  }

  /** Records that a snapshot was saved (after its file is durable); resolves once durable. */
  saveSnapshotMarker(marker: WalSnapshotMarker): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new WalError("WAL_CLOSED", "wal: closed"));
    assertSnapshotMarkerFields(marker);
    if (marker.confState.length > this.settings.maxRecordBytes) {
      return Promise.reject(
        new WalError(
          "WAL_RECORD_TOO_LARGE",
          `wal: conf state of ${marker.confState.length} bytes is too large`,
        ),
      );
    }
    if (marker.index > this.lastIndexValue) this.lastIndexValue = marker.index;
    return this.submit(null, EMPTY_ENTRIES, marker);
  }

  private submit(
    hardState: WalHardState | null,
    entries: readonly WalEntry[],
    marker: WalSnapshotMarker | null,
  ): Promise<void> {
    const seq = ++this.appendSeq;
    let stalled = true;
    if (this.stalledHead === this.stalled.length) {
      const cursor = this.encodeRecords(hardState, entries, marker, 0);
      if (cursor < recordCount(hardState, entries, marker))
        this.stall({ hardState, entries, marker, cursor });
      else stalled = false;
    } else {
      this.stall({ hardState, entries, marker, cursor: 0 });
    }
    this.schedulePublish();
    return this.waitFor(seq, !stalled);
  }

  private stall(append: StalledAppend): void {
    assert(this.stalled.length - this.stalledHead < PENDING_APPENDS_MAX, "pending appends stay bounded");
    this.stalled.push(append);
    if (!this.draining) {
      this.draining = true;
      void this.drainStalled();
    }
  }

  /** Feeds stalled appends into the ring as space frees, in order. Publishes before every wait. */
  private async drainStalled(): Promise<void> {
    while (this.stalledHead < this.stalled.length && this.failure === null) {
      const job = this.stalled[this.stalledHead]!;
      job.cursor = this.encodeRecords(job.hardState, job.entries, job.marker, job.cursor);
      this.producer.publish();
      if (job.cursor === recordCount(job.hardState, job.entries, job.marker)) {
        this.stalled[this.stalledHead] = undefined;
        this.stalledHead++;
        continue;
      }
      await this.producer.waitForSpaceAsync(SPACE_WAIT_MS);
    }
    this.stalled.length = 0;
    this.stalledHead = 0;
    this.draining = false;
  }

  /**
   * Encodes records from `cursor` into ring frames of up to `groupBytesTarget` bytes; returns the new
   * cursor (less than the record count when the ring is full). Records are never split across frames.
   */
  private encodeRecords(
    hardState: WalHardState | null,
    entries: readonly WalEntry[],
    marker: WalSnapshotMarker | null,
    cursor: number,
  ): number {
    const total = recordCount(hardState, entries, marker);
    while (cursor < total) {
      let bytes = 0;
      let end = cursor;
      while (end < total) {
        const frameBytes = recordFrameBytes(entries, marker, end);
        if (end > cursor && bytes + frameBytes > this.groupBytesTarget) break;
        bytes += frameBytes;
        end++;
      }
      const view = this.producer.tryReserve(end === total ? TAG_END_OF_APPEND : 0, bytes);
      if (view === null) return cursor;
      let off = view.byteOffset;
      for (let i = cursor; i < end; i++) {
        if (marker !== null) off += encodeSnapshotMarker(this.ringView, this.ringBytes, off, marker);
        else if (i < entries.length) off += encodeEntry(this.ringView, this.ringBytes, off, entries[i]!);
        else off += encodeHardState(this.ringView, this.ringBytes, off, hardState!);
      }
      assert(off === view.byteOffset + bytes, "records fill their ring frame exactly");
      this.producer.commit();
      cursor = end;
    }
    return cursor;
  }

  private schedulePublish(): void {
    if (this.publishScheduled) return;
    this.publishScheduled = true;
    queueMicrotask(this.publishTurn);
  }

  /** One publication (one wake-up of the writer) for all appends of an event-loop turn. */
  private readonly publishTurn = (): void => {
    this.publishScheduled = false;
    this.turnWaiter = -1;
    this.producer.publish();
  };

  /**
   * A promise that resolves once append `seq` is durable. A `shareable` wait (the append went into the
   * ring whole) joins the turn's waiter: same publication, same fsync batch. A stalled append gets its
   * own, so appends ahead of it are not held back by its wait for space.
   */
  private waitFor(seq: number, shareable = true): Promise<void> {
    if (seq <= this.durable.get()) return RESOLVED;
    if (shareable && this.turnWaiter >= 0) {
      // Later in the same turn: same ring publication, same fsync batch; share one promise.
      if (seq > this.waitSeq[this.turnWaiter]!) this.waitSeq[this.turnWaiter] = seq;
      return this.waitPromise[this.turnWaiter]!;
    }
    assert(this.waitSeq.length - this.waitHead < PENDING_APPENDS_MAX, "pending appends stay bounded");
    let resolveWaiter!: () => void;
    let rejectWaiter!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolveWaiter = res;
      rejectWaiter = rej;
    });
    this.turnWaiter = this.waitSeq.length;
    this.waitSeq.push(seq);
    this.waitPromise.push(promise);
    this.waitResolve.push(resolveWaiter);
    this.waitReject.push(rejectWaiter);
    this.schedulePublish();
    if (!this.pumping) {
      this.pumping = true;
      void this.pump();
    }
    return promise;
  }

  /** Resolves waiters as the writer publishes durable counts; one wait per change, not per append. */
  private async pump(): Promise<void> {
    while (this.failure === null) {
      const seen = this.durable.get();
      this.resolveThrough(seen);
      if (this.waitHead === this.waitSeq.length) break;
      await this.durable.waitChangeAsync(seen, PUMP_WAIT_MS);
    }
    this.pumping = false;
  }

  private resolveThrough(durableSeq: number): void {
    let head = this.waitHead;
    const end = this.waitSeq.length;
    while (head < end && this.waitSeq[head]! <= durableSeq) {
      this.waitResolve[head]!();
      head++;
    }
    this.advanceWaitHead(head);
  }

  private advanceWaitHead(head: number): void {
    this.waitHead = head;
    if (head === this.waitSeq.length) {
      this.waitSeq.length = 0;
      this.waitPromise.length = 0;
      this.waitResolve.length = 0;
      this.waitReject.length = 0;
      this.waitHead = 0;
      if (this.turnWaiter >= 0) this.turnWaiter = -1;
    }
  }

  /**
   * Stops everything after a writer failure: durable appends resolve, the rest (and all later calls)
   * reject with the error, and the fatal handler runs once.
   */
  private fail(error: WalError): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.resolveThrough(this.durable.get());
    for (let i = this.waitHead; i < this.waitSeq.length; i++) this.waitReject[i]!(error);
    this.advanceWaitHead(this.waitSeq.length);
    this.stalled.length = 0;
    this.stalledHead = 0;
    this.producer.close();
    void this.worker?.terminate();
    this.settings.onFatal(error);
  }

  /**
   * Deletes segments that hold nothing at or above `index` (call after a snapshot at `index` is durable,
   * and its marker saved), oldest first, while more than maxWals segments remain. Returns how many.
   */
  async releaseTo(index: number): Promise<number> {
    assert(Number.isSafeInteger(index) && index >= 0, "release index is a safe integer");
    if (this.settings.maxWals === 0) return 0;
    const { segments } = await listSegments(this.dir);
    const count = Math.min(
      releasableCount(segments, index),
      Math.max(0, segments.length - this.settings.maxWals),
    );
    for (let i = 0; i < count; i++) {
      const name = segments[i]!.name;
      // force: a concurrent releaseTo may have removed it already.
      await rm(join(this.dir, name), { force: true });
      // etcd 3.4's purge line (pkg/fileutil/purge.go), so log tooling that watches for it keeps working.
      this.settings.logger.info({ path: join(this.dir, name) }, "purged");
    }
    return count;
  }

  /**
   * Waits until every append is durable, stops the writer thread, and closes the files. Resolves even
   * after a fatal error (already reported through onFatal and the rejected appends).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.closing) {
      this.closing = true;
      // A failure was already reported to the fatal handler and to every pending append.
      if (this.failure === null) await this.waitFor(this.appendSeq).catch(() => {});
      this.producer.close();
    }
    await this.exited;
    this.closed = true;
  }

  stats(): WalStats {
    const s = this.statsArray;
    const fsyncBuckets: number[] = [];
    for (let k = 0; k <= FSYNC_BUCKETS; k++) fsyncBuckets.push(s[StatSlot.FSYNC_BUCKET0 + k]!);
    return {
      fsyncCount: s[StatSlot.FSYNC_COUNT]!,
      fsyncSecondsSum: s[StatSlot.FSYNC_SECONDS_SUM]!,
      fsyncSecondsMax: s[StatSlot.FSYNC_SECONDS_MAX]!,
      fsyncBuckets,
      writeBytesTotal: s[StatSlot.WRITE_BYTES]!,
      batches: s[StatSlot.BATCHES]!,
      appendsDurable: s[StatSlot.APPENDS_DURABLE]!,
      segmentsCut: s[StatSlot.SEGMENTS_CUT]!,
    };
  }
}

interface StalledAppend {
  hardState: WalHardState | null;
  entries: readonly WalEntry[];
  marker: WalSnapshotMarker | null;
  cursor: number;
}

const RESOLVED: Promise<void> = Promise.resolve();
const EMPTY_ENTRIES: readonly WalEntry[] = Object.freeze([]);

function recordCount(
  hardState: WalHardState | null,
  entries: readonly WalEntry[],
  marker: WalSnapshotMarker | null,
): number {
  return marker !== null ? 1 : entries.length + (hardState === null ? 0 : 1);
}

function recordFrameBytes(entries: readonly WalEntry[], marker: WalSnapshotMarker | null, i: number): number {
  if (marker !== null) return snapshotFrameBytes(marker.confState.length);
  if (i < entries.length) return entryFrameBytes(entries[i]!.data.length);
  return HARD_STATE_FRAME_BYTES;
}
