import { assert } from "../assert.js";
import { type Backend, MetaKeys } from "../backend/backend.js";
import { bytesToLatin1, latin1ToBytes, readUint53, writeUint53 } from "../backend/bytes.js";
import { hashBackend } from "../backend/hash.js";
import { SortedStringMap } from "../backend/sortedStringMap.js";
import { EtcdError } from "../errors.js";
import { crc32cUpdate } from "../wal/crc32c.js";
import {
  decodeRecord,
  encodeRecord,
  encodeTombstone,
  isTombstone,
  REVISION_KEY_BYTES,
  recordCreateRevision,
  recordKeyView,
  recordLease,
  recordVersion,
  revisionKey,
  revisionMain,
  revisionSub,
  writeRevisionKey,
} from "./codec.js";
import { found, KeyIndex } from "./keyIndex.js";
import type { KeyRange } from "./keyRange.js";
import { toKeyRange } from "./keyRange.js";
import { type LeaseLookup, noLeases } from "./lease.js";
import { rangeWith } from "./range.js";
import { executeTxn, isTxnReadOnly } from "./txn.js";
import type {
  ApplyResultFor,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  MvccEvent,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
  WriteOp,
} from "./types.js";

/**
 * The MVCC key-value store (etcd's mvcc/kvstore.go): a single increasing main revision, every write
 * kept as a revision-keyed record in the backend's "key" table, and an in-memory index from key to its
 * revisions (keyIndex.ts) rebuilt from that table at open.
 *
 * Threading: everything runs on the calling (main) thread and is synchronous. Writes are visible to the
 * next read at once: the index changes in memory and the backend serves its unflushed writes.
 *
 * Writes arrive through `apply(index, term, op)` with the raft index of the entry: the store executes the
 * op, then seals the backend unit with that index, so the data and the consistent index commit together.
 * A client error (EtcdError) is raised before anything changes; the index is sealed all the same, since the
 * entry was applied (its result was an error). Any other exception is a broken invariant: nothing is sealed
 * and the caller must stop the process.
 */

export interface MvccStoreOptions {
  backend: Backend;
  leases?: LeaseLookup;
  /**
   * Physical compaction deletes at most this many revisions per backend unit before yielding to the event
   * loop (etcd's --experimental-compaction-batch-limit, default 1000).
   */
  compactionBatchLimit?: number;
  /**
   * Whether write events carry the key's previous KeyValue (one extra read and decode per changed key).
   * Default true; a server without prev_kv watchers may turn it off.
   */
  eventsWithPrevKv?: boolean;
}

/** Index compaction visits at most this many keys per slice, even when it removes nothing. */
const COMPACTION_SLICE_KEYS_MAX = 10_000;
/** How long a compaction slice waits for a defragmentation to end before looking again. */
const COMPACTION_DEFRAG_RETRY_MS = 10;

export interface HashKVResult {
  hash: number;
  /** The current revision (the header revision of the response). */
  revision: number;
  /** The compact revision, -1 when the store was never compacted. */
  compactRevision: number;
}

interface CompactionJob {
  revision: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

const EMPTY = new Uint8Array(0);

export class MvccStore {
  readonly backend: Backend;
  private leases: LeaseLookup;
  private readonly compactionBatchLimit: number;
  readonly eventsWithPrevKv: boolean;
  /** key (latin1) -> its history. */
  readonly index = new SortedStringMap<KeyIndex>();
  private currentRev = 1;
  private compactMainRev = -1;
  private readonly revKeyScratch = new Uint8Array(REVISION_KEY_BYTES);
  private readonly compactions: CompactionJob[] = [];
  private compactionRunning = false;
  /**
   * Bumped by `restore`: compaction slices scheduled before it belong to the replaced state and stop
   * when they see a newer generation.
   */
  private generation = 0;
  private closed = false;

  private constructor(options: MvccStoreOptions) {
    this.backend = options.backend;
    this.leases = options.leases ?? noLeases;
    this.compactionBatchLimit = options.compactionBatchLimit ?? 1000;
    this.eventsWithPrevKv = options.eventsWithPrevKv ?? true;
    assert(this.compactionBatchLimit > 0, "compaction batch limit is positive");
  }

  /** Opens the store on a backend, rebuilding the index from the key table (etcd's restore). */
  static open(options: MvccStoreOptions): MvccStore {
    const store = new MvccStore(options);
    store.rebuild(true);
    return store;
  }

  /** The current revision: 1 for a new store, +1 per write that changed at least one key. */
  get revision(): number {
    return this.currentRev;
  }

  /** The compaction revision, -1 when never compacted. Reads below it fail. */
  get compactRevision(): number {
    return this.compactMainRev;
  }

  /** The raft index of the last applied entry (as sealed into the backend). */
  get consistentIndex(): number {
    return this.backend.consistentIndex;
  }

  /** Replaces the lease lookup (the lessor may be built after the store); attaches every leased key. */
  setLeases(leases: LeaseLookup): void {
    this.leases = leases;
    this.index.visitAll((_key, ki) => {
      if (ki.lease !== 0n && ki.isLive()) leases.attach(ki.lease, latin1ToBytes(ki.key));
      return true;
    });
  }

  get leaseLookup(): LeaseLookup {
    return this.leases;
  }

  // ---------------------------------------------------------------------------------------------------
  // Restore

  private readMetaRevision(name: string): number | undefined {
    const bytes = this.backend.get("meta", latin1ToBytes(name));
    if (bytes === undefined) return undefined;
    assert(bytes.length === 8, `meta ${name} holds 8 bytes`);
    return readUint53(new DataView(bytes.buffer, bytes.byteOffset, 8), 0);
  }

  private writeMetaRevision(name: string, revision: number): void {
    const bytes = new Uint8Array(8);
    writeUint53(new DataView(bytes.buffer), 0, revision);
    this.backend.put("meta", latin1ToBytes(name), bytes);
  }

  /**
   * Drops every in-memory state (key index, current and compact revisions, compactions queued or running)
   * and rebuilds it from the backend, whose contents were replaced (a received raft snapshot installed:
   * see `installSnapshot`, which calls this at the right moment). The object stays the same, so whatever
   * holds it (watch hub, API) keeps working. A scheduled but unfinished compaction in the new contents is
   * resumed, as at open.
   *
   * What callers must know:
   * - No write may run between the backend's change and this call, and none may be open (a WriteTxn from
   *   `beginWrite` not ended).
   * - Compactions queued before reject their `physicalDone` ("mvcc: restored from a snapshot").
   * - Keys are not attached to leases here: the caller reloads its lessor from the new lease table, then
   *   calls `setLeases(lessor)`, which attaches every leased live key.
   * - The revision may move by any amount (it is the image's). Events between the old and the new
   *   revision were never delivered: a watcher resumes from its next revision, reading history from the
   *   store (`eventsBetween`), and gets Compacted when that is at or below the new compact revision.
   */
  restore(): void {
    this.checkOpen();
    this.generation++;
    for (const job of this.compactions.splice(0)) job.reject(new Error("mvcc: restored from a snapshot"));
    this.compactionRunning = false;
    this.index.clear();
    this.currentRev = 1;
    this.compactMainRev = -1;
    this.rebuild(false);
  }

  /**
   * Installs a received backend image (a raft snapshot's database, see Backend.installSnapshot) and
   * restores the store from it. `onRestored` runs right after `restore`, in the same synchronous step in
   * which the backend switches contents: the place to reload the lessor (then `setLeases`), membership and
   * alarms, so that no read sees the new backend with old in-memory state. It must not write; writes wait
   * until the promise resolves. The file is consumed.
   */
  async installSnapshot(path: string, onRestored?: () => void): Promise<void> {
    this.checkOpen();
    await this.backend.installSnapshot(path, () => {
      this.restore();
      onRestored?.();
    });
  }

  /** Builds the in-memory state from the backend's key and meta tables (etcd's restore). */
  private rebuild(attachLeases: boolean): void {
    const finished = this.readMetaRevision(MetaKeys.finishedCompactRev);
    const scheduled = this.readMetaRevision(MetaKeys.scheduledCompactRev);
    if (finished !== undefined) this.compactMainRev = finished;
    let lastMain = 1;
    this.backend.range("key", revisionKey(0, 0), null, (revKey, record) => {
      const main = revisionMain(revKey);
      const sub = revisionSub(revKey);
      const key = recordKeyView(record);
      const keyString = bytesToLatin1(key);
      const ki = this.index.get(keyString);
      if (ki !== undefined) {
        if (isTombstone(record)) {
          // A tombstone for a key already deleted can remain from an unfinished compaction: skip it.
          ki.tombstone(main, sub);
        } else {
          ki.put(main, sub);
          ki.lease = recordLease(record);
        }
      } else if (!isTombstone(record)) {
        const fresh = new KeyIndex(keyString);
        fresh.restore(recordCreateRevision(record), main, sub, recordVersion(record));
        fresh.lease = recordLease(record);
        this.index.set(keyString, fresh);
      }
      lastMain = main;
      return true;
    });
    // An unfinished compaction may have deleted the newest records (tombstones at or below it), so the
    // current revision is at least every compaction revision recorded. (etcd uses the finished one only.)
    this.currentRev = Math.max(lastMain, this.compactMainRev, scheduled ?? -1);
    if (attachLeases) {
      this.index.visitAll((_key, ki) => {
        if (ki.lease !== 0n && ki.isLive()) this.leases.attach(ki.lease, latin1ToBytes(ki.key));
        return true;
      });
    }
    if (scheduled !== undefined && scheduled > this.compactMainRev) {
      this.compactMainRev = scheduled;
      void this.scheduleCompaction(scheduled).catch(() => {});
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Reads

  /** Serves a Range at the current revision (spec §5.3). The request was validated by the caller. */
  range(request: RangeRequest): RangeResponse {
    this.checkOpen();
    return rangeWith(this, request, this.currentRev);
  }

  /** Executes a txn whose branches hold only ranges, without a revision bump (not through raft). */
  txnReadOnly(request: TxnRequest): TxnResponse {
    this.checkOpen();
    assert(isTxnReadOnly(request), "txnReadOnly takes a txn whose branches hold only ranges");
    const tw = new WriteTxn(this);
    const response = executeTxn(this, tw, request, false);
    assert(tw.changes === 0, "a read-only txn changed nothing");
    return response;
  }

  /**
   * Visits the keys live at `atRev` in `range` in key order, with `found` filled for each (its revision,
   * creation and version at atRev). The visitor returns false to stop.
   */
  visitLive(range: KeyRange, atRev: number, visit: (ki: KeyIndex) => boolean): void {
    if (range.single) {
      const ki = this.index.get(range.start);
      if (ki?.get(atRev)) visit(ki);
      return;
    }
    this.index.forEachInRange(range.start, range.end, (_key, ki) => {
      if (!ki.get(atRev)) return true;
      return visit(ki);
    });
  }

  /** Reads the record of revision (main, sub) as a KeyValue (fresh copies of key and value). */
  readKeyValue(main: number, sub: number, keysOnly = false): KeyValue {
    const record = this.backend.get("key", writeRevisionKey(this.revKeyScratch, main, sub));
    assert(record !== undefined, `revision ${main}.${sub} is in the key table`);
    assert(!isTombstone(record), `revision ${main}.${sub} is not a tombstone`);
    return decodeRecord(record, main, keysOnly);
  }

  /**
   * etcd's rangeKeys: the live revisions in `range` at `rev` (<= 0: curRev), checked against the future
   * and compaction; reads at most `limit` records (<= 0: all). `count` is every key in the range.
   */
  rangeKeys(
    range: KeyRange,
    curRev: number,
    rev: number,
    limit: number,
    countOnly: boolean,
    keysOnly: boolean,
  ): { kvs: KeyValue[]; count: number } {
    if (rev > curRev) throw new EtcdError("FutureRev");
    const atRev = rev <= 0 ? curRev : rev;
    if (atRev < this.compactMainRev) throw new EtcdError("Compacted");
    const mains: number[] = [];
    const subs: number[] = [];
    this.visitLive(range, atRev, () => {
      mains.push(found.main);
      subs.push(found.sub);
      return true;
    });
    const count = mains.length;
    if (countOnly || count === 0) return { kvs: [], count };
    const n = limit <= 0 || limit > count ? count : limit;
    const kvs = new Array<KeyValue>(n);
    for (let i = 0; i < n; i++) kvs[i] = this.readKeyValue(mains[i] as number, subs[i] as number, keysOnly);
    return { kvs, count };
  }

  // ---------------------------------------------------------------------------------------------------
  // Writes

  /**
   * Applies one raft entry's KV write and seals the backend unit with its index and term. Returns the
   * response (headers carry only the revision) and the events, in sub-revision order.
   */
  apply<O extends WriteOp>(index: number, term: number, op: O): ApplyResultFor<O> {
    this.checkOpen();
    assert(
      Number.isSafeInteger(index) && index > this.backend.consistentIndex,
      "apply moves the index forward",
    );
    let result: ApplyResultFor<WriteOp>;
    const changesBefore = this.changeCount;
    try {
      switch (op.type) {
        case "put":
          result = this.applyPut(op.request);
          break;
        case "deleteRange":
          result = this.applyDeleteRange(op.request);
          break;
        case "txn": {
          const tw = new WriteTxn(this);
          const response = executeTxn(this, tw, op.request, true);
          tw.end();
          result = { type: "txn", response, events: tw.events };
          break;
        }
        case "compaction": {
          const { response, physicalDone } = this.applyCompaction(op.request.revision);
          result = { type: "compaction", response, events: [], physicalDone };
          break;
        }
        default: {
          const never: never = op;
          throw new Error(`unknown write ${JSON.stringify(never)}`);
        }
      }
    } catch (error) {
      // Client errors are raised before any change: the entry is applied (with that error) all the same.
      // One after a change would leave a half-applied entry: that is a broken invariant, never sealed.
      if (error instanceof EtcdError) {
        assert(this.changeCount === changesBefore, `${error.code} raised after a change in the same entry`);
        this.backend.seal(index, term);
      }
      throw error;
    }
    this.backend.seal(index, term);
    return result as ApplyResultFor<O>;
  }

  /**
   * Starts a write txn for callers that compose their own entry (lease revoke deletes its keys at one
   * revision). The caller ends it (`end()`) and seals the backend unit with the entry's index.
   */
  beginWrite(): WriteTxn {
    this.checkOpen();
    return new WriteTxn(this);
  }

  private applyPut(request: PutRequest): ApplyResultFor<{ type: "put"; request: PutRequest }> {
    const lease = request.lease ?? 0n;
    if (lease !== 0n && !this.leases.exists(lease)) throw new EtcdError("LeaseNotFound");
    const tw = new WriteTxn(this);
    const response = putInTxn(this, tw, request);
    tw.end();
    return { type: "put", response, events: tw.events };
  }

  private applyDeleteRange(
    request: DeleteRangeRequest,
  ): ApplyResultFor<{ type: "deleteRange"; request: DeleteRangeRequest }> {
    const tw = new WriteTxn(this);
    const response = deleteRangeInTxn(this, tw, request);
    tw.end();
    return { type: "deleteRange", response, events: tw.events };
  }

  // ---------------------------------------------------------------------------------------------------
  // Compaction

  private applyCompaction(revision: number): { response: CompactionResponse; physicalDone: Promise<void> } {
    if (revision <= this.compactMainRev) throw new EtcdError("Compacted");
    if (revision > this.currentRev) throw new EtcdError("FutureRev");
    this.compactMainRev = revision;
    // Recorded in the same unit as the entry's index: a restart resumes the compaction.
    this.writeMetaRevision(MetaKeys.scheduledCompactRev, revision);
    const physicalDone = this.scheduleCompaction(revision);
    physicalDone.catch(() => {});
    return { response: { header: { revision: this.currentRev } }, physicalDone };
  }

  private scheduleCompaction(revision: number): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.compactions.push({ revision, resolve, reject });
    });
    if (!this.compactionRunning) {
      this.compactionRunning = true;
      const generation = this.generation;
      setImmediate(() => this.runCompactions(generation));
    }
    return done;
  }

  /**
   * Runs queued compactions one after another. Each walks the index in key order in slices; a slice
   * compacts keys until it removed `compactionBatchLimit` revisions (or visited COMPACTION_SLICE_KEYS_MAX
   * keys), deletes those revisions from the backend in one unit, and yields to the event loop. Reads at or
   * above the compact revision see the same data whether a key was compacted yet or not, so applies and
   * reads interleave freely with the slices.
   */
  private runCompactions(generation: number): void {
    // A restore replaced the state this run was scheduled for (and started its own run when needed).
    if (generation !== this.generation) return;
    const job = this.compactions[0];
    if (job === undefined || this.closed) {
      this.compactionRunning = false;
      return;
    }
    let cursor: string | null = "";
    const slice = (): void => {
      if (generation !== this.generation) return;
      if (this.closed) {
        this.compactionRunning = false;
        return;
      }
      if (this.backend.defragmenting) {
        // The backend takes no writes while it rewrites its files; try again shortly.
        setTimeout(slice, COMPACTION_DEFRAG_RETRY_MS);
        return;
      }
      cursor = this.compactSlice(job.revision, cursor as string);
      if (cursor !== null) {
        this.backend.seal(this.backend.consistentIndex, this.backend.term);
        setImmediate(slice);
        return;
      }
      this.writeMetaRevision(MetaKeys.finishedCompactRev, job.revision);
      this.backend.seal(this.backend.consistentIndex, this.backend.term);
      this.compactions.shift();
      this.backend.forceCommit().then(job.resolve, job.reject);
      setImmediate(() => this.runCompactions(generation));
    };
    slice();
  }

  /** Compacts keys from `from` on; returns where the next slice starts, or null when done. */
  private compactSlice(revision: number, from: string): string | null {
    let removedCount = 0;
    let visited = 0;
    let next: string | null = null;
    const emptied: string[] = [];
    const removed = (main: number, sub: number): void => {
      this.backend.delete("key", revisionKey(main, sub));
      removedCount++;
    };
    this.index.forEachInRange(from, null, (key, ki) => {
      if (removedCount >= this.compactionBatchLimit || visited >= COMPACTION_SLICE_KEYS_MAX) {
        next = key;
        return false;
      }
      visited++;
      ki.compact(revision, removed);
      if (ki.isEmpty()) emptied.push(key);
      return true;
    });
    for (const key of emptied) this.index.delete(key);
    return next;
  }

  // ---------------------------------------------------------------------------------------------------
  // Hashes

  /** Maintenance.Hash: CRC-32C over the whole backend (spec §11.4), with the current revision. */
  hash(): { hash: number; revision: number } {
    this.checkOpen();
    return { hash: hashBackend(this.backend), revision: this.currentRev };
  }

  /**
   * Maintenance.HashKV(revision): CRC-32C starting with the bytes "key", then for each record of the key
   * table with revision <= `revision` (0: current), in revision order, its 16-byte revision key and its
   * record bytes (codec.ts). Records at or below the compact revision count only when compaction keeps
   * them at `revision` (the key's newest revision <= revision, not a tombstone). This is a function of the
   * history alone, so members with the same history agree whatever their physical compaction progress
   * (etcd additionally counts every uncompacted record when that kept set is empty; we do not).
   */
  hashKV(revision: number): HashKVResult {
    this.checkOpen();
    const compactRevision = this.compactMainRev;
    const current = this.currentRev;
    if (revision > 0 && revision <= compactRevision) throw new EtcdError("Compacted");
    if (revision > 0 && revision > current) throw new EtcdError("FutureRev");
    const atRev = revision === 0 ? current : revision;
    let crc = crc32cUpdate(0, Buffer.from("key", "latin1"));
    if (atRev >= 1) {
      const end = revisionKey(atRev + 1, 0);
      this.backend.range("key", revisionKey(0, 0), end, (revKey, record) => {
        const main = revisionMain(revKey);
        if (main <= compactRevision) {
          const key = recordKeyView(record);
          const ki = this.index.get(bytesToLatin1(key));
          if (ki === undefined || !ki.kept(atRev)) return true;
          if (found.main !== main || found.sub !== revisionSub(revKey)) return true;
        }
        crc = crc32cUpdate(crc, revKey);
        crc = crc32cUpdate(crc, record);
        return true;
      });
    }
    return { hash: crc, revision: current, compactRevision };
  }

  // ---------------------------------------------------------------------------------------------------
  // History (for watch)

  /**
   * The events of revisions [fromRev, toRev] in revision order (at most `limit`, 0: all), read from the
   * key table. Events read back from history carry no prevKv. Fails with Compacted below the compaction.
   *
   * `sizeBytesMax` (0: none) bounds the key and value bytes read: the read stops after the first event that
   * reaches it, so at least one event is returned and the last revision may be cut short. A caller that
   * needs whole revisions (watch catch-up) drops the last one when the read stopped early (see
   * `eventsBetweenTruncated`).
   */
  eventsBetween(fromRev: number, toRev: number, limit = 0, sizeBytesMax = 0): MvccEvent[] {
    this.checkOpen();
    if (fromRev < this.compactMainRev) throw new EtcdError("Compacted");
    const events: MvccEvent[] = [];
    this.lastEventsTruncated = false;
    if (toRev < fromRev) return events;
    let sizeBytes = 0;
    this.backend.range(
      "key",
      revisionKey(Math.max(fromRev, 0), 0),
      revisionKey(toRev + 1, 0),
      (revKey, record) => {
        if (sizeBytesMax > 0 && sizeBytes >= sizeBytesMax) {
          this.lastEventsTruncated = true;
          return false;
        }
        const main = revisionMain(revKey);
        if (isTombstone(record)) {
          events.push({ type: "DELETE", kv: deletedKeyValue(decodeRecord(record, main, true).key, main) });
        } else {
          events.push({ type: "PUT", kv: decodeRecord(record, main) });
        }
        sizeBytes += record.length;
        return true;
      },
      limit,
    );
    if (limit > 0 && events.length === limit) this.lastEventsTruncated = true;
    return events;
  }

  /**
   * Whether the last `eventsBetween` stopped at its `limit` or `sizeBytesMax` (more events may follow in
   * its revision range). Set by every call; read it right after the call.
   */
  lastEventsTruncated = false;

  /**
   * The key's KeyValue as of `revision`, or undefined when the key was absent then, the revision is
   * compacted or in the future (what etcd's watch server attaches as an event's prev_kv: a read at
   * mod_revision - 1 whose errors mean "none").
   */
  keyValueAt(key: Uint8Array, revision: number): KeyValue | undefined {
    this.checkOpen();
    if (revision < 1 || revision < this.compactMainRev || revision > this.currentRev) return undefined;
    const ki = this.index.get(bytesToLatin1(key));
    if (ki === undefined || !ki.get(revision)) return undefined;
    return this.readKeyValue(found.main, found.sub);
  }

  // ---------------------------------------------------------------------------------------------------

  private checkOpen(): void {
    assert(!this.closed, "the store is open");
  }

  /**
   * Stops the store without closing the backend: a compaction in progress stops (it resumes at the next
   * open) and its `physicalDone` rejects. Further calls fail.
   */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.compactions.splice(0)) job.reject(new Error("mvcc: closed"));
  }

  /** `stop()`, then closes the backend (committing what was sealed). */
  async close(): Promise<void> {
    this.stop();
    await this.backend.close();
  }

  /** For WriteTxn: the revision a write txn starts from, and its commit. */
  bumpRevision(): void {
    this.currentRev++;
  }

  /** Puts and deletes made so far (WriteTxn counts them; apply checks that errors come before any). */
  changeCount = 0;
}

function deletedKeyValue(key: Uint8Array, modRevision: number): KeyValue {
  return { key, createRevision: 0, modRevision, version: 0, value: EMPTY, lease: 0n };
}

/**
 * One write's changes at a single new main revision (etcd's storeTxnWrite): puts and deletes get sub
 * revisions 0, 1, 2... in order; reads inside see the writes made so far. `end()` moves the store's
 * revision on when anything changed.
 */
export class WriteTxn {
  readonly beginRev: number;
  changes = 0;
  readonly events: MvccEvent[] = [];
  private ended = false;

  constructor(private readonly store: MvccStore) {
    this.beginRev = store.revision;
  }

  /** The revision reads inside the txn see: the new one once something changed. */
  get readRev(): number {
    return this.changes > 0 ? this.beginRev + 1 : this.beginRev;
  }

  /** The key's state before the txn (for events' prevKv, as etcd's watch reads at revision - 1). */
  private stateBefore(ki: KeyIndex | undefined): KeyValue | undefined {
    if (!this.store.eventsWithPrevKv || ki === undefined || !ki.get(this.beginRev)) return undefined;
    return this.store.readKeyValue(found.main, found.sub);
  }

  put(key: Uint8Array, value: Uint8Array, lease: bigint): number {
    assert(!this.ended, "the txn is open");
    const store = this.store;
    const rev = this.beginRev + 1;
    const keyString = bytesToLatin1(key);
    let ki = store.index.get(keyString);
    let createRevision = rev;
    let version = 1;
    let oldLease = 0n;
    if (ki?.get(rev)) {
      createRevision = found.createdMain;
      version = found.ver + 1;
      oldLease = ki.lease;
    }
    const prevKv = this.stateBefore(ki);
    store.backend.put(
      "key",
      revisionKey(rev, this.changes),
      encodeRecord(key, value, createRevision, version, lease),
    );
    if (ki === undefined) {
      ki = new KeyIndex(keyString);
      store.index.set(keyString, ki);
    }
    ki.put(rev, this.changes);
    ki.lease = lease;
    this.changes++;
    store.changeCount++;
    const kv: KeyValue = { key, createRevision, modRevision: rev, version, value, lease };
    this.events.push(prevKv === undefined ? { type: "PUT", kv } : { type: "PUT", kv, prevKv });
    if (oldLease !== 0n) store.leaseLookup.detach(oldLease, key);
    if (lease !== 0n) store.leaseLookup.attach(lease, key);
    return rev;
  }

  /** Deletes every key live in `range` now; returns how many. */
  deleteRange(range: KeyRange): number {
    assert(!this.ended, "the txn is open");
    const doomed: KeyIndex[] = [];
    this.store.visitLive(range, this.readRev, (ki) => {
      doomed.push(ki);
      return true;
    });
    for (const ki of doomed) this.delete(ki);
    return doomed.length;
  }

  private delete(ki: KeyIndex): void {
    const store = this.store;
    const rev = this.beginRev + 1;
    const key = latin1ToBytes(ki.key);
    const prevKv = this.stateBefore(ki);
    const oldLease = ki.lease;
    store.backend.put("key", revisionKey(rev, this.changes), encodeTombstone(key));
    assert(ki.tombstone(rev, this.changes), "a live key can be deleted");
    this.changes++;
    store.changeCount++;
    const kv = deletedKeyValue(key, rev);
    this.events.push(prevKv === undefined ? { type: "DELETE", kv } : { type: "DELETE", kv, prevKv });
    if (oldLease !== 0n) store.leaseLookup.detach(oldLease, key);
  }

  /** Ends the txn: the store's revision moves on when anything changed. Returns the events. */
  end(): MvccEvent[] {
    assert(!this.ended, "a txn ends once");
    this.ended = true;
    if (this.changes > 0) {
      assert(this.store.revision === this.beginRev, "no other write ran inside this txn");
      this.store.bumpRevision();
    }
    return this.events;
  }
}

/** etcd's applierV3backend.Put inside a txn (the lease was checked by the caller). */
export function putInTxn(store: MvccStore, tw: WriteTxn, request: PutRequest): PutResponse {
  let current: KeyValue | undefined;
  if (request.ignoreValue || request.ignoreLease || request.prevKv) {
    const { kvs } = store.rangeKeys(toKeyRange(request.key, undefined), tw.readRev, 0, 0, false, false);
    current = kvs[0];
  }
  if ((request.ignoreValue || request.ignoreLease) && current === undefined)
    throw new EtcdError("KeyNotFound");
  const value = request.ignoreValue ? (current as KeyValue).value : (request.value ?? EMPTY);
  const lease = request.ignoreLease ? (current as KeyValue).lease : (request.lease ?? 0n);
  const revision = tw.put(request.key, value, lease);
  const response: PutResponse = { header: { revision } };
  if (request.prevKv && current !== undefined) response.prevKv = current;
  return response;
}

/** etcd's applierV3backend.DeleteRange inside a txn. */
export function deleteRangeInTxn(
  store: MvccStore,
  tw: WriteTxn,
  request: DeleteRangeRequest,
): DeleteRangeResponse {
  const range = toKeyRange(request.key, request.rangeEnd);
  const prevKvs = request.prevKv ? store.rangeKeys(range, tw.readRev, 0, 0, false, false).kvs : [];
  const deleted = tw.deleteRange(range);
  const revision = deleted !== 0 || tw.changes > 0 ? tw.beginRev + 1 : tw.beginRev;
  return { header: { revision }, deleted, prevKvs };
}
