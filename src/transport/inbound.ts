import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { ETCD_SERVER_VERSION } from "../config/version.js";
import { formatId } from "../log/format.js";
import { STREAM_TYPES } from "../log/milestones.js";
import { isRaftError, type Message } from "../raft/index.js";
import type { PeerCounters, TransportContext } from "./context.js";
import { EtcdPeerText, reasonOf, TransportError, TransportErrorCode } from "./errors.js";
import { decodeMessagesPayload, FrameDecoder, FrameKind, HEARTBEAT_FRAME, kindMask } from "./frame.js";
import {
  CLUSTER_ID_RESPONSE_HEADER,
  checkCompatibility,
  compatibilityText,
  Header,
  headerValue,
  logPeerCompatibility,
  PEER_PROTOCOL_VERSION,
  parseId,
  parsePeerUrls,
  SERVER_VERSION_RESPONSE_HEADER,
  STREAM_PATH_PREFIX,
  STREAM_UPGRADE_TOKEN,
} from "./headers.js";
import { sendRawError, sendSwitchingProtocols } from "./httpReply.js";

const INBOUND_KINDS = kindMask(FrameKind.Messages, FrameKind.Heartbeat);
/** etcd's own stream paths: a real etcd dialing us is told "incompatible version", not "invalid path". */
const ETCD_STREAM_PATHS = ["/raft/stream/message/", "/raft/stream/msgapp/"];
/** Peer URLs taken from one X-PeerURLs header. */
const REMOTE_URLS_MAX = 16;

/** The streams the transport is receiving, one per sending member. */
export interface InboundStreams {
  readonly byId: Map<bigint, InboundStream>;
}

/**
 * One stream from a remote member (etcd's streamReader, accepting side): frames in, messages to raft in
 * order; heartbeats out while idle; closed when nothing arrived for readTimeoutMs or a frame is malformed.
 * A malformed frame closes this connection and is logged; it never throws out of the socket handler.
 */
export class InboundStream {
  readonly fromText: string;
  private readonly decoder: FrameDecoder;
  private readonly batch: Message[] = [];
  private lastReadMs: number;
  private lastWriteMs: number;
  private closed = false;
  private readonly counters: PeerCounters;

  constructor(
    private readonly ctx: TransportContext,
    private readonly registry: InboundStreams,
    readonly from: bigint,
    private readonly socket: Socket,
  ) {
    this.fromText = formatId(from);
    this.counters = ctx.counters(from);
    this.lastReadMs = ctx.nowMs();
    this.lastWriteMs = this.lastReadMs;
    this.decoder = new FrameDecoder(ctx.limits.frameMaxBytes, INBOUND_KINDS, (kind, payload) =>
      this.frame(kind, payload),
    );
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.data(chunk));
    socket.on("error", (error) => this.close(error));
    socket.on("close", () => this.close(new Error("connection closed by the remote")));
  }

  /** Feeds bytes (the 'data' handler, and the handshake's leftover `head`). */
  data(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReadMs = this.ctx.nowMs();
    this.counters.bytesReceived += chunk.length;
    try {
      this.decoder.push(chunk);
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      this.ctx.log.warn("failed to decode raft message on stream; closing it", {
        "stream-reader-type": STREAM_TYPES.message,
        "local-member-id": formatId(this.ctx.local.memberId),
        "remote-peer-id": this.fromText,
        error: error.message,
      });
      this.close(error);
    }
  }

  private frame(kind: FrameKind, payload: Buffer): void {
    this.counters.framesReceived++;
    if (kind === FrameKind.Heartbeat) return;
    const batch = this.batch;
    decodeMessagesPayload(payload, batch);
    const localId = this.ctx.local.memberId;
    for (let i = 0; i < batch.length; i++) {
      const to = batch[i]!.to;
      if (to !== localId) {
        batch.length = 0;
        throw new TransportError(
          TransportErrorCode.MalformedFrame,
          `message to ${formatId(to)} on a stream to ${formatId(localId)}`,
        );
      }
    }
    this.counters.messagesReceived += batch.length;
    for (let i = 0; i < batch.length && !this.closed; i++) {
      try {
        this.ctx.deliver(batch[i]!);
      } catch (error) {
        // Expected refusals of raft (e.g. a response from a peer it no longer tracks) drop one message;
        // anything else is a broken invariant and must stop the member.
        if (!isRaftError(error)) throw error;
        this.ctx.log.warn("failed to process Raft message", {
          "local-member-id": formatId(this.ctx.local.memberId),
          "remote-peer-id": this.fromText,
          error: error.message,
        });
      }
    }
    batch.length = 0;
  }

  /** Housekeeping: heartbeat while idle, close when the sender went silent. */
  tick(nowMs: number): void {
    if (this.closed) return;
    const limits = this.ctx.limits;
    if (nowMs - this.lastReadMs > limits.readTimeoutMs) {
      this.close(
        new TransportError(TransportErrorCode.ReadTimeout, `no data for ${limits.readTimeoutMs} ms`),
      );
      return;
    }
    if (nowMs - this.lastWriteMs >= limits.heartbeatIntervalMs && this.socket.writableLength === 0) {
      this.socket.write(HEARTBEAT_FRAME);
      this.lastWriteMs = nowMs;
    }
  }

  close(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (this.registry.byId.get(this.from) === this) this.registry.byId.delete(this.from);
    this.socket.destroy();
    if (this.ctx.isClosed()) return;
    this.ctx.log.warn("lost TCP streaming connection with remote peer", {
      "stream-reader-type": STREAM_TYPES.message,
      "local-member-id": formatId(this.ctx.local.memberId),
      "remote-peer-id": this.fromText,
      error: reasonOf(reason),
    });
  }
}

/**
 * A request on /raft/stream/...: the checks of etcd's streamHandler, in its order and with its answers,
 * then (for an etcd-ts handshake) 101 and a new InboundStream. `socket` is set for an Upgrade request
 * (the 'upgrade' event); for a plain request the caller passes its reply function instead.
 */
export function acceptStream(
  ctx: TransportContext,
  registry: InboundStreams,
  request: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  socket.on("error", () => {});
  const refuse = (status: number, text: string, extra: Record<string, string> = {}): void =>
    sendRawError(socket, status, text, { ...extra, ...streamResponseHeaders(ctx) });
  const answer = checkStreamRequest(ctx, registry, request);
  if (answer !== null) {
    if (answer.status === 405) sendRawError(socket, 405, EtcdPeerText.methodNotAllowed, { Allow: "GET" });
    else refuse(answer.status, answer.text);
    return;
  }
  const from = parseId(request.url!.slice(STREAM_PATH_PREFIX.length))!;
  if (!ctx.isClosed()) {
    ctx.addRemote(from, parsePeerUrls(headerValue(request.headers, Header.peerUrls), REMOTE_URLS_MAX));
  }
  registry.byId.get(from)?.close(new Error("replaced by a new stream from the same member"));
  sendSwitchingProtocols(socket, STREAM_UPGRADE_TOKEN, streamResponseHeaders(ctx));
  const stream = new InboundStream(ctx, registry, from, socket);
  registry.byId.set(from, stream);
  ctx.log.info("established TCP streaming connection with remote peer", {
    "stream-reader-type": STREAM_TYPES.message,
    "local-member-id": formatId(ctx.local.memberId),
    "remote-peer-id": stream.fromText,
  });
  if (head.length > 0) stream.data(head);
}

export function streamResponseHeaders(ctx: TransportContext): Record<string, string> {
  return {
    [CLUSTER_ID_RESPONSE_HEADER]: formatId(ctx.local.clusterId),
    [SERVER_VERSION_RESPONSE_HEADER]: ETCD_SERVER_VERSION,
  };
}

export interface StreamRefusal {
  readonly status: number;
  readonly text: string;
}

/**
 * etcd's streamHandler checks: method, versions, cluster id, path, sender id, removed, X-Raft-To; then
 * ours: the etcd-ts protocol and Upgrade token (a plain GET, e.g. from a real etcd, is refused as an
 * incompatible version) and the bound on inbound streams. null means accept.
 */
export function checkStreamRequest(
  ctx: TransportContext,
  registry: InboundStreams,
  request: IncomingMessage,
): StreamRefusal | null {
  if (request.method !== "GET") return { status: 405, text: EtcdPeerText.methodNotAllowed };
  const localId = formatId(ctx.local.memberId);
  const problem = checkCompatibility(request.headers, ctx.local.clusterId);
  if (problem !== null) {
    logPeerCompatibility(ctx.log, ctx.local, request.headers, problem);
    return { status: 412, text: compatibilityText(problem) };
  }
  const path = (request.url ?? "").split("?")[0]!;
  const ours = path.startsWith(STREAM_PATH_PREFIX);
  const etcds = ETCD_STREAM_PATHS.some((prefix) => path.startsWith(prefix));
  if (!ours && !etcds) {
    ctx.log.debug("ignored unexpected streaming request path", { "local-member-id": localId, path });
    return { status: 404, text: EtcdPeerText.invalidPath };
  }
  const fromText = path.slice(path.lastIndexOf("/") + 1);
  const from = parseId(fromText);
  if (from === null) {
    ctx.log.warn("failed to parse path into ID", { "local-member-id": localId, path: fromText });
    return { status: 404, text: EtcdPeerText.invalidFrom };
  }
  if (ctx.isRemoved(from)) {
    ctx.log.warn("rejected stream from remote peer because it was removed", {
      "local-member-id": localId,
      "remote-peer-id-from": formatId(from),
    });
    return { status: 410, text: EtcdPeerText.removedMember };
  }
  const to = headerValue(request.headers, Header.raftTo);
  if (to !== localId) {
    ctx.log.warn("ignored streaming request; ID mismatch", {
      "local-member-id": localId,
      "remote-peer-id-header": to ?? "",
      "remote-peer-id-from": formatId(from),
      "cluster-id": formatId(ctx.local.clusterId),
    });
    return { status: 412, text: EtcdPeerText.toFieldMismatch };
  }
  const upgrade = headerValue(request.headers, "upgrade");
  if (
    !ours ||
    upgrade !== STREAM_UPGRADE_TOKEN ||
    headerValue(request.headers, Header.protocol) !== PEER_PROTOCOL_VERSION
  ) {
    ctx.log.warn("refused stream with an incompatible peer protocol", {
      "local-member-id": localId,
      "remote-peer-id-from": formatId(from),
      path,
      protocol: headerValue(request.headers, Header.protocol) ?? "",
    });
    return { status: 412, text: EtcdPeerText.incompatibleVersion };
  }
  if (ctx.isClosed()) return { status: 503, text: "transport is closing" };
  if (!registry.byId.has(from) && registry.byId.size >= ctx.limits.inboundStreamsMax) {
    return { status: 503, text: "too many peer streams" };
  }
  return null;
}
