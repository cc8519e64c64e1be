import { assert } from "../assert.js";
import { EtcdError } from "../errors.js";
import { checkDeleteRequest, checkRangeRequest, checkTxnRequest } from "../mvcc/validate.js";
import { etcdserverpb } from "../proto/index.js";
import type { EtcdServerApi, LeaseServerApi } from "../server/api.js";
import * as convert from "../server/convert.js";
import type { WatchHub } from "../watch/hub.js";
import type { WatchStream } from "../watch/stream.js";
import type { StreamTransport } from "../watch/types.js";
import { CoordinationError } from "./errors.js";

/**
 * The member seen as etcd's in-process clientv3 sees it (v3client): KV calls with the KV service's
 * admission checks and a filled header, a lease grant, and watches. The lock and election recipes
 * (./mutex.ts, ./election.ts) run on this, as etcd's v3lock/v3election servers run clientv3/concurrency
 * against their own member.
 *
 * Watches are ordinary watch streams on the member's WatchHub (the same path as a client's Watch
 * stream: catch-up from history, live fan-out, compaction cancel), with a transport that decodes the
 * responses here instead of writing them to a socket.
 */

/** Watches open at once through one client; past it a wait fails "etcdserver: too many requests". */
export const WATCHES_OPEN_MAX = 65_536;

export type CoordinationServer = EtcdServerApi & LeaseServerApi;

/** A response as the recipes use it: every header field filled as of the inner call's return. */
export type Header = etcdserverpb.ResponseHeaderInit;

export class MemberClient {
  private watchesOpen = 0;

  constructor(
    readonly server: CoordinationServer,
    private readonly hub: WatchHub,
  ) {}

  /** Watches open now (tests check that every wait releases its watch). */
  get openWatchCount(): number {
    return this.watchesOpen;
  }

  header(revision: number | undefined): Header {
    const member = this.server.header();
    return {
      clusterId: member.clusterId,
      memberId: member.memberId,
      revision: revision ?? 0,
      raftTerm: member.raftTerm,
    };
  }

  async txn(init: etcdserverpb.TxnRequestInit): Promise<etcdserverpb.TxnResponseInit> {
    const request = etcdserverpb.TxnRequest.create(init);
    checkTxnRequest(convert.txnRequestToStore(request), this.server.limits.maxTxnOps);
    const response = await this.server.txn(request);
    return { ...response, header: this.header(response.header?.revision) };
  }

  async range(init: etcdserverpb.RangeRequestInit): Promise<etcdserverpb.RangeResponseInit> {
    const request = etcdserverpb.RangeRequest.create(init);
    checkRangeRequest(convert.rangeRequestToStore(request));
    const response = await this.server.range(request);
    return { ...response, header: this.header(response.header?.revision) };
  }

  async deleteRange(
    init: etcdserverpb.DeleteRangeRequestInit,
  ): Promise<etcdserverpb.DeleteRangeResponseInit> {
    const request = etcdserverpb.DeleteRangeRequest.create(init);
    checkDeleteRequest(convert.deleteRangeRequestToStore(request));
    const response = await this.server.deleteRange(request);
    return { ...response, header: this.header(response.header?.revision) };
  }

  /** A lease of `ttlSeconds` with a server-chosen id. */
  async leaseGrant(ttlSeconds: number): Promise<bigint> {
    const response = await this.server.leaseGrant(etcdserverpb.LeaseGrantRequest.create({ TTL: ttlSeconds }));
    const id = response.ID ?? 0n;
    assert(id !== 0n, "a granted lease has an id");
    return id;
  }

  /**
   * Watches [key, rangeEnd) (a single key when rangeEnd is empty) from `startRevision`. Read the
   * responses with `next`; `close` when done (idempotent). Throws TooManyRequests past WATCHES_OPEN_MAX.
   */
  watch(key: Uint8Array, rangeEnd: Uint8Array, startRevision: number): HubWatch {
    if (this.watchesOpen >= WATCHES_OPEN_MAX) throw new EtcdError("TooManyRequests");
    this.watchesOpen++;
    const watch = new HubWatch(() => {
      this.watchesOpen--;
      assert(this.watchesOpen >= 0, "watch count stays non-negative");
    });
    watch.start(this.hub, key, rangeEnd, startRevision);
    return watch;
  }
}

/** One queued transport write: its decoded responses, the next to hand out, and the hub's callback. */
interface Delivery {
  responses: etcdserverpb.WatchResponse[];
  taken: number;
  written: () => void;
}

/**
 * One watch on the hub. Back-pressure: a write's `written` callback is called only once the reader took
 * every response of that write, so a slow reader (an Observe stream whose client does not read) makes the
 * hub's per-stream byte bound apply: its watcher falls behind and catches up from history later, and what
 * is queued here stays below that bound (STREAM_QUEUED_BYTES_MAX_DEFAULT).
 */
export class HubWatch implements StreamTransport {
  private stream: WatchStream | null = null;
  private readonly queue: Delivery[] = [];
  private failure: Error | null = null;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(private readonly onClosed: () => void) {}

  start(hub: WatchHub, key: Uint8Array, rangeEnd: Uint8Array, startRevision: number): void {
    const stream = hub.openStream(this);
    this.stream = stream;
    stream.create({
      key,
      rangeEnd,
      startRevision,
      progressNotify: false,
      filters: [],
      prevKv: false,
      watchId: 0,
      fragment: false,
    });
  }

  // StreamTransport -----------------------------------------------------------------------------------

  write(frames: Buffer, written: () => void): void {
    if (this.closed) return;
    const responses: etcdserverpb.WatchResponse[] = [];
    let offset = 0;
    while (offset < frames.length) {
      // gRPC framing as the hub writes it (src/watch/wire.ts): flag byte, u32 big-endian length, body.
      const length = frames.readUInt32BE(offset + 1);
      const end = offset + 5 + length;
      assert(end <= frames.length, "a frame lies inside its write");
      // Copied: the recipes keep keys and values past this write (the hub may reuse its buffers).
      const response = etcdserverpb.WatchResponse.decode(Buffer.from(frames.subarray(offset + 5, end)));
      offset = end;
      if (response.created && !response.canceled) continue;
      responses.push(response);
    }
    if (responses.length === 0) {
      queueMicrotask(written);
      return;
    }
    this.queue.push({ responses, taken: 0, written });
    this.notify();
  }

  setReading(_reading: boolean): void {
    // This stream sends no requests after its create: nothing to pause.
  }

  abort(_code: number, message: string): void {
    this.fail(new CoordinationError("Server", message));
  }

  // Reader --------------------------------------------------------------------------------------------

  /**
   * The next response with events, in order. Rejects with the watch's error once the responses before it
   * were read: a compaction cancel (etcd's ErrCompacted), a refused create, the member stopping; with
   * Cancelled when `signal` aborts first.
   */
  async next(signal: AbortSignal): Promise<etcdserverpb.WatchResponse> {
    for (;;) {
      const head = this.queue[0];
      if (head !== undefined) {
        const response = head.responses[head.taken++] as etcdserverpb.WatchResponse;
        if (head.taken === head.responses.length) {
          this.queue.shift();
          queueMicrotask(head.written);
        }
        const error = watchResponseError(response);
        if (error !== null) throw error;
        return response;
      }
      if (this.failure !== null) throw this.failure;
      if (signal.aborted) throw new CoordinationError("Cancelled");
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          this.wake = null;
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  /** Ends the watch (its hub stream is closed once the current delivery returned). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.onClosed();
    const stream = this.stream;
    this.stream = null;
    // Deferred: close may be called from inside a hub delivery (a reader woken synchronously), and the
    // hub must not lose watchers from the group it is iterating.
    if (stream !== null) queueMicrotask(() => stream.close());
    this.notify();
  }

  private fail(error: Error): void {
    if (this.failure === null) this.failure = error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/** clientv3's WatchResponse.Err for a response the hub sent: compaction, a refused create. */
function watchResponseError(response: etcdserverpb.WatchResponse): Error | null {
  if (response.compactRevision !== 0) return new EtcdError("Compacted");
  if (response.canceled) {
    // A cancel without a reason is clientv3's ErrFutureRev; with one, the reason is the error's text.
    if (response.cancelReason === "") return new EtcdError("FutureRev");
    return new CoordinationError("Server", response.cancelReason);
  }
  return null;
}

/** etcd's GetPrefixRangeEnd: the first key after every key with this prefix ("\0" when there is none). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const byte = prefix[i] as number;
    if (byte < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** Thrown at a wait point once the call was cancelled (clientv3 returns ctx.Err() there). */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new CoordinationError("Cancelled");
}
