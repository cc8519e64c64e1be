import { assert } from "../assert.js";
import { SortedStringMap } from "./sortedStringMap.js";

/**
 * Writes handed to the backend but not yet committed by the writer thread (etcd's txReadBuffer idea).
 *
 * Readers on the main thread consult it before lmdb, so a write is visible the moment it is applied. Each
 * entry belongs to a unit (the writes between two seals); when the writer reports unit `seq` committed,
 * `trim(seq)` drops the entries of units up to `seq` unless a later unit overwrote them. The caller must
 * make lmdb's next read see that commit (a fresh read transaction) in the same synchronous step, so the
 * merged view (buffer over lmdb) never changes under a reader.
 *
 * Bound: the buffer holds at most what the writer has not committed yet, which the ring capacity and the
 * writer's batch limits bound; it is not a queue of its own.
 */

export interface BufferEntry {
  /** The key's bytes (owned by the backend once written). */
  readonly keyBytes: Uint8Array;
  /** The value, or null for a delete that must hide the committed value. */
  readonly value: Uint8Array | null;
  /** The unit that wrote it. */
  readonly seq: number;
}

interface Unit {
  seq: number;
  tables: number[];
  keys: string[];
}

export class WriteBuffer {
  private readonly tables: SortedStringMap<BufferEntry>[];
  /** Sealed units not yet trimmed, oldest first. */
  private readonly units: Unit[] = [];
  private unitHead = 0;
  private open: Unit;
  private entryCount = 0;

  constructor(
    tableCount: number,
    /** The last unit sequence already committed (units continue from the next one). */
    lastSeq = 0,
  ) {
    this.tables = Array.from({ length: tableCount }, () => new SortedStringMap<BufferEntry>());
    this.open = { seq: lastSeq + 1, tables: [], keys: [] };
  }

  /** The sequence number the next seal will get. */
  get openSeq(): number {
    return this.open.seq;
  }

  /** Entries held across all tables. */
  get size(): number {
    return this.entryCount;
  }

  /** True when `table` holds no buffered entry (lets readers skip building the key string). */
  isEmpty(table: number): boolean {
    return (this.tables[table] as SortedStringMap<BufferEntry>).size === 0;
  }

  write(table: number, key: string, keyBytes: Uint8Array, value: Uint8Array | null): void {
    const map = this.tables[table] as SortedStringMap<BufferEntry>;
    if (map.set(key, { keyBytes, value, seq: this.open.seq })) this.entryCount++;
    this.open.tables.push(table);
    this.open.keys.push(key);
  }

  lookup(table: number, key: string): BufferEntry | undefined {
    return (this.tables[table] as SortedStringMap<BufferEntry>).get(key);
  }

  /** Entries with start <= key < end, ascending (end null: unbounded), deletes included. */
  collectRange(table: number, start: string, end: string | null): BufferEntry[] {
    const out: BufferEntry[] = [];
    (this.tables[table] as SortedStringMap<BufferEntry>).forEachInRange(start, end, (_key, entry) => {
      out.push(entry);
      return true;
    });
    return out;
  }

  /** Ends the open unit and returns its sequence number. */
  seal(): number {
    const unit = this.open;
    this.units.push(unit);
    this.open = { seq: unit.seq + 1, tables: [], keys: [] };
    return unit.seq;
  }

  /** Drops what units up to `committedSeq` wrote, unless a later unit wrote the same key again. */
  trim(committedSeq: number): void {
    assert(committedSeq < this.open.seq, "the writer cannot commit a unit that is not sealed");
    while (this.unitHead < this.units.length) {
      const unit = this.units[this.unitHead] as Unit;
      if (unit.seq > committedSeq) break;
      for (let i = 0; i < unit.keys.length; i++) {
        const map = this.tables[unit.tables[i] as number] as SortedStringMap<BufferEntry>;
        const key = unit.keys[i] as string;
        const entry = map.get(key);
        if (entry !== undefined && entry.seq === unit.seq) {
          map.delete(key);
          this.entryCount--;
        }
      }
      this.units[this.unitHead] = undefined as unknown as Unit;
      this.unitHead++;
    }
    // Compact the FIFO once its dead head dominates, so it never grows without bound.
    if (this.unitHead > 1024 && this.unitHead * 2 > this.units.length) {
      this.units.splice(0, this.unitHead);
      this.unitHead = 0;
    }
  }

  /** Sealed units not trimmed yet. */
  get pendingUnits(): number {
    return this.units.length - this.unitHead;
  }
}
