import { assert } from "../assert.js";
import type { KeyValue, MvccEvent } from "../mvcc/types.js";
import { type KvFields, keyValueSize } from "./wire.js";

/**
 * Frames between the main thread and the watch fan-out worker (src/workers/watchWorker.ts), carried by
 * two SPSC rings (src/workers/ring.ts): the input ring (main -> worker) holds group registrations and
 * the events of each applied revision; the output ring (worker -> main) holds encoded responses.
 *
 * All numbers little-endian. Revisions and versions are float64 (exact below 2^53), lease ids two
 * uint32 halves. Keys travel as bytes; the worker compares them as latin1 strings (byte order).
 */

/** Input frame tags. */
export const InTag = {
  /** A watcher group appears: [id u32][flags u32][keyLen u32][endLen i32 (-1: no end)][key][end]. */
  REGISTER: 1,
  /** A group is gone: [id u32]. The worker answers UNREGISTERED once nothing of it is in flight. */
  UNREGISTER: 2,
  /** One applied revision: [revision f64][raftTerm f64][count u32][pad u32] then `count` events. */
  EVENTS: 3,
} as const;

/** Output frame tags. */
export const OutTag = {
  /**
   * The response(s) of one group for one revision: [group u32][count u32][revision f64] then `count`
   * messages, each [length u32][body]. More than one message: fragments of one response (fragment flag
   * set in all but the last). A body lacks only its watch_id, which the main thread appends per watcher.
   */
  RESPONSES: 1,
  /** The group's response for this revision did not fit a frame: [group u32][pad u32][revision f64]. */
  TOO_BIG: 2,
  /** Every revision up to this one was processed: [revision f64]. */
  DONE: 3,
  /** The group's id may be reused: [group u32]. */
  UNREGISTERED: 4,
} as const;

/** Group flags: which events a group's watchers want and how. */
export const GroupFlag = {
  NOPUT: 1,
  NODELETE: 2,
  PREV_KV: 4,
  FRAGMENT: 8,
  /** The range is the single key `key` (no range end). */
  SINGLE: 16,
} as const;

/** Bytes of an event's fixed part in an EVENTS frame. */
const EVENT_FIXED_BYTES = 1 + 1 + 4 + 4 + 8 * 3 + 4 * 2;
/** Bytes of an event's prev_kv fixed part (its key is the event's key). */
const PREV_FIXED_BYTES = 4 + 8 * 3 + 4 * 2;
export const EVENTS_HEADER_BYTES = 24;
export const REGISTER_HEADER_BYTES = 16;
export const RESPONSES_HEADER_BYTES = 16;

export function leaseLo(lease: bigint): number {
  return lease === 0n ? 0 : Number(BigInt.asUintN(32, lease));
}

export function leaseHi(lease: bigint): number {
  return lease === 0n ? 0 : Number(BigInt.asUintN(32, lease >> 32n));
}

/** Size of one event in an EVENTS frame, with `prev` as its prev_kv (undefined: none). */
export function eventFrameSize(event: MvccEvent, prev: KeyValue | undefined): number {
  let size = EVENT_FIXED_BYTES + event.kv.key.length + event.kv.value.length;
  if (prev !== undefined) size += PREV_FIXED_BYTES + prev.value.length;
  return size;
}

/** etcd's isCreateEvent: a PUT whose key was (re)created by this revision. */
export function isCreateEvent(event: MvccEvent): boolean {
  return event.type === "PUT" && event.kv.createRevision === event.kv.modRevision;
}

/** Writes one event at `offset` of `view`/`bytes` (the same memory); returns the offset after it. */
export function writeEventFrame(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  event: MvccEvent,
  prev: KeyValue | undefined,
): number {
  const kv = event.kv;
  let o = offset;
  view.setUint8(o, event.type === "PUT" ? 0 : 1);
  view.setUint8(o + 1, prev === undefined ? 0 : 1);
  view.setUint32(o + 2, kv.key.length, true);
  view.setUint32(o + 6, kv.value.length, true);
  view.setFloat64(o + 10, kv.createRevision, true);
  view.setFloat64(o + 18, kv.modRevision, true);
  view.setFloat64(o + 26, kv.version, true);
  view.setUint32(o + 34, leaseLo(kv.lease), true);
  view.setUint32(o + 38, leaseHi(kv.lease), true);
  o += EVENT_FIXED_BYTES;
  if (prev !== undefined) {
    view.setUint32(o, prev.value.length, true);
    view.setFloat64(o + 4, prev.createRevision, true);
    view.setFloat64(o + 12, prev.modRevision, true);
    view.setFloat64(o + 20, prev.version, true);
    view.setUint32(o + 28, leaseLo(prev.lease), true);
    view.setUint32(o + 32, leaseHi(prev.lease), true);
    o += PREV_FIXED_BYTES;
  }
  bytes.set(kv.key, o);
  o += kv.key.length;
  bytes.set(kv.value, o);
  o += kv.value.length;
  if (prev !== undefined) {
    bytes.set(prev.value, o);
    o += prev.value.length;
  }
  return o;
}

/**
 * The events of one revision as the fan-out core reads them, in reusable parallel arrays whose byte
 * fields are views (into a ring frame, or the store's own arrays in inline mode). Valid until the next
 * fill; grown, never shrunk.
 */
export class EventBatch {
  revision = 0;
  raftTerm = 0;
  count = 0;
  /** 0 PUT, 1 DELETE (mvccpb.Event.EventType). */
  types: number[] = [];
  kvs: KvFields[] = [];
  /** null: no prev_kv to attach. */
  prevs: (KvFields | null)[] = [];
  /** The key as a latin1 string, for matching. */
  keyStrings: string[] = [];
  /** keyValueSize of kvs[i] and of prevs[i] (-1 when prevs[i] is null). */
  kvSizes: number[] = [];
  prevSizes: number[] = [];
  private readonly prevPool: KvFields[] = [];

  private ensure(n: number): void {
    while (this.kvs.length < n) {
      this.kvs.push(emptyKv());
      this.prevPool.push(emptyKv());
      this.types.push(0);
      this.prevs.push(null);
      this.keyStrings.push("");
      this.kvSizes.push(0);
      this.prevSizes.push(-1);
    }
  }

  /** Attaches `kv` as event i's prev_kv (catch-up resolves them lazily); undefined: none. */
  setPrev(i: number, kv: KeyValue | undefined): void {
    assert(i < this.count, "the event is in the batch");
    if (kv === undefined) {
      this.prevs[i] = null;
      this.prevSizes[i] = -1;
      return;
    }
    const prev = this.prevPool[i] as KvFields;
    copyKv(prev, kv);
    this.prevs[i] = prev;
    this.prevSizes[i] = keyValueSize(prev);
  }

  /** Fills the batch from an EVENTS frame (the views point into `bytes`). */
  fillFromFrame(view: DataView, bytes: Uint8Array, latin1: (b: Uint8Array) => string): void {
    this.revision = view.getFloat64(0, true);
    this.raftTerm = view.getFloat64(8, true);
    const count = view.getUint32(16, true);
    this.ensure(count);
    this.count = count;
    let o = EVENTS_HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const kv = this.kvs[i] as KvFields;
      this.types[i] = view.getUint8(o);
      const hasPrev = view.getUint8(o + 1) === 1;
      const keyLength = view.getUint32(o + 2, true);
      const valueLength = view.getUint32(o + 6, true);
      kv.createRevision = view.getFloat64(o + 10, true);
      kv.modRevision = view.getFloat64(o + 18, true);
      kv.version = view.getFloat64(o + 26, true);
      kv.leaseLo = view.getUint32(o + 34, true);
      kv.leaseHi = view.getUint32(o + 38, true);
      o += EVENT_FIXED_BYTES;
      let prev: KvFields | null = null;
      let prevValueLength = 0;
      if (hasPrev) {
        prev = this.prevPool[i] as KvFields;
        prevValueLength = view.getUint32(o, true);
        prev.createRevision = view.getFloat64(o + 4, true);
        prev.modRevision = view.getFloat64(o + 12, true);
        prev.version = view.getFloat64(o + 20, true);
        prev.leaseLo = view.getUint32(o + 28, true);
        prev.leaseHi = view.getUint32(o + 32, true);
        o += PREV_FIXED_BYTES;
      }
      kv.key = bytes.subarray(o, o + keyLength);
      o += keyLength;
      kv.value = bytes.subarray(o, o + valueLength);
      o += valueLength;
      if (prev !== null) {
        prev.key = kv.key;
        prev.value = bytes.subarray(o, o + prevValueLength);
        o += prevValueLength;
      }
      this.prevs[i] = prev;
      this.keyStrings[i] = latin1(kv.key);
      this.kvSizes[i] = keyValueSize(kv);
      this.prevSizes[i] = prev === null ? -1 : keyValueSize(prev);
    }
    assert(o === bytes.length, "an EVENTS frame is read to its end");
  }

  /**
   * Fills the batch from the store's events of one revision (inline fan-out, catch-up). `withPrev`
   * false drops every prev_kv; creates never carry one (etcd's isCreateEvent).
   */
  fillFromEvents(
    revision: number,
    raftTerm: number,
    events: readonly MvccEvent[],
    from: number,
    to: number,
    prevOf: PrevLookup | null,
    latin1: (b: Uint8Array) => string,
  ): void {
    this.revision = revision;
    this.raftTerm = raftTerm;
    const count = to - from;
    this.ensure(count);
    this.count = count;
    for (let i = 0; i < count; i++) {
      const event = events[from + i] as MvccEvent;
      const kv = this.kvs[i] as KvFields;
      this.types[i] = event.type === "PUT" ? 0 : 1;
      copyKv(kv, event.kv);
      this.kvSizes[i] = keyValueSize(kv);
      this.keyStrings[i] = latin1(event.kv.key);
      this.setPrev(i, prevOf === null || isCreateEvent(event) ? undefined : prevOf(event));
    }
  }
}

const EMPTY = new Uint8Array(0);

function emptyKv(): KvFields {
  return { key: EMPTY, value: EMPTY, createRevision: 0, modRevision: 0, version: 0, leaseLo: 0, leaseHi: 0 };
}

function copyKv(into: KvFields, kv: KeyValue): void {
  into.key = kv.key;
  into.value = kv.value;
  into.createRevision = kv.createRevision;
  into.modRevision = kv.modRevision;
  into.version = kv.version;
  into.leaseLo = leaseLo(kv.lease);
  into.leaseHi = leaseHi(kv.lease);
}

/** An event's prev_kv: its own (live events), or a read at mod_revision - 1 (history). */
export type PrevLookup = (event: MvccEvent) => KeyValue | undefined;
