/**
 * The protobuf wire runtime under the generated codecs in ./gen (see ./README.md for the design).
 *
 * Encoding is two passes over the message, as Go's generated code does with its size cache: the size
 * pass computes every nested message's and string's byte length once, in pre-order, into SIZE_CACHE;
 * the write pass consumes them in the same order into one exact-size Buffer. No intermediate buffers,
 * no per-field objects. Neither pass can call user code, so one module-level cache serves every encode
 * on this thread.
 *
 * Decoding reads from one Uint8Array; `bytes` fields come back as zero-copy `subarray` views of it (so
 * the input must not be reused while a decoded message is alive: grpc-js hands each message its own
 * Buffer, which is what makes this safe).
 */
import { assert } from "../assert.js";

/**
 * Bad bytes on the wire: a typed error with a stable code, never an assertion. Messages are the texts
 * etcd's gogo-generated Unmarshal methods return for the same input (`unexpected EOF`, `proto: integer
 * overflow`, `proto: wrong wireType = 0 for field Key`, ...), since etcd sends them to the client inside
 * `grpc: error unmarshalling request: ...`.
 */
export class ProtoDecodeError extends Error {
  override readonly name = "ProtoDecodeError";
  readonly code = "ERR_PROTO_DECODE";
}

/** Go's io.ErrUnexpectedEOF: gogo's answer to every truncation and every length that overruns. */
const UNEXPECTED_EOF = "unexpected EOF";

/**
 * What a generated reader passes for the fields it does not decode itself: the Go names gogo's error
 * texts use. `message`: the Go type name (`PutRequest`, nested types joined with `_`); `fields`: field
 * number -> Go field name (`range_end` -> `RangeEnd`), for every field the message declares.
 */
export interface FieldNames {
  readonly message: string;
  readonly fields: Readonly<Record<number, string>>;
}

const TWO_POW_32 = 4294967296;
/** Nested-message depth a decoder follows before refusing (TxnRequest can nest itself). */
export const DECODE_DEPTH_MAX = 100;
/** Entries (nested messages + strings) one message may need in the size cache: 16M, about 64 MiB. */
export const SIZE_CACHE_ENTRIES_MAX = 1 << 24;
const SIZE_CACHE_ENTRIES_INITIAL = 1024;
/** Strings up to this many UTF-16 units are measured in JS; longer ones natively. */
const SHORT_STRING_UNITS_MAX = 64;

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

// ---- size cache (module-level: encoding is synchronous and not re-entrant) ----

let sizeCache = new Int32Array(SIZE_CACHE_ENTRIES_INITIAL);
let sizeCacheCount = 0;
let sizeCacheNext = 0;

export function sizeCacheReset(): void {
  sizeCacheCount = 0;
  sizeCacheNext = 0;
}

/** Reserves a slot in pre-order; fill it with sizeCacheSet once the nested size is known. */
export function sizeCacheReserve(): number {
  if (sizeCacheCount === sizeCache.length) growSizeCache();
  return sizeCacheCount++;
}

export function sizeCacheSet(slot: number, sizeBytes: number): void {
  sizeCache[slot] = sizeBytes;
}

/** The write pass takes sizes back in the order the size pass reserved them. */
export function sizeCacheTake(): number {
  assert(sizeCacheNext < sizeCacheCount, "size cache underrun: message changed between size and write");
  return sizeCache[sizeCacheNext++]!;
}

function growSizeCache(): void {
  if (sizeCache.length >= SIZE_CACHE_ENTRIES_MAX) {
    throw new RangeError(`message needs more than ${SIZE_CACHE_ENTRIES_MAX} nested messages and strings`);
  }
  const grown = new Int32Array(Math.min(sizeCache.length * 2, SIZE_CACHE_ENTRIES_MAX));
  grown.set(sizeCache);
  sizeCache = grown;
}

// ---- sizes ----

export function varint32Size(value: number): number {
  const v = value >>> 0;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** int32 and enum values: negatives take ten bytes (sign-extended to 64 bits, as Go writes them). */
export function int32Size(value: number): number {
  return value < 0 ? 10 : varint32Size(value);
}

function varint64SizeParts(lo: number, hi: number): number {
  if (hi === 0) return varint32Size(lo);
  if (hi < 0x8) return 5;
  if (hi < 0x400) return 6;
  if (hi < 0x20000) return 7;
  if (hi < 0x1000000) return 8;
  if (hi < 0x80000000) return 9;
  return 10;
}

// Split scratch: the lo/hi 32-bit halves of the last 64-bit value split (no allocation).
let splitLo = 0;
let splitHi = 0;

function splitNumber(value: number): void {
  assert(Number.isInteger(value), "64-bit field given a non-integer number");
  const magnitude = value < 0 ? -value : value;
  let lo = (magnitude % TWO_POW_32) >>> 0;
  let hi = Math.floor(magnitude / TWO_POW_32) >>> 0;
  if (value < 0) {
    // Two's complement of the 64-bit magnitude.
    lo = ~lo + 1;
    hi = ~hi + (lo === 0 ? 1 : 0);
    lo >>>= 0;
    hi >>>= 0;
  }
  splitLo = lo;
  splitHi = hi;
}

// The same ids (cluster_id, member_id) go out in every response header, each split once in the size
// pass and once in the write pass: remember the last two splits so that costs no BigInt arithmetic.
let memoBigA = 0n;
let memoLoA = 0;
let memoHiA = 0;
let memoBigB = 0n;
let memoLoB = 0;
let memoHiB = 0;

function splitBigint(value: bigint): void {
  if (value === memoBigA) {
    splitLo = memoLoA;
    splitHi = memoHiA;
    return;
  }
  if (value !== memoBigB) {
    const v = BigInt.asUintN(64, value);
    memoLoB = Number(v & 0xffffffffn);
    memoHiB = Number(v >> 32n);
    memoBigB = value;
  }
  splitLo = memoLoB;
  splitHi = memoHiB;
  // Promote the hit to A, keeping the two most recent distinct values.
  memoBigB = memoBigA;
  memoLoB = memoLoA;
  memoHiB = memoHiA;
  memoBigA = value;
  memoLoA = splitLo;
  memoHiA = splitHi;
}

/** Varint size of an int64/uint64 held as a number (negative: two's complement, ten bytes). */
export function int64NumberSize(value: number): number {
  // (value | 0) === value: a non-negative int32, so no fraction and no NaN on the fast path.
  if ((value | 0) === value && value >= 0) return varint32Size(value);
  splitNumber(value);
  return varint64SizeParts(splitLo, splitHi);
}

/** Varint size of an int64/uint64 held as a bigint (either signedness: two's complement). */
export function int64BigintSize(value: bigint): number {
  if (value >= 0n && value < 0x80000000n) return varint32Size(Number(value));
  splitBigint(value);
  return varint64SizeParts(splitLo, splitHi);
}

/** UTF-8 length as Buffer.write produces it (a lone surrogate becomes U+FFFD, three bytes). */
export function utf8Length(value: string): number {
  const units = value.length;
  if (units > SHORT_STRING_UNITS_MAX) return Buffer.byteLength(value, "utf8");
  let bytes = 0;
  for (let i = 0; i < units; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

// ---- writer ----

/** Writes into one Buffer sized by the size pass; it never grows. */
export class Writer {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;

  reset(buf: Buffer, pos: number): void {
    this.buf = buf;
    this.pos = pos;
  }

  uint32(value: number): void {
    let v = value >>> 0;
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  int32(value: number): void {
    if (value < 0) this.varint64(value >>> 0, 0xffffffff);
    else this.uint32(value);
  }

  varint64(lo: number, hi: number): void {
    const buf = this.buf;
    while (hi !== 0) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.uint32(lo);
  }

  int64Number(value: number): void {
    if ((value | 0) === value && value >= 0) {
      this.uint32(value);
      return;
    }
    splitNumber(value);
    this.varint64(splitLo, splitHi);
  }

  int64Bigint(value: bigint): void {
    if (value >= 0n && value < 0x80000000n) {
      this.uint32(Number(value));
      return;
    }
    splitBigint(value);
    this.varint64(splitLo, splitHi);
  }

  bool(value: boolean): void {
    this.buf[this.pos++] = value ? 1 : 0;
  }

  bytes(value: Uint8Array): void {
    this.uint32(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** `sizeBytes` is the UTF-8 length the size pass measured. */
  string(value: string, sizeBytes: number): void {
    this.uint32(sizeBytes);
    if (sizeBytes === value.length && sizeBytes <= SHORT_STRING_UNITS_MAX) {
      // ASCII (byte length equals unit count only when every unit is one byte).
      const buf = this.buf;
      let pos = this.pos;
      for (let i = 0; i < sizeBytes; i++) buf[pos++] = value.charCodeAt(i);
    } else {
      const written = this.buf.write(value, this.pos, sizeBytes, "utf8");
      assert(written === sizeBytes, "string byte length changed between size and write");
    }
    this.pos += sizeBytes;
  }
}

const SHARED_WRITER = new Writer();

/**
 * Runs a generated size/write pair: one exact-size Buffer per call (Buffer.allocUnsafe, so small
 * messages come from Node's shared pool).
 */
export function encodeWith<T>(message: T, size: (m: T) => number, write: (m: T, w: Writer) => void): Buffer {
  sizeCacheReset();
  const sizeBytes = size(message);
  const buf = Buffer.allocUnsafe(sizeBytes);
  SHARED_WRITER.reset(buf, 0);
  write(message, SHARED_WRITER);
  assert(SHARED_WRITER.pos === sizeBytes, "encoded size differs from the size pass");
  return buf;
}

/** Like encodeWith, into `target` at `offset`; answers the byte count. Throws before writing if short. */
export function encodeIntoWith<T>(
  message: T,
  target: Uint8Array,
  offset: number,
  size: (m: T) => number,
  write: (m: T, w: Writer) => void,
): number {
  sizeCacheReset();
  const sizeBytes = size(message);
  if (offset < 0 || offset + sizeBytes > target.length) {
    throw new RangeError(`encoded message needs ${sizeBytes} bytes at offset ${offset} of ${target.length}`);
  }
  const buf = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
  SHARED_WRITER.reset(buf, offset);
  write(message, SHARED_WRITER);
  assert(SHARED_WRITER.pos === offset + sizeBytes, "encoded size differs from the size pass");
  return sizeBytes;
}

// ---- reader ----

const utf8Decoder = new TextDecoder("utf-8");

export class Reader {
  buf: Uint8Array = EMPTY_BYTES;
  pos = 0;
  /** Nested messages currently being read (bounded by DECODE_DEPTH_MAX). */
  depth = 0;
  // Halves of the last varint64 read.
  lo = 0;
  hi = 0;

  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.pos = 0;
    this.depth = 0;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new ProtoDecodeError(UNEXPECTED_EOF);
    return this.buf[this.pos++]!;
  }

  /** A varint's low 32 bits as an unsigned number (tags, lengths, uint32). */
  uint32(): number {
    const buf = this.buf;
    const first = this.pos < buf.length ? buf[this.pos]! : 0x100;
    if (first < 0x80) {
      this.pos++;
      return first;
    }
    this.varint64();
    return this.lo;
  }

  /** int32 and enums: low 32 bits, signed. */
  int32(): number {
    return this.uint32() | 0;
  }

  /** Reads a varint of up to ten bytes into lo/hi. */
  varint64(): void {
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    // Byte 5 carries bits 28..34: four into lo, three into hi.
    b = this.byte();
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (let shift = 3; shift < 32; shift += 7) {
        b = this.byte();
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        // Ten bytes hold 64 bits; an eleventh is gogo's ErrIntOverflow.
        if (shift + 7 >= 32) throw new ProtoDecodeError("proto: integer overflow");
      }
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /**
   * int64 as a number. Values beyond 2^53 come back as the nearest double: monotone, so they stay
   * beyond every real revision, count or TTL (see README "64-bit fields").
   */
  int64Number(): number {
    this.varint64();
    const lo = this.lo;
    const hi = this.hi;
    if (hi < 0x80000000) return hi * TWO_POW_32 + lo;
    const negLo = (~lo + 1) >>> 0;
    const negHi = (~hi + (negLo === 0 ? 1 : 0)) >>> 0;
    return -(negHi * TWO_POW_32 + negLo);
  }

  uint64Number(): number {
    this.varint64();
    return this.hi * TWO_POW_32 + this.lo;
  }

  int64Bigint(): bigint {
    this.varint64();
    if (this.hi === 0) return BigInt(this.lo);
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  uint64Bigint(): bigint {
    this.varint64();
    if (this.hi === 0) return BigInt(this.lo);
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  bool(): boolean {
    const first = this.pos < this.buf.length ? this.buf[this.pos]! : 0x100;
    if (first < 0x80) {
      this.pos++;
      return first !== 0;
    }
    this.varint64();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** End offset of a length-delimited field whose length is next; checks it fits in `end`. */
  delimitedEnd(end: number): number {
    const buf = this.buf;
    const first = this.pos < buf.length ? buf[this.pos]! : 0x100;
    let length: number;
    if (first < 0x80) {
      this.pos++;
      length = first;
    } else {
      this.varint64();
      // Go reads the length as an int: from 2^63 it is negative; any length of 2^32 or more overruns.
      if (this.hi >= 0x80000000)
        throw new ProtoDecodeError("proto: negative length found during unmarshaling");
      if (this.hi !== 0) throw new ProtoDecodeError(UNEXPECTED_EOF);
      length = this.lo;
    }
    const fieldEnd = this.pos + length;
    if (fieldEnd > end) throw new ProtoDecodeError(UNEXPECTED_EOF);
    return fieldEnd;
  }

  /** A zero-copy view into the input. */
  bytes(end: number): Uint8Array {
    const fieldEnd = this.delimitedEnd(end);
    const start = this.pos;
    this.pos = fieldEnd;
    return start === fieldEnd ? EMPTY_BYTES : this.buf.subarray(start, fieldEnd);
  }

  string(end: number): string {
    const fieldEnd = this.delimitedEnd(end);
    const start = this.pos;
    this.pos = fieldEnd;
    if (fieldEnd - start <= SHORT_STRING_UNITS_MAX) {
      const buf = this.buf;
      let ascii = "";
      for (let i = start; i < fieldEnd; i++) {
        const c = buf[i]!;
        if (c >= 0x80) return utf8Decoder.decode(buf.subarray(start, fieldEnd));
        ascii += String.fromCharCode(c);
      }
      return ascii;
    }
    return utf8Decoder.decode(this.buf.subarray(start, fieldEnd));
  }

  enterMessage(): void {
    if (++this.depth > DECODE_DEPTH_MAX) {
      throw new ProtoDecodeError(`messages nested deeper than ${DECODE_DEPTH_MAX}`);
    }
  }

  leaveMessage(end: number): void {
    // Only a last field read past `end` gets here (gogo reads a nested message from its own slice).
    if (this.pos !== end) throw new ProtoDecodeError(UNEXPECTED_EOF);
    this.depth--;
  }

  /**
   * A field the generated reader has no case for. As gogo's Unmarshal: an end-group tag or field number 0
   * is an error, a declared field with another wire type is an error (`wrong wireType`), and only an
   * undeclared field is skipped, as proto3 requires.
   */
  unknown(tag: number, end: number, names: FieldNames): void {
    const wireType = tag & 7;
    const field = tag >>> 3;
    if (wireType === 4)
      throw new ProtoDecodeError(`proto: ${names.message}: wiretype end group for non-group`);
    // gogo prints the whole tag where it says "wire type".
    if (field === 0) throw new ProtoDecodeError(`proto: ${names.message}: illegal tag 0 (wire type ${tag})`);
    const name = names.fields[field];
    if (name !== undefined)
      throw new ProtoDecodeError(`proto: wrong wireType = ${wireType} for field ${name}`);
    this.skip(tag, end);
  }

  /** Skips one undeclared field (gogo's skip function: no field-number checks inside). */
  skip(tag: number, end: number): void {
    switch (tag & 7) {
      case 0:
        this.varint64();
        break;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.delimitedEnd(end);
        break;
      case 3:
        this.skipGroup(end);
        break;
      case 4:
        // Only reachable inside a group, which skipGroup ends itself.
        throw new ProtoDecodeError("proto: unexpected end of group");
      case 5:
        this.pos += 4;
        break;
      default:
        throw new ProtoDecodeError(`proto: illegal wireType ${tag & 7}`);
    }
    if (this.pos > end) throw new ProtoDecodeError(UNEXPECTED_EOF);
  }

  /**
   * Skips a group up to the next end-group tag, nested groups included. Like etcd 3.4's gogo, the end
   * tag's field number is not compared with the start's.
   */
  private skipGroup(end: number): void {
    this.enterMessage();
    for (;;) {
      if (this.pos >= end) throw new ProtoDecodeError(UNEXPECTED_EOF);
      const tag = this.uint32();
      if ((tag & 7) === 4) break;
      this.skip(tag, end);
    }
    this.depth--;
  }
}

const SHARED_READER = new Reader();

/** Runs a generated reader over a whole buffer (decode is synchronous, so one Reader serves all). */
export function decodeWith<T>(buf: Uint8Array, read: (r: Reader, end: number) => T): T {
  SHARED_READER.reset(buf);
  const message = read(SHARED_READER, buf.length);
  // A reader stops at `end` unless its last field ran past it (a fixed-width skip).
  if (SHARED_READER.pos !== buf.length) throw new ProtoDecodeError(UNEXPECTED_EOF);
  // Drop the reference so a large input is not kept alive by the shared reader.
  SHARED_READER.reset(EMPTY_BYTES);
  return message;
}

/** What every generated message codec offers (gen/*.ts: `etcdserverpb.PutRequest` etc.). */
export interface MessageType<T, TInit> {
  /** Fully-qualified protobuf name, e.g. "etcdserverpb.PutRequest". */
  readonly typeName: string;
  /** A complete message from a partial one (defaults filled in, nested messages created). */
  create(init?: TInit): T;
  /** Encodes into a new exact-size Buffer (proto3: default-valued fields are omitted). */
  encode(message: TInit): Buffer;
  /** Encodes into `target` at `offset`, answering the byte count; RangeError (nothing written) if short. */
  encodeInto(message: TInit, target: Uint8Array, offset: number): number;
  /** Decodes a whole buffer; `bytes` fields are views into it. Throws ProtoDecodeError on bad input. */
  decode(bytes: Uint8Array): T;
  /** @internal Size pass (fills the size cache), for codecs that embed this message. */
  $size(message: TInit): number;
  /** @internal Write pass (takes from the size cache). */
  $write(message: TInit, w: Writer): void;
  /** @internal Reads fields up to `end`, merging into `into` when given. */
  $read(r: Reader, end: number, into?: T): T;
}
