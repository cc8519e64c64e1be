import { RaftError, RaftErrorCode } from "./errors.js";
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeV2,
  ConfState,
  Entry,
  HardState,
  Message,
  Snapshot,
  SnapshotMetadata,
} from "./types.js";
import {
  ConfChangeTransition,
  ConfChangeType,
  EMPTY_BYTES,
  EMPTY_ENTRIES,
  EntryType,
  MessageType,
} from "./types.js";

/**
 * Compact binary encoding of the raft types, for the peer transport (messages), the WAL (hard state,
 * snapshot metadata) and conf change entries. Integers are unsigned LEB128 varints (terms and indexes as
 * numbers below 2^53, ids as bigints below 2^64); byte strings are a varint length then the bytes.
 *
 * Every top-level encoding (encodeX) starts with a one-byte format version so the format can evolve. The
 * one exception is ConfChangeV2, where empty data also means "leave the joint configuration" (raft itself
 * proposes that entry with empty data, as etcd does).
 *
 * Decoding validates everything (lengths, ranges, enum values, no trailing bytes) and throws
 * RaftError(Decode) on bad input; decoded byte fields are copies, so the input buffer may be reused.
 */

export const CODEC_VERSION = 1;

const MAX_U64 = (1n << 64n) - 1n;
/** A varint of a 64-bit value takes at most 10 bytes. */
const MAX_VARINT_BYTES = 10;
const INITIAL_WRITER_BYTES = 4096;

const MESSAGE_TYPE_MAX = MessageType.PreVoteResp;
const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;

function decodeError(message: string): never {
  throw new RaftError(RaftErrorCode.Decode, message);
}

/** A growable output buffer, reused across encodings (reset() keeps the allocation). */
export class RaftWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialBytes = INITIAL_WRITER_BYTES) {
    this.buf = new Uint8Array(initialBytes);
  }

  reset(): void {
    this.pos = 0;
  }

  get length(): number {
    return this.pos;
  }

  /** A view of the bytes written so far; valid until the next write or reset. */
  subarray(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** An unsigned safe integer as a varint. */
  uint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RaftError(RaftErrorCode.InvalidMessage, `bad uint ${v}`);
    this.ensure(MAX_VARINT_BYTES);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** An unsigned 64-bit bigint as a varint. */
  u64(v: bigint): void {
    if (v <= 0x1fffffffffffffn && v >= 0n) {
      this.uint(Number(v));
      return;
    }
    if (v < 0n || v > MAX_U64) throw new RaftError(RaftErrorCode.InvalidMessage, `bad u64 ${v}`);
    this.ensure(MAX_VARINT_BYTES);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  ids(ids: readonly bigint[]): void {
    this.uint(ids.length);
    for (const id of ids) this.u64(id);
  }

  entry(e: Entry): void {
    this.uint(e.term);
    this.uint(e.index);
    this.byte(e.type);
    this.bytes(e.data);
  }

  hardState(hs: HardState): void {
    this.uint(hs.term);
    this.u64(hs.vote);
    this.uint(hs.commit);
  }

  confState(cs: ConfState): void {
    this.ids(cs.voters);
    this.ids(cs.learners);
    this.ids(cs.votersOutgoing);
    this.ids(cs.learnersNext);
    this.byte(cs.autoLeave ? 1 : 0);
  }

  snapshotMetadata(md: SnapshotMetadata): void {
    this.confState(md.confState);
    this.uint(md.index);
    this.uint(md.term);
  }

  snapshot(s: Snapshot): void {
    this.snapshotMetadata(s.metadata);
    this.bytes(s.data);
  }

  message(m: Message): void {
    this.byte(m.type);
    this.u64(m.to);
    this.u64(m.from);
    this.uint(m.term);
    this.uint(m.logTerm);
    this.uint(m.index);
    this.uint(m.commit);
    this.uint(m.rejectHint);
    this.byte((m.reject ? FLAG_REJECT : 0) | (m.snapshot !== null ? FLAG_SNAPSHOT : 0));
    this.bytes(m.context);
    this.uint(m.entries.length);
    for (let i = 0; i < m.entries.length; i++) this.entry(m.entries[i]!);
    if (m.snapshot !== null) this.snapshot(m.snapshot);
  }
}

/** Reads what RaftWriter wrote; every read validates and throws RaftError(Decode) on bad input. */
export class RaftReader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  byte(): number {
    if (this.pos >= this.buf.length) decodeError("truncated input");
    return this.buf[this.pos++]!;
  }

  uint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) decodeError("integer above 2^53");
        if (i > 0 && b === 0) decodeError("non-canonical varint");
        return result;
      }
      scale *= 0x80;
    }
    return decodeError("varint too long");
  }

  u64(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        if (result > MAX_U64) decodeError("integer above 2^64");
        if (i > 0 && b === 0) decodeError("non-canonical varint");
        return result;
      }
      shift += 7n;
    }
    return decodeError("varint too long");
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (n > this.remaining) decodeError(`byte string of ${n} bytes exceeds the input`);
    if (n === 0) return EMPTY_BYTES;
    // A copy even when the input is a Buffer (whose slice() is a view): a decoded message must not pin
    // the whole frame it came in.
    const out = Uint8Array.prototype.slice.call(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  ids(): bigint[] {
    const n = this.uint();
    if (n > this.remaining) decodeError(`id list of ${n} exceeds the input`);
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) out.push(this.u64());
    return out;
  }

  entry(): Entry {
    const term = this.uint();
    const index = this.uint();
    const type = this.byte();
    if (type !== EntryType.Normal && type !== EntryType.ConfChange && type !== EntryType.ConfChangeV2) {
      decodeError(`unknown entry type ${type}`);
    }
    return { term, index, type, data: this.bytes() };
  }

  hardState(): HardState {
    const term = this.uint();
    const vote = this.u64();
    const commit = this.uint();
    return { term, vote, commit };
  }

  confState(): ConfState {
    const voters = this.ids();
    const learners = this.ids();
    const votersOutgoing = this.ids();
    const learnersNext = this.ids();
    const autoLeave = this.bool();
    return { voters, learners, votersOutgoing, learnersNext, autoLeave };
  }

  bool(): boolean {
    const b = this.byte();
    if (b > 1) decodeError(`bad boolean ${b}`);
    return b === 1;
  }

  snapshotMetadata(): SnapshotMetadata {
    const confState = this.confState();
    const index = this.uint();
    const term = this.uint();
    return { confState, index, term };
  }

  snapshot(): Snapshot {
    const metadata = this.snapshotMetadata();
    return { metadata, data: this.bytes() };
  }

  message(): Message {
    const type = this.byte();
    if (type > MESSAGE_TYPE_MAX) decodeError(`unknown message type ${type}`);
    const to = this.u64();
    const from = this.u64();
    const term = this.uint();
    const logTerm = this.uint();
    const index = this.uint();
    const commit = this.uint();
    const rejectHint = this.uint();
    const flags = this.byte();
    if ((flags & ~(FLAG_REJECT | FLAG_SNAPSHOT)) !== 0) decodeError(`unknown message flags ${flags}`);
    const context = this.bytes();
    const count = this.uint();
    if (count > this.remaining) decodeError(`entry count ${count} exceeds the input`);
    let entries = EMPTY_ENTRIES;
    if (count > 0) {
      entries = [];
      for (let i = 0; i < count; i++) entries.push(this.entry());
    }
    const snapshot = (flags & FLAG_SNAPSHOT) !== 0 ? this.snapshot() : null;
    return {
      type: type as MessageType,
      to,
      from,
      term,
      logTerm,
      index,
      entries,
      commit,
      snapshot,
      reject: (flags & FLAG_REJECT) !== 0,
      rejectHint,
      context,
    };
  }

  /** Top-level decodes call this: a record must be consumed exactly. */
  end(): void {
    if (this.remaining !== 0) decodeError(`${this.remaining} trailing bytes`);
  }

  version(): void {
    const v = this.byte();
    if (v !== CODEC_VERSION) decodeError(`unsupported codec version ${v}`);
  }
}

// One shared writer for the encodeX helpers: raft is single-threaded and each helper copies its result out.
const shared = new RaftWriter();

function encodeWith(write: (w: RaftWriter) => void): Uint8Array {
  shared.reset();
  shared.byte(CODEC_VERSION);
  write(shared);
  return shared.toBytes();
}

function decodeWith<T>(bytes: Uint8Array, read: (r: RaftReader) => T): T {
  const r = new RaftReader(bytes);
  r.version();
  const out = read(r);
  r.end();
  return out;
}

export function encodeEntry(e: Entry): Uint8Array {
  return encodeWith((w) => w.entry(e));
}
export function decodeEntry(b: Uint8Array): Entry {
  return decodeWith(b, (r) => r.entry());
}

export function encodeHardState(hs: HardState): Uint8Array {
  return encodeWith((w) => w.hardState(hs));
}
export function decodeHardState(b: Uint8Array): HardState {
  return decodeWith(b, (r) => r.hardState());
}

export function encodeConfState(cs: ConfState): Uint8Array {
  return encodeWith((w) => w.confState(cs));
}
export function decodeConfState(b: Uint8Array): ConfState {
  return decodeWith(b, (r) => r.confState());
}

export function encodeSnapshotMetadata(md: SnapshotMetadata): Uint8Array {
  return encodeWith((w) => w.snapshotMetadata(md));
}
export function decodeSnapshotMetadata(b: Uint8Array): SnapshotMetadata {
  return decodeWith(b, (r) => r.snapshotMetadata());
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  return encodeWith((w) => w.snapshot(s));
}
export function decodeSnapshot(b: Uint8Array): Snapshot {
  return decodeWith(b, (r) => r.snapshot());
}

export function encodeMessage(m: Message): Uint8Array {
  return encodeWith((w) => w.message(m));
}
export function decodeMessage(b: Uint8Array): Message {
  return decodeWith(b, (r) => r.message());
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encodeWith((w) => {
    w.u64(cc.id);
    w.byte(cc.type);
    w.u64(cc.nodeId);
    w.bytes(cc.context);
  });
}
export function decodeConfChange(b: Uint8Array): ConfChange {
  return decodeWith(b, (r) => {
    const id = r.u64();
    const type = readConfChangeType(r);
    const nodeId = r.u64();
    return { id, type, nodeId, context: r.bytes() };
  });
}

/** Empty data is the empty ConfChangeV2 (leave joint), the entry raft proposes for auto-leave. */
export function encodeConfChangeV2(cc: ConfChangeV2): Uint8Array {
  if (cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0 && cc.context.length === 0) {
    return EMPTY_BYTES;
  }
  return encodeWith((w) => {
    w.byte(cc.transition);
    w.uint(cc.changes.length);
    for (const c of cc.changes) {
      w.byte(c.type);
      w.u64(c.nodeId);
    }
    w.bytes(cc.context);
  });
}
export function decodeConfChangeV2(b: Uint8Array): ConfChangeV2 {
  if (b.length === 0) return { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES };
  return decodeWith(b, (r) => {
    const transition = r.byte();
    if (transition > ConfChangeTransition.JointExplicit) decodeError(`unknown transition ${transition}`);
    const n = r.uint();
    if (n > r.remaining) decodeError(`change count ${n} exceeds the input`);
    const changes: ConfChangeSingle[] = [];
    for (let i = 0; i < n; i++) {
      const type = readConfChangeType(r);
      changes.push({ type, nodeId: r.u64() });
    }
    return { transition: transition as ConfChangeTransition, changes, context: r.bytes() };
  });
}

function readConfChangeType(r: RaftReader): ConfChangeType {
  const t = r.byte();
  if (t > ConfChangeType.AddLearnerNode) decodeError(`unknown conf change type ${t}`);
  return t as ConfChangeType;
}

/** Decodes the ConfChange(V2) carried by a conf change entry, as a v2 change. */
export function decodeConfChangeEntry(e: Entry): ConfChangeV2 {
  if (e.type === EntryType.ConfChange) {
    const cc = decodeConfChange(e.data);
    return {
      transition: ConfChangeTransition.Auto,
      changes: [{ type: cc.type, nodeId: cc.nodeId }],
      context: cc.context,
    };
  }
  if (e.type === EntryType.ConfChangeV2) return decodeConfChangeV2(e.data);
  return decodeError(`entry ${e.index} is not a conf change`);
}
