import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { open as openFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Worker } from "node:worker_threads";
import { assert } from "../assert.js";
import { createRingBuffer, RingProducer, SharedIndex } from "../workers/ring.js";
import { spawnWorker } from "../workers/spawn.js";
import {
  type Backend,
  type BackendSnapshot,
  InvalidSnapshotFileError,
  MetaKeys,
  type RangeVisitor,
  TABLE_ID,
  TABLES,
  type TableName,
} from "./backend.js";
import { bytesToLatin1, compareBytes, readUint53 } from "./bytes.js";
import {
  type BackendWorkerData,
  type BackendWorkerMessage,
  Control,
  DELETE_HEADER_BYTES,
  FrameOp,
  PUT_HEADER_BYTES,
  SEAL_BYTES,
} from "./frames.js";
import { DATA_FILE, type LmdbEnv, LOCK_FILE, openLmdbEnv } from "./lmdbEnv.js";
import { type BufferEntry, WriteBuffer } from "./writeBuffer.js";

/**
 * The lmdb backend. Reads run on the calling (main) thread against lmdb's memory map, merged with the
 * write buffer of not-yet-committed writes; writes are framed into a SharedArrayBuffer ring and committed
 * by the writer thread (src/workers/backendWorker.ts) in large synced transactions.
 */

export interface LmdbBackendOptions {
  /** Directory of the lmdb environment (created if missing). */
  dir: string;
  /** Address space reserved for the map; the file grows on demand up to it. Default 16 GiB. */
  mapSizeBytes?: number;
  /**
   * Frame ring between the main thread and the writer. A full ring blocks the main thread until the writer
   * drains (back-pressure, never drop). Default 16 MiB: over a second of writes at 10k/s, and large enough
   * for any single request (etcd caps requests at 1.5 MiB). Once it wraps all of it is resident, so a
   * larger ring costs RSS (64 MiB measured ~56 MiB more) without more throughput.
   */
  ringCapacityBytes?: number;
  /** The writer commits a batch once it is this old (at a unit boundary). Default 100 ms, as etcd. */
  batchIntervalMs?: number;
  /** ...or once it holds this many puts and deletes. Default 10,000, as etcd. */
  batchLimitOps?: number;
  /** Sleep between drains of an open batch. Default 2 ms. */
  drainSliceMs?: number;
  /** Failpoint for tests: the writer's commit of the batch holding this unit sequence throws. */
  failCommitAtSeq?: number;
  /**
   * Called once when the writer fails (a failed commit, a crashed thread). The default logs one JSON line
   * to stderr and exits the process with code 1: a member that cannot persist must stop.
   */
  onFatal?: (message: string) => void;
  /**
   * Failpoint for crash tests: called at each step of `installSnapshot` (see InstallStep); a test child
   * kills itself there.
   */
  installFailpoint?: (step: InstallStep) => void;
}

/**
 * The steps of `installSnapshot`, in order, at which `installFailpoint` is called:
 * - "writerStopped": everything sealed is committed, the writer is gone, nothing changed on disk yet;
 * - "renamed": the image replaced the data file (rename(2)), the directories are not synced yet;
 * - "synced": the rename is durable (both directories fsynced), the old lock file is still there;
 * - "reopened": the environment is open on the image, `onInstalled` ran, the writer is not started yet.
 */
export type InstallStep = "writerStopped" | "renamed" | "synced" | "reopened";

const DEFAULT_MAP_SIZE_BYTES = 16 * 1024 ** 3;
const DEFAULT_RING_CAPACITY_BYTES = 16 * 1024 * 1024;
/** How long a producer blocked on a full ring waits before checking again whether the writer died. */
const FULL_RING_WAIT_MS = 100;
/** How long `forceCommit` waits between checks of the writer's progress. */
const COMMIT_POLL_MS = 1000;

export function defaultOnFatal(message: string): void {
  process.stderr.write(
    `${JSON.stringify({ level: "fatal", ts: new Date().toISOString(), caller: "backend", msg: message })}\n`,
  );
  process.exit(1);
}

export async function openLmdbBackend(options: LmdbBackendOptions): Promise<LmdbBackend> {
  mkdirSync(options.dir, { recursive: true });
  const backend = new LmdbBackend(options);
  await backend.startWriter();
  return backend;
}

export class LmdbBackend implements Backend {
  private lmdb: LmdbEnv;
  private readonly mapSizeBytes: number;
  private readonly ringCapacityBytes: number;
  private readonly onFatal: (message: string) => void;
  private worker: Worker | null = null;
  private producer!: RingProducer;
  private control!: Int32Array;
  private committedSeq!: SharedIndex;
  private committedIndex!: SharedIndex;
  /** The data file's size in bytes, published by the writer after each commit. */
  private fileSizeBytes!: SharedIndex;
  private buffer: WriteBuffer;
  /** The last committed unit whose entries were trimmed from the buffer. */
  private trimmedSeq = 0;
  private lastSealedSeq = 0;
  private fatalMessage: string | null = null;
  /** Pending `forceCommit` waits, woken when the writer fails. */
  private readonly fatalWaiters = new Set<() => void>();
  private closing = false;
  private closed = false;
  /** True while the environment is being swapped (defragment): nothing may read or write. */
  private swapping = false;
  private defragmentingValue = false;
  /** Time the main thread spent blocked on a full ring (back-pressure), for benchmarks and metrics. */
  fullRingWaitMs = 0;
  private consistentIndexValue: number;
  private termValue: number;
  private readonly seqBytes = new Uint8Array(SEAL_BYTES);
  private readonly sealView = new DataView(this.seqBytes.buffer);

  constructor(private readonly options: LmdbBackendOptions) {
    this.mapSizeBytes = options.mapSizeBytes ?? DEFAULT_MAP_SIZE_BYTES;
    this.ringCapacityBytes = options.ringCapacityBytes ?? DEFAULT_RING_CAPACITY_BYTES;
    this.onFatal = options.onFatal ?? defaultOnFatal;
    this.lmdb = openLmdbEnv(options.dir, this.mapSizeBytes);
    this.buffer = new WriteBuffer(TABLES.length);
    this.consistentIndexValue = this.readMetaNumber(MetaKeys.consistentIndex);
    this.termValue = this.readMetaNumber(MetaKeys.term);
  }

  get consistentIndex(): number {
    return this.consistentIndexValue;
  }

  get term(): number {
    return this.termValue;
  }

  get defragmenting(): boolean {
    return this.defragmentingValue;
  }

  private readMetaNumber(name: string): number {
    const bytes = this.lmdb.tables[TABLE_ID.meta]?.getBinary(Buffer.from(name, "latin1"));
    if (bytes === undefined) return 0;
    assert(bytes.length === 8, `meta ${name} holds 8 bytes`);
    return readUint53(new DataView(bytes.buffer, bytes.byteOffset, 8), 0);
  }

  /** Starts the writer thread on fresh shared memory; resolves once it opened the environment. */
  async startWriter(): Promise<void> {
    assert(this.worker === null, "one writer at a time");
    const ring = createRingBuffer({ capacityBytes: this.ringCapacityBytes });
    const control = new SharedArrayBuffer(Control.SLOTS * 4);
    this.producer = new RingProducer(ring);
    this.control = new Int32Array(control);
    this.committedSeq = new SharedIndex();
    this.committedIndex = new SharedIndex();
    this.fileSizeBytes = new SharedIndex();
    // Sequence numbers restart with each writer: nothing is buffered when a writer starts.
    assert(this.buffer.pendingEntries === 0, "no buffered writes at writer start");
    this.buffer = new WriteBuffer(TABLES.length);
    this.trimmedSeq = 0;
    this.lastSealedSeq = 0;
    this.committedIndex.advance(this.consistentIndex);
    const workerData: BackendWorkerData = {
      dir: this.options.dir,
      mapSizeBytes: this.mapSizeBytes,
      ring,
      control,
      committedSeq: this.committedSeq.buffer,
      committedIndex: this.committedIndex.buffer,
      fileSizeBytes: this.fileSizeBytes.buffer,
      batchIntervalMs: this.options.batchIntervalMs ?? 100,
      batchLimitOps: this.options.batchLimitOps ?? 10_000,
      drainSliceMs: this.options.drainSliceMs ?? 2,
    };
    if (this.options.failCommitAtSeq !== undefined) workerData.failCommitAtSeq = this.options.failCommitAtSeq;
    const worker = spawnWorker(import.meta.url, "../workers/backendWorker", { workerData });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on("message", (message: BackendWorkerMessage) => {
        if (message.type === "ready") {
          ready = true;
          resolve();
        } else if (message.type === "fatal") {
          this.fail(message.message);
        }
      });
      worker.on("error", (error) => {
        const text = `backend writer crashed: ${error.stack ?? error.message}`;
        if (!ready) reject(new Error(text));
        this.fail(text);
      });
      worker.on("exit", (code) => {
        if (!ready) reject(new Error(`backend writer exited with code ${code} before it was ready`));
        if (code !== 0) this.fail(`backend writer exited with code ${code}`);
        else if (!this.closing && this.worker === worker) this.fail("backend writer stopped unexpectedly");
      });
    });
  }

  private fail(message: string): void {
    if (this.fatalMessage !== null) return;
    this.fatalMessage = message;
    for (const wake of [...this.fatalWaiters]) wake();
    this.onFatal(message);
  }

  private checkAlive(): void {
    if (this.fatalMessage === null && Atomics.load(this.control, Control.FATAL) !== 0) {
      // The writer marked itself dead; its message may still be queued on the event loop.
      this.fail("backend writer failed (see its message)");
    }
    if (this.fatalMessage !== null) throw new Error(`backend is dead: ${this.fatalMessage}`);
  }

  /**
   * Trims what the writer committed since the last call and makes lmdb's next read use a fresh read
   * transaction that sees those commits. Done at the start of each call, so the merged view (buffer over
   * lmdb) is the same before and after.
   */
  private catchUp(): void {
    assert(!this.swapping && !this.closed, "the backend is open");
    const committed = this.committedSeq.get();
    if (committed === this.trimmedSeq) return;
    this.buffer.trim(committed);
    this.trimmedSeq = committed;
    this.lmdb.env.resetReadTxn();
  }

  private table(table: TableName) {
    const db = this.lmdb.tables[TABLE_ID[table]];
    assert(db !== undefined, `table ${table} is open`);
    return db;
  }

  get(table: TableName, key: Uint8Array): Uint8Array | undefined {
    this.catchUp();
    const tableId = TABLE_ID[table];
    if (!this.buffer.isEmpty(tableId)) {
      const entry = this.buffer.lookup(tableId, bytesToLatin1(key));
      if (entry !== undefined) return entry.value ?? undefined;
    }
    // A copy the caller may keep: getBinaryFast returns lmdb-js's reused read buffer (with an own `length`
    // property set to the value's size), copied here into a pooled Buffer (cheaper than getBinary's copy).
    const shared = this.table(table).getBinaryFast(key);
    if (shared === undefined) return undefined;
    const copy = Buffer.allocUnsafe(shared.length);
    copy.set(shared.subarray(0, shared.length));
    return copy;
  }

  range(table: TableName, start: Uint8Array, end: Uint8Array | null, visit: RangeVisitor, limit = 0): void {
    this.catchUp();
    if (end !== null && compareBytes(end, start) <= 0) return;
    const tableId = TABLE_ID[table];
    const buffered: BufferEntry[] = this.buffer.isEmpty(tableId)
      ? []
      : this.buffer.collectRange(tableId, bytesToLatin1(start), end === null ? null : bytesToLatin1(end));
    let b = 0;
    let visited = 0;
    const emit = (key: Uint8Array, value: Uint8Array): boolean => {
      visited++;
      return visit(key, value) !== false && (limit <= 0 || visited < limit);
    };
    const rangeOptions = end === null ? { start } : { start, end };
    for (const { key, value } of this.table(table).getRange(rangeOptions)) {
      // Buffered entries that sort before this committed key come first (deletes among them hide nothing).
      while (b < buffered.length && compareBytes((buffered[b] as BufferEntry).keyBytes, key) < 0) {
        const entry = buffered[b++] as BufferEntry;
        if (entry.value !== null && !emit(entry.keyBytes, entry.value)) return;
      }
      // A buffered entry for the same key overrides the committed value, or hides it (a delete).
      if (b < buffered.length && compareBytes((buffered[b] as BufferEntry).keyBytes, key) === 0) {
        const entry = buffered[b++] as BufferEntry;
        if (entry.value !== null && !emit(entry.keyBytes, entry.value)) return;
        continue;
      }
      if (!emit(key, value)) return;
    }
    for (; b < buffered.length; b++) {
      const entry = buffered[b] as BufferEntry;
      if (entry.value !== null && !emit(entry.keyBytes, entry.value)) return;
    }
  }

  put(table: TableName, key: Uint8Array, value: Uint8Array): void {
    this.checkWritable();
    const tableId = TABLE_ID[table];
    this.buffer.write(tableId, bytesToLatin1(key), key, value);
    const frame = this.reserve(FrameOp.PUT, PUT_HEADER_BYTES + key.length + value.length);
    const keyLength = key.length;
    frame[0] = tableId;
    frame[1] = keyLength & 0xff;
    frame[2] = (keyLength >>> 8) & 0xff;
    frame[3] = (keyLength >>> 16) & 0xff;
    frame[4] = keyLength >>> 24;
    frame.set(key, PUT_HEADER_BYTES);
    frame.set(value, PUT_HEADER_BYTES + key.length);
    this.producer.commit();
  }

  delete(table: TableName, key: Uint8Array): void {
    this.checkWritable();
    const tableId = TABLE_ID[table];
    this.buffer.write(tableId, bytesToLatin1(key), key, null);
    const frame = this.reserve(FrameOp.DELETE, DELETE_HEADER_BYTES + key.length);
    frame[0] = tableId;
    frame.set(key, DELETE_HEADER_BYTES);
    this.producer.commit();
  }

  seal(index: number, term: number): void {
    this.checkWritable();
    // Trim here too, not only on reads: a write-only stretch must not grow the buffer without bound.
    this.catchUp();
    assert(Number.isSafeInteger(index) && index >= this.consistentIndex, "consistent index never goes back");
    assert(Number.isSafeInteger(term) && term >= 0, "term is a safe non-negative integer");
    const seq = this.buffer.seal();
    const view = this.sealView;
    view.setFloat64(0, seq, true);
    view.setFloat64(8, index, true);
    view.setFloat64(16, term, true);
    const frame = this.reserve(FrameOp.SEAL, SEAL_BYTES);
    frame.set(this.seqBytes);
    this.producer.commit();
    this.producer.publish();
    this.lastSealedSeq = seq;
    this.consistentIndexValue = index;
    this.termValue = term;
  }

  private checkWritable(): void {
    assert(!this.swapping && !this.closing && !this.closed, "the backend accepts writes");
    this.checkAlive();
  }

  /**
   * Reserves a frame, blocking the thread while the ring is full: back-pressure for the apply loop when the
   * disk falls behind by a whole ring. Never drops; fails only when the writer died.
   */
  private reserve(op: number, length: number): Uint8Array {
    assert(length <= this.producer.maxPayloadBytes, `a ${length}-byte frame fits the ring`);
    for (;;) {
      const releases = Atomics.load(this.control, Control.RELEASES);
      const frame = this.producer.tryReserve(op, length);
      if (frame !== null) return frame;
      this.producer.publish();
      const waitStarted = performance.now();
      Atomics.wait(this.control, Control.RELEASES, releases, FULL_RING_WAIT_MS);
      this.fullRingWaitMs += performance.now() - waitStarted;
      this.checkAlive();
    }
  }

  durableIndex(): number {
    return this.committedIndex.get();
  }

  /** Bytes of frames the writer has not taken yet (callers may slow proposals down well before full). */
  backlogBytes(): number {
    return this.producer.usedBytes();
  }

  async forceCommit(): Promise<void> {
    this.checkAlive();
    const target = this.lastSealedSeq;
    if (this.committedSeq.get() >= target) return;
    const frame = this.reserve(FrameOp.FLUSH, 0);
    assert(frame.length === 0, "flush frames are empty");
    this.producer.commit();
    this.producer.publish();
    for (;;) {
      const seen = this.committedSeq.get();
      if (seen >= target) return;
      await this.waitForCommit(seen);
      this.checkAlive();
    }
  }

  /**
   * Resolves when the committed sequence moves past `seen`, the writer fails, or COMMIT_POLL_MS passes.
   * The timer also keeps the event loop alive: Atomics.waitAsync alone does not, and once the writer thread
   * is gone nothing else would.
   */
  private waitForCommit(seen: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.fatalWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, COMMIT_POLL_MS);
      this.fatalWaiters.add(wake);
      void this.committedSeq.waitChangeAsync(seen, COMMIT_POLL_MS).then(wake);
    });
  }

  /**
   * The data file's size as of the writer's last commit (it publishes the size after each one), so the
   * quota check on every write costs no system call.
   */
  sizeBytes(): number {
    const published = this.fileSizeBytes.get();
    return published > 0 ? published : statSync(join(this.options.dir, DATA_FILE)).size;
  }

  sizeInUseBytes(): number {
    this.catchUp();
    // Pages reachable from a live tree: the two meta pages, the main tree (which lists the tables), the
    // free-list tree, and every table. Free pages are what remains of the file.
    const env = this.lmdb.env.getStats() as LmdbStats;
    let pages = 2 + pagesOf(env.root) + pagesOf(env.free);
    for (const db of this.lmdb.tables) pages += pagesOf(db.getStats() as LmdbStats);
    return Math.min(pages * env.pageSize, this.sizeBytes());
  }

  /** Stops the writer after it committed everything sealed. */
  private async stopWriter(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    await this.forceCommit();
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    this.closing = true;
    const frame = this.reserve(FrameOp.STOP, 0);
    assert(frame.length === 0, "stop frames are empty");
    this.producer.commit();
    this.producer.publish();
    await exited;
    this.producer.close();
    this.worker = null;
    this.closing = false;
    this.catchUp();
  }

  /**
   * Rewrites the data file without free pages, as etcd's defrag does: every table is copied in key order
   * into a fresh environment, which then replaces the old file. Writes are held off throughout (the writer
   * is stopped; callers check `defragmenting`); reads go on against the old file until the swap, which is
   * one synchronous step.
   *
   * Not lmdb's compacting copy (`backup(path, true)`): with lmdb-js 3.5.6 the first large write into such
   * a copy crashes the process inside lmdb (mdb_page_alloc assertion, or a segfault in a fresh process).
   */
  async defragment(): Promise<void> {
    assert(!this.defragmentingValue, "one defragmentation at a time");
    this.defragmentingValue = true;
    try {
      await this.stopWriter();
      const tmpDir = `${this.options.dir}.defrag`;
      rmSync(tmpDir, { recursive: true, force: true });
      mkdirSync(tmpDir, { recursive: true });
      const target = openLmdbEnv(tmpDir, this.mapSizeBytes);
      try {
        for (let t = 0; t < TABLES.length; t++) {
          await copyTable(this.lmdb.tables[t] as LmdbTable, target.tables[t] as LmdbTable, target.env);
        }
      } finally {
        await target.env.close();
      }
      this.swapping = true;
      await this.lmdb.env.close();
      renameSync(join(tmpDir, DATA_FILE), join(this.options.dir, DATA_FILE));
      // The old lock file describes the old file (its transaction ids, reader slots): start a fresh one.
      rmSync(join(this.options.dir, LOCK_FILE), { force: true });
      rmSync(tmpDir, { recursive: true, force: true });
      this.lmdb = openLmdbEnv(this.options.dir, this.mapSizeBytes);
      this.swapping = false;
      await this.startWriter();
    } finally {
      this.swapping = false;
      this.defragmentingValue = false;
    }
  }

  /**
   * Installs a received backend image (see Backend.installSnapshot). The order on disk:
   *  1. the writer commits everything sealed and stops (the old file is complete and synced);
   *  2. the image file is fsynced (the receiver did so already: cheap);
   *  3. the environment is closed and the image is renamed over data.mdb: rename(2) is atomic, so data.mdb
   *     is the old file or the image, whole, and the received file exists exactly when data.mdb is the old
   *     one. A restart before this point finds the old state and the file, and installs it again;
   *  4. both directories are fsynced, so the rename survives a power loss;
   *  5. the old lock file is removed (it describes the old file's transactions; lmdb rebuilds it), the
   *     environment reopens on the image, the consistent index and term are read from it;
   *  6. `onInstalled` runs, in the same synchronous step as 3 to 5, then a new writer starts.
   * No marker file is needed: the only change on disk is the rename.
   */
  async installSnapshot(path: string, onInstalled?: () => void): Promise<void> {
    assert(!this.defragmentingValue, "no defragmentation or install in progress");
    assert(!this.closing && !this.closed, "the backend is open");
    this.checkAlive();
    checkLmdbImage(path);
    const failpoint = this.options.installFailpoint ?? (() => {});
    this.defragmentingValue = true;
    try {
      await this.stopWriter();
      assert(this.buffer.pendingEntries === 0, "every write was sealed before installSnapshot");
      failpoint("writerStopped");
      fsyncPath(path, "r");
      // From here to the writer's start, nothing awaits (unless lmdb defers its close, see closeEnv):
      // readers see the old contents, then the new ones with `onInstalled` already run.
      this.swapping = true;
      await this.closeEnv();
      const dataPath = join(this.options.dir, DATA_FILE);
      try {
        renameSync(path, dataPath);
      } catch (error) {
        // Nothing changed on disk (e.g. EXDEV, another file system): back to the old contents.
        this.lmdb = openLmdbEnv(this.options.dir, this.mapSizeBytes);
        this.swapping = false;
        await this.startWriter();
        throw error;
      }
      failpoint("renamed");
      fsyncPath(this.options.dir, "r");
      fsyncPath(dirname(path), "r");
      failpoint("synced");
      rmSync(join(this.options.dir, LOCK_FILE), { force: true });
      this.lmdb = openLmdbEnv(this.options.dir, this.mapSizeBytes);
      this.swapping = false;
      this.consistentIndexValue = this.readMetaNumber(MetaKeys.consistentIndex);
      this.termValue = this.readMetaNumber(MetaKeys.term);
      let callbackError: unknown = null;
      try {
        onInstalled?.();
      } catch (error) {
        callbackError = error ?? new Error("onInstalled threw");
      }
      failpoint("reopened");
      await this.startWriter();
      if (callbackError !== null) throw callbackError;
    } finally {
      this.swapping = false;
      this.defragmentingValue = false;
    }
  }

  /**
   * Closes the main thread's environment. lmdb-js closes at once when this thread never wrote (ours
   * never does: the writer thread writes) and no read is open; otherwise it finishes later and we wait.
   */
  private async closeEnv(): Promise<void> {
    const env = this.lmdb.env;
    const closed = env.close();
    if ((env as unknown as { status?: string }).status !== "closed") await closed;
  }

  async snapshot(): Promise<BackendSnapshot> {
    await this.forceCommit();
    const tmpDir = `${this.options.dir}.snap-${process.pid}-${Date.now()}`;
    mkdirSync(tmpDir, { recursive: true });
    const path = join(tmpDir, DATA_FILE);
    // lmdb copies from its own read transaction: a consistent image at or after the commit above. A plain
    // copy (free pages included), not a compacting one: see `defragment`.
    await this.lmdb.env.backup(tmpDir, false);
    const sizeBytes = statSync(path).size;
    let released = false;
    return {
      sizeBytes,
      async *chunks(chunkBytes: number) {
        assert(chunkBytes > 0, "chunks have a positive size");
        const file = await openFile(path, "r");
        try {
          for (let offset = 0; offset < sizeBytes; offset += chunkBytes) {
            const chunk = Buffer.allocUnsafe(Math.min(chunkBytes, sizeBytes - offset));
            const { bytesRead } = await file.read(chunk, 0, chunk.length, offset);
            assert(bytesRead === chunk.length, "the snapshot file is read whole");
            yield chunk;
          }
        } finally {
          await file.close();
        }
      },
      async close() {
        if (released) return;
        released = true;
        rmSync(tmpDir, { recursive: true, force: true });
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.fatalMessage === null) await this.stopWriter();
    else if (this.worker !== null) await this.worker.terminate();
    this.closed = true;
    await this.lmdb.env.close();
  }

  /** For tests: how many writes wait in the buffer for the writer's commit. */
  get bufferedEntries(): number {
    return this.buffer.pendingEntries;
  }
}

type LmdbTable = LmdbEnv["tables"][number];

/** Entries per write transaction when defragmenting; the event loop runs between transactions. */
const DEFRAG_CHUNK_ENTRIES = 10_000;

/** Copies one table in key order into another environment, in chunks (appends: the pages come out full). */
async function copyTable(source: LmdbTable, target: LmdbTable, targetEnv: LmdbEnv["env"]): Promise<void> {
  let after: Uint8Array | undefined;
  for (;;) {
    const chunk: Array<{ key: Uint8Array; value: Buffer }> = [];
    const options =
      after === undefined
        ? { limit: DEFRAG_CHUNK_ENTRIES }
        : { start: after, exclusiveStart: true, limit: DEFRAG_CHUNK_ENTRIES };
    for (const entry of source.getRange(options)) chunk.push(entry);
    if (chunk.length === 0) return;
    targetEnv.transactionSync(() => {
      for (const { key, value } of chunk) target.putSync(key, value, { append: true });
    });
    after = (chunk[chunk.length - 1] as { key: Uint8Array }).key;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface LmdbTreeStats {
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
}

interface LmdbStats extends LmdbTreeStats {
  pageSize: number;
  root: LmdbTreeStats;
  free: LmdbTreeStats;
}

function pagesOf(stats: LmdbTreeStats): number {
  return stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages;
}

/**
 * lmdb's two meta pages open the file: a page header, then the magic and the data format version, in the
 * machine's byte order. lmdb-js 3 builds LMDB's mdb.master3 branch, whose page header is 24 bytes and
 * whose data version is 2 (read from files it writes; a test checks our own snapshots pass).
 */
const LMDB_PAGE_BYTES = 4096;
const LMDB_META_MAGIC_OFFSET = 24;
const LMDB_MAGIC = 0xbeefc0de;
const LMDB_DATA_VERSION = 2;

/**
 * Checks that `path` looks like an lmdb data file our backend wrote (size in whole pages, both meta pages
 * with lmdb's magic and data version): a stray or truncated file must fail before the old contents go.
 * The transport checked the image's hash against the sender's; this only catches a wrong file.
 */
function checkLmdbImage(path: string): void {
  let sizeBytes: number;
  try {
    sizeBytes = statSync(path).size;
  } catch (error) {
    throw new InvalidSnapshotFileError(path, (error as Error).message);
  }
  if (sizeBytes < 2 * LMDB_PAGE_BYTES || sizeBytes % LMDB_PAGE_BYTES !== 0) {
    throw new InvalidSnapshotFileError(path, `${sizeBytes} bytes is not a whole number of lmdb pages`);
  }
  const head = Buffer.alloc(2 * LMDB_PAGE_BYTES);
  const fd = openSync(path, "r");
  try {
    assert(readSync(fd, head, 0, head.length, 0) === head.length, "the meta pages are read whole");
  } finally {
    closeSync(fd);
  }
  for (let page = 0; page < 2; page++) {
    const offset = page * LMDB_PAGE_BYTES + LMDB_META_MAGIC_OFFSET;
    if (head.readUInt32LE(offset) !== LMDB_MAGIC || head.readUInt32LE(offset + 4) !== LMDB_DATA_VERSION) {
      throw new InvalidSnapshotFileError(path, `meta page ${page} has no lmdb magic`);
    }
  }
}

/** fsync(2) of a file or directory: makes its data, or a directory's entries (a rename), durable. */
function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** True when `dir` holds an lmdb environment created before. */
export function lmdbBackendExists(dir: string): boolean {
  return existsSync(join(dir, DATA_FILE));
}
