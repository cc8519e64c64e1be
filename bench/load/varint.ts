import { assert } from "../../src/assert.js";

/**
 * Go's `binary.PutVarint` (zig-zag, then base-128 little-endian groups), which `etcdctl check perf`
 * uses to write a random int63 into the start of its reused 256-byte key buffer.
 *
 * Two forms: `putVarint` takes any int64 as a bigint (the reference, used by tests and cold paths);
 * `putZigZagInt63Parts` takes a non-negative int63 as two uint32 halves so the per-request path
 * allocates no bigint.
 */

/** Longest encoding of a 64-bit varint, in bytes. */
export const varintLengthMaxBytes = 10;

const int64Min = -(1n << 63n);
const int64Max = (1n << 63n) - 1n;
const uint64Mask = (1n << 64n) - 1n;

/** Writes `value` at `offset` exactly as Go's binary.PutVarint does; returns the bytes written. */
export function putVarint(buf: Uint8Array, offset: number, value: bigint): number {
  assert(value >= int64Min && value <= int64Max, `putVarint: ${value} is not an int64`);
  let zigZag = (value << 1n) & uint64Mask;
  if (value < 0n) zigZag = ~zigZag & uint64Mask;
  let index = offset;
  while (zigZag >= 0x80n) {
    buf[index++] = Number(zigZag & 0x7fn) | 0x80;
    zigZag >>= 7n;
  }
  buf[index++] = Number(zigZag);
  return index - offset;
}

/**
 * Writes the zig-zag varint of the non-negative int63 `high * 2^32 + low` at `offset`; returns the
 * bytes written. Zig-zag of x >= 0 is x << 1, done here on the two 32-bit halves.
 */
export function putZigZagInt63Parts(buf: Uint8Array, offset: number, high: number, low: number): number {
  assert(high >= 0 && high <= 0x7fffffff && low >= 0 && low <= 0xffffffff, "putZigZagInt63Parts: bad halves");
  let zigZagLow = (low << 1) >>> 0;
  let zigZagHigh = ((high << 1) | (low >>> 31)) >>> 0;
  let index = offset;
  while (zigZagHigh !== 0 || zigZagLow >= 0x80) {
    buf[index++] = (zigZagLow & 0x7f) | 0x80;
    zigZagLow = ((zigZagLow >>> 7) | (zigZagHigh << 25)) >>> 0;
    zigZagHigh >>>= 7;
  }
  buf[index++] = zigZagLow;
  return index - offset;
}

/** Zig-zag varint of a non-negative safe integer (sequential and random keys of the put workloads). */
export function putZigZagSafeInteger(buf: Uint8Array, offset: number, value: number): number {
  assert(
    Number.isSafeInteger(value) && value >= 0,
    `putZigZagSafeInteger: ${value} is not a safe integer >= 0`,
  );
  return putZigZagInt63Parts(buf, offset, Math.floor(value / 0x100000000), value >>> 0);
}

/**
 * Writes the varint of a uniformly random int63 in [0, 2^63 - 1), like Go's
 * `rand.Int63n(math.MaxInt64)`. Math.random is good enough: the keys only need to be spread out.
 */
export function putRandomInt63(buf: Uint8Array, offset: number): number {
  for (;;) {
    const high = Math.floor(Math.random() * 0x80000000);
    const low = Math.floor(Math.random() * 0x100000000);
    // Int63n(MaxInt64) never yields MaxInt64 itself.
    if (high === 0x7fffffff && low === 0xffffffff) continue;
    return putZigZagInt63Parts(buf, offset, high, low);
  }
}
