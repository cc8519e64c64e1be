import { readFileSync, rmSync } from "node:fs";
import { assert } from "../assert.js";
import {
  type Backend,
  type BackendSnapshot,
  InvalidSnapshotFileError,
  type RangeVisitor,
  TABLES,
  type TableName,
} from "./backend.js";
import { bytesToLatin1, compareBytes, readUint53, writeUint53 } from "./bytes.js";
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
    const image = encodeMemoryImage(this.tables, this.consistentIndex, this.term);
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

  /** Reads the whole image, then swaps it in within one synchronous step (there is no disk state). */
  async installSnapshot(path: string, onInstalled?: () => void): Promise<void> {
    assert(!this.closed, "the backend is open");
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      throw new InvalidSnapshotFileError(path, (error as Error).message);
    }
    const image = decodeMemoryImage(path, bytes);
    this.tables = image.tables;
    this.consistentIndex = image.consistentIndex;
    this.term = image.term;
    rmSync(path, { force: true });
    onInstalled?.();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * The memory backend's image format (its own, like lmdb's file is lmdb's): the magic, the consistent index
 * and term (8 bytes each, big-endian), then per row its table id (1 byte), key and value lengths (4 bytes
 * each, big-endian), key and value; tables in TABLES order, rows in key order.
 */
const MEMORY_IMAGE_MAGIC = Buffer.from("etcd-ts memory backend 1\n", "latin1");
const IMAGE_HEADER_BYTES = MEMORY_IMAGE_MAGIC.length + 16;
const ROW_HEADER_BYTES = 9;

function encodeMemoryImage(tables: SortedStringMap<Row>[], consistentIndex: number, term: number): Buffer {
  const parts: Uint8Array[] = [];
  const header = Buffer.alloc(IMAGE_HEADER_BYTES);
  MEMORY_IMAGE_MAGIC.copy(header);
  const view = new DataView(header.buffer, header.byteOffset, header.length);
  writeUint53(view, MEMORY_IMAGE_MAGIC.length, consistentIndex);
  writeUint53(view, MEMORY_IMAGE_MAGIC.length + 8, term);
  parts.push(header);
  tables.forEach((map, tableId) => {
    map.visitAll((_k, row) => {
      const rowHeader = Buffer.alloc(ROW_HEADER_BYTES);
      rowHeader[0] = tableId;
      rowHeader.writeUInt32BE(row.key.length, 1);
      rowHeader.writeUInt32BE(row.value.length, 5);
      parts.push(rowHeader, row.key, row.value);
      return true;
    });
  });
  return Buffer.concat(parts);
}

function decodeMemoryImage(
  path: string,
  bytes: Buffer,
): { tables: SortedStringMap<Row>[]; consistentIndex: number; term: number } {
  const bad = (reason: string) => new InvalidSnapshotFileError(path, reason);
  if (
    bytes.length < IMAGE_HEADER_BYTES ||
    !bytes.subarray(0, MEMORY_IMAGE_MAGIC.length).equals(MEMORY_IMAGE_MAGIC)
  ) {
    throw bad("no memory backend magic");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const consistentIndex = readUint53(view, MEMORY_IMAGE_MAGIC.length);
  const term = readUint53(view, MEMORY_IMAGE_MAGIC.length + 8);
  const tables = TABLES.map(() => new SortedStringMap<Row>());
  let offset = IMAGE_HEADER_BYTES;
  while (offset < bytes.length) {
    if (offset + ROW_HEADER_BYTES > bytes.length) throw bad(`a row header is cut at byte ${offset}`);
    const map = tables[bytes[offset] as number];
    if (map === undefined) throw bad(`unknown table id ${bytes[offset]} at byte ${offset}`);
    const keyBytes = bytes.readUInt32BE(offset + 1);
    const valueBytes = bytes.readUInt32BE(offset + 5);
    const keyStart = offset + ROW_HEADER_BYTES;
    const end = keyStart + keyBytes + valueBytes;
    if (end > bytes.length) throw bad(`a row is cut at byte ${offset}`);
    // Copies: the rows outlive the file's buffer, which readFileSync may pool.
    const key = Uint8Array.prototype.slice.call(bytes, keyStart, keyStart + keyBytes);
    const value = Uint8Array.prototype.slice.call(bytes, keyStart + keyBytes, end);
    map.set(bytesToLatin1(key), { key, value });
    offset = end;
  }
  return { tables, consistentIndex, term };
}
