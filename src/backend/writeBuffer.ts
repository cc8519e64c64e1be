import { assert } from "../assert.js";

/**
 * Writes handed to the backend but not yet committed by the writer thread (etcd's txReadBuffer idea).
 *
 * Readers on the main thread consult it before lmdb, so a write is visible the moment it is applied. Each
 * entry belongs to a unit (the writes between two seals); when the writer reports unit `seq` committed,
 * `trim(seq)` drops the entries of units up to `seq` unless a later write replaced them. The caller must
 * make lmdb's next read see that commit (a fresh read transaction) in the same synchronous step, so the
 * merged view (buffer over lmdb) never changes under a reader.
 *
 * Layout: per table a hash map from key (latin1 string) to its newest entry, for point reads, and one FIFO
 * of all entries in write order, for trimming. A range scan filters and sorts the table's map: the buffer
 * holds one writer batch or so (100 ms of writes), and scans of it (history for watchers, hashes) are rare
 * next to point reads and writes, which stay O(1).
 *
 * Bound: the buffer holds at most what the writer has not committed yet, which the ring capacity and the
 * writer's batch limits bound; it is not a queue of its own.
 */

export interface BufferEntry {
  readonly table: number;
  readonly key: string;
  /** The key's bytes (owned by the backend once written). */
  readonly keyBytes: Uint8Array;
  /** The value, or null for a delete that must hide the committed value. */
  readonly value: Uint8Array | null;
  /** The unit that wrote it. */
  readonly seq: number;
}

/** The FIFO is compacted once this many trimmed entries sit at its head (and they are most of it). */
const FIFO_COMPACT_AFTER_ENTRIES = 4096;

export class WriteBuffer {
  private readonly tables: Map<string, BufferEntry>[];
  /** Every entry in write order; [head, length) are not trimmed yet. */
  private fifo: BufferEntry[] = [];
  private head = 0;
  private openSeqValue: number;

  constructor(
    tableCount: number,
    /** The last unit sequence already committed (units continue from the next one). */
    lastSeq = 0,
  ) {
    this.tables = Array.from({ length: tableCount }, () => new Map<string, BufferEntry>());
    this.openSeqValue = lastSeq + 1;
  }

  /** The sequence number the next seal will get. */
  get openSeq(): number {
    return this.openSeqValue;
  }

  /** Distinct keys held across all tables. */
  get size(): number {
    let n = 0;
    for (const map of this.tables) n += map.size;
    return n;
  }

  /** True when `table` holds no buffered entry (lets readers skip building the key string). */
  isEmpty(table: number): boolean {
    return (this.tables[table] as Map<string, BufferEntry>).size === 0;
  }

  write(table: number, key: string, keyBytes: Uint8Array, value: Uint8Array | null): void {
    const entry: BufferEntry = { table, key, keyBytes, value, seq: this.openSeqValue };
    (this.tables[table] as Map<string, BufferEntry>).set(key, entry);
    this.fifo.push(entry);
  }

  lookup(table: number, key: string): BufferEntry | undefined {
    return (this.tables[table] as Map<string, BufferEntry>).get(key);
  }

  /** Entries with start <= key < end in ascending key order (end null: unbounded), deletes included. */
  collectRange(table: number, start: string, end: string | null): BufferEntry[] {
    const out: BufferEntry[] = [];
    for (const entry of (this.tables[table] as Map<string, BufferEntry>).values()) {
      if (entry.key >= start && (end === null || entry.key < end)) out.push(entry);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Ends the open unit and returns its sequence number. */
  seal(): number {
    return this.openSeqValue++;
  }

  /** Drops what units up to `committedSeq` wrote, unless a later write replaced it. */
  trim(committedSeq: number): void {
    assert(committedSeq < this.openSeqValue, "the writer cannot commit a unit that is not sealed");
    const fifo = this.fifo;
    let head = this.head;
    while (head < fifo.length) {
      const entry = fifo[head] as BufferEntry;
      if (entry.seq > committedSeq) break;
      const map = this.tables[entry.table] as Map<string, BufferEntry>;
      if (map.get(entry.key) === entry) map.delete(entry.key);
      head++;
    }
    if (head === fifo.length) {
      this.fifo = [];
      head = 0;
    } else if (head > FIFO_COMPACT_AFTER_ENTRIES && head * 2 > fifo.length) {
      this.fifo = fifo.slice(head);
      head = 0;
    }
    this.head = head;
  }

  /** Entries written and not trimmed yet (a key written twice counts twice). */
  get pendingEntries(): number {
    return this.fifo.length - this.head;
  }
}
