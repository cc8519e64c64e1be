import { assert } from "../assert.js";

/**
 * A single-producer, single-consumer ring of byte frames in a SharedArrayBuffer.
 *
 * The producer and the consumer live on different threads (for example the main thread proposes WAL
 * records and the WAL worker drains them). Frames are copied once into shared memory and read in place
 * by the consumer, so a batch of hundreds of frames costs one wake-up, not one message each.
 *
 * Layout: a 64-byte header of Int32 slots, then `capacityBytes` of frame area. A frame is an 8-byte
 * header (payload length, then a caller-defined 32-bit tag) followed by the payload, padded to 8 bytes.
 * A length of WRAP_MARK means "the rest of the area is unused, continue at offset 0".
 *
 * Rewinding: the producer also wraps early, once its write position is past REWIND_AFTER_BYTES and the
 * consumer is close behind (REWIND_BACKLOG_MAX_BYTES) with room for the frame at offset 0. A ring that keeps up therefore cycles through its
 * first megabyte or so instead of streaming through the whole area: the pages of a 16 MiB ring that is
 * rarely more than a few KiB full are never touched, so they cost no RSS (each process has several
 * rings) and the frames stay in cache. The full capacity is still there for a backlog.
 *
 * Positions: `writePos` and `readPos` are byte offsets in [0, capacityBytes). The ring is empty when they
 * are equal; the producer never lets them become equal by filling, so a full ring keeps at least one free
 * 8-byte cell. Only the producer stores `writePos`; only the consumer stores `readPos`.
 *
 * Ordering: payload bytes are written with plain stores, then published with `Atomics.store` on
 * `writePos`; the consumer reads `writePos` with `Atomics.load` before it reads the bytes. Atomics are
 * sequentially consistent, which orders the plain stores before the publication (ECMAScript memory model).
 *
 * Back-pressure: when a frame does not fit, `tryReserve` returns null and the producer waits for the
 * consumer (`waitForSpaceAsync`); nothing is ever dropped.
 */

const SLOT_WRITE_POS = 0;
const SLOT_READ_POS = 1;
/** Bumped on every publish; consumers wait on it. */
const SLOT_WRITE_SEQ = 2;
/** Bumped on every release; producers waiting for space wait on it. */
const SLOT_READ_SEQ = 3;
const SLOT_CLOSED = 4;
/** Where the producer last wrote a WRAP_MARK: the area from there to the end is skipped (for usedBytes). */
const SLOT_WRAP_AT = 5;
const HEADER_BYTES = 64;
const FRAME_HEADER_BYTES = 8;
const WRAP_MARK = 0xffffffff;
/** The producer wraps early once its write position passes this and offset 0 has room (see above). */
const REWIND_AFTER_BYTES = 1024 * 1024;
/**
 * ...but only while the consumer is at most this far behind. Until the consumer passes the early wrap
 * mark the producer has only [0, readPos) to write in; this keeps that at least REWIND_AFTER_BYTES minus
 * this, so a rewind never shrinks the room a backlog has: a ring with a real backlog wraps at the end.
 */
const REWIND_BACKLOG_MAX_BYTES = 64 * 1024;

function align8(n: number): number {
  return (n + 7) & ~7;
}

export interface RingOptions {
  /** Size of the frame area in bytes; a multiple of 8, at least 64. */
  capacityBytes: number;
}

/** Allocates the shared memory for a ring. Pass the buffer to the other thread (e.g. in workerData). */
export function createRingBuffer(options: RingOptions): SharedArrayBuffer {
  const { capacityBytes } = options;
  assert(Number.isInteger(capacityBytes) && capacityBytes >= 64, "capacityBytes >= 64");
  assert(capacityBytes % 8 === 0, "capacityBytes is a multiple of 8");
  assert(capacityBytes <= 0x7fff_fff8, "capacityBytes fits a 31-bit offset");
  return new SharedArrayBuffer(HEADER_BYTES + capacityBytes);
}

class RingView {
  protected readonly header: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly words: DataView;
  readonly capacityBytes: number;
  /**
   * The largest payload a frame may carry. Half the area, so that a frame always fits once the consumer
   * has caught up, wherever the write position stands.
   */
  readonly maxPayloadBytes: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    assert(buffer.byteLength > HEADER_BYTES, "buffer holds a header and a frame area");
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.capacityBytes = buffer.byteLength - HEADER_BYTES;
    this.data = new Uint8Array(buffer, HEADER_BYTES, this.capacityBytes);
    this.words = new DataView(buffer, HEADER_BYTES, this.capacityBytes);
    this.maxPayloadBytes = this.capacityBytes / 2 - FRAME_HEADER_BYTES;
  }

  get closed(): boolean {
    return Atomics.load(this.header, SLOT_CLOSED) !== 0;
  }

  /** Marks the ring closed and wakes every waiter on both sides. */
  close(): void {
    Atomics.store(this.header, SLOT_CLOSED, 1);
    Atomics.add(this.header, SLOT_WRITE_SEQ, 1);
    Atomics.add(this.header, SLOT_READ_SEQ, 1);
    Atomics.notify(this.header, SLOT_WRITE_SEQ);
    Atomics.notify(this.header, SLOT_READ_SEQ);
  }

  /** Bytes currently held by published, unreleased frames (including headers and padding). */
  usedBytes(): number {
    const w = Atomics.load(this.header, SLOT_WRITE_POS);
    const r = Atomics.load(this.header, SLOT_READ_POS);
    if (w >= r) return w - r;
    // Wrapped: the frames run from r to the wrap mark, then from 0 to w. The mark is stored before the
    // write position that follows it is published; a mark read out of step (below r) counts the whole
    // tail, as the ring did before it rewound early.
    const wrapAt = Atomics.load(this.header, SLOT_WRAP_AT);
    return (wrapAt >= r ? wrapAt : this.capacityBytes) - r + w;
  }
}

/** The producing side. Only one thread may produce into a ring. */
export class RingProducer extends RingView {
  /** Local write position: frames reserved but not yet published end here. */
  private pending: number;
  private reservedEnd = -1;
  /** READ_SEQ as seen by the last reservation: a wait for space waits for it to change. */
  private lastReadSeq = 0;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.pending = Atomics.load(this.header, SLOT_WRITE_POS);
  }

  /**
   * Reserves a frame with a payload of `length` bytes and returns a view to fill, or null when the ring
   * has no room now. The frame becomes visible to the consumer at the next `publish()`. The view is
   * valid until then; it must be filled before the next reserve.
   */
  tryReserve(tag: number, length: number): Uint8Array | null {
    assert(this.reservedEnd === -1, "the previous reservation was committed");
    // The message is built only on failure: this runs once per frame on the hot path.
    if (!(length >= 0 && length <= this.maxPayloadBytes))
      assert(false, `payload of ${length} bytes fits a frame`);
    const size = FRAME_HEADER_BYTES + align8(length);
    const cap = this.capacityBytes;
    this.lastReadSeq = Atomics.load(this.header, SLOT_READ_SEQ);
    const r = Atomics.load(this.header, SLOT_READ_POS);
    let w = this.pending;
    if (r <= w) {
      // Free: [w, cap) and [0, r). Landing exactly on cap wraps to 0, which must not meet r.
      const tail = cap - w;
      if (size > tail || (size === tail && r === 0)) {
        if (size >= r) return null;
        this.wrapAt(w);
        w = 0;
      } else if (w >= REWIND_AFTER_BYTES && w - r <= REWIND_BACKLOG_MAX_BYTES && size < r) {
        // Rewind early: the frame fits below the consumer, so the rest of the area stays untouched.
        this.wrapAt(w);
        w = 0;
      }
    } else if (w + size >= r) {
      return null;
    }
    this.words.setUint32(w, length, true);
    this.words.setUint32(w + 4, tag >>> 0, true);
    const start = w + FRAME_HEADER_BYTES;
    this.reservedEnd = (w + size) % cap;
    return this.data.subarray(start, start + length);
  }

  /** Writes the wrap mark at `w` (8-aligned, so its 4 bytes fit before the end) and records where. */
  private wrapAt(w: number): void {
    this.words.setUint32(w, WRAP_MARK, true);
    Atomics.store(this.header, SLOT_WRAP_AT, w);
  }

  /** Ends the current reservation; the frame is published at the next `publish()`. */
  commit(): void {
    assert(this.reservedEnd !== -1, "a reservation is open");
    this.pending = this.reservedEnd;
    this.reservedEnd = -1;
  }

  /** Copies `payload` into a new frame; false when the ring has no room now. Publish separately. */
  tryWrite(tag: number, payload: Uint8Array): boolean {
    const view = this.tryReserve(tag, payload.length);
    if (view === null) return false;
    view.set(payload);
    this.commit();
    return true;
  }

  /** Makes every committed frame visible to the consumer and wakes it. */
  publish(): void {
    if (Atomics.load(this.header, SLOT_WRITE_POS) === this.pending) return;
    Atomics.store(this.header, SLOT_WRITE_POS, this.pending);
    Atomics.add(this.header, SLOT_WRITE_SEQ, 1);
    Atomics.notify(this.header, SLOT_WRITE_SEQ);
  }

  /**
   * Resolves when the consumer has released space since the last `tryReserve` (or the ring closes, or
   * `timeoutMs` passes), so a release that raced with the failed reservation is not missed. Never blocks
   * the thread: this is what a producer on the main thread awaits when `tryReserve` returned null.
   */
  async waitForSpaceAsync(timeoutMs = 1000): Promise<void> {
    if (this.closed) return;
    const result = Atomics.waitAsync(this.header, SLOT_READ_SEQ, this.lastReadSeq, timeoutMs);
    if (result.async) await result.value;
  }
}

export type FrameVisitor = (tag: number, payload: Uint8Array) => void;

/** The consuming side. Only one thread may consume a ring. */
export class RingConsumer extends RingView {
  /** Position after the last frame visited but not yet released. */
  private visited: number;
  private lastWriteSeq = 0;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.visited = Atomics.load(this.header, SLOT_READ_POS);
    // So that a wait before the first poll sleeps instead of returning at once on an old sequence.
    this.lastWriteSeq = Atomics.load(this.header, SLOT_WRITE_SEQ);
  }

  /**
   * Visits every published frame not visited yet, in order, and returns how many. Payload views point
   * into shared memory and stay valid until `release()`: a consumer may gather a whole batch of views,
   * write them out in one call, and only then release them. At most `maxFrames` are visited per call.
   */
  poll(visit: FrameVisitor, maxFrames = Number.MAX_SAFE_INTEGER): number {
    this.lastWriteSeq = Atomics.load(this.header, SLOT_WRITE_SEQ);
    const end = Atomics.load(this.header, SLOT_WRITE_POS);
    let pos = this.visited;
    let frames = 0;
    while (pos !== end && frames < maxFrames) {
      const length = this.words.getUint32(pos, true);
      if (length === WRAP_MARK) {
        pos = 0;
        continue;
      }
      const tag = this.words.getUint32(pos + 4, true);
      const start = pos + FRAME_HEADER_BYTES;
      assert(start + length <= this.capacityBytes, "frame lies inside the area");
      visit(tag, this.data.subarray(start, start + length));
      pos = (pos + FRAME_HEADER_BYTES + align8(length)) % this.capacityBytes;
      frames++;
    }
    this.visited = pos;
    return frames;
  }

  /** Frees the space of every frame visited so far and wakes a producer waiting for room. */
  release(): void {
    if (Atomics.load(this.header, SLOT_READ_POS) === this.visited) return;
    Atomics.store(this.header, SLOT_READ_POS, this.visited);
    Atomics.add(this.header, SLOT_READ_SEQ, 1);
    Atomics.notify(this.header, SLOT_READ_SEQ);
  }

  /** True when published frames wait to be visited. */
  hasData(): boolean {
    return Atomics.load(this.header, SLOT_WRITE_POS) !== this.visited;
  }

  /**
   * Blocks the calling thread until new frames are published, the ring closes, or `timeoutMs` passes.
   * For worker threads only: the main thread must use `waitForDataAsync`.
   */
  waitForData(timeoutMs: number): void {
    if (this.hasData() || this.closed) return;
    Atomics.wait(this.header, SLOT_WRITE_SEQ, this.lastWriteSeq, timeoutMs);
  }

  /**
   * Resolves when new frames are published, the ring closes, or `timeoutMs` passes. Note: a pending
   * Atomics.waitAsync does not keep a thread's event loop alive; a worker that waits this way needs
   * another handle (a timer) to stay up.
   */
  async waitForDataAsync(timeoutMs: number): Promise<void> {
    if (this.hasData() || this.closed) return;
    const result = Atomics.waitAsync(this.header, SLOT_WRITE_SEQ, this.lastWriteSeq, timeoutMs);
    if (result.async) await result.value;
  }
}

/**
 * A 64-bit counter in shared memory that one thread advances and others wait on, e.g. the WAL worker's
 * durable index. Values are numbers asserted to stay below 2^53.
 */
export class SharedIndex {
  private readonly cell: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.cell = new BigInt64Array(buffer, 0, 1);
  }

  get(): number {
    return Number(Atomics.load(this.cell, 0));
  }

  /** Stores a new value (never smaller than the current one) and wakes all waiters. */
  advance(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, "index is a safe non-negative integer");
    assert(value >= this.get(), "index never goes back");
    Atomics.store(this.cell, 0, BigInt(value));
    Atomics.notify(this.cell, 0);
  }

  /** Resolves once the value differs from `seen` (or after `timeoutMs`), without blocking the thread. */
  async waitChangeAsync(seen: number, timeoutMs: number): Promise<void> {
    const result = Atomics.waitAsync(this.cell, 0, BigInt(seen), timeoutMs);
    if (result.async) await result.value;
  }
}
