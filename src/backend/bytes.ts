/**
 * Byte keys as "latin1" strings: char code i is byte i. JavaScript compares such strings exactly like
 * etcd compares keys (bytewise, a shorter prefix first), and V8 stores them one byte per char, so the
 * in-memory indexes key their maps by these strings instead of by Uint8Array.
 */

/**
 * Node's native latin1 decoder, called on any Uint8Array: building a Buffer view first to call
 * `toString("latin1")` costs more than the decoding for short keys (measured ~0.4 µs against ~0.1 µs).
 */
const latin1Slice = (
  Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }
).latin1Slice;

/** The latin1 string of `bytes` (a copy; `bytes` may be reused afterwards). */
export function bytesToLatin1(bytes: Uint8Array): string {
  return latin1Slice.call(bytes, 0, bytes.length);
}

/** The bytes of a latin1 string, in a new buffer the caller owns. */
export function latin1ToBytes(text: string): Buffer {
  return Buffer.from(text, "latin1");
}

/** Bytewise comparison (memcmp order, a shorter prefix first): negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/** Reads a big-endian unsigned 64-bit integer that must be below 2^53. */
export function readUint53(view: DataView, offset: number): number {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  if (high > 0x1fffff) throw new RangeError(`64-bit value at ${offset} exceeds 2^53`);
  return high * 0x1_0000_0000 + low;
}

/** Writes a big-endian unsigned 64-bit integer from a safe non-negative integer. */
export function writeUint53(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / 0x1_0000_0000));
  view.setUint32(offset + 4, value >>> 0);
}
