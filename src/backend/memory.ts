import { assert } from "../assert.js";
import { type Backend, type BackendSnapshot, type RangeVisitor, TABLES, type TableName } from "./backend.js";
import { bytesToLatin1, compareBytes } from "./bytes.js";
import { SortedStringMap } from "./sortedStringMap.js";

/**
 * A backend held in memory: no files, no writer thread, every seal "durable" at once. For tests of the
 * layers above (mvcc property tests run thousands of operations per second on it) and as the simplest
 * implementation of the Backend contract, which the shared backend suite checks like the lmdb one.
 *
 * A store reopened on the same instance sees everything written so far, sealed or not: crash behaviour is
 * tested on the lmdb backend.
 */
interface Row {
  key: Uint8Array;
  value: Uint8Array;
}

export class MemoryBackend implements Backend {
  private tables: SortedStringMap<Row>[] = TABLES.map(() => new SortedStringMap<Row>());
  consistentIndex = 0;
  term = 0;
  defragmenting = false;
  private closed = false;

  private map(table: TableName): SortedStringMap<Row> {
    assert(!this.closed, "the backend is open");
    return this.tables[TABLES.indexOf(table)] as SortedStringMap<Row>;
  }

  get(table: TableName, key: Uint8Array): Uint8Array | undefined {
    return this.map(table).get(bytesToLatin1(key))?.value;
  }

  range(table: TableName, start: Uint8Array, end: Uint8Array | null, visit: RangeVisitor, limit = 0): void {
    if (end !== null && compareBytes(end, start) <= 0) return;
    let visited = 0;
    this.map(table).forEachInRange(
      bytesToLatin1(start),
      end === null ? null : bytesToLatin1(end),
      (_k, row) => {
        visited++;
        return visit(row.key, row.value) !== false && (limit <= 0 || visited < limit);
      },
    );
  }

  put(table: TableName, key: Uint8Array, value: Uint8Array): void {
    this.map(table).set(bytesToLatin1(key), { key, value });
  }

  delete(table: TableName, key: Uint8Array): void {
    this.map(table).delete(bytesToLatin1(key));
  }

  seal(index: number, term: number): void {
    assert(Number.isSafeInteger(index) && index >= this.consistentIndex, "consistent index never goes back");
    this.consistentIndex = index;
    this.term = term;
  }

  durableIndex(): number {
    return this.consistentIndex;
  }

  async forceCommit(): Promise<void> {}

  sizeBytes(): number {
    let bytes = 0;
    for (const map of this.tables) {
      map.visitAll((_k, row) => {
        bytes += row.key.length + row.value.length;
        return true;
      });
    }
    return bytes;
  }

  sizeInUseBytes(): number {
    return this.sizeBytes();
  }

  async defragment(): Promise<void> {}

  async snapshot(): Promise<BackendSnapshot> {
    const parts: Uint8Array[] = [];
    for (const map of this.tables) {
      map.visitAll((_k, row) => {
        parts.push(row.key, row.value);
        return true;
      });
    }
    const image = Buffer.concat(parts);
    return {
      sizeBytes: image.length,
      async *chunks(chunkBytes: number) {
        for (let offset = 0; offset < image.length; offset += chunkBytes) {
          yield image.subarray(offset, offset + chunkBytes);
        }
      },
      async close() {},
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
