import { assert } from "../../src/assert.js";

/**
 * The few etcd v3 protobuf messages the bench sends and reads, encoded by hand.
 *
 * The hot path needs this anyway: a PutRequest is laid out once per client as a template whose key
 * bytes are patched in place per request (see `PutRequestTemplate`), so the generator spends its CPU
 * on the wire, not on building message objects. The cold-path messages (pre-check, cleanup, compact,
 * watch and lease setup) reuse the same small writer; field numbers are from spec/etcd-v3-api.md §3.
 */

const wireVarint = 0;
const wireLengthDelimited = 2;

/** Bytes of the base-128 varint of a non-negative safe integer. */
export function varintSize(value: number): number {
  assert(Number.isSafeInteger(value) && value >= 0, `varintSize: ${value}`);
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** A growable byte writer for cold-path messages (allocation here is fine: once per run or per setup). */
export class ProtoWriter {
  private bytes: number[] = [];

  varint(value: number | bigint): this {
    let remaining = BigInt.asUintN(64, BigInt(value));
    while (remaining >= 0x80n) {
      this.bytes.push(Number(remaining & 0x7fn) | 0x80);
      remaining >>= 7n;
    }
    this.bytes.push(Number(remaining));
    return this;
  }

  tag(field: number, wireType: number): this {
    return this.varint(field * 8 + wireType);
  }

  /** A varint field, omitted at its default (0 / false), as proto3 encoders do. */
  uint(field: number, value: number | bigint | boolean): this {
    const numeric = typeof value === "boolean" ? (value ? 1 : 0) : value;
    if (numeric === 0 || numeric === 0n) return this;
    return this.tag(field, wireVarint).varint(numeric);
  }

  bytesField(field: number, value: Uint8Array | string): this {
    const data = typeof value === "string" ? Buffer.from(value) : value;
    if (data.length === 0) return this;
    this.tag(field, wireLengthDelimited).varint(data.length);
    for (const byte of data) this.bytes.push(byte);
    return this;
  }

  /** A nested message field, written even when empty (presence matters for oneofs). */
  message(field: number, inner: ProtoWriter): this {
    const data = inner.finish();
    this.tag(field, wireLengthDelimited).varint(data.length);
    for (const byte of data) this.bytes.push(byte);
    return this;
  }

  finish(): Buffer {
    return Buffer.from(this.bytes);
  }
}

/** etcd's "prefix end": the key range [prefix, prefixEnd(prefix)) holds every key with the prefix. */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index--) {
    if (end[index]! < 0xff) {
      end[index]! += 1;
      return end.subarray(0, index + 1);
    }
  }
  // All 0xff (or empty): etcd's convention is "\0", meaning every key from `prefix` on.
  return Buffer.from([0]);
}

export interface RangeRequestFields {
  key: Uint8Array | string;
  rangeEnd?: Uint8Array | string;
  limit?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export function encodeRangeRequest(request: RangeRequestFields): Buffer {
  return new ProtoWriter()
    .bytesField(1, request.key)
    .bytesField(2, request.rangeEnd ?? "")
    .uint(3, request.limit ?? 0)
    .uint(7, request.serializable ?? false)
    .uint(8, request.keysOnly ?? false)
    .uint(9, request.countOnly ?? false)
    .finish();
}

export function encodePutRequest(key: Uint8Array | string, value: Uint8Array | string): Buffer {
  return new ProtoWriter().bytesField(1, key).bytesField(2, value).finish();
}

export function encodeDeleteRangeRequest(key: Uint8Array | string, rangeEnd: Uint8Array | string): Buffer {
  return new ProtoWriter().bytesField(1, key).bytesField(2, rangeEnd).finish();
}

export function encodeCompactionRequest(revision: number, physical: boolean): Buffer {
  return new ProtoWriter().uint(1, revision).uint(2, physical).finish();
}

/** A Txn with no compares whose success branch is `puts` (the txn-put workload). */
export function encodeTxnPutRequest(puts: ReadonlyArray<{ key: Uint8Array; value: Uint8Array }>): Buffer {
  const txn = new ProtoWriter();
  for (const put of puts) {
    const requestOp = new ProtoWriter().message(
      2,
      new ProtoWriter().bytesField(1, put.key).bytesField(2, put.value),
    );
    txn.message(2, requestOp);
  }
  return txn.finish();
}

export function encodeWatchCreateRequest(key: Uint8Array | string, prevKv: boolean): Buffer {
  const create = new ProtoWriter().bytesField(1, key).uint(6, prevKv);
  return new ProtoWriter().message(1, create).finish();
}

export function encodeLeaseGrantRequest(ttlSeconds: number): Buffer {
  return new ProtoWriter().uint(1, ttlSeconds).finish();
}

export function encodeLeaseKeepAliveRequest(leaseId: bigint): Buffer {
  return new ProtoWriter().uint(1, leaseId).finish();
}

/** gRPC's length prefix: a compressed flag byte and a 4-byte big-endian length (gRPC over HTTP/2 spec). */
export const grpcFrameHeaderBytes = 5;

/**
 * A message with its gRPC length prefix in front: `framed` is what a raw HTTP/2 stream sends, and
 * `message` (a view into the same memory, after the prefix) is what grpc-js takes and frames itself.
 * Patching `message` patches both.
 */
export class FramedMessage {
  readonly message: Buffer;

  constructor(readonly framed: Buffer) {
    assert(framed.length >= grpcFrameHeaderBytes, "FramedMessage: shorter than its prefix");
    this.message = framed.subarray(grpcFrameHeaderBytes);
  }

  static of(message: Uint8Array): FramedMessage {
    const framed = Buffer.alloc(grpcFrameHeaderBytes + message.length);
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, grpcFrameHeaderBytes);
    return new FramedMessage(framed);
  }

  clone(): FramedMessage {
    return new FramedMessage(Buffer.from(this.framed));
  }
}

/**
 * A PutRequest laid out once (field 1 key = prefix + keySuffixBytes, field 2 value), so each request
 * only rewrites the key suffix in place. Offsets are fixed because the key length never changes.
 */
export class PutRequestTemplate {
  private constructor(
    readonly frame: FramedMessage,
    /** Where the key's suffix (the bytes after the prefix) starts in `frame.message`. */
    readonly keySuffixOffset: number,
    readonly keySuffixBytes: number,
  ) {}

  /** The encoded PutRequest (a view into `frame.framed`). */
  get buffer(): Buffer {
    return this.frame.message;
  }

  static build(prefix: Uint8Array, keySuffixBytes: number, value: Uint8Array): PutRequestTemplate {
    const keyBytes = prefix.length + keySuffixBytes;
    assert(keyBytes > 0, "PutRequestTemplate: empty key");
    const size =
      1 +
      varintSize(keyBytes) +
      keyBytes +
      (value.length === 0 ? 0 : 1 + varintSize(value.length) + value.length);
    const buffer = Buffer.alloc(size);
    let offset = 0;
    buffer[offset++] = (1 << 3) | wireLengthDelimited;
    offset = writeVarintAt(buffer, offset, keyBytes);
    buffer.set(prefix, offset);
    offset += prefix.length;
    const keySuffixOffset = offset;
    offset += keySuffixBytes;
    if (value.length > 0) {
      buffer[offset++] = (2 << 3) | wireLengthDelimited;
      offset = writeVarintAt(buffer, offset, value.length);
      buffer.set(value, offset);
      offset += value.length;
    }
    assert(offset === size, "PutRequestTemplate: layout size mismatch");
    return new PutRequestTemplate(FramedMessage.of(buffer), keySuffixOffset, keySuffixBytes);
  }

  /** A copy with its own memory, for a client whose previous request may still be referenced. */
  clone(): PutRequestTemplate {
    return new PutRequestTemplate(this.frame.clone(), this.keySuffixOffset, this.keySuffixBytes);
  }
}

function writeVarintAt(buffer: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    buffer[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buffer[offset++] = value;
  return offset;
}

// ---- reading ------------------------------------------------------------------------------------

/** One decoded field: varints as bigint (int64 fields), length-delimited as a view into the input. */
export type ProtoField =
  | { field: number; wireType: 0; value: bigint }
  | { field: number; wireType: 2; value: Uint8Array }
  | { field: number; wireType: 1 | 5; value: Uint8Array };

export class ProtoDecodeError extends Error {
  override readonly name = "ProtoDecodeError";
  readonly code = "BENCH_PROTO_DECODE";
}

function readVarint(data: Uint8Array, offset: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let index = offset; index < data.length && shift < 70n; index++) {
    const byte = data[index]!;
    result |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [BigInt.asUintN(64, result), index + 1];
    shift += 7n;
  }
  throw new ProtoDecodeError("truncated or overlong varint");
}

/** Every top-level field of a message, in wire order (cold path: setup and verification only). */
export function readFields(data: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let offset = 0;
  while (offset < data.length) {
    const [key, afterKey] = readVarint(data, offset);
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    offset = afterKey;
    if (wireType === wireVarint) {
      const [value, next] = readVarint(data, offset);
      fields.push({ field, wireType: 0, value });
      offset = next;
    } else if (wireType === wireLengthDelimited) {
      const [length, next] = readVarint(data, offset);
      const end = next + Number(length);
      if (end > data.length) throw new ProtoDecodeError("length-delimited field runs past the end");
      fields.push({ field, wireType: 2, value: data.subarray(next, end) });
      offset = end;
    } else if (wireType === 1 || wireType === 5) {
      const end = offset + (wireType === 1 ? 8 : 4);
      if (end > data.length) throw new ProtoDecodeError("fixed field runs past the end");
      fields.push({ field, wireType, value: data.subarray(offset, end) });
      offset = end;
    } else {
      throw new ProtoDecodeError(`unsupported wire type ${wireType}`);
    }
  }
  return fields;
}

function varintField(fields: readonly ProtoField[], field: number): bigint {
  let value = 0n;
  for (const entry of fields) if (entry.field === field && entry.wireType === 0) value = entry.value;
  return value;
}

function messageFields(fields: readonly ProtoField[], field: number): Uint8Array[] {
  const result: Uint8Array[] = [];
  for (const entry of fields) if (entry.field === field && entry.wireType === 2) result.push(entry.value);
  return result;
}

/** The ResponseHeader's revision, from any response whose field 1 is the header. */
export function readHeaderRevision(response: Uint8Array): bigint {
  const header = messageFields(readFields(response), 1)[0];
  return header === undefined ? 0n : BigInt.asIntN(64, varintField(readFields(header), 3));
}

export interface RangeResponseSummary {
  revision: bigint;
  kvCount: number;
  count: bigint;
}

export function readRangeResponse(response: Uint8Array): RangeResponseSummary {
  const fields = readFields(response);
  const header = messageFields(fields, 1)[0];
  return {
    revision: header === undefined ? 0n : BigInt.asIntN(64, varintField(readFields(header), 3)),
    kvCount: messageFields(fields, 2).length,
    count: varintField(fields, 4),
  };
}

export function readDeleteRangeDeleted(response: Uint8Array): bigint {
  return varintField(readFields(response), 2);
}

export interface LeaseGrantSummary {
  id: bigint;
  ttlSeconds: bigint;
  error: string;
}

export function readLeaseGrantResponse(response: Uint8Array): LeaseGrantSummary {
  const fields = readFields(response);
  const error = messageFields(fields, 4)[0];
  return {
    id: BigInt.asIntN(64, varintField(fields, 2)),
    ttlSeconds: varintField(fields, 3),
    error: error === undefined ? "" : Buffer.from(error).toString(),
  };
}

export interface WatchResponseSummary {
  watchId: bigint;
  created: boolean;
  canceled: boolean;
  cancelReason: string;
  eventCount: number;
}

export function readWatchResponse(response: Uint8Array): WatchResponseSummary {
  const fields = readFields(response);
  const reason = messageFields(fields, 6)[0];
  return {
    watchId: BigInt.asIntN(64, varintField(fields, 2)),
    created: varintField(fields, 3) !== 0n,
    canceled: varintField(fields, 4) !== 0n,
    cancelReason: reason === undefined ? "" : Buffer.from(reason).toString(),
    eventCount: messageFields(fields, 11).length,
  };
}

/**
 * A TxnRequest with no compares whose success branch is `ops` puts of fixed-size keys, laid out once;
 * `keySuffixOffsets[j]` is where put j's key suffix starts, patched in place per request.
 */
export class TxnPutTemplate {
  private constructor(
    readonly frame: FramedMessage,
    /** Where put j's key suffix starts in `frame.message`. */
    readonly keySuffixOffsets: readonly number[],
  ) {}

  /** The encoded TxnRequest (a view into `frame.framed`). */
  get buffer(): Buffer {
    return this.frame.message;
  }

  static build(prefix: Uint8Array, keySuffixBytes: number, value: Uint8Array, ops: number): TxnPutTemplate {
    assert(ops >= 1, "TxnPutTemplate: at least one op");
    const put = PutRequestTemplate.build(prefix, keySuffixBytes, value);
    const requestOpBytes = 1 + varintSize(put.buffer.length) + put.buffer.length;
    const entryBytes = 1 + varintSize(requestOpBytes) + requestOpBytes;
    const buffer = Buffer.alloc(entryBytes * ops);
    const offsets: number[] = [];
    let offset = 0;
    for (let op = 0; op < ops; op++) {
      // TxnRequest.success (field 2) = RequestOp { request_put (field 2) = PutRequest }.
      buffer[offset++] = (2 << 3) | wireLengthDelimited;
      offset = writeVarintAt(buffer, offset, requestOpBytes);
      buffer[offset++] = (2 << 3) | wireLengthDelimited;
      offset = writeVarintAt(buffer, offset, put.buffer.length);
      offsets.push(offset + put.keySuffixOffset);
      put.buffer.copy(buffer, offset);
      offset += put.buffer.length;
    }
    assert(offset === buffer.length, "TxnPutTemplate: layout size mismatch");
    return new TxnPutTemplate(FramedMessage.of(buffer), offsets);
  }

  clone(): TxnPutTemplate {
    return new TxnPutTemplate(this.frame.clone(), this.keySuffixOffsets);
  }
}
