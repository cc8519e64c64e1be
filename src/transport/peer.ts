import type { ClientRequest, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { assert } from "../assert.js";
import { formatId } from "../log/format.js";
import { MILESTONES, STREAM_TYPES } from "../log/milestones.js";
import type { Message } from "../raft/index.js";
import type { PeerCounters, TransportContext } from "./context.js";
import { reasonOf, refusalError, TransportError, TransportErrorCode } from "./errors.js";
import { FRAME_HEADER_BYTES, FrameDecoder, FrameKind, HEARTBEAT_FRAME, kindMask } from "./frame.js";
import {
  Header,
  headerValue,
  peerRequestHeaders,
  STREAM_PATH_PREFIX,
  STREAM_UPGRADE_TOKEN,
} from "./headers.js";
import { MessageQueue } from "./queue.js";
import { SnapshotSender } from "./snapshot.js";

/** The stream type etcd prints for its general message stream; ours carries every message type. */
const STREAM_TYPE = STREAM_TYPES.message;
/** Only heartbeats come back on an outbound stream; this bounds what the sender ever buffers from it. */
const REVERSE_FRAME_MAX_BYTES = 64;
const REVERSE_KINDS = kindMask(FrameKind.Heartbeat);
/** Jitter spread of the redial delay, so members that lost each other do not redial in lockstep. */
const BACKOFF_JITTER = 0.2;

type StreamState = "idle" | "dialing" | "open" | "refused" | "stopped";

/**
 * One remote member as this member sends to it (etcd's peer + streamWriter, dialing side): a bounded
 * queue, one long-lived outbound stream (HTTP Upgrade on /raft/stream/etcdts/<local id>, then frames),
 * redial with backoff, heartbeats and a read timeout on that stream, and at most one snapshot in flight.
 *
 * Nothing here blocks the caller: enqueue() either queues or refuses (the transport drops and reports
 * the peer unreachable), and writes stop at writeBufferBytesMax until the socket drains.
 *
 * All timing runs off the transport's housekeeping tick (tick()), never a timer per message or per peer.
 */
export class Peer {
  readonly idText: string;
  private urls: string[];
  private urlIndex = 0;
  private state: StreamState = "idle";
  private attempt = 0;
  private request: ClientRequest | null = null;
  private socket: Socket | null = null;
  private dialStartedMs = 0;
  private retryAtMs = 0;
  private failures = 0;
  private lastReadMs = 0;
  private lastWriteMs = 0;
  private activeSinceMs = 0;
  private readonly queue: MessageQueue;
  private snapshot: SnapshotSender | null = null;
  private decoder: FrameDecoder | null = null;
  readonly counters: PeerCounters;
  /** Messages refused during the current Transport.send() call (reported once at its end). */
  pendingDrops = 0;

  private readonly onData = (chunk: Buffer): void => this.received(chunk);
  private readonly onDrain = (): void => this.flush();
  private readonly onSocketError = (error: Error): void => this.lost("read", error);
  private readonly onSocketClose = (): void =>
    this.lost("read", new Error("connection closed by the remote"));

  constructor(
    private readonly ctx: TransportContext,
    readonly id: bigint,
    urls: readonly string[],
    /** A remote (etcd's term): not a configured peer, only answered because it reached us first. */
    public isRemote: boolean,
  ) {
    assert(urls.length > 0, "a peer has at least one URL");
    this.idText = formatId(id);
    this.urls = [...urls];
    this.queue = new MessageQueue(ctx.limits.queueMessagesMax, ctx.limits.queueBytesMax);
    this.counters = ctx.counters(id);
    this.retryAtMs = ctx.nowMs();
  }

  get peerUrls(): readonly string[] {
    return this.urls;
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  /** Wall-clock ms since the stream became active, or 0 while inactive (etcd's activeSince). */
  get activeSince(): number {
    return this.activeSinceMs;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  get isStopped(): boolean {
    return this.state === "stopped";
  }

  /** Queues a message; false if the queue is full (the caller drops it and reports unreachable). */
  enqueue(message: Message, sizeBytes: number): boolean {
    if (this.state === "stopped" || this.state === "refused") return false;
    return this.queue.push(message, sizeBytes);
  }

  /** Writes queued messages as frames while the socket's buffer is under its bound. */
  flush(): void {
    const socket = this.socket;
    if (this.state !== "open" || socket === null) return;
    const limits = this.ctx.limits;
    const frames = this.ctx.frames;
    const maxFrameBytes = limits.frameMaxBytes + FRAME_HEADER_BYTES;
    while (this.queue.length > 0 && socket.writableLength < limits.writeBufferBytesMax) {
      frames.start();
      while (this.queue.length > 0) {
        if (frames.messages > 0 && frames.frameBytes + this.queue.peekSizeBytes() > maxFrameBytes) break;
        const message = this.queue.shift();
        frames.add(message);
        if (frames.messages === 1 && frames.frameBytes > maxFrameBytes) {
          frames.abandon();
          this.dropOversized(message);
          frames.start();
          continue;
        }
        if (frames.frameBytes >= limits.frameTargetBytes) break;
      }
      if (frames.messages === 0) break;
      const count = frames.messages;
      const frame = frames.finish();
      socket.write(frame);
      this.counters.messagesSent += count;
      this.counters.framesSent++;
      this.counters.bytesSent += frame.length;
      this.lastWriteMs = this.ctx.nowMs();
    }
  }

  private dropOversized(message: Message): void {
    this.counters.messagesDropped++;
    this.ctx.log.error("dropped Raft message larger than the frame limit", {
      "message-type": message.type,
      "local-member-id": formatId(this.ctx.local.memberId),
      "remote-peer-id": this.idText,
      "frame-max-bytes": this.ctx.limits.frameMaxBytes,
    });
    this.ctx.reportUnreachable(this.id);
  }

  /** Starts sending a snapshot; false if one is already in flight to this peer. */
  startSnapshot(message: Message, data: AsyncIterable<Uint8Array>): boolean {
    if (this.snapshot !== null || this.state === "stopped") return false;
    const sender = new SnapshotSender(this.ctx, this, message, data, () => {
      if (this.snapshot === sender) this.snapshot = null;
    });
    this.snapshot = sender;
    sender.start(this.pickUrl());
    return true;
  }

  get snapshotInFlight(): boolean {
    return this.snapshot !== null;
  }

  /** Settles when the snapshot in flight (if any) has finished or failed. */
  get snapshotDone(): Promise<void> {
    return this.snapshot?.done ?? Promise.resolve();
  }

  /** The URL to use now (etcd's urlPicker.pick). */
  pickUrl(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  /** A URL failed: use the next one next time (urlPicker.unreachable). */
  unreachableUrl(url: string): void {
    if (this.pickUrl() === url) this.urlIndex = (this.urlIndex + 1) % this.urls.length;
  }

  update(urls: readonly string[]): void {
    assert(urls.length > 0, "a peer has at least one URL");
    // A dial in progress goes to an old URL: abort it (against the old list) before switching.
    if (this.state === "dialing") this.abortDial(new Error("peer URLs changed"));
    this.urls = [...urls];
    this.urlIndex = 0;
    // An open stream stays: etcd only changes where the next dial goes (its URL picker), so a member
    // whose URL moves keeps hearing the cluster (e.g. the commit of its own update) until it restarts.
  }

  /** The housekeeping tick: redials, dial deadline, heartbeats, read timeout, snapshot stalls. */
  tick(nowMs: number): void {
    const limits = this.ctx.limits;
    switch (this.state) {
      case "idle":
        if (nowMs >= this.retryAtMs) this.dial();
        break;
      case "dialing":
        if (nowMs - this.dialStartedMs > limits.dialTimeoutMs) {
          this.abortDial(
            new TransportError(
              TransportErrorCode.DialTimeout,
              `dial timed out after ${limits.dialTimeoutMs} ms`,
            ),
          );
        }
        break;
      case "open": {
        const socket = this.socket!;
        if (nowMs - this.lastReadMs > limits.readTimeoutMs) {
          this.lost(
            "read",
            new TransportError(TransportErrorCode.ReadTimeout, `no data for ${limits.readTimeoutMs} ms`),
          );
        } else if (nowMs - this.lastWriteMs >= limits.heartbeatIntervalMs && socket.writableLength === 0) {
          socket.write(HEARTBEAT_FRAME);
          this.lastWriteMs = nowMs;
        }
        break;
      }
      case "refused":
      case "stopped":
        break;
      default:
        this.state satisfies never;
    }
    this.snapshot?.tick(nowMs);
  }

  /** Stops everything for good (removePeer, close). Queued messages are discarded. */
  stop(): void {
    if (this.state === "stopped") return;
    const wasOpen = this.state === "open";
    this.state = "stopped";
    this.attempt++;
    this.request?.destroy();
    this.request = null;
    this.detachSocket();
    this.queue.clear();
    // etcd logs "stopped remote peer" here, not an inactive peer: nothing failed.
    this.activeSinceMs = 0;
    if (wasOpen) this.ctx.log.info("stopped remote peer", { "remote-peer-id": this.idText });
    this.snapshot?.abort(new TransportError(TransportErrorCode.Closed, "peer stopped"));
  }

  private dial(): void {
    const url = this.pickUrl();
    const attempt = ++this.attempt;
    this.state = "dialing";
    this.dialStartedMs = this.ctx.nowMs();
    let target: URL;
    try {
      target = new URL(url);
      target.pathname = STREAM_PATH_PREFIX + formatId(this.ctx.local.memberId);
      target.search = "";
    } catch (error) {
      this.dialFailed(url, error);
      return;
    }
    this.ctx.log.debug("dial stream writer", {
      from: formatId(this.ctx.local.memberId),
      to: this.idText,
      address: target.href,
    });
    const request = this.ctx.network.request(target, {
      method: "GET",
      agent: false,
      headers: {
        ...peerRequestHeaders(this.ctx.local, this.id),
        Connection: "Upgrade",
        Upgrade: STREAM_UPGRADE_TOKEN,
      },
    });
    this.request = request;
    request.on("error", (error) => {
      if (attempt === this.attempt) this.dialFailed(url, error);
    });
    request.on("upgrade", (response: IncomingMessage, socket: Socket, head: Buffer) => {
      if (attempt !== this.attempt) {
        socket.destroy();
        return;
      }
      this.upgraded(url, response, socket, head);
    });
    request.on("response", (response: IncomingMessage) => {
      if (attempt !== this.attempt) {
        response.destroy();
        return;
      }
      this.readRefusal(url, response, attempt);
    });
    request.end();
  }

  private abortDial(reason: Error): void {
    const request = this.request;
    const url = this.pickUrl();
    this.attempt++;
    this.request = null;
    request?.destroy();
    this.dialFailed(url, reason);
  }

  private upgraded(url: string, response: IncomingMessage, socket: Socket, head: Buffer): void {
    this.request = null;
    const remoteCluster = headerValue(response.headers, Header.clusterId);
    if (
      response.headers.upgrade !== STREAM_UPGRADE_TOKEN ||
      remoteCluster !== formatId(this.ctx.local.clusterId)
    ) {
      socket.destroy();
      this.dialFailed(
        url,
        new TransportError(
          TransportErrorCode.PeerRefused,
          `unexpected upgrade answer (upgrade ${String(response.headers.upgrade)}, cluster ${String(remoteCluster)})`,
        ),
      );
      return;
    }
    const now = this.ctx.nowMs();
    this.state = "open";
    this.socket = socket;
    this.failures = 0;
    this.lastReadMs = now;
    this.lastWriteMs = now;
    this.counters.connectionsOpened++;
    this.decoder = new FrameDecoder(REVERSE_FRAME_MAX_BYTES, REVERSE_KINDS, () => {});
    socket.setNoDelay(true);
    socket.on("data", this.onData);
    socket.on("drain", this.onDrain);
    socket.on("error", this.onSocketError);
    socket.on("close", this.onSocketClose);
    this.setActive();
    this.ctx.log.info("established TCP streaming connection with remote peer", {
      "stream-writer-type": STREAM_TYPE,
      "local-member-id": formatId(this.ctx.local.memberId),
      "remote-peer-id": this.idText,
    });
    if (head.length > 0) this.received(head);
    this.flush();
  }

  private received(chunk: Buffer): void {
    if (this.state !== "open") return;
    this.lastReadMs = this.ctx.nowMs();
    try {
      this.decoder!.push(chunk);
    } catch (error) {
      this.lost("read", error);
    }
  }

  /** A non-101 answer to the handshake: read its (bounded) body and classify it as etcd does. */
  private readRefusal(url: string, response: IncomingMessage, attempt: number): void {
    const maxBytes = this.ctx.limits.errorBodyBytesMax;
    const parts: Buffer[] = [];
    let bytes = 0;
    response.on("data", (chunk: Buffer) => {
      if (bytes < maxBytes) parts.push(chunk.subarray(0, maxBytes - bytes));
      bytes += chunk.length;
    });
    response.on("error", () => {});
    response.on("end", () => {
      if (attempt !== this.attempt) return;
      this.request = null;
      const body = Buffer.concat(parts).toString("utf8");
      this.refused(url, response, body);
    });
  }

  private refused(url: string, response: IncomingMessage, body: string): void {
    const status = response.statusCode ?? 0;
    const text = body.endsWith("\n") ? body.slice(0, -1) : body;
    const remoteClusterId = headerValue(response.headers, Header.clusterId) ?? "";
    const error = refusalError(status, text, this.idText, formatId(this.ctx.local.memberId));
    const fields = {
      "local-member-id": formatId(this.ctx.local.memberId),
      "remote-peer-id": this.idText,
    };
    switch (error.code) {
      case TransportErrorCode.MemberRemoved:
        this.ctx.log.warn("the remote peer refused this member: it was removed from the cluster", {
          ...fields,
          error: error.message,
        });
        this.unreachableUrl(url);
        this.setInactive("dial", error.message);
        this.state = "refused";
        this.dropQueue();
        this.ctx.memberRemoved(error);
        return;
      case TransportErrorCode.ClusterIdMismatch:
        this.ctx.log.warn("request sent was ignored by remote peer due to cluster ID mismatch", {
          "remote-peer-id": this.idText,
          "remote-peer-cluster-id": remoteClusterId,
          "local-member-id": formatId(this.ctx.local.memberId),
          "local-member-cluster-id": formatId(this.ctx.local.clusterId),
          error: error.message,
        });
        break;
      case TransportErrorCode.IncompatibleVersion:
        this.ctx.log.warn("request sent was ignored by remote peer due to server version incompatibility", {
          ...fields,
          error: error.message,
        });
        break;
      default:
        break;
    }
    this.dialFailed(url, error);
  }

  private dialFailed(url: string, error: unknown): void {
    if (this.state === "stopped" || this.state === "refused") return;
    this.request = null;
    this.state = "idle";
    this.failures++;
    this.counters.dialFailures++;
    this.unreachableUrl(url);
    this.setInactive("dial", reasonOf(error));
    this.dropQueue();
    this.retryAtMs = this.ctx.nowMs() + this.backoffMs();
  }

  /** An open stream failed (write error, remote closed, read timeout, malformed frame). */
  private lost(action: "read" | "write", error: unknown): void {
    if (this.state !== "open") return;
    this.detachSocket();
    this.state = "idle";
    this.ctx.log.warn("lost TCP streaming connection with remote peer", {
      "stream-writer-type": STREAM_TYPE,
      "local-member-id": formatId(this.ctx.local.memberId),
      "remote-peer-id": this.idText,
      error: reasonOf(error),
    });
    this.setInactive(action, reasonOf(error));
    // Frames written but not read are lost with the connection; raft must probe the follower again.
    this.dropQueue();
    this.ctx.reportUnreachable(this.id);
    this.retryAtMs = this.ctx.nowMs() + this.ctx.limits.backoffInitialMs;
  }

  private detachSocket(): void {
    const socket = this.socket;
    if (socket === null) return;
    this.socket = null;
    this.decoder = null;
    socket.off("data", this.onData);
    socket.off("drain", this.onDrain);
    socket.off("close", this.onSocketClose);
    socket.off("error", this.onSocketError);
    // A late error on a destroyed socket must still have a listener, or it would crash the process.
    socket.on("error", ignoreError);
    socket.destroy();
  }

  private dropQueue(): void {
    const dropped = this.queue.clear();
    if (dropped === 0) return;
    this.counters.messagesDropped += dropped;
    this.ctx.reportUnreachable(this.id);
  }

  private backoffMs(): number {
    const { backoffInitialMs, backoffMaxMs } = this.ctx.limits;
    const exponent = Math.min(this.failures - 1, 20);
    const base = Math.min(backoffMaxMs, backoffInitialMs * 2 ** exponent);
    return Math.round(base * (1 - BACKOFF_JITTER + Math.random() * 2 * BACKOFF_JITTER));
  }

  /** etcd's peerStatus.activate. */
  setActive(): void {
    if (this.activeSinceMs !== 0) return;
    this.activeSinceMs = Date.now();
    this.ctx.log.info(MILESTONES.peerBecameActive.msg, { "peer-id": this.idText });
  }

  /** etcd's peerStatus.deactivate: "failed to <action> <peer> on <source> (<reason>)". */
  setInactive(action: string, reason: string, source: string = STREAM_TYPE): void {
    const error = `failed to ${action} ${this.idText} on ${source} (${reason})`;
    if (this.activeSinceMs !== 0) {
      this.activeSinceMs = 0;
      this.ctx.log.warn(MILESTONES.peerBecameInactive.msg, { "peer-id": this.idText, error });
      return;
    }
    this.ctx.log.debug("peer deactivated again", { "peer-id": this.idText, error });
  }
}

function ignoreError(): void {}
