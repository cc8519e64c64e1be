import { assert } from "../../src/assert.js";
import { etcdserverpb } from "../../src/proto/index.js";

/**
 * The etcd v3 messages the bench sends and reads.
 *
 * Setup and cleanup messages go through the project's generated codecs (src/proto). The hot path
 * lays a PutRequest or TxnRequest out once per client as a template whose key bytes are patched in
 * place per request (`PutRequestTemplate`, `TxnPutTemplate`), so the generator spends its CPU on the
 * wire, not on building message objects; tests check the templates against the generated decoders.
 */

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

function bytes(value: Uint8Array | string): Uint8Array {
  return typeof value === "string" ? Buffer.from(value) : value;
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
  return etcdserverpb.RangeRequest.encode({
    key: bytes(request.key),
    rangeEnd: bytes(request.rangeEnd ?? ""),
    limit: request.limit ?? 0,
    serializable: request.serializable ?? false,
    keysOnly: request.keysOnly ?? false,
    countOnly: request.countOnly ?? false,
  });
}

export function encodePutRequest(key: Uint8Array | string, value: Uint8Array | string): Buffer {
  return etcdserverpb.PutRequest.encode({ key: bytes(key), value: bytes(value) });
}

export function encodeDeleteRangeRequest(key: Uint8Array | string, rangeEnd: Uint8Array | string): Buffer {
  return etcdserverpb.DeleteRangeRequest.encode({ key: bytes(key), rangeEnd: bytes(rangeEnd) });
}

export function encodeCompactionRequest(revision: number, physical: boolean): Buffer {
  return etcdserverpb.CompactionRequest.encode({ revision, physical });
}

export function encodeWatchCreateRequest(key: Uint8Array | string, prevKv: boolean): Buffer {
  return etcdserverpb.WatchRequest.encode({
    requestUnion: { case: "createRequest", value: { key: bytes(key), prevKv } },
  });
}

export function encodeLeaseGrantRequest(ttlSeconds: number): Buffer {
  return etcdserverpb.LeaseGrantRequest.encode({ TTL: ttlSeconds });
}

export function encodeLeaseKeepAliveRequest(leaseId: bigint): Buffer {
  return etcdserverpb.LeaseKeepAliveRequest.encode({ ID: leaseId });
}

export function encodeLeaseRevokeRequest(leaseId: bigint): Buffer {
  return etcdserverpb.LeaseRevokeRequest.encode({ ID: leaseId });
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

// ---- reading (cold path: setup, cleanup, watch and lease answers) ---------------------------------

export interface RangeResponseSummary {
  revision: number;
  kvCount: number;
  count: number;
}

export function readRangeResponse(response: Uint8Array): RangeResponseSummary {
  const decoded = etcdserverpb.RangeResponse.decode(response);
  return { revision: decoded.header?.revision ?? 0, kvCount: decoded.kvs.length, count: decoded.count };
}

export function readDeleteRangeResponse(response: Uint8Array): { revision: number; deleted: number } {
  const decoded = etcdserverpb.DeleteRangeResponse.decode(response);
  return { revision: decoded.header?.revision ?? 0, deleted: decoded.deleted };
}

export interface LeaseGrantSummary {
  id: bigint;
  ttlSeconds: number;
  error: string;
}

export function readLeaseGrantResponse(response: Uint8Array): LeaseGrantSummary {
  const decoded = etcdserverpb.LeaseGrantResponse.decode(response);
  return { id: decoded.ID, ttlSeconds: decoded.TTL, error: decoded.error };
}

/** TTL of a LeaseKeepAliveResponse: 0 means the lease was not found. */
export function readLeaseKeepAliveTtl(response: Uint8Array): number {
  return etcdserverpb.LeaseKeepAliveResponse.decode(response).TTL;
}

export interface WatchResponseSummary {
  watchId: number;
  created: boolean;
  canceled: boolean;
  cancelReason: string;
  eventCount: number;
}

export function readWatchResponse(response: Uint8Array): WatchResponseSummary {
  const decoded = etcdserverpb.WatchResponse.decode(response);
  return {
    watchId: decoded.watchId,
    created: decoded.created,
    canceled: decoded.canceled,
    cancelReason: decoded.cancelReason,
    eventCount: decoded.events.length,
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

export interface StatusSummary {
  /** The answering member's id (from the response header). */
  memberId: bigint;
  /** The leader as that member sees it; 0n when it knows none. */
  leaderId: bigint;
  raftTerm: number;
  isLearner: boolean;
}

/** The fields of a Maintenance.Status answer the cluster bench reads to find the leader. */
export function readStatusResponse(response: Uint8Array): StatusSummary {
  const decoded = etcdserverpb.StatusResponse.decode(response);
  return {
    memberId: decoded.header?.memberId ?? 0n,
    leaderId: decoded.leader,
    raftTerm: decoded.raftTerm,
    isLearner: decoded.isLearner,
  };
}
