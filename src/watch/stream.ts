import { assert } from "../assert.js";
import type { Group, WatchHub } from "./hub.js";
import type { StreamTransport, WatchCreate } from "./types.js";
import {
  type ControlResponse,
  encodeControlResponse,
  framed,
  writeFrameHeader,
  writeWatchIdField,
} from "./wire.js";

/**
 * One Watch stream (etcd's serverWatchStream + mvcc watchStream): its watchers by id, the id counter,
 * the bytes it has queued on its transport, and its progress ticker. Every response for the stream goes
 * through `send`, in order, on the main thread: a watcher's `created` response is written before any of
 * its events can be (spec §7.1).
 */

/** etcd's cancel reasons (mvcc/watcher.go), sent as `cancel_reason` with watch_id -1. */
export const CancelReason = {
  EmptyRange: "mvcc: watcher range is empty",
  DuplicateId: "mvcc: duplicate watch ID provided on the WatchStream",
  /** Ours: a client-chosen id that is not an exact integer in JavaScript (|id| >= 2^53). */
  IdOutOfRange: "mvcc: watch ID out of range",
  /** Ours: the member holds `watchersMax` watchers. */
  TooManyWatchers: "etcdserver: too many requests",
} as const;

/** A watcher: one (stream, id) with its group and its position in the event history. */
export class Watcher {
  /** Position in its group's watcher list. */
  indexInGroup = -1;
  /** Position in the hub's unsynced list, -1 when synced. */
  unsyncedIndex = -1;
  /**
   * Synced: takes live responses with revision >= nextRev. Unsynced: takes nothing live; the catch-up
   * reads history from nextRev. Either way every event below nextRev was sent (or was not for it).
   */
  synced = false;
  /** etcd's progress[id]: no events went out since the last progress tick. */
  quiet = true;
  /** Removed (canceled, compacted, stream closed): nothing is sent for it any more. */
  removed = false;

  constructor(
    readonly stream: WatchStream,
    readonly id: number,
    readonly group: Group,
    public nextRev: number,
    readonly progressNotify: boolean,
  ) {}
}

/** Compacted watchers keep their id on the stream until canceled (etcd's watchStream map keeps them). */
const COMPACTED = null;

export class WatchStream {
  /** Live watchers by id; COMPACTED for ids whose watcher was cancelled by a compaction. */
  private readonly watchers = new Map<number, Watcher | typeof COMPACTED>();
  /** etcd's nextID: the auto-assigned id counter, only moving forward. */
  private nextAutoId = 0;
  /** Bytes handed to the transport and not yet reported written. */
  queuedBytes = 0;
  /** Sizes of the writes in flight, oldest at `sizesHead` (written callbacks complete in order). */
  private readonly sizes: number[] = [];
  private sizesHead = 0;
  /** Watchers of this stream in the hub's unsynced list. */
  unsyncedCount = 0;
  closed = false;
  private reading = true;
  private progressTimer: NodeJS.Timeout | null = null;
  private readonly written = (): void => this.onWritten();

  constructor(
    private readonly hub: WatchHub,
    private readonly transport: StreamTransport,
    /** Bytes this stream may queue before its watchers fall behind. */
    private readonly queuedBytesMax: number,
  ) {}

  /** Live watchers on this stream. */
  get watcherCount(): number {
    let count = 0;
    for (const w of this.watchers.values()) if (w !== COMPACTED) count++;
    return count;
  }

  /** True when a live response may be written now (an idle stream always takes one, however big). */
  hasRoom(): boolean {
    const queued = this.queuedBytes + this.roundBytes;
    if (queued === 0) return true;
    return queued < this.queuedBytesMax && this.hub.hasGlobalRoom();
  }

  /** True when the catch-up may write to this stream (half empty, so a catching-up stream does not flap). */
  hasRoomForCatchUp(): boolean {
    if (this.queuedBytes === 0) return true;
    return this.queuedBytes <= this.queuedBytesMax / 2 && this.hub.hasGlobalRoom();
  }

  // ---------------------------------------------------------------------------------------------------
  // Delivery rounds: every message one delivery sends to this stream goes out in one transport write.
  // The hub plans the round (reserveRound), then fills (appendBody) and ends it (endRound).

  /** Stamp of the delivery round this stream takes part in, and the bytes planned for it. */
  roundStamp = -1;
  roundBytes = 0;
  private roundBuffer: Buffer | null = null;
  private roundOffset = 0;

  /** Plans `bytes` more for the round `stamp`; true when this is the stream's first in that round. */
  reserveRound(stamp: number, bytes: number): boolean {
    const first = this.roundStamp !== stamp;
    if (first) {
      this.roundStamp = stamp;
      this.roundBytes = 0;
    }
    this.roundBytes += bytes;
    return first;
  }

  /** Appends one framed message: a fan-out body with `watchId` appended. */
  appendBody(body: Uint8Array, watchId: number, idBytes: number): void {
    if (this.roundBuffer === null) {
      this.roundBuffer = Buffer.allocUnsafe(this.roundBytes);
      this.roundOffset = 0;
    }
    const out = this.roundBuffer;
    let o = writeFrameHeader(out, this.roundOffset, body.length + idBytes);
    out.set(body, o);
    o = writeWatchIdField(out, o + body.length, watchId);
    this.roundOffset = o;
  }

  /** Writes what the round appended (as planned) in one transport write. */
  endRound(): void {
    const out = this.roundBuffer;
    this.roundBuffer = null;
    this.roundBytes = 0;
    if (out === null) return;
    assert(this.roundOffset === out.length, "a delivery round fills what it planned");
    if (!this.closed) this.send(out);
  }

  /** Queues frames (one or more framed responses) in one transport write. */
  send(frames: Buffer): void {
    assert(!this.closed, "a closed stream sends nothing");
    const size = frames.length;
    this.queuedBytes += size;
    this.hub.queuedBytes += size;
    this.sizes.push(size);
    // Control responses are not bounded by hasRoom: past twice the bound, stop reading requests instead.
    if (this.reading && this.queuedBytes > 2 * this.queuedBytesMax) {
      this.reading = false;
      this.transport.setReading(false);
    }
    this.transport.write(frames, this.written);
  }

  sendControl(response: ControlResponse): void {
    this.send(framed(encodeControlResponse(this.hub.headerIds, response)));
  }

  private onWritten(): void {
    if (this.closed) return;
    assert(this.sizesHead < this.sizes.length, "a written callback matches a write");
    const size = this.sizes[this.sizesHead++] as number;
    if (this.sizesHead === this.sizes.length) {
      this.sizes.length = 0;
      this.sizesHead = 0;
    } else if (this.sizesHead >= 1024 && this.sizesHead * 2 >= this.sizes.length) {
      this.sizes.splice(0, this.sizesHead);
      this.sizesHead = 0;
    }
    this.queuedBytes -= size;
    this.hub.queuedBytes -= size;
    if (!this.reading && this.queuedBytes <= this.queuedBytesMax) {
      this.reading = true;
      this.transport.setReading(true);
    }
    if (this.unsyncedCount > 0 && this.hasRoomForCatchUp()) this.hub.scheduleSync();
    this.hub.noteWritten();
  }

  // ---------------------------------------------------------------------------------------------------
  // Requests (spec §7.2, §7.5, §7.7)

  /** Answers a create_request the api layer refused (auth): watch_id -1, created and canceled. */
  refuse(reason: string): void {
    if (this.closed) return;
    const { raftTerm } = this.hub.header();
    this.sendControl({
      revision: this.hub.currentRevision(),
      raftTerm,
      watchId: -1,
      created: true,
      canceled: true,
      cancelReason: reason,
    });
  }

  create(request: WatchCreate): void {
    if (this.closed) return;
    // Normalisation as etcd's recvLoop: empty key -> "\0"; range_end "\0" -> every key >= key.
    const key = request.key.length === 0 ? new Uint8Array([0]) : request.key;
    const rangeEnd = request.rangeEnd;
    const single = rangeEnd.length === 0;
    const fromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    const end = single || fromKey ? null : rangeEnd;
    const id = this.pickId(request.watchId, end !== null && Buffer.compare(key, end) >= 0);
    if (typeof id === "string") {
      this.refuse(id);
      return;
    }
    const currentRev = this.hub.currentRevision();
    const { raftTerm } = this.hub.header();
    this.sendControl({ revision: currentRev, raftTerm, watchId: id, created: true });
    const startRev = request.startRevision === 0 ? currentRev + 1 : request.startRevision;
    const watcher = this.hub.addWatcher(this, id, request, key, end, single, startRev);
    this.watchers.set(id, watcher);
    if (request.progressNotify) this.startProgressTicks();
  }

  /** etcd's watchStream.Watch checks, in its order: the watch id to use, or the refusal's reason. */
  private pickId(requested: number, emptyRange: boolean): number | string {
    if (emptyRange) return CancelReason.EmptyRange;
    if (!Number.isSafeInteger(requested)) return CancelReason.IdOutOfRange;
    if (requested !== 0 && this.watchers.has(requested)) return CancelReason.DuplicateId;
    if (!this.hub.hasWatcherRoom()) return CancelReason.TooManyWatchers;
    if (requested !== 0) return requested;
    while (this.watchers.has(this.nextAutoId)) this.nextAutoId++;
    return this.nextAutoId++;
  }

  /** cancel_request: an unknown id gets no answer at all (spec §7.7). */
  cancel(watchId: number): void {
    if (this.closed || !this.watchers.has(watchId)) return;
    const watcher = this.watchers.get(watchId);
    this.watchers.delete(watchId);
    if (watcher !== COMPACTED && watcher !== undefined) this.hub.removeWatcher(watcher);
    const { raftTerm } = this.hub.header();
    this.sendControl({ revision: this.hub.currentRevision(), raftTerm, watchId, canceled: true });
  }

  /** progress_request: one response with watch_id -1 (3.4: whatever the watchers' state). */
  requestProgress(): void {
    if (this.closed) return;
    const { raftTerm } = this.hub.header();
    this.sendControl({ revision: this.hub.liveRevision(), raftTerm, watchId: -1 });
  }

  /** The hub cancelled a watcher whose next revision was compacted; the id stays taken until canceled. */
  markCompacted(watcher: Watcher): void {
    assert(this.watchers.get(watcher.id) === watcher, "a compacted watcher belongs to its stream");
    this.watchers.set(watcher.id, COMPACTED);
  }

  // ---------------------------------------------------------------------------------------------------
  // Progress notifications (spec §7.5)

  private startProgressTicks(): void {
    if (this.progressTimer !== null) return;
    const intervalMs = this.hub.progressIntervalMs();
    this.progressTimer = setInterval(() => this.progressTick(), intervalMs);
    this.progressTimer.unref();
  }

  /**
   * etcd's sendLoop ticker: each synced progress_notify watcher that got no events since the last tick
   * gets {header(revision), watch_id}; then every such watcher counts as quiet again.
   */
  progressTick(): void {
    if (this.closed) return;
    let revision = -1;
    let raftTerm = 0;
    for (const watcher of this.watchers.values()) {
      if (watcher === COMPACTED || !watcher.progressNotify) continue;
      if (watcher.quiet && watcher.synced && this.hasRoom()) {
        if (revision < 0) {
          revision = this.hub.liveRevision();
          raftTerm = this.hub.header().raftTerm;
        }
        this.sendControl({ revision, raftTerm, watchId: watcher.id });
      }
      watcher.quiet = true;
    }
  }

  /** Ends the stream with an etcd error (leader loss, shutdown); `close` follows from the transport. */
  abort(code: number, message: string): void {
    if (this.closed) return;
    this.transport.abort(code, message);
    this.close();
  }

  /** The client went away (or the server stops): drop every watcher and the queued-bytes account. */
  close(): void {
    if (this.closed) return;
    for (const watcher of this.watchers.values()) if (watcher !== COMPACTED) this.hub.removeWatcher(watcher);
    this.watchers.clear();
    if (this.progressTimer !== null) clearInterval(this.progressTimer);
    this.progressTimer = null;
    this.hub.queuedBytes -= this.queuedBytes;
    this.queuedBytes = 0;
    this.closed = true;
    this.hub.streamClosed(this);
  }
}
