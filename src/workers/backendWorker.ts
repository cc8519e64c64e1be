/**
 * The backend writer thread: drains the frame ring filled by the main thread (src/backend/lmdb.ts) and
 * commits it to lmdb in large transactions.
 *
 * A batch is one lmdb write transaction. It opens when frames arrive, takes every frame the main thread
 * publishes, and commits at a unit boundary (after a SEAL frame) once it is `batchIntervalMs` old, holds
 * `batchLimitOps` writes, or a FLUSH/STOP asks for it. Between drains of an open batch the thread sleeps
 * `drainSliceMs` instead of waking on every publish: the main thread publishes once per applied entry, and
 * a wake-up per entry would cost more CPU than the writes. The meta table's consistent index and term are
 * written in the same transaction as the data of the units they seal.
 *
 * After the commit returns (synced: see lmdbEnv.ts) the thread publishes the last committed unit sequence
 * and its consistent index. Any failure is fatal: it reports one message, marks the control array, and
 * exits with code 1; the main thread ends the process.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { MetaKeys, TABLE_ID } from "../backend/backend.js";
import { compareBytes, writeUint53 } from "../backend/bytes.js";
import {
  type BackendWorkerData,
  type BackendWorkerMessage,
  Control,
  DELETE_HEADER_BYTES,
  FrameOp,
  PUT_HEADER_BYTES,
} from "../backend/frames.js";
import { DATA_FILE, openLmdbEnv } from "../backend/lmdbEnv.js";
import { RingConsumer, SharedIndex } from "./ring.js";

const data = workerData as BackendWorkerData;
const port = parentPort;
if (port === null) throw new Error("backendWorker must run as a worker thread");

/** How long an idle writer sleeps before checking whether the ring was closed. */
const IDLE_WAIT_MS = 1000;
/** Scratch buffers start at this size and double when a frame needs more. */
const SCRATCH_INITIAL_BYTES = 64 * 1024;
/** lmdb put flag for keys above every key of the table: no search, and leaf pages are filled up. */
const APPEND = { append: true } as const;

function fatal(message: string): never {
  const control = new Int32Array(data.control);
  Atomics.store(control, Control.FATAL, 1);
  Atomics.notify(control, Control.RELEASES);
  const msg: BackendWorkerMessage = { type: "fatal", message };
  port?.postMessage(msg);
  process.exit(1);
}

class Writer {
  private readonly consumer: RingConsumer;
  private readonly control: Int32Array;
  private readonly committedSeq: SharedIndex;
  private readonly committedIndex: SharedIndex;
  private readonly fileSizeBytes: SharedIndex;
  private readonly dataFile = join(data.dir, DATA_FILE);
  private readonly sleepCell = new Int32Array(new SharedArrayBuffer(4));
  /**
   * lmdb-js 3.5 writes wrong bytes for a value whose Uint8Array lies on a SharedArrayBuffer (keys are
   * fine), so frames are copied into this private buffer before `putSync`. lmdb copies the bytes into its
   * page during the call, so the scratch can be reused at once.
   */
  private scratch = Buffer.allocUnsafeSlow(SCRATCH_INITIAL_BYTES);
  private readonly metaIndexKey = Buffer.from(MetaKeys.consistentIndex, "latin1");
  private readonly metaTermKey = Buffer.from(MetaKeys.term, "latin1");

  // State of the open batch, set by the frame visitor.
  private batchOps = 0;
  private atBoundary = true;
  private flushRequested = false;
  stopRequested = false;
  private lastSeq = -1;
  private lastIndex = 0;
  private lastTerm = 0;
  private readonly visit = (tag: number, payload: Uint8Array): void => this.applyFrame(tag, payload);
  /**
   * A key at or above the key table's largest key (its revision keys only grow, so nearly every put there
   * is an append; deletes leave this bound as it was, which keeps it safe).
   */
  private keyTableTop: Uint8Array = new Uint8Array(0);

  constructor(private readonly lmdb: ReturnType<typeof openLmdbEnv>) {
    this.consumer = new RingConsumer(data.ring);
    this.control = new Int32Array(data.control);
    this.committedSeq = new SharedIndex(data.committedSeq);
    this.committedIndex = new SharedIndex(data.committedIndex);
    this.fileSizeBytes = new SharedIndex(data.fileSizeBytes);
    this.publishFileSize();
  }

  /** The file only grows while the environment is open (lmdb reuses free pages), so the value only rises. */
  private publishFileSize(): void {
    const size = statSync(this.dataFile).size;
    if (size > this.fileSizeBytes.get()) this.fileSizeBytes.advance(size);
  }

  private copy(bytes: Uint8Array): Buffer {
    if (bytes.length > this.scratch.length) {
      let size = this.scratch.length;
      while (size < bytes.length) size *= 2;
      this.scratch = Buffer.allocUnsafeSlow(size);
    }
    this.scratch.set(bytes);
    return this.scratch.subarray(0, bytes.length);
  }

  private applyFrame(tag: number, payload: Uint8Array): void {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    switch (tag) {
      case FrameOp.PUT: {
        const tableId = payload[0] as number;
        const table = this.lmdb.tables[tableId];
        if (table === undefined) fatal(`backend frame names unknown table ${tableId}`);
        const keyLength = view.getUint32(1, true);
        const key = payload.subarray(PUT_HEADER_BYTES, PUT_HEADER_BYTES + keyLength);
        const value = this.copy(payload.subarray(PUT_HEADER_BYTES + keyLength));
        if (tableId === TABLE_ID.key && compareBytes(key, this.keyTableTop) > 0) {
          table.putSync(key, value, APPEND);
          this.keyTableTop = key.slice();
        } else {
          table.putSync(key, value);
        }
        this.batchOps++;
        this.atBoundary = false;
        return;
      }
      case FrameOp.DELETE: {
        const table = this.lmdb.tables[payload[0] as number];
        if (table === undefined) fatal(`backend frame names unknown table ${payload[0]}`);
        table.removeSync(payload.subarray(DELETE_HEADER_BYTES));
        this.batchOps++;
        this.atBoundary = false;
        return;
      }
      case FrameOp.SEAL:
        this.lastSeq = view.getFloat64(0, true);
        this.lastIndex = view.getFloat64(8, true);
        this.lastTerm = view.getFloat64(16, true);
        this.atBoundary = true;
        return;
      case FrameOp.FLUSH:
        this.flushRequested = true;
        return;
      case FrameOp.STOP:
        this.stopRequested = true;
        return;
      default:
        fatal(`backend frame with unknown opcode ${tag}`);
    }
  }

  private drain(): void {
    this.consumer.poll(this.visit);
    this.consumer.release();
    Atomics.add(this.control, Control.RELEASES, 1);
    Atomics.notify(this.control, Control.RELEASES);
  }

  /** Runs one write transaction; returns after it committed. */
  runBatch(): void {
    const startedMs = performance.now();
    this.batchOps = 0;
    this.flushRequested = false;
    const sealedBefore = this.lastSeq;
    this.lmdb.env.transactionSync(() => {
      for (;;) {
        this.drain();
        const due =
          this.flushRequested ||
          this.stopRequested ||
          this.batchOps >= data.batchLimitOps ||
          performance.now() - startedMs >= data.batchIntervalMs;
        if (this.atBoundary && due) break;
        if (this.consumer.closed && !this.consumer.hasData()) {
          fatal("backend ring closed in the middle of a unit");
        }
        // Sleep a slice (a wait on a cell nobody notifies), then drain what arrived meanwhile.
        if (!this.consumer.hasData()) Atomics.wait(this.sleepCell, 0, 0, data.drainSliceMs);
      }
      if (data.failCommitAtSeq !== undefined && this.lastSeq >= data.failCommitAtSeq) {
        throw new Error(`failpoint: commit of unit ${this.lastSeq} fails`);
      }
      if (this.lastSeq !== sealedBefore) {
        const meta = this.lmdb.tables[TABLE_ID.meta];
        if (meta === undefined) fatal("meta table missing");
        const bytes = Buffer.allocUnsafe(8);
        const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
        writeUint53(view, 0, this.lastIndex);
        meta.putSync(this.metaIndexKey, bytes);
        writeUint53(view, 0, this.lastTerm);
        meta.putSync(this.metaTermKey, bytes);
      }
    });
    if (this.lastSeq !== sealedBefore) {
      this.publishFileSize();
      this.committedIndex.advance(this.lastIndex);
      this.committedSeq.advance(this.lastSeq);
    }
  }

  run(): void {
    while (!this.stopRequested) {
      this.consumer.waitForData(IDLE_WAIT_MS);
      if (!this.consumer.hasData()) {
        if (this.consumer.closed) break;
        continue;
      }
      this.runBatch();
    }
  }

  /** Sequence numbers continue from what the main thread says was committed before this writer started. */
  resume(): void {
    this.lastSeq = this.committedSeq.get();
    this.lastIndex = this.committedIndex.get();
    const keyTable = this.lmdb.tables[TABLE_ID.key];
    for (const key of keyTable?.getKeys({ reverse: true, limit: 1 }) ?? [])
      this.keyTableTop = Uint8Array.from(key);
  }
}

let lmdb: ReturnType<typeof openLmdbEnv>;
try {
  lmdb = openLmdbEnv(data.dir, data.mapSizeBytes);
} catch (error) {
  fatal(`backend writer cannot open ${data.dir}: ${String(error)}`);
}
const writer = new Writer(lmdb);
writer.resume();
port.postMessage({ type: "ready" } satisfies BackendWorkerMessage);
try {
  writer.run();
  await lmdb.env.close();
} catch (error) {
  fatal(`backend commit failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
}
