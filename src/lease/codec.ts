import { AssertionError, assert } from "../assert.js";

/**
 * The rows of the backend's `lease` table, laid out as etcd 3.4 lays out its bbolt `lease` bucket
 * (lease/lessor.go persistTo, leasepb/lease.proto), so a tool that knows etcd's layout reads ours:
 * - key: the lease id as 8 bytes big-endian two's complement (negative ids sort after positive ones);
 * - value: the protobuf message `leasepb.Lease { int64 ID = 1; int64 TTL = 2; int64 RemainingTTL = 3; }`,
 *   zero fields omitted as proto3 does.
 *
 * Every member writes the same bytes for the same applied entries, which Maintenance.Hash relies on.
 */

export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;

export interface LeaseRow {
  id: bigint;
  /** Granted TTL in seconds (already raised to the minimum when granted). */
  ttlSeconds: number;
  /** Last checkpointed remaining TTL in seconds; 0 when none. */
  remainingTtlSeconds: number;
}

const ID_KEY_BYTES = 8;
/** An int64 varint takes at most 10 bytes; a row holds three of them plus one tag byte each. */
const ROW_BYTES_MAX = 3 * (1 + 10);
const WIRE_VARINT = 0;

export function isInt64(id: bigint): boolean {
  return id >= INT64_MIN && id <= INT64_MAX;
}

export function leaseIdKey(id: bigint): Uint8Array {
  assert(isInt64(id), "a lease id is an int64");
  const key = new Uint8Array(ID_KEY_BYTES);
  new DataView(key.buffer).setBigUint64(0, BigInt.asUintN(64, id));
  return key;
}

export function leaseIdFromKey(key: Uint8Array): bigint {
  assert(key.length === ID_KEY_BYTES, "a lease key holds 8 bytes");
  return new DataView(key.buffer, key.byteOffset, ID_KEY_BYTES).getBigInt64(0);
}

export function encodeLeaseRow(row: LeaseRow): Uint8Array {
  assert(Number.isSafeInteger(row.ttlSeconds), "a lease TTL is an integer");
  assert(Number.isSafeInteger(row.remainingTtlSeconds), "a remaining TTL is an integer");
  const scratch = new Uint8Array(ROW_BYTES_MAX);
  let offset = 0;
  offset = writeField(scratch, offset, 1, row.id);
  offset = writeField(scratch, offset, 2, BigInt(row.ttlSeconds));
  offset = writeField(scratch, offset, 3, BigInt(row.remainingTtlSeconds));
  return scratch.slice(0, offset);
}

export function decodeLeaseRow(bytes: Uint8Array): LeaseRow {
  const row: LeaseRow = { id: 0n, ttlSeconds: 0, remainingTtlSeconds: 0 };
  let offset = 0;
  while (offset < bytes.length) {
    const tag = bytes[offset++] as number;
    assert(tag < 0x80 && (tag & 7) === WIRE_VARINT, `lease row: unexpected tag ${tag}`);
    const [value, next] = readVarint(bytes, offset);
    offset = next;
    const signed = BigInt.asIntN(64, value);
    switch (tag >> 3) {
      case 1:
        row.id = signed;
        break;
      case 2:
        row.ttlSeconds = toSafeNumber(signed);
        break;
      case 3:
        row.remainingTtlSeconds = toSafeNumber(signed);
        break;
      default:
        // A field a later version added: skipped, as protobuf readers do.
        break;
    }
  }
  return row;
}

function toSafeNumber(value: bigint): number {
  const n = Number(value);
  assert(Number.isSafeInteger(n), `lease row: ${value} is not a safe integer`);
  return n;
}

function writeField(out: Uint8Array, offset: number, field: number, value: bigint): number {
  if (value === 0n) return offset;
  out[offset++] = (field << 3) | WIRE_VARINT;
  // int64 fields encode negative values as their 64-bit two's complement: 10 bytes.
  let rest = BigInt.asUintN(64, value);
  while (rest >= 0x80n) {
    out[offset++] = Number(rest & 0x7fn) | 0x80;
    rest >>= 7n;
  }
  out[offset++] = Number(rest);
  return offset;
}

function readVarint(bytes: Uint8Array, offset: number): [bigint, number] {
  let value = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    assert(offset < bytes.length, "lease row: truncated varint");
    const byte = bytes[offset++] as number;
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [BigInt.asUintN(64, value), offset];
  }
  throw new AssertionError("lease row: varint longer than 10 bytes");
}
