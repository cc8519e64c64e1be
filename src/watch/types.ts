import type { KeyValue, MvccEvent } from "../mvcc/types.js";

/**
 * What the watch layer needs from the store (the consumer owns the interface, as etcd's lessor owns its
 * TxnDelete). MvccStore implements it. Everything is called on the main thread, synchronously.
 */
export interface WatchStore {
  /** The current revision. */
  readonly revision: number;
  /** The compaction revision, -1 when never compacted. */
  readonly compactRevision: number;
  /**
   * History of revisions [fromRev, toRev] (no prev_kv), at most `limit` events and about `sizeBytesMax`
   * bytes; `lastEventsTruncated` tells whether the read stopped early. Throws below the compaction.
   */
  eventsBetween(fromRev: number, toRev: number, limit: number, sizeBytesMax: number): MvccEvent[];
  readonly lastEventsTruncated: boolean;
  /** The key's KeyValue at `revision`; undefined when absent, compacted or in the future. */
  keyValueAt(key: Uint8Array, revision: number): KeyValue | undefined;
}

/** The member fields of every response header, as of now. */
export interface HeaderSource {
  header(): { clusterId: bigint; memberId: bigint; raftTerm: number };
}

/** A create_request after the api layer decoded it (spec §7.2); byte fields as sent. */
export interface WatchCreate {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  startRevision: number;
  progressNotify: boolean;
  /** WatchCreateRequest.FilterType values: 0 NOPUT, 1 NODELETE; others are ignored, as etcd does. */
  filters: readonly number[];
  prevKv: boolean;
  /** 0: the stream picks one. */
  watchId: number;
  fragment: boolean;
}

/**
 * One gRPC stream as the watch layer writes to it. `write` queues one or more WatchResponses, each
 * already framed as gRPC frames them (a 5-byte prefix: flag 0, u32 big-endian length; see wire.ts), and
 * calls `written` once, after the transport handed those bytes on (they are no longer held by the
 * process); calls complete in write order. The hub counts the bytes in between against its bounds. A
 * transport that closed may never call `written` again.
 */
export interface StreamTransport {
  write(frames: Buffer, written: () => void): void;
  /** Stops (false) or resumes (true) reading requests from the client: back-pressure on control traffic. */
  setReading(reading: boolean): void;
  /** Ends the stream with an etcd error (e.g. "etcdserver: no leader"). */
  abort(code: number, message: string): void;
}

export type FanoutMode = "worker" | "inline" | "auto";

export interface WatchHubOptions {
  store: WatchStore;
  header: HeaderSource["header"];
  /**
   * Where matching and encoding of live events run: "worker" (the fan-out worker thread, fed through a
   * SharedArrayBuffer ring), "inline" (synchronously in onApplied, on the main thread), or "auto": inline
   * while at most `inlineWatchersMax` watchers exist and nothing is in flight on the worker, else the
   * worker. Default "auto".
   */
  fanout?: FanoutMode;
  /** "auto": the largest watcher count served inline. Default INLINE_WATCHERS_MAX_DEFAULT. */
  inlineWatchersMax?: number;
  /** etcd's --max-request-bytes; responses of fragment watchers split at this + 512 KiB. */
  maxRequestBytes?: number;
  /**
   * etcd's --experimental-watch-progress-notify-interval (default 10 min, minimum 100 ms; 0 keeps the
   * default). Each stream ticks at this interval plus up to 10 % jitter.
   */
  progressNotifyIntervalMs?: number;
  /** Bytes queued on one stream before its watchers fall behind (catch up from history). */
  streamQueuedBytesMax?: number;
  /** Bytes queued on all streams together before every stream stops taking live events. */
  queuedBytesMax?: number;
  /** Watchers on all streams together; a create beyond it is refused. */
  watchersMax?: number;
  /** Frame area of the main -> worker ring (bytes, multiple of 8). */
  inputRingBytes?: number;
  /** Frame area of the worker -> main ring (bytes, multiple of 8). */
  outputRingBytes?: number;
  /** Called when the fan-out worker dies: the member must stop (default: throw on the next tick). */
  onFatal?: (error: Error) => void;
  /** Random source for the progress jitter (tests pin it). Default Math.random. */
  random?: () => number;
}
