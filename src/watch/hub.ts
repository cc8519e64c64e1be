import { assert } from "../assert.js";
import { bytesToLatin1 } from "../backend/bytes.js";
import type { KeyValue, MvccEvent } from "../mvcc/types.js";
import { FanoutCore, type ResponseSink, withWatchIdBytes } from "./fanout.js";
import { EventBatch, GroupFlag, OutTag, type PrevLookup, RESPONSES_HEADER_BYTES } from "./frames.js";
import { Watcher, WatchStream } from "./stream.js";
import type { FanoutMode, StreamTransport, WatchCreate, WatchHubOptions, WatchStore } from "./types.js";
import {
  GRPC_FRAME_HEADER_BYTES,
  HeaderIds,
  watchIdFieldSize,
  writeFrameHeader,
  writeWatchIdField,
} from "./wire.js";
import { WorkerLink } from "./workerLink.js";

/**
 * The watch hub (etcd's watchableStore + the v3rpc watch server's fan-out), on the main thread.
 *
 * Live path. The apply loop calls `onApplied(revision, events)` after each write. The events go either
 * to the fan-out worker through the input ring (copied once; the worker matches them against the
 * registered groups and encodes one response per group into the output ring) or, with few watchers,
 * through the same core inline. Either way this thread ends up with one body per (group, revision) and
 * writes it, with each watcher's watch_id appended, to the synced watchers of the group.
 *
 * Each watcher is either
 * - synced: it takes live responses with revision >= nextRev, or
 * - unsynced: it takes no live responses; the catch-up reads the store's history from nextRev and sends
 *   it in batches of at most SYNC_REVISIONS_MAX revisions (etcd's unsynced watchers and victims).
 * Every event below nextRev has been sent to it. A synced watcher whose stream has no room falls behind
 * (becomes unsynced at the revision it could not take): nothing is buffered for it, so a slow or stuck
 * client holds at most its stream's queued bytes, and never slows the others. An unsynced watcher whose
 * next revision was compacted meanwhile is cancelled with compact_revision set (spec §7.4).
 *
 * The live feed may have gaps: when the input ring is full (the worker or this thread is behind) or one
 * revision is larger than a frame, that revision is not queued; every synced watcher then falls behind
 * once the revisions before the gap are delivered, and the feed resumes when the ring has room. An
 * unsynced watcher joins the feed again only after reading history up to a revision the feed covers.
 */

/** etcd's maxWatchersPerSync: unsynced watchers served per catch-up round. */
const SYNC_WATCHERS_MAX = 512;
/** etcd's watchBatchMaxRevs: revisions in one catch-up response at most. */
const SYNC_REVISIONS_MAX = 1000;
/** Events read from history per catch-up round at most (plus one whole revision when that is larger). */
const SYNC_EVENTS_MAX = 10_000;
/** Key and value bytes read from history per catch-up round, about. */
const SYNC_BYTES_MAX = 8 * 1024 * 1024;

/** etcd's gRPC headroom above --max-request-bytes, also its watch fragment threshold (v3rpc). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;
const MAX_REQUEST_BYTES_DEFAULT = 1.5 * 1024 * 1024;
const PROGRESS_INTERVAL_MS_DEFAULT = 10 * 60 * 1000;
/** etcd's minWatchProgressInterval. */
const PROGRESS_INTERVAL_MS_MIN = 100;
export const STREAM_QUEUED_BYTES_MAX_DEFAULT = 256 * 1024;
export const QUEUED_BYTES_MAX_DEFAULT = 128 * 1024 * 1024;
export const WATCHERS_MAX_DEFAULT = 1_000_000;
/**
 * "auto" fan-out: inline at or below this many watchers. Measured with bench/watch (quick runs on the
 * 2-core VM, 100 streams): inline has the lower latency up to ~100 watchers (p50 1.6 against 2.9 ms) and
 * costs ~25% less CPU per put with one watcher (the ring hop and the worker's wake-up); the two tie at
 * 1,000; from 3,000 the worker wins (p50 13 against 19 ms, 1.6x the events/s).
 */
export const INLINE_WATCHERS_MAX_DEFAULT = 1000;
const INPUT_RING_BYTES_DEFAULT = 8 * 1024 * 1024;
const OUTPUT_RING_BYTES_DEFAULT = 8 * 1024 * 1024;
/** The live feed resumes after a gap once the input ring is at most this full. */
const RESUME_INPUT_FILL_MAX = 0.5;

/** Watchers that would get byte-identical responses but for their watch_id. */
export class Group {
  readonly watchers: Watcher[] = [];
  /** Catch-up scratch: the round that last collected events for this group, and their indices. */
  syncStamp = -1;
  readonly syncEvents: number[] = [];

  constructor(
    readonly id: number,
    readonly name: string,
    readonly flags: number,
    readonly key: Uint8Array,
    readonly end: Uint8Array | null,
  ) {}
}

export interface WatchHubStats {
  streams: number;
  watchers: number;
  /** Unsynced watchers (etcd_debugging_mvcc_slow_watcher_total). */
  slowWatchers: number;
  groups: number;
  queuedBytes: number;
  /** Times the live feed had a gap (the ring was full or a revision too large). */
  gaps: number;
  /** Live responses too large for a frame, served from history instead. */
  tooBig: number;
  /** Times a synced watcher fell behind (its stream was full, a gap, a response too big). */
  fellBehind: number;
  /** Revisions fanned out inline / through the worker. */
  inlineRevisions: number;
  workerRevisions: number;
}

const latin1 = bytesToLatin1;

export class WatchHub {
  readonly store: WatchStore;
  readonly header: WatchHubOptions["header"];
  private readonly mode: FanoutMode;
  private readonly inlineWatchersMax: number;
  private readonly fragmentLimitBytes: number;
  private readonly progressBaseMs: number;
  private readonly streamQueuedBytesMax: number;
  private readonly queuedBytesMax: number;
  private readonly watchersMax: number;
  private readonly random: () => number;
  private readonly onFatal: (error: Error) => void;
  private ids: HeaderIds | null = null;
  private core: FanoutCore | null = null;
  private link: WorkerLink | null = null;
  private readonly inputRingBytes: number;
  private readonly outputRingBytes: number;

  /** Bytes queued on every stream together. */
  queuedBytes = 0;
  /** The hub-wide queue bound refused something since it last had room. */
  private globalBlocked = false;
  private readonly streams = new Set<WatchStream>();
  private watcherCount = 0;
  private readonly groupsByName = new Map<string, Group>();
  private readonly groupsById: (Group | undefined)[] = [];
  private readonly freeGroupIds: number[] = [];
  private nextGroupId = 0;
  /** Registrations the input ring could not take yet; they go before any further EVENTS frame. */
  private readonly pendingControls: (() => boolean)[] = [];

  /** The last revision handed to the fan-out (queued or inline), and the last one fully delivered. */
  private enqueuedRev: number;
  private deliveredRev: number;
  /** The first revision of the current uninterrupted live feed; Infinity while there is a gap. */
  private liveFromRev: number;
  /** Once `deliveredRev` reaches this, every synced watcher falls behind (a gap began after it). */
  private resyncAfter: number | null = null;

  private readonly unsynced: Watcher[] = [];
  private syncCursor = 0;
  private syncImmediate: NodeJS.Immediate | null = null;
  private syncStamp = 0;
  private readonly syncBatch = new EventBatch();
  private readonly chosen: Watcher[] = [];
  /** Delivery round scratch: its stamp, the streams and watchers taking part, message sizes. */
  private roundStamp = 0;
  private readonly roundStreams: WatchStream[] = [];
  private readonly roundWatchers: Watcher[] = [];
  private readonly messageSizes: number[] = [];
  private readonly liveBatch = new EventBatch();
  private readonly inlineSink: ResponseSink;
  private inlineArea = new Uint8Array(64 * 1024);
  private inlineGroup = 0;
  private inlineRevision = 0;
  private inlineCount = 0;
  private inlineAreaBytes = 0;
  private closed = false;
  private started = false;
  private counters = { gaps: 0, tooBig: 0, fellBehind: 0, inlineRevisions: 0, workerRevisions: 0 };

  constructor(options: WatchHubOptions) {
    this.store = options.store;
    this.header = options.header;
    this.mode = options.fanout ?? "auto";
    this.inlineWatchersMax = options.inlineWatchersMax ?? INLINE_WATCHERS_MAX_DEFAULT;
    this.fragmentLimitBytes = (options.maxRequestBytes ?? MAX_REQUEST_BYTES_DEFAULT) + GRPC_OVERHEAD_BYTES;
    const interval = options.progressNotifyIntervalMs ?? 0;
    this.progressBaseMs =
      interval <= 0 ? PROGRESS_INTERVAL_MS_DEFAULT : Math.max(interval, PROGRESS_INTERVAL_MS_MIN);
    this.streamQueuedBytesMax = options.streamQueuedBytesMax ?? STREAM_QUEUED_BYTES_MAX_DEFAULT;
    this.queuedBytesMax = options.queuedBytesMax ?? QUEUED_BYTES_MAX_DEFAULT;
    this.watchersMax = options.watchersMax ?? WATCHERS_MAX_DEFAULT;
    this.random = options.random ?? Math.random;
    this.onFatal =
      options.onFatal ??
      ((error) => {
        setImmediate(() => {
          throw error;
        });
      });
    this.inputRingBytes = options.inputRingBytes ?? INPUT_RING_BYTES_DEFAULT;
    this.outputRingBytes = options.outputRingBytes ?? OUTPUT_RING_BYTES_DEFAULT;
    assert(this.streamQueuedBytesMax > 0 && this.queuedBytesMax > 0, "queue bounds are positive");
    this.enqueuedRev = this.store.revision;
    this.deliveredRev = this.store.revision;
    this.liveFromRev = this.store.revision + 1;
    // Inline fan-out: each area is written into one reused buffer and delivered at commit.
    this.inlineSink = {
      reserve: (groupId, revision, count, areaBytes) => {
        if (this.inlineArea.length < areaBytes) this.inlineArea = new Uint8Array(areaBytes);
        this.inlineGroup = groupId;
        this.inlineRevision = revision;
        this.inlineCount = count;
        this.inlineAreaBytes = areaBytes;
        return this.inlineArea.subarray(0, areaBytes);
      },
      commit: () => {
        const area = this.inlineArea.subarray(0, this.inlineAreaBytes);
        this.deliverArea(this.inlineGroup, this.inlineRevision, this.inlineCount, area);
      },
      tooBig: (groupId, revision) => {
        this.groupTooBig(groupId, revision);
        return true;
      },
    };
  }

  /** Spawns the fan-out worker (unless inline only). Call once, before serving streams. */
  async start(): Promise<void> {
    assert(!this.started, "the hub starts once");
    this.started = true;
    const { clusterId, memberId } = this.header();
    this.ids = new HeaderIds(clusterId, memberId);
    this.core = new FanoutCore(this.ids, this.fragmentLimitBytes);
    if (this.mode === "inline") return;
    this.link = new WorkerLink(
      this.inputRingBytes,
      this.outputRingBytes,
      (tag, payload) => this.onOutputFrame(tag, payload),
      () => this.afterOutputDrain(),
      (error) => this.fatal(error),
    );
    await this.link.start({ clusterId, memberId }, this.fragmentLimitBytes);
  }

  get headerIds(): HeaderIds {
    assert(this.ids !== null, "the hub was started");
    return this.ids;
  }

  private get fanout(): FanoutCore {
    assert(this.core !== null, "the hub was started");
    return this.core;
  }

  private fatal(error: Error): void {
    if (this.closed) return;
    this.onFatal(error);
  }

  // ---------------------------------------------------------------------------------------------------
  // The seam to the apply loop

  /**
   * The events of one applied write (all at `revision`, in sub-revision order), right after the store
   * applied it. Copies them out (worker) or fans them out inline; never blocks.
   */
  onApplied(revision: number, events: readonly MvccEvent[]): void {
    if (this.closed || events.length === 0) return;
    assert(this.started, "the hub was started");
    assert(revision > this.enqueuedRev, "applied revisions only grow");
    const core = this.fanout;
    if (core.size === 0 && this.enqueuedRev === this.deliveredRev && this.pendingControls.length === 0) {
      // Nobody watches and nothing is in flight: the revision is delivered to no one.
      this.enqueuedRev = revision;
      this.deliveredRev = revision;
      if (this.liveFromRev === Number.POSITIVE_INFINITY && this.resyncAfter === null)
        this.resumeFeed(revision);
      return;
    }
    const prevOf = core.prevKvGroupCount > 0 ? this.livePrev : null;
    const { raftTerm } = this.header();
    if (this.canGoInline()) {
      if (this.liveFromRev === Number.POSITIVE_INFINITY) this.resumeFeed(revision);
      this.fanInline(revision, raftTerm, events, prevOf);
      return;
    }
    const link = this.link as WorkerLink;
    this.flushControls();
    const gap = this.liveFromRev === Number.POSITIVE_INFINITY;
    const queued =
      this.pendingControls.length === 0 &&
      (!gap || link.inputFill <= RESUME_INPUT_FILL_MAX) &&
      link.tryEvents(revision, raftTerm, events, prevOf);
    if (queued) {
      this.enqueuedRev = revision;
      this.counters.workerRevisions++;
      if (gap) this.resumeFeed(revision);
      link.publish();
    } else if (!gap) {
      this.enterGap();
    }
  }

  /** A live event's prev_kv: the store's own, or a read of the state just before (store without prev). */
  private readonly livePrev: PrevLookup = (event) =>
    event.prevKv ?? this.store.keyValueAt(event.kv.key, event.kv.modRevision - 1);

  private canGoInline(): boolean {
    if (this.mode === "inline") return true;
    if (this.mode === "worker") return false;
    return (
      this.watcherCount <= this.inlineWatchersMax &&
      this.enqueuedRev === this.deliveredRev &&
      this.resyncAfter === null &&
      this.pendingControls.length === 0
    );
  }

  private fanInline(
    revision: number,
    raftTerm: number,
    events: readonly MvccEvent[],
    prevOf: PrevLookup | null,
  ) {
    const core = this.fanout;
    const batch = this.liveBatch;
    batch.fillFromEvents(revision, raftTerm, events, 0, events.length, prevOf, latin1);
    this.enqueuedRev = revision;
    this.counters.inlineRevisions++;
    core.match(batch);
    const done = core.emit(this.inlineSink, this.areaBytesMax());
    assert(done, "inline fan-out never waits");
    this.deliveredRev = revision;
  }

  /** The largest response area that fits one output frame (inline uses the same bound). */
  private areaBytesMax(): number {
    const payloadMax = this.link?.outputPayloadMax ?? this.outputRingBytes / 2 - 8;
    return payloadMax - RESPONSES_HEADER_BYTES;
  }

  private enterGap(): void {
    this.counters.gaps++;
    this.liveFromRev = Number.POSITIVE_INFINITY;
    if (this.resyncAfter === null) {
      this.resyncAfter = this.enqueuedRev;
      if (this.deliveredRev >= this.resyncAfter) this.resyncAll(this.deliveredRev);
    }
  }

  private resumeFeed(revision: number): void {
    this.liveFromRev = revision;
    this.scheduleSync();
  }

  /** Every synced watcher falls behind at `deliveredRev + 1` (everything up to it was delivered). */
  private resyncAll(deliveredRev: number): void {
    this.resyncAfter = null;
    for (const group of this.groupsByName.values()) {
      for (const watcher of group.watchers) {
        if (watcher.synced) this.fallBehind(watcher, Math.max(watcher.nextRev, deliveredRev + 1));
      }
    }
  }

  /**
   * After a raft snapshot replaced the store's contents: every watcher catches up from history (etcd's
   * watchableStore.Restore), or is cancelled if its next revision is gone.
   */
  resync(): void {
    if (this.closed || !this.started) return;
    this.enterGap();
    this.counters.gaps--;
    this.resumeWhenIdle();
  }

  /**
   * Ends a gap without waiting for the next write when nothing is in flight: the live feed then covers
   * every revision after the current one (the next onApplied queues it, or opens a new gap).
   */
  private resumeWhenIdle(): void {
    if (
      this.liveFromRev === Number.POSITIVE_INFINITY &&
      this.resyncAfter === null &&
      this.enqueuedRev === this.deliveredRev &&
      this.pendingControls.length === 0
    ) {
      this.enqueuedRev = this.store.revision;
      this.deliveredRev = this.store.revision;
      this.resumeFeed(this.store.revision + 1);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Output of the fan-out

  private onOutputFrame(tag: number, payload: Uint8Array): void {
    const frame = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    switch (tag) {
      case OutTag.RESPONSES: {
        const groupId = frame.getUint32(0, true);
        const count = frame.getUint32(4, true);
        const revision = frame.getFloat64(8, true);
        this.deliverArea(groupId, revision, count, payload.subarray(RESPONSES_HEADER_BYTES));
        return;
      }
      case OutTag.TOO_BIG:
        this.groupTooBig(frame.getUint32(0, true), frame.getFloat64(8, true));
        return;
      case OutTag.DONE: {
        const revision = frame.getFloat64(0, true);
        assert(revision > this.deliveredRev && revision <= this.enqueuedRev, "DONE follows the queue");
        this.deliveredRev = revision;
        if (this.resyncAfter !== null && revision >= this.resyncAfter) this.resyncAll(revision);
        return;
      }
      case OutTag.UNREGISTERED: {
        const id = frame.getUint32(0, true);
        assert(this.groupsById[id] === undefined, "an unregistered group is gone");
        this.freeGroupIds.push(id);
        return;
      }
      default:
        throw new Error(`unknown watch output frame tag ${tag}`);
    }
  }

  private afterOutputDrain(): void {
    if (this.pendingControls.length > 0) {
      this.flushControls();
      this.link?.publish();
    }
    this.resumeWhenIdle();
  }

  /**
   * Writes a group's response(s) for `revision` (area: [u32 length][body]...) to each synced watcher
   * that needs it; a watcher whose stream has no room falls behind instead. Every stream gets all its
   * watchers' messages in one write: plan (sizes per stream), fill, write.
   */
  private deliverArea(groupId: number, revision: number, count: number, area: Uint8Array): void {
    const group = this.groupsById[groupId];
    if (group === undefined) return;
    const sizes = this.messageSizes;
    let bodiesBytes = 0;
    let o = 0;
    for (let m = 0; m < count; m++) {
      const size =
        ((area[o] as number) |
          ((area[o + 1] as number) << 8) |
          ((area[o + 2] as number) << 16) |
          ((area[o + 3] as number) << 24)) >>>
        0;
      sizes[m] = size;
      bodiesBytes += GRPC_FRAME_HEADER_BYTES + size;
      o += 4 + size;
    }
    const stamp = ++this.roundStamp;
    const streams = this.roundStreams;
    streams.length = 0;
    const watchers = group.watchers;
    const takers = this.roundWatchers;
    takers.length = 0;
    for (let w = 0; w < watchers.length; w++) {
      const watcher = watchers[w] as Watcher;
      if (!watcher.synced || revision < watcher.nextRev) continue;
      const stream = watcher.stream;
      if (!stream.hasRoom()) {
        this.fallBehind(watcher, revision);
        continue;
      }
      const bytes = bodiesBytes + count * watchIdFieldSize(watcher.id);
      if (stream.reserveRound(stamp, bytes)) streams.push(stream);
      takers.push(watcher);
    }
    for (let t = 0; t < takers.length; t++) {
      const watcher = takers[t] as Watcher;
      const idBytes = watchIdFieldSize(watcher.id);
      let at = 0;
      for (let m = 0; m < count; m++) {
        const size = sizes[m] as number;
        watcher.stream.appendBody(area.subarray(at + 4, at + 4 + size), watcher.id, idBytes);
        at += 4 + size;
      }
      watcher.nextRev = revision + 1;
      watcher.quiet = false;
    }
    for (let s = 0; s < streams.length; s++) (streams[s] as WatchStream).endRound();
    takers.length = 0;
    streams.length = 0;
  }

  /** The group's response at `revision` did not fit a frame: its synced watchers read it from history. */
  private groupTooBig(groupId: number, revision: number): void {
    this.counters.tooBig++;
    const group = this.groupsById[groupId];
    if (group === undefined) return;
    for (const watcher of group.watchers) {
      if (watcher.synced && revision >= watcher.nextRev) this.fallBehind(watcher, revision);
    }
  }

  private fallBehind(watcher: Watcher, nextRev: number): void {
    assert(watcher.synced, "only a synced watcher falls behind");
    assert(nextRev >= watcher.nextRev, "falling behind never skips back");
    watcher.synced = false;
    watcher.nextRev = nextRev;
    this.counters.fellBehind++;
    watcher.unsyncedIndex = this.unsynced.length;
    this.unsynced.push(watcher);
    watcher.stream.unsyncedCount++;
    if (watcher.stream.hasRoomForCatchUp()) this.scheduleSync();
  }

  private markSynced(watcher: Watcher): void {
    assert(!watcher.synced && watcher.unsyncedIndex >= 0, "an unsynced watcher becomes synced");
    this.removeUnsynced(watcher);
    watcher.synced = true;
  }

  private removeUnsynced(watcher: Watcher): void {
    const at = watcher.unsyncedIndex;
    const last = this.unsynced.pop() as Watcher;
    if (last !== watcher) {
      this.unsynced[at] = last;
      last.unsyncedIndex = at;
    }
    watcher.unsyncedIndex = -1;
    watcher.stream.unsyncedCount--;
  }

  // ---------------------------------------------------------------------------------------------------
  // Streams, watchers, groups

  /** A new Watch stream writing to `transport`. */
  openStream(transport: StreamTransport): WatchStream {
    assert(this.started && !this.closed, "the hub is running");
    const stream = new WatchStream(this, transport, this.streamQueuedBytesMax);
    this.streams.add(stream);
    return stream;
  }

  streamClosed(stream: WatchStream): void {
    this.streams.delete(stream);
  }

  hasGlobalRoom(): boolean {
    if (this.queuedBytes < this.queuedBytesMax) return true;
    this.globalBlocked = true;
    return false;
  }

  /**
   * A stream's write completed. When the hub-wide bound had stopped someone, the catch-up runs again
   * once it has room (the stream that drained may not be the one with unsynced watchers).
   */
  noteWritten(): void {
    if (this.globalBlocked && this.queuedBytes < this.queuedBytesMax) {
      this.globalBlocked = false;
      this.scheduleSync();
    }
  }

  hasWatcherRoom(): boolean {
    return this.watcherCount < this.watchersMax;
  }

  currentRevision(): number {
    return this.store.revision;
  }

  /**
   * The revision a progress response may claim: every event up to it was delivered to synced watchers.
   * The store's revision when nothing is in flight, else the last fully delivered one.
   */
  liveRevision(): number {
    if (this.enqueuedRev === this.deliveredRev && this.liveFromRev !== Number.POSITIVE_INFINITY) {
      return this.store.revision;
    }
    return this.deliveredRev;
  }

  /** The progress tick interval of a new stream: the base plus up to 10 % jitter (etcd's). */
  progressIntervalMs(): number {
    return this.progressBaseMs + Math.floor(this.random() * (this.progressBaseMs / 10));
  }

  /** Adds a watcher to its group (created if new) and places it synced or unsynced (spec §7.2 step 2). */
  addWatcher(
    stream: WatchStream,
    id: number,
    request: WatchCreate,
    key: Uint8Array,
    end: Uint8Array | null,
    single: boolean,
    startRev: number,
  ): Watcher {
    let flags = single ? GroupFlag.SINGLE : 0;
    for (const filter of request.filters) {
      if (filter === 0) flags |= GroupFlag.NOPUT;
      else if (filter === 1) flags |= GroupFlag.NODELETE;
    }
    if (request.prevKv) flags |= GroupFlag.PREV_KV;
    if (request.fragment) flags = withWatchIdBytes(flags | GroupFlag.FRAGMENT, watchIdFieldSize(id));
    const group = this.groupFor(flags, key, end);
    const currentRev = this.store.revision;
    const watcher = new Watcher(stream, id, group, startRev, request.progressNotify);
    watcher.indexInGroup = group.watchers.length;
    group.watchers.push(watcher);
    this.watcherCount++;
    // etcd: synced when the start is in the future (or 0), from max(current + 1, start).
    if (startRev > currentRev) {
      watcher.synced = true;
      if (this.liveFromRev > currentRev + 1) this.fallBehind(watcher, startRev);
    } else {
      watcher.unsyncedIndex = this.unsynced.length;
      this.unsynced.push(watcher);
      stream.unsyncedCount++;
      this.scheduleSync();
    }
    return watcher;
  }

  removeWatcher(watcher: Watcher): void {
    if (watcher.removed) return;
    watcher.removed = true;
    if (watcher.unsyncedIndex >= 0) this.removeUnsynced(watcher);
    const group = watcher.group;
    const at = watcher.indexInGroup;
    const last = group.watchers.pop() as Watcher;
    if (last !== watcher) {
      group.watchers[at] = last;
      last.indexInGroup = at;
    }
    watcher.indexInGroup = -1;
    this.watcherCount--;
    if (group.watchers.length === 0) this.dropGroup(group);
  }

  private groupFor(flags: number, key: Uint8Array, end: Uint8Array | null): Group {
    const keyString = latin1(key);
    const endString = end === null ? "" : latin1(end);
    // Unambiguous: flags, then the key's length, then key and end.
    const name = `${flags}:${keyString.length}:${keyString}${endString}`;
    const existing = this.groupsByName.get(name);
    if (existing !== undefined) return existing;
    const id = this.freeGroupIds.pop() ?? this.nextGroupId++;
    // Copies: the request's bytes are views into a gRPC message buffer, and a group may live long.
    const group = new Group(id, name, flags, key.slice(), end === null ? null : end.slice());
    this.groupsByName.set(name, group);
    this.groupsById[id] = group;
    this.fanout.register({ id, flags, key: keyString, end: end === null ? null : endString });
    if (this.link !== null) {
      const { key: ownKey, end: ownEnd } = group;
      this.pendingControls.push(() => (this.link as WorkerLink).tryRegister(id, flags, ownKey, ownEnd));
      this.flushControls();
      this.link.publish();
    }
    return group;
  }

  private dropGroup(group: Group): void {
    this.groupsByName.delete(group.name);
    this.groupsById[group.id] = undefined;
    this.fanout.unregister(group.id);
    if (this.link === null) {
      this.freeGroupIds.push(group.id);
      return;
    }
    const id = group.id;
    this.pendingControls.push(() => (this.link as WorkerLink).tryUnregister(id));
    this.flushControls();
    this.link.publish();
  }

  private flushControls(): void {
    while (this.pendingControls.length > 0) {
      const control = this.pendingControls[0] as () => boolean;
      if (!control()) return;
      this.pendingControls.shift();
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Catch-up of unsynced watchers (etcd's syncWatchers)

  scheduleSync(): void {
    if (this.syncImmediate !== null || this.closed || this.unsynced.length === 0) return;
    this.syncImmediate = setImmediate(() => {
      this.syncImmediate = null;
      this.syncRound();
    });
  }

  /** Picks up to SYNC_WATCHERS_MAX unsynced watchers whose streams have room, round-robin. */
  private chooseUnsynced(): Watcher[] {
    const chosen = this.chosen;
    chosen.length = 0;
    const total = this.unsynced.length;
    if (this.syncCursor >= total) this.syncCursor = 0;
    for (let seen = 0; seen < total && chosen.length < SYNC_WATCHERS_MAX; seen++) {
      const watcher = this.unsynced[(this.syncCursor + seen) % total] as Watcher;
      if (watcher.stream.hasRoomForCatchUp()) chosen.push(watcher);
    }
    this.syncCursor = (this.syncCursor + SYNC_WATCHERS_MAX) % Math.max(total, 1);
    return chosen;
  }

  /**
   * One catch-up round: for the chosen watchers, cancel those whose next revision is compacted, read the
   * history from the smallest next revision (at most SYNC_REVISIONS_MAX revisions, SYNC_EVENTS_MAX
   * events, about SYNC_BYTES_MAX bytes, whole revisions only), send each its part with the header
   * revision set to the current revision, and join the live feed those that reached it.
   */
  private syncRound(): void {
    if (this.closed || this.unsynced.length === 0) return;
    const store = this.store;
    const currentRev = store.revision;
    const compactRev = store.compactRevision;
    const canJoin = this.liveFromRev <= currentRev + 1;
    let progressed = false;
    let minRev = Number.POSITIVE_INFINITY;
    const reading: Watcher[] = [];
    for (const watcher of this.chooseUnsynced()) {
      if (watcher.nextRev < compactRev) {
        this.cancelCompacted(watcher, compactRev);
        progressed = true;
      } else if (watcher.nextRev > currentRev) {
        if (canJoin) {
          this.markSynced(watcher);
          progressed = true;
        }
      } else {
        reading.push(watcher);
        if (watcher.nextRev < minRev) minRev = watcher.nextRev;
      }
    }
    if (reading.length > 0 && this.catchUp(reading, minRev, currentRev, canJoin)) progressed = true;
    if (progressed) this.scheduleSync();
  }

  private cancelCompacted(watcher: Watcher, compactRev: number): void {
    const stream = watcher.stream;
    const { raftTerm } = this.header();
    stream.sendControl({
      revision: 0,
      raftTerm,
      watchId: watcher.id,
      canceled: true,
      compactRevision: compactRev,
    });
    stream.markCompacted(watcher);
    this.removeWatcher(watcher);
  }

  /** Serves one round of history to `watchers`; false when none of them could take anything. */
  private catchUp(watchers: Watcher[], minRev: number, currentRev: number, canJoin: boolean): boolean {
    const store = this.store;
    let toRev = Math.min(currentRev, minRev + SYNC_REVISIONS_MAX - 1);
    let events = store.eventsBetween(minRev, toRev, SYNC_EVENTS_MAX, SYNC_BYTES_MAX);
    if (store.lastEventsTruncated && events.length > 0) {
      const lastRev = (events[events.length - 1] as MvccEvent).kv.modRevision;
      if ((events[0] as MvccEvent).kv.modRevision < lastRev) {
        // Keep whole revisions only: the last one may be cut short.
        let cut = events.length;
        while (cut > 0 && (events[cut - 1] as MvccEvent).kv.modRevision === lastRev) cut--;
        events = events.slice(0, cut);
        toRev = lastRev - 1;
      } else {
        // One revision larger than the budget goes alone, whole.
        events = store.eventsBetween(lastRev, lastRev, 0, 0);
        toRev = lastRev;
      }
    }
    const { raftTerm } = this.header();
    const batch = this.syncBatch;
    batch.fillFromEvents(currentRev, raftTerm, events, 0, events.length, null, latin1);
    const stamp = ++this.syncStamp;
    for (const watcher of watchers) {
      const group = watcher.group;
      if (group.syncStamp !== stamp) {
        group.syncStamp = stamp;
        group.syncEvents.length = 0;
      }
    }
    this.collectForSync(batch, stamp);
    this.resolvePrevs(watchers, batch, stamp, events);
    const encoder = this.fanout.responseEncoder;
    let served = false;
    for (const watcher of watchers) {
      const stream = watcher.stream;
      // Room is checked again per watcher: others of the same stream may have filled it this round.
      if (!stream.hasRoomForCatchUp()) continue;
      served = true;
      const selection = watcher.group.syncEvents;
      let from = 0;
      while (
        from < selection.length &&
        (batch.kvs[selection[from] as number]?.modRevision ?? 0) < watcher.nextRev
      ) {
        from++;
      }
      if (from < selection.length) {
        // One response for the round's window, as etcd sends up to 1000 revisions at once: the window is
        // bounded (SYNC_REVISIONS_MAX, SYNC_EVENTS_MAX, about SYNC_BYTES_MAX), and so is what a stream
        // holds (half its bound plus one such response; the hub-wide bound is checked per watcher above).
        encoder.plan(batch, selection, from, selection.length, watcher.group.flags, currentRev, raftTerm);
        const idBytes = watchIdFieldSize(watcher.id);
        let total = 0;
        for (let m = 0; m < encoder.messageCount; m++) {
          total += GRPC_FRAME_HEADER_BYTES + (encoder.bodySizes[m] as number) + idBytes;
        }
        const frames = Buffer.allocUnsafe(total);
        let o = 0;
        for (let m = 0; m < encoder.messageCount; m++) {
          const start = writeFrameHeader(frames, o, (encoder.bodySizes[m] as number) + idBytes);
          o = writeWatchIdField(frames, encoder.writeBody(m, frames, start), watcher.id);
        }
        assert(o === total, "catch-up frames fill their buffer");
        stream.send(frames);
        watcher.quiet = false;
      }
      // A watcher ahead of this round's window (its nextRev past toRev) keeps its position.
      if (toRev + 1 > watcher.nextRev) watcher.nextRev = toRev + 1;
      if (watcher.nextRev > currentRev && canJoin) this.markSynced(watcher);
    }
    return served;
  }

  /** Collects, per group of this round, the indices of the events it receives (filters applied). */
  private collectForSync(batch: EventBatch, stamp: number): void {
    const core = this.fanout;
    for (let i = 0; i < batch.count; i++) {
      const type = batch.types[i] as number;
      core.stab(batch.keyStrings[i] as string, (id) => {
        const group = this.groupsById[id];
        if (group === undefined || group.syncStamp !== stamp) return;
        if (type === 0 && (group.flags & GroupFlag.NOPUT) !== 0) return;
        if (type === 1 && (group.flags & GroupFlag.NODELETE) !== 0) return;
        group.syncEvents.push(i);
      });
    }
  }

  /** etcd reads prev_kv at mod_revision - 1 for each non-create event a prev_kv watcher gets. */
  private resolvePrevs(
    watchers: Watcher[],
    batch: EventBatch,
    stamp: number,
    events: readonly MvccEvent[],
  ): void {
    let resolved: Uint8Array | null = null;
    for (const watcher of watchers) {
      const group = watcher.group;
      if ((group.flags & GroupFlag.PREV_KV) === 0 || group.syncStamp !== stamp) continue;
      resolved ??= new Uint8Array(batch.count);
      for (const i of group.syncEvents) {
        if (resolved[i] === 1) continue;
        resolved[i] = 1;
        const event = events[i] as MvccEvent;
        const create = event.type === "PUT" && event.kv.createRevision === event.kv.modRevision;
        let prev: KeyValue | undefined;
        if (!create) prev = this.store.keyValueAt(event.kv.key, event.kv.modRevision - 1);
        batch.setPrev(i, prev);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------

  stats(): WatchHubStats {
    return {
      streams: this.streams.size,
      watchers: this.watcherCount,
      slowWatchers: this.unsynced.length,
      groups: this.groupsByName.size,
      queuedBytes: this.queuedBytes,
      ...this.counters,
    };
  }

  /** Stops the fan-out: every stream is ended with "etcdserver: server stopped", the worker exits. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const stream of [...this.streams]) stream.abort(14, "etcdserver: server stopped");
    this.closed = true;
    if (this.syncImmediate !== null) clearImmediate(this.syncImmediate);
    this.syncImmediate = null;
    await this.link?.close();
  }
}
