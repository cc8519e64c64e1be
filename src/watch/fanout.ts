import { assert } from "../assert.js";
import { type EventBatch, GroupFlag } from "./frames.js";
import { IntervalIndex } from "./intervalIndex.js";
import {
  eventSize,
  FRAGMENT_FIELD_BYTES,
  fieldSize,
  fragmentEnds,
  type HeaderIds,
  type KvFields,
  writeEventField,
  writeFragmentField,
} from "./wire.js";

/**
 * The fan-out core: the registry of watcher groups, the match of one revision's events against them,
 * and the encoding of one response per group. It runs in the watch worker (fed from the input ring) and
 * on the main thread (inline fan-out for few watchers, and matching for catch-up), with the same code.
 *
 * A group is every watcher that would receive byte-identical responses but for its watch_id: same key
 * range, same filters, same prev_kv and fragment options (and, with fragment, the same watch_id size,
 * since etcd's fragment boundaries count it). A response body is encoded once per group and revision.
 */

/** What a group wants: filters, prev_kv, fragment, single key, and (bits 8..11) its watch_id size. */
export interface GroupSpec {
  id: number;
  flags: number;
  /** Start key (latin1). */
  key: string;
  /** Exclusive end (latin1); null: the single key (SINGLE flag) or no upper bound. */
  end: string | null;
}

/** The watch_id field size a fragment group's encoding counts (0..11), kept in bits 8..11 of flags. */
export function flagsWatchIdBytes(flags: number): number {
  return (flags >>> 8) & 0xf;
}

export function withWatchIdBytes(flags: number, watchIdBytes: number): number {
  assert(watchIdBytes >= 0 && watchIdBytes <= 11, "a watch_id field takes 0..11 bytes");
  return (flags & 0xff) | (watchIdBytes << 8);
}

class GroupState {
  /** Revision stamp of the batch whose events `events` holds. */
  stamp = -1;
  /** Indices into the batch of the events this group receives, in order. */
  readonly events: number[] = [];

  constructor(readonly spec: GroupSpec) {}

  get flags(): number {
    return this.spec.flags;
  }
}

/**
 * Plans and writes the response(s) of one group for a list of events: sizes once, then bytes. The
 * message area format is the output ring's: per message a u32 length (little-endian) then the body.
 */
export class ResponseEncoder {
  /** Field size of each selected event (scratch, grown). */
  private readonly fieldSizes: number[] = [];
  /** Per message: index after its last event (into the selection), body size. */
  readonly ends: number[] = [];
  readonly bodySizes: number[] = [];
  messageCount = 0;
  /** Σ (4 + body size) over the messages. */
  areaBytes = 0;
  private headerFieldBytes = 0;
  private batch: EventBatch | null = null;
  private selection: readonly number[] = [];
  private from = 0;

  private withPrev = false;
  private fragmented = false;
  private headerRevision = 0;
  private raftTerm = 0;

  constructor(
    private readonly ids: HeaderIds,
    /** etcd's fragment threshold: --max-request-bytes + 512 KiB. */
    private readonly fragmentLimitBytes: number,
  ) {}

  /**
   * Plans the messages for events `selection[from..to)` of `batch` for a group with `flags`, under a
   * header with `headerRevision`. Afterwards `messageCount`, `bodySizes` and `areaBytes` describe them.
   */
  plan(
    batch: EventBatch,
    selection: readonly number[],
    from: number,
    to: number,
    flags: number,
    headerRevision: number,
    raftTerm: number,
  ): void {
    assert(to > from, "a response has events");
    this.batch = batch;
    this.selection = selection;
    this.from = from;

    this.withPrev = (flags & GroupFlag.PREV_KV) !== 0;
    this.headerRevision = headerRevision;
    this.raftTerm = raftTerm;
    this.headerFieldBytes = fieldSize(this.ids.headerSize(headerRevision, raftTerm));
    const count = to - from;
    const sizes = this.fieldSizes;
    let eventsBytes = 0;
    for (let j = 0; j < count; j++) {
      const i = selection[from + j] as number;
      const prevSize = this.withPrev && batch.prevs[i] !== null ? (batch.prevSizes[i] as number) : -1;
      const size = fieldSize(eventSize(batch.types[i] as number, batch.kvSizes[i] as number, prevSize));
      sizes[j] = size;
      eventsBytes += size;
    }
    this.ends.length = 0;
    this.bodySizes.length = 0;
    let ends: number[] | null = null;
    if ((flags & GroupFlag.FRAGMENT) !== 0) {
      const base = this.headerFieldBytes + flagsWatchIdBytes(flags);
      ends = fragmentEnds(base, sizes, count, this.fragmentLimitBytes);
    }
    this.fragmented = ends !== null;
    if (ends === null) {
      this.ends.push(count);
      this.bodySizes.push(this.headerFieldBytes + eventsBytes);
    } else {
      let start = 0;
      for (let m = 0; m < ends.length; m++) {
        const end = ends[m] as number;
        let size = this.headerFieldBytes + (m < ends.length - 1 ? FRAGMENT_FIELD_BYTES : 0);
        for (let j = start; j < end; j++) size += sizes[j] as number;
        this.ends.push(end);
        this.bodySizes.push(size);
        start = end;
      }
    }
    this.messageCount = this.ends.length;
    let area = 0;
    for (let m = 0; m < this.messageCount; m++) area += 4 + (this.bodySizes[m] as number);
    this.areaBytes = area;
  }

  /** Writes message `m`'s body at `offset`; returns the offset after it (the planned size, asserted). */
  writeBody(m: number, out: Uint8Array, offset: number): number {
    const batch = this.batch as EventBatch;
    let o = this.ids.writeHeaderField(out, offset, this.headerRevision, this.raftTerm);
    const last = m === this.messageCount - 1;
    if (this.fragmented && !last) o = writeFragmentField(out, o);
    const start = m === 0 ? 0 : (this.ends[m - 1] as number);
    const end = this.ends[m] as number;
    for (let j = start; j < end; j++) {
      const i = this.selection[this.from + j] as number;
      const prev = this.withPrev ? (batch.prevs[i] as KvFields | null) : null;
      o = writeEventField(
        out,
        o,
        batch.types[i] as number,
        batch.kvs[i] as KvFields,
        batch.kvSizes[i] as number,
        prev,
        prev === null ? -1 : (batch.prevSizes[i] as number),
      );
    }
    assert(o - offset === this.bodySizes[m], "a response body has its planned size");
    return o;
  }

  /** Writes every message in the area format ([u32 length][body]...) at `offset`. */
  writeArea(out: Uint8Array, offset: number): number {
    let o = offset;
    for (let m = 0; m < this.messageCount; m++) {
      const size = this.bodySizes[m] as number;
      out[o] = size & 0xff;
      out[o + 1] = (size >>> 8) & 0xff;
      out[o + 2] = (size >>> 16) & 0xff;
      out[o + 3] = (size >>> 24) & 0xff;
      o = this.writeBody(m, out, o + 4);
    }
    return o;
  }
}

/** Where the core puts a group's encoded response for a revision. */
export interface ResponseSink {
  /**
   * A writable area of `areaBytes` for `messageCount` messages of group `groupId` at `revision`, or null
   * when the sink is full right now (the caller retries the same group later). Returns TOO_BIG when the
   * response can never fit.
   */
  reserve(
    groupId: number,
    revision: number,
    messageCount: number,
    areaBytes: number,
  ): Uint8Array | null | TooBig;
  /** The area reserved last is written. */
  commit(): void;
  /** Tells the receiver that the group's response at `revision` was too big; false when full now. */
  tooBig(groupId: number, revision: number): boolean;
}

export const TOO_BIG = "too big" as const;
export type TooBig = typeof TOO_BIG;

export class FanoutCore {
  private readonly groups: (GroupState | undefined)[] = [];
  private readonly index = new IntervalIndex();
  private groupCount = 0;
  private prevKvGroups = 0;
  // State of the batch being fanned out.
  private batch: EventBatch | null = null;
  private stamp = 0;
  private eventIndex = 0;
  private readonly touched: GroupState[] = [];
  private nextTouched = 0;
  private readonly encoder: ResponseEncoder;
  private readonly collect = (id: number): void => this.collectEvent(id);

  constructor(ids: HeaderIds, fragmentLimitBytes: number) {
    this.encoder = new ResponseEncoder(ids, fragmentLimitBytes);
  }

  get size(): number {
    return this.groupCount;
  }

  /** How many groups want prev_kv (the main thread ships prev_kv to the worker only when some do). */
  get prevKvGroupCount(): number {
    return this.prevKvGroups;
  }

  register(spec: GroupSpec): void {
    assert(Number.isInteger(spec.id) && spec.id >= 0, "a group id is a non-negative integer");
    assert(this.groups[spec.id] === undefined, `group ${spec.id} is registered once`);
    this.groups[spec.id] = new GroupState(spec);
    if ((spec.flags & GroupFlag.SINGLE) !== 0) this.index.addKey(spec.id, spec.key);
    else this.index.addRange(spec.id, spec.key, spec.end);
    this.groupCount++;
    if ((spec.flags & GroupFlag.PREV_KV) !== 0) this.prevKvGroups++;
  }

  unregister(id: number): void {
    const group = this.groups[id];
    assert(group !== undefined, `group ${id} is registered`);
    const spec = group.spec;
    if ((spec.flags & GroupFlag.SINGLE) !== 0) this.index.removeKey(id, spec.key);
    else this.index.removeRange(id, spec.key);
    this.groups[id] = undefined;
    this.groupCount--;
    if ((spec.flags & GroupFlag.PREV_KV) !== 0) this.prevKvGroups--;
  }

  /** Visits the ids of the groups whose range holds `key` (latin1). */
  stab(key: string, visit: (id: number) => void): void {
    this.index.stab(key, visit);
  }

  /**
   * Matches the batch's events against the groups (filters applied): afterwards `emit` hands out one
   * response per group that received at least one event. The batch must stay valid until emitted.
   */
  match(batch: EventBatch): void {
    assert(this.nextTouched >= this.touched.length, "the previous batch was emitted");
    this.batch = batch;
    this.stamp++;
    this.touched.length = 0;
    this.nextTouched = 0;
    for (let i = 0; i < batch.count; i++) {
      this.eventIndex = i;
      this.index.stab(batch.keyStrings[i] as string, this.collect);
    }
  }

  private collectEvent(id: number): void {
    const group = this.groups[id] as GroupState;
    const flags = group.flags;
    const type = (this.batch as EventBatch).types[this.eventIndex];
    if (type === 0 && (flags & GroupFlag.NOPUT) !== 0) return;
    if (type === 1 && (flags & GroupFlag.NODELETE) !== 0) return;
    if (group.stamp !== this.stamp) {
      group.stamp = this.stamp;
      group.events.length = 0;
      this.touched.push(group);
    }
    group.events.push(this.eventIndex);
  }

  /** True while matched groups wait to be emitted. */
  get pending(): boolean {
    return this.nextTouched < this.touched.length;
  }

  /**
   * Emits the matched groups' responses into `sink`, in match order; returns false when the sink filled
   * up (call again once it has room: it resumes with the same group), true when all are out. A response
   * larger than `areaBytesMax` goes out as TOO_BIG: the receiver serves that revision from history.
   */
  emit(sink: ResponseSink, areaBytesMax: number): boolean {
    const batch = this.batch as EventBatch;
    while (this.nextTouched < this.touched.length) {
      const group = this.touched[this.nextTouched] as GroupState;
      const encoder = this.encoder;
      encoder.plan(batch, group.events, 0, group.events.length, group.flags, batch.revision, batch.raftTerm);
      const area =
        encoder.areaBytes > areaBytesMax
          ? TOO_BIG
          : sink.reserve(group.spec.id, batch.revision, encoder.messageCount, encoder.areaBytes);
      if (area === null) return false;
      if (area === TOO_BIG) {
        if (!sink.tooBig(group.spec.id, batch.revision)) return false;
      } else {
        const end = encoder.writeArea(area, 0);
        assert(end === encoder.areaBytes, "a response area is filled exactly");
        sink.commit();
      }
      this.nextTouched++;
    }
    return true;
  }

  /** The encoder, for callers that encode outside `emit` (catch-up on the main thread). */
  get responseEncoder(): ResponseEncoder {
    return this.encoder;
  }
}
