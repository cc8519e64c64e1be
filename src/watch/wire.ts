import { assert } from "../assert.js";

/**
 * Hand-written protobuf writing of the one message the watch fan-out sends in bulk, WatchResponse
 * (spec §3.3), straight into a caller's buffer (a ring frame or a send buffer): no object per event, no
 * intermediate Buffer. The worker and the main thread share it; src/proto's generated codec decodes
 * what it writes (test/watch/wire.test.ts checks that field by field).
 *
 * Layout of a response body as the fan-out builds it: header (1), fragment (7) when set, events (11),
 * and last the watcher's own watch_id (2), which the main thread appends per watcher so that one body
 * serves every watcher of a group. Protobuf allows fields in any order; proto3 defaults (0, false, empty
 * bytes, PUT) are left out, as Go's marshaller does.
 *
 * 64-bit fields: revisions and versions are numbers below 2^53; the lease id (int64, any value) travels
 * as two uint32 halves (`leaseLo`, `leaseHi`) so that neither thread builds a BigInt per event.
 */

const TWO_32 = 0x1_0000_0000;

/** Encoded length of an unsigned varint below 2^53. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let size = 4;
  let rest = Math.floor(value / 0x1000_0000);
  while (rest > 0) {
    size++;
    rest = Math.floor(rest / 0x80);
  }
  return size;
}

/** Writes an unsigned varint below 2^53 at `offset`; returns the offset after it. */
export function writeVarint(out: Uint8Array, offset: number, value: number): number {
  let v = value;
  let o = offset;
  while (v >= 0x80) {
    out[o++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[o++] = v;
  return o;
}

/** Encoded length of a 64-bit varint given as two uint32 halves (two's complement for negatives). */
export function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varintSize(lo >>> 0);
  // hi occupies bits 32..63: the size is that of the whole 64-bit number.
  let size = 5; // the low 35 bits take 5 bytes when anything above bit 32 is set
  let rest = hi >>> 3; // bits 35 and up
  while (rest !== 0) {
    size++;
    rest >>>= 7;
  }
  return size;
}

/** Writes a 64-bit varint from two uint32 halves; returns the offset after it. */
export function writeVarint64(out: Uint8Array, offset: number, lo: number, hi: number): number {
  let o = offset;
  let low = lo >>> 0;
  let high = hi >>> 0;
  while (high !== 0 || low >= 0x80) {
    out[o++] = (low & 0x7f) | 0x80;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  out[o++] = low;
  return o;
}

/** Splits a signed 64-bit integer given as a safe integer (watch ids) into uint32 halves. */
export function int53Halves(value: number): { lo: number; hi: number } {
  assert(Number.isSafeInteger(value), "a watch id is a safe integer");
  if (value >= 0) return { lo: value >>> 0, hi: Math.floor(value / TWO_32) >>> 0 };
  const magnitude = -value;
  let lo = (~(magnitude >>> 0) + 1) >>> 0;
  let hi = ~Math.floor(magnitude / TWO_32) >>> 0;
  if (lo === 0) hi = (hi + 1) >>> 0;
  lo >>>= 0;
  return { lo, hi };
}

/** Field tags (field number << 3 | wire type). */
const TAG_HEADER = 0x0a; // WatchResponse.header, length-delimited
const TAG_WATCH_ID = 0x10; // WatchResponse.watch_id, varint
const TAG_FRAGMENT = 0x38; // WatchResponse.fragment, varint
const TAG_EVENTS = 0x5a; // WatchResponse.events (11), length-delimited
const TAG_EVENT_TYPE = 0x08;
const TAG_EVENT_KV = 0x12;
const TAG_EVENT_PREV_KV = 0x1a;
const TAG_KV_KEY = 0x0a;
const TAG_KV_CREATE = 0x10;
const TAG_KV_MOD = 0x18;
const TAG_KV_VERSION = 0x20;
const TAG_KV_VALUE = 0x2a;
const TAG_KV_LEASE = 0x30;
const TAG_HEADER_CLUSTER = 0x08;
const TAG_HEADER_MEMBER = 0x10;
const TAG_HEADER_REVISION = 0x18;
const TAG_HEADER_TERM = 0x20;

/** The size of a length-delimited field holding `size` bytes. */
export function fieldSize(size: number): number {
  return 1 + varintSize(size) + size;
}

/** The fixed part of every header a member sends: cluster and member id, pre-encoded once. */
export class HeaderIds {
  readonly bytes: Uint8Array;

  constructor(clusterId: bigint, memberId: bigint) {
    const scratch = new Uint8Array(22);
    let o = 0;
    if (clusterId !== 0n) {
      scratch[o++] = TAG_HEADER_CLUSTER;
      o = writeVarint64(scratch, o, Number(clusterId & 0xffff_ffffn), Number(clusterId >> 32n));
    }
    if (memberId !== 0n) {
      scratch[o++] = TAG_HEADER_MEMBER;
      o = writeVarint64(scratch, o, Number(memberId & 0xffff_ffffn), Number(memberId >> 32n));
    }
    this.bytes = scratch.slice(0, o);
  }

  /** Size of the ResponseHeader message (without its field tag and length). */
  headerSize(revision: number, raftTerm: number): number {
    let size = this.bytes.length;
    if (revision !== 0) size += 1 + varintSize(revision);
    if (raftTerm !== 0) size += 1 + varintSize(raftTerm);
    return size;
  }

  /** Writes the `header` field (tag, length, message); returns the offset after it. */
  writeHeaderField(out: Uint8Array, offset: number, revision: number, raftTerm: number): number {
    let o = offset;
    out[o++] = TAG_HEADER;
    o = writeVarint(out, o, this.headerSize(revision, raftTerm));
    out.set(this.bytes, o);
    o += this.bytes.length;
    if (revision !== 0) {
      out[o++] = TAG_HEADER_REVISION;
      o = writeVarint(out, o, revision);
    }
    if (raftTerm !== 0) {
      out[o++] = TAG_HEADER_TERM;
      o = writeVarint(out, o, raftTerm);
    }
    return o;
  }
}

/** A KeyValue as the fan-out reads it: views, numbers and lease halves (no objects per field). */
export interface KvFields {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  leaseLo: number;
  leaseHi: number;
}

export function keyValueSize(kv: KvFields): number {
  let size = 0;
  if (kv.key.length > 0) size += fieldSize(kv.key.length);
  if (kv.createRevision !== 0) size += 1 + varintSize(kv.createRevision);
  if (kv.modRevision !== 0) size += 1 + varintSize(kv.modRevision);
  if (kv.version !== 0) size += 1 + varintSize(kv.version);
  if (kv.value.length > 0) size += fieldSize(kv.value.length);
  if (kv.leaseLo !== 0 || kv.leaseHi !== 0) size += 1 + varint64Size(kv.leaseLo, kv.leaseHi);
  return size;
}

function writeKeyValue(out: Uint8Array, offset: number, kv: KvFields): number {
  let o = offset;
  if (kv.key.length > 0) {
    out[o++] = TAG_KV_KEY;
    o = writeVarint(out, o, kv.key.length);
    out.set(kv.key, o);
    o += kv.key.length;
  }
  if (kv.createRevision !== 0) {
    out[o++] = TAG_KV_CREATE;
    o = writeVarint(out, o, kv.createRevision);
  }
  if (kv.modRevision !== 0) {
    out[o++] = TAG_KV_MOD;
    o = writeVarint(out, o, kv.modRevision);
  }
  if (kv.version !== 0) {
    out[o++] = TAG_KV_VERSION;
    o = writeVarint(out, o, kv.version);
  }
  if (kv.value.length > 0) {
    out[o++] = TAG_KV_VALUE;
    o = writeVarint(out, o, kv.value.length);
    out.set(kv.value, o);
    o += kv.value.length;
  }
  if (kv.leaseLo !== 0 || kv.leaseHi !== 0) {
    out[o++] = TAG_KV_LEASE;
    o = writeVarint64(out, o, kv.leaseLo, kv.leaseHi);
  }
  return o;
}

/** Size of an Event message. `kvSize`/`prevSize` from keyValueSize; prevSize < 0: no prev_kv. */
export function eventSize(type: number, kvSize: number, prevSize: number): number {
  let size = fieldSize(kvSize);
  if (type !== 0) size += 2;
  if (prevSize >= 0) size += fieldSize(prevSize);
  return size;
}

/**
 * Writes one `events` entry of a WatchResponse: the field tag and length, then the Event. `prev` null:
 * no prev_kv. Sizes are the ones computed for the same fields (they are written, not recomputed).
 */
export function writeEventField(
  out: Uint8Array,
  offset: number,
  type: number,
  kv: KvFields,
  kvSize: number,
  prev: KvFields | null,
  prevSize: number,
): number {
  let o = offset;
  out[o++] = TAG_EVENTS;
  o = writeVarint(out, o, eventSize(type, kvSize, prev === null ? -1 : prevSize));
  if (type !== 0) {
    out[o++] = TAG_EVENT_TYPE;
    out[o++] = type;
  }
  out[o++] = TAG_EVENT_KV;
  o = writeVarint(out, o, kvSize);
  o = writeKeyValue(out, o, kv);
  if (prev !== null) {
    out[o++] = TAG_EVENT_PREV_KV;
    o = writeVarint(out, o, prevSize);
    o = writeKeyValue(out, o, prev);
  }
  return o;
}

/** Writes `fragment = true`; returns the offset after it. */
export function writeFragmentField(out: Uint8Array, offset: number): number {
  out[offset] = TAG_FRAGMENT;
  out[offset + 1] = 1;
  return offset + 2;
}

export const FRAGMENT_FIELD_BYTES = 2;

/** Size of the `watch_id` field the main thread appends (0: none, a proto3 default). */
export function watchIdFieldSize(watchId: number): number {
  if (watchId === 0) return 0;
  if (watchId > 0) return 1 + varintSize(watchId);
  return 11; // a negative int64 is ten varint bytes
}

/** Appends `watch_id` at `offset`; returns the offset after it. */
export function writeWatchIdField(out: Uint8Array, offset: number, watchId: number): number {
  if (watchId === 0) return offset;
  out[offset] = TAG_WATCH_ID;
  if (watchId > 0) return writeVarint(out, offset + 1, watchId);
  const { lo, hi } = int53Halves(watchId);
  return writeVarint64(out, offset + 1, lo, hi);
}

/**
 * etcd's sendFragments (api/v3rpc/watch.go) as boundaries: given the size of a response without events
 * and without the fragment flag (`baseSize`, watch_id included) and each event's field size, returns
 * the index after the last event of each message in order, or null when the response goes whole (it is
 * below `limitBytes` or holds fewer than two events). Each fragment takes events while it stays below
 * the limit, at least one; its size counts the fragment flag, also for the last one (sent without it).
 */
export function fragmentEnds(
  baseSize: number,
  eventFieldSizes: ArrayLike<number>,
  count: number,
  limitBytes: number,
): number[] | null {
  let total = baseSize;
  for (let i = 0; i < count; i++) total += eventFieldSizes[i] as number;
  if (total < limitBytes || count < 2) return null;
  const ends: number[] = [];
  let index = 0;
  while (index < count) {
    let size = baseSize + FRAGMENT_FIELD_BYTES;
    let taken = 0;
    while (index < count) {
      const next = size + (eventFieldSizes[index] as number);
      if (taken >= 1 && next >= limitBytes) break;
      size = next;
      taken++;
      index++;
    }
    ends.push(index);
  }
  return ends;
}

/** A WatchResponse without events: created, canceled, progress (spec §7). */
export interface ControlResponse {
  /** Header revision (0: the compaction cancel's empty revision). */
  revision: number;
  raftTerm: number;
  watchId: number;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
}

const TAG_CREATED = 0x18;
const TAG_CANCELED = 0x20;
const TAG_COMPACT_REVISION = 0x28;
const TAG_CANCEL_REASON = 0x32;

function int64FieldSize(value: number): number {
  if (value === 0) return 0;
  if (value > 0) return 1 + varintSize(value);
  return 11;
}

function writeInt64Field(out: Uint8Array, offset: number, tag: number, value: number): number {
  if (value === 0) return offset;
  out[offset] = tag;
  if (value > 0) return writeVarint(out, offset + 1, value);
  const { lo, hi } = int53Halves(value);
  return writeVarint64(out, offset + 1, lo, hi);
}

/** Encodes a control response into a new Buffer (not a hot path: one per create, cancel, progress). */
export function encodeControlResponse(ids: HeaderIds, response: ControlResponse): Buffer {
  const reason = response.cancelReason === undefined ? null : Buffer.from(response.cancelReason, "utf8");
  const headerSize = ids.headerSize(response.revision, response.raftTerm);
  const compactRevision = response.compactRevision ?? 0;
  const size =
    fieldSize(headerSize) +
    int64FieldSize(response.watchId) +
    (response.created === true ? 2 : 0) +
    (response.canceled === true ? 2 : 0) +
    int64FieldSize(compactRevision) +
    (reason === null || reason.length === 0 ? 0 : fieldSize(reason.length));
  const out = Buffer.allocUnsafe(size);
  let o = ids.writeHeaderField(out, 0, response.revision, response.raftTerm);
  o = writeInt64Field(out, o, TAG_WATCH_ID, response.watchId);
  if (response.created === true) {
    out[o++] = TAG_CREATED;
    out[o++] = 1;
  }
  if (response.canceled === true) {
    out[o++] = TAG_CANCELED;
    out[o++] = 1;
  }
  o = writeInt64Field(out, o, TAG_COMPACT_REVISION, compactRevision);
  if (reason !== null && reason.length > 0) {
    out[o++] = TAG_CANCEL_REASON;
    o = writeVarint(out, o, reason.length);
    out.set(reason, o);
    o += reason.length;
  }
  assert(o === size, "a control response has its planned size");
  return out;
}

/** gRPC's length-prefixed message framing: 1 byte compressed flag (0), then the length (u32 big-endian). */
export const GRPC_FRAME_HEADER_BYTES = 5;

/** Writes a gRPC frame header for a message of `length` bytes at `offset`; returns the offset after it. */
export function writeFrameHeader(out: Uint8Array, offset: number, length: number): number {
  out[offset] = 0;
  out[offset + 1] = length >>> 24;
  out[offset + 2] = (length >>> 16) & 0xff;
  out[offset + 3] = (length >>> 8) & 0xff;
  out[offset + 4] = length & 0xff;
  return offset + GRPC_FRAME_HEADER_BYTES;
}

/** Frames one encoded message into a new Buffer. */
export function framed(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(GRPC_FRAME_HEADER_BYTES + message.length);
  out.set(message, writeFrameHeader(out, 0, message.length));
  return out;
}
