import { join } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { assert } from "../assert.js";
import { RingConsumer, SharedIndex } from "../workers/ring.js";
import {
  CRC_FRAME_BYTES,
  encodeCrcRecord,
  encodeHardState,
  encodeMetadata,
  frameBytesAt,
  HARD_STATE_FRAME_BYTES,
  METADATA_FRAME_BYTES,
  PAYLOAD_OFFSET,
  RecordType,
  readU64,
  sealFrame,
} from "./format.js";
import type { WalFs } from "./fs.js";
import {
  FSYNC_BUCKETS,
  StatSlot,
  TAG_END_OF_APPEND,
  type WalWorkerData,
  type WalWorkerMessage,
} from "./protocol.js";
import { segmentName, TEMP_SUFFIX } from "./segments.js";
import type { WalHardState } from "./types.js";

/** How long the idle writer sleeps between checks of the ring's closed flag. */
const IDLE_WAIT_MS = 500;
/** Name of the segment being preallocated for the next cut (etcd's file pipeline). */
const PREALLOCATED_NAME = `next-segment${TEMP_SUFFIX}`;
/** Header of a new segment: CRC record, metadata, hard state. */
const SEGMENT_HEADER_BYTES_MAX = CRC_FRAME_BYTES + METADATA_FRAME_BYTES + HARD_STATE_FRAME_BYTES;

/** A failure the writer cannot recover from; carries the operation and the errno for the fatal line. */
class WriterFailure extends Error {
  constructor(
    readonly op: string,
    readonly errno: string | null,
    message: string,
  ) {
    super(message);
  }
}

function errnoOf(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? code : null;
}

/**
 * The WAL writer, run on its own worker thread. Loop: take every frame the main thread has published,
 * seal the CRC chain, write them all with one writev, release the ring space, fdatasync once, publish the
 * number of durable append calls. When the segment is full, cut to a new one (truncate and sync the old
 * one, write the new one's header, sync it, rename it into place, sync the directory).
 *
 * Nothing is retried: after a failed write or fdatasync the page cache cannot be trusted (see the
 * PostgreSQL "fsyncgate" discussion and etcd's fatal exit on a failed save), so the writer reports and
 * stops. The durable count only ever covers data that a successful fdatasync followed.
 */
export class WalWriter {
  private readonly consumer: RingConsumer;
  private readonly ringView: DataView;
  private readonly ringBytes: Uint8Array;
  private readonly durable: SharedIndex;
  private readonly stats: Float64Array;
  private readonly dirFd: number;
  private fd: number;
  private seq: number;
  private offsetBytes: number;
  private chainCrc: number;
  private lastIndex: number;
  /** The latest hard state payload (24 bytes), copied into each new segment's header. */
  private readonly hardStateScratch = new Uint8Array(HARD_STATE_FRAME_BYTES);
  private hasHardState = false;
  private readonly headerScratch = new Uint8Array(SEGMENT_HEADER_BYTES_MAX);
  private durableAppends: number;
  /** Views of the current batch, reused between batches. */
  private readonly batch: Uint8Array[] = [];
  private batchBytes = 0;
  private batchEnds = 0;
  private readonly visit: (tag: number, payload: Uint8Array) => void;
  private preallocation: Promise<void> | null = null;
  private preallocationError: unknown = null;
  private preallocating = false;

  constructor(
    private readonly data: WalWorkerData,
    private readonly fs: WalFs,
    private readonly post: (message: WalWorkerMessage) => void,
  ) {
    this.consumer = new RingConsumer(data.ring);
    this.ringView = new DataView(data.ring);
    this.ringBytes = new Uint8Array(data.ring);
    this.durable = new SharedIndex(data.durable);
    this.durableAppends = this.durable.get();
    this.stats = new Float64Array(data.stats);
    this.seq = data.tail.seq;
    this.offsetBytes = data.tail.offsetBytes;
    this.chainCrc = data.chainCrc;
    this.lastIndex = data.lastIndex;
    if (data.hardState !== null) this.rememberHardState(data.hardState);
    this.visit = (tag, payload) => this.visitFrame(tag, payload);
    this.dirFd = fs.openDirectory(data.dir);
    this.fd = fs.open(join(data.dir, data.tail.name), "r+");
  }

  private rememberHardState(hs: WalHardState): void {
    const view = new DataView(this.hardStateScratch.buffer);
    encodeHardState(view, this.hardStateScratch, 0, hs);
    this.hasHardState = true;
  }

  /** Runs until the ring is closed and drained, or a failure. Never throws: failures are posted. */
  async run(): Promise<void> {
    try {
      this.startPreallocation();
      this.post({ kind: "ready" });
      await this.loop();
      await this.finishPreallocation();
      // The next segment's preallocation is not kept across restarts (open removes stray temp files).
      if (this.data.preallocate && this.preallocationError === null) {
        this.fs.unlink(join(this.data.dir, PREALLOCATED_NAME));
      }
      this.fs.close(this.fd);
      this.fs.close(this.dirFd);
    } catch (err) {
      const failure =
        err instanceof WriterFailure
          ? err
          : new WriterFailure("writer", errnoOf(err), (err as Error).message);
      this.post({ kind: "fatal", msg: failure.message, errno: failure.errno, op: failure.op });
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.collect() === 0) {
        if (this.consumer.closed) {
          // The producer publishes before it closes; one more look catches frames published just before.
          if (this.collect() === 0) return;
        } else {
          if (this.preallocating) await this.waitForDataAsync();
          else this.consumer.waitForData(IDLE_WAIT_MS);
          continue;
        }
      }
      this.writeBatch();
      if (this.offsetBytes >= this.data.segmentSizeBytes) await this.cut();
      // Let the preallocation's thread-pool callbacks run between batches.
      else if (this.preallocating) await yieldToEventLoop();
    }
  }

  /**
   * Waits without blocking the thread, so the preallocation's callbacks can run. A pending
   * Atomics.waitAsync does not keep a worker's event loop alive, so a timer does, or the thread would
   * end as soon as the preallocation finishes.
   */
  private async waitForDataAsync(): Promise<void> {
    // Longer than the wait: a keep-alive that fires at the same moment as the wait's own (unreferenced)
    // timeout can leave the loop empty for an instant, and the thread ends with code 0.
    const keepAlive = setTimeout(() => {}, 2 * IDLE_WAIT_MS);
    try {
      await this.consumer.waitForDataAsync(IDLE_WAIT_MS);
    } finally {
      clearTimeout(keepAlive);
    }
  }

  /** Gathers the published frames into `batch` and seals them; returns how many ring frames. */
  private collect(): number {
    this.batch.length = 0;
    this.batchBytes = 0;
    this.batchEnds = 0;
    return this.consumer.poll(this.visit, this.data.batchFramesMax);
  }

  private visitFrame(tag: number, payload: Uint8Array): void {
    const base = payload.byteOffset;
    const end = base + payload.length;
    let off = base;
    while (off < end) {
      const type = this.ringBytes[off + 12]!;
      this.chainCrc = sealFrame(this.ringView, this.ringBytes, off, this.chainCrc);
      const p = off + PAYLOAD_OFFSET;
      if (type === RecordType.ENTRY) {
        this.lastIndex = readU64(this.ringView, p + 8);
      } else if (type === RecordType.SNAPSHOT) {
        const index = readU64(this.ringView, p);
        if (index > this.lastIndex) this.lastIndex = index;
      } else if (type === RecordType.HARD_STATE) {
        this.hardStateScratch.set(this.ringBytes.subarray(off, off + HARD_STATE_FRAME_BYTES));
        this.hasHardState = true;
      }
      off += frameBytesAt(this.ringView, off);
    }
    assert(off === end, "a ring frame holds whole WAL frames");
    this.batch.push(payload);
    this.batchBytes += payload.length;
    if ((tag & TAG_END_OF_APPEND) !== 0) this.batchEnds++;
  }

  private writeBatch(): void {
    const expected = this.batchBytes;
    let written: number;
    try {
      written = this.fs.writev(this.fd, this.batch, this.offsetBytes);
    } catch (err) {
      throw new WriterFailure("writev", errnoOf(err), `wal: write failed: ${(err as Error).message}`);
    }
    if (written !== expected) {
      throw new WriterFailure("writev", null, `wal: short write: ${written} of ${expected} bytes`);
    }
    this.offsetBytes += expected;
    this.batch.length = 0;
    // The bytes are in the page cache now: the producer may reuse the ring space during the fdatasync.
    this.consumer.release();
    this.datasync(this.fd, "fdatasync");
    this.durableAppends += this.batchEnds;
    // Counters first, so a reader woken by the advance sees them.
    const s = this.stats;
    s[StatSlot.WRITE_BYTES]! += expected;
    s[StatSlot.BATCHES]! += 1;
    s[StatSlot.APPENDS_DURABLE] = this.durableAppends;
    this.durable.advance(this.durableAppends);
  }

  private datasync(fd: number, op: "fdatasync" | "fsync"): void {
    const startMs = performance.now();
    try {
      if (op === "fdatasync") this.fs.fdatasync(fd);
      else this.fs.fsync(fd);
    } catch (err) {
      throw new WriterFailure(op, errnoOf(err), `wal: ${op} failed: ${(err as Error).message}`);
    }
    const tookMs = performance.now() - startMs;
    this.recordFsync(tookMs / 1000);
    if (tookMs > this.data.slowFsyncWarnMs) {
      this.post({
        kind: "log",
        level: "warn",
        msg: `slow ${op}`,
        fields: { tookMs: Math.round(tookMs), expectedMs: this.data.slowFsyncWarnMs },
      });
    }
  }

  private recordFsync(seconds: number): void {
    const s = this.stats;
    s[StatSlot.FSYNC_COUNT]! += 1;
    s[StatSlot.FSYNC_SECONDS_SUM]! += seconds;
    if (seconds > s[StatSlot.FSYNC_SECONDS_MAX]!) s[StatSlot.FSYNC_SECONDS_MAX] = seconds;
    let bucket = 0;
    let bound = 0.001;
    while (bucket < FSYNC_BUCKETS && seconds > bound) {
      bucket++;
      bound *= 2;
    }
    s[StatSlot.FSYNC_BUCKET0 + bucket]! += 1;
  }

  private startPreallocation(): void {
    if (!this.data.preallocate) return;
    this.preallocating = true;
    this.preallocationError = null;
    this.preallocation = this.fs
      .preallocate(join(this.data.dir, PREALLOCATED_NAME), this.data.segmentSizeBytes)
      .catch((err: unknown) => {
        this.preallocationError = err;
      })
      .finally(() => {
        this.preallocating = false;
      });
  }

  private async finishPreallocation(): Promise<void> {
    if (this.preallocation !== null) await this.preallocation;
    this.preallocation = null;
  }

  /**
   * Closes the full segment and opens the next. Order matters for crash safety: the old segment is
   * truncated to its records and synced; the new one gets its header and is synced under a temporary
   * name; only then is it renamed into place and the directory synced. A crash at any point leaves
   * either no new segment or a complete one, and appends go to the new segment only after that.
   */
  private async cut(): Promise<void> {
    try {
      this.fs.ftruncate(this.fd, this.offsetBytes);
    } catch (err) {
      throw new WriterFailure("ftruncate", errnoOf(err), `wal: truncating a full segment failed: ${err}`);
    }
    this.datasync(this.fd, "fdatasync");
    this.fs.close(this.fd);

    const tempPath = join(this.data.dir, PREALLOCATED_NAME);
    await this.finishPreallocation();
    if (this.preallocationError !== null) {
      const err = this.preallocationError;
      throw new WriterFailure("preallocate", errnoOf(err), `wal: preallocating a segment failed: ${err}`);
    }
    const fd = this.fs.open(tempPath, this.data.preallocate ? "r+" : "w+");
    const headerBytes = this.encodeSegmentHeader();
    let written: number;
    try {
      written = this.fs.writev(fd, [this.headerScratch.subarray(0, headerBytes)], 0);
    } catch (err) {
      throw new WriterFailure("writev", errnoOf(err), `wal: writing a segment header failed: ${err}`);
    }
    if (written !== headerBytes) {
      throw new WriterFailure(
        "writev",
        null,
        `wal: short write of a segment header: ${written} of ${headerBytes}`,
      );
    }
    this.datasync(fd, "fdatasync");
    const name = segmentName(this.seq + 1, this.lastIndex + 1);
    try {
      this.fs.rename(tempPath, join(this.data.dir, name));
    } catch (err) {
      throw new WriterFailure("rename", errnoOf(err), `wal: renaming a new segment failed: ${err}`);
    }
    this.datasync(this.dirFd, "fsync");
    this.fd = fd;
    this.seq++;
    this.offsetBytes = headerBytes;
    this.stats[StatSlot.SEGMENTS_CUT]! += 1;
    this.post({ kind: "log", level: "info", msg: "created a new WAL segment", fields: { name } });
    this.startPreallocation();
  }

  /** CRC record (carrying the chain), metadata, latest hard state, sealed; returns the byte count. */
  private encodeSegmentHeader(): number {
    const bytes = this.headerScratch;
    const view = new DataView(bytes.buffer);
    let off = encodeCrcRecord(view, 0, this.chainCrc);
    const metadataAt = off;
    off += encodeMetadata(view, bytes, off, this.data.metadata);
    this.chainCrc = sealFrame(view, bytes, metadataAt, this.chainCrc);
    if (this.hasHardState) {
      bytes.set(this.hardStateScratch, off);
      this.chainCrc = sealFrame(view, bytes, off, this.chainCrc);
      off += HARD_STATE_FRAME_BYTES;
    }
    return off;
  }
}
