import { assert } from "../assert.js";
import type { KeyValue } from "./types.js";

/**
 * On-disk format of the "key" table (our own; HashKV hashes these exact bytes, so it is part of the
 * cross-member contract and must not change without a migration).
 *
 * Key: the revision, 16 bytes: main (u64 big-endian) then sub (u64 big-endian). Big-endian keeps lmdb's
 * byte order equal to revision order, so a scan by key is a scan by revision.
 *
 * Value (a record):
 *   [0]      flags: bit 0 = tombstone (a delete; every other field is zero and the value is empty)
 *   [1..9)   create revision, u64 big-endian
 *   [9..17)  version, u64 big-endian
 *   [17..25) lease id, i64 big-endian (two's complement)
 *   [25..29) key length, u32 big-endian
 *   [29..)   key bytes, then value bytes (the rest)
 * The record's mod revision is its key's main revision.
 */

export const REVISION_KEY_BYTES = 16;
export const RECORD_HEADER_BYTES = 29;
const FLAG_TOMBSTONE = 1;
const TWO_32 = 0x1_0000_0000;

function putUint32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

function getUint32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset] as number) * 0x100_0000 +
    (((bytes[offset + 1] as number) << 16) |
      ((bytes[offset + 2] as number) << 8) |
      (bytes[offset + 3] as number))
  );
}

function putUint53(bytes: Uint8Array, offset: number, value: number): void {
  putUint32(bytes, offset, Math.floor(value / TWO_32));
  putUint32(bytes, offset + 4, value >>> 0);
}

function getUint53(bytes: Uint8Array, offset: number): number {
  const high = getUint32(bytes, offset);
  assert(high <= 0x1f_ffff, "a stored revision or version is below 2^53");
  return high * TWO_32 + getUint32(bytes, offset + 4);
}

/**
 * Records and revision keys are carved from 64 KiB slabs instead of one allocation each: a put allocates
 * both, and a buffer allocation each (with V8's external-memory accounting) cost more than the encoding.
 * A slab lives while any record or view into it does; records leave the backend's write buffer in
 * write order, so slabs are freed in order too. Views handed to readers can pin a slab (at most 64 KiB
 * per retained record).
 */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabOffset = 0;

function allocRecord(length: number): Uint8Array {
  if (length > SLAB_BYTES / 8) return new Uint8Array(length);
  if (slabOffset + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabOffset = 0;
  }
  const out = slab.subarray(slabOffset, slabOffset + length);
  slabOffset = (slabOffset + length + 7) & ~7;
  return out;
}

/** Writes the 16-byte key of revision (main, sub) into `out` (which may be reused). */
export function writeRevisionKey(out: Uint8Array, main: number, sub: number): Uint8Array {
  putUint53(out, 0, main);
  putUint53(out, 8, sub);
  return out;
}

/** A new revision key (from the record slab: a standalone 16-byte Uint8Array costs ~200 B of heap). */
export function revisionKey(main: number, sub: number): Uint8Array {
  return writeRevisionKey(allocRecord(REVISION_KEY_BYTES), main, sub);
}

export function revisionMain(key: Uint8Array): number {
  assert(key.length === REVISION_KEY_BYTES, "a revision key has 16 bytes");
  return getUint53(key, 0);
}

export function revisionSub(key: Uint8Array): number {
  return getUint53(key, 8);
}

export function encodeRecord(
  key: Uint8Array,
  value: Uint8Array,
  createRevision: number,
  version: number,
  lease: bigint,
): Uint8Array {
  const out = allocRecord(RECORD_HEADER_BYTES + key.length + value.length);
  out[0] = 0;
  putUint53(out, 1, createRevision);
  putUint53(out, 9, version);
  if (lease === 0n) {
    out.fill(0, 17, 25);
  } else {
    const bits = BigInt.asUintN(64, lease);
    putUint32(out, 17, Number(bits >> 32n));
    putUint32(out, 21, Number(bits & 0xffff_ffffn));
  }
  putUint32(out, 25, key.length);
  out.set(key, RECORD_HEADER_BYTES);
  out.set(value, RECORD_HEADER_BYTES + key.length);
  return out;
}

export function encodeTombstone(key: Uint8Array): Uint8Array {
  const out = allocRecord(RECORD_HEADER_BYTES + key.length);
  out.fill(0, 0, RECORD_HEADER_BYTES);
  out[0] = FLAG_TOMBSTONE;
  putUint32(out, 25, key.length);
  out.set(key, RECORD_HEADER_BYTES);
  return out;
}

export function isTombstone(record: Uint8Array): boolean {
  return ((record[0] as number) & FLAG_TOMBSTONE) !== 0;
}

export function recordKeyLength(record: Uint8Array): number {
  const length = getUint32(record, 25);
  assert(RECORD_HEADER_BYTES + length <= record.length, "a record holds its key");
  return length;
}

/** The key bytes of a record, as a view (valid as long as `record` is). */
export function recordKeyView(record: Uint8Array): Uint8Array {
  return record.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + recordKeyLength(record));
}

export function recordCreateRevision(record: Uint8Array): number {
  return getUint53(record, 1);
}

export function recordVersion(record: Uint8Array): number {
  return getUint53(record, 9);
}

export function recordLease(record: Uint8Array): bigint {
  const high = getUint32(record, 17);
  const low = getUint32(record, 21);
  if (high === 0 && low === 0) return 0n;
  return BigInt.asIntN(64, (BigInt(high) << 32n) | BigInt(low));
}

const EMPTY = new Uint8Array(0);

/**
 * Decodes a record into a KeyValue whose key and value are views of the record (records the backend
 * returns are immutable and may be kept, so no copy is needed). `keysOnly` leaves the value empty.
 */
export function decodeRecord(record: Uint8Array, modRevision: number, keysOnly = false): KeyValue {
  const keyLength = recordKeyLength(record);
  const valueStart = RECORD_HEADER_BYTES + keyLength;
  return {
    key: record.subarray(RECORD_HEADER_BYTES, valueStart),
    createRevision: getUint53(record, 1),
    modRevision,
    version: getUint53(record, 9),
    value: keysOnly || valueStart === record.length ? EMPTY : record.subarray(valueStart),
    lease: recordLease(record),
  };
}
