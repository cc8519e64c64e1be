import { mkdir } from "node:fs/promises";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { assert } from "../assert.js";
import { formatId } from "../log/format.js";
import type { Logger } from "../log/logger.js";
import { MILESTONES } from "../log/milestones.js";
import { isRaftError, type Message, MessageType, NONE } from "../raft/index.js";
import {
  newPeerCounters,
  type PeerCounters,
  type ReceivedSnapshot,
  type TransportContext,
} from "./context.js";
import { EtcdPeerText, reasonOf, TransportError, TransportErrorCode } from "./errors.js";
import { MessageFrameBuilder, messageSizeBoundBytes } from "./frame.js";
import { type LocalIdentity, PROBING_PATH, SNAPSHOT_PATH } from "./headers.js";
import {
  closeServers,
  listenPeerUrls,
  membersHandler,
  notFound,
  type PeerHttpHandler,
  type PeerMember,
  PeerRouter,
  probingHandler,
  refuseUpgrade,
  runHandler,
  versionHandler,
} from "./http.js";
import { sendError } from "./httpReply.js";
import { acceptStream, checkStreamRequest, type InboundStreams, streamResponseHeaders } from "./inbound.js";
import { resolveLimits, type TransportLimits } from "./limits.js";
import { assertSupported, type PeerNetwork, plainHttpNetwork } from "./network.js";
import { Peer } from "./peer.js";
import { type InboundSnapshots, receiveSnapshot, removeSnapshotTempFiles } from "./snapshot.js";

const STREAM_PREFIX = "/raft/stream/";
/** Counters kept for members that are neither peers nor streaming to us are capped (scratch beyond). */
const COUNTERS_MAX = 1024;

export interface TransportOptions {
  readonly clusterId: bigint;
  /** This member's id (never 0). */
  readonly memberId: bigint;
  /** --listen-peer-urls; port 0 binds a free port (see Transport.listenUrls). */
  readonly listen: readonly (URL | string)[];
  /** --initial-advertise-peer-urls, sent as X-PeerURLs; default: the bound listen URLs. */
  readonly advertiseUrls?: readonly string[];
  readonly logger: Logger;
  /** Where received database snapshots are written (the member's snap dir); created if missing. */
  readonly snapshotDir: string;
  /**
   * A message from a peer, in the order its stream carried it; for MsgSnap, with the data file already
   * durable at snapshot.path. Runs synchronously on the socket's 'data' event: step raft and return.
   * A RaftError thrown here is logged and the message dropped (etcd logs "failed to process Raft
   * message"); anything else is a broken invariant and is rethrown (the process stops).
   */
  onMessage(message: Message, snapshot?: ReceivedSnapshot): void;
  /** A message to `id` was dropped or a connection to it failed: RawNode.reportUnreachable(id). */
  onUnreachable(id: bigint): void;
  /** A snapshot to `id` was delivered (true) or failed (false): RawNode.reportSnapshot(id, status). */
  onSnapshotStatus(id: bigint, ok: boolean): void;
  /**
   * A peer refused us as a removed member (410 on a stream, 403 on a snapshot): the member must stop
   * (etcd: "the member has been permanently removed from the cluster"). Called at most once.
   */
  onMemberRemoved?(error: TransportError): void;
  /** Whether `id` was removed from the cluster (etcd's IsIDRemoved): its streams are refused. Default none. */
  isRemoved?(id: bigint): boolean;
  /**
   * The data of the snapshot a MsgSnap from send() refers to (e.g. a backend snapshot stream). Without
   * it, a MsgSnap given to send() fails at once (reported); sendSnapshot() always works.
   */
  snapshotData?(message: Message): AsyncIterable<Uint8Array>;
  /** GET /members (etcd's peer member list); without it /members answers 404. */
  members?(): readonly PeerMember[];
  /** GET /version's "etcdcluster"; null (or absent) prints "not_decided". */
  clusterVersion?(): string | null;
  /** Listen/dial factory: the TLS seam. Default plain HTTP. */
  readonly network?: PeerNetwork;
  readonly limits?: Partial<TransportLimits>;
}

/** One peer as Transport.peerStatus reports it. */
export interface PeerStatus {
  readonly id: bigint;
  readonly urls: readonly string[];
  readonly isRemote: boolean;
  /** Epoch ms since the stream to it is up, or 0. */
  readonly activeSince: number;
  readonly queuedMessages: number;
  readonly snapshotInFlight: boolean;
  readonly counters: Readonly<PeerCounters>;
}

/** Listens, then returns a running transport. Throws TransportError(BadConfig | ListenFailed). */
export async function createTransport(options: TransportOptions): Promise<Transport> {
  const limits = resolveLimits(options.limits);
  const network = options.network ?? plainHttpNetwork;
  if (options.memberId === NONE || options.memberId < 0n || options.memberId >= 1n << 64n) {
    throw new TransportError(TransportErrorCode.BadConfig, `bad member id ${options.memberId}`);
  }
  const listen = options.listen.map((url) => parseUrl(url, "listen peer URL"));
  if (listen.length === 0) {
    throw new TransportError(TransportErrorCode.BadConfig, "at least one listen peer URL is needed");
  }
  for (const url of listen) assertSupported(network, url, "listen peer URL");
  await mkdir(options.snapshotDir, { recursive: true });
  const removed = await removeSnapshotTempFiles(options.snapshotDir);
  const transport = new Transport(options, limits, network);
  if (removed > 0) transport.log.info("removed incomplete snapshot files", { count: removed });
  await transport.listen(listen);
  return transport;
}

function parseUrl(url: URL | string, what: string): URL {
  if (url instanceof URL) return url;
  if (!URL.canParse(url))
    throw new TransportError(TransportErrorCode.BadConfig, `${what} ${url} is not a URL`);
  return new URL(url);
}

/**
 * The peer transport (etcd's rafthttp.Transport): a long-lived outbound stream to each peer for raft
 * messages, snapshots on their own POSTs, and the peer port's HTTP endpoints. See ./index.ts for how the
 * server wires it. Single-threaded: every method runs on the main thread; send() never blocks.
 */
export class Transport {
  readonly log: Logger;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly limits: TransportLimits;
  private readonly peers = new Map<bigint, Peer>();
  private readonly inbound: InboundStreams = { byId: new Map() };
  private readonly inboundSnapshots: InboundSnapshots = { active: new Set() };
  private readonly snapshotWork = new Set<Promise<void>>();
  private readonly countersById = new Map<bigint, PeerCounters>();
  private readonly router = new PeerRouter();
  private readonly ctx: TransportContext;
  private servers: Server[] = [];
  private boundUrls: string[] = [];
  private advertise: string[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private coarseNowMs = Date.now();
  private closed = false;
  private flushScheduled = false;
  private removedReported = false;
  /** Peers that dropped messages during the current send(), reported once each at its end. */
  private readonly dropped: Peer[] = [];
  private readonly flushAllBound = (): void => this.flushAll();

  constructor(
    private readonly options: TransportOptions,
    limits: TransportLimits,
    private readonly network: PeerNetwork,
  ) {
    this.log = options.logger.child("rafthttp");
    this.memberId = options.memberId;
    this.clusterId = options.clusterId;
    this.limits = limits;
    const self = this;
    const local: LocalIdentity = {
      memberId: options.memberId,
      clusterId: options.clusterId,
      get advertiseUrls() {
        return self.advertise;
      },
    };
    this.ctx = {
      local,
      limits,
      network,
      log: this.log,
      frames: new MessageFrameBuilder(Math.min(limits.frameTargetBytes * 2, limits.frameMaxBytes)),
      snapshotDir: options.snapshotDir,
      nowMs: () => this.coarseNowMs,
      isClosed: () => this.closed,
      isRemoved: (id) => options.isRemoved?.(id) === true,
      counters: (id) => this.countersOf(id),
      reportUnreachable: (id) => this.reportUnreachable(id),
      reportSnapshot: (id, ok) => options.onSnapshotStatus(id, ok),
      memberRemoved: (error) => this.memberRemoved(error),
      deliver: (message, snapshot) => options.onMessage(message, snapshot),
      addRemote: (id, urls) => this.addRemote(id, urls),
    };
    this.router.handle(PROBING_PATH, probingHandler);
    if (options.members !== undefined) {
      this.router.handle("/members", membersHandler(formatId(options.clusterId), options.members));
    }
    this.router.handle("/version", versionHandler(options.clusterVersion ?? (() => null)));
  }

  /** The bound listen URLs (port 0 resolved), one per listen URL. */
  get listenUrls(): readonly string[] {
    return this.boundUrls;
  }

  /** @internal createTransport calls it once. */
  async listen(urls: readonly URL[]): Promise<void> {
    assert(this.servers.length === 0, "listen runs once");
    const { servers, boundUrls } = await listenPeerUrls(
      this.network,
      urls,
      {
        request: (request, response, expectsContinue) => this.serve(request, response, expectsContinue),
        upgrade: (request, socket, head) => this.upgrade(request, socket, head),
      },
      this.limits.connectionsMax,
    );
    this.servers = servers;
    this.boundUrls = boundUrls;
    this.advertise = [...(this.options.advertiseUrls ?? boundUrls)];
    this.coarseNowMs = Date.now();
    this.ticker = setInterval(() => this.housekeeping(), this.limits.housekeepingIntervalMs);
    this.ticker.unref();
  }

  /**
   * Registers a handler on the peer port (Go ServeMux patterns: "/leases" exact, "/members/promote/"
   * subtree), e.g. lease forwarding. Built in: /raft/stream/, /raft/snapshot, /raft/probing, /version,
   * and /members when the `members` option is given.
   */
  handle(pattern: string, handler: PeerHttpHandler): void {
    if (pattern === SNAPSHOT_PATH || pattern.startsWith(STREAM_PREFIX)) {
      throw new TransportError(TransportErrorCode.BadConfig, `${pattern} is the transport's own path`);
    }
    this.router.handle(pattern, handler);
  }

  addPeer(id: bigint, urls: readonly string[]): void {
    this.checkPeer(id, urls);
    if (this.closed) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      if (!existing.isRemote) return;
      existing.isRemote = false;
      existing.update(urls);
    } else {
      const peer = new Peer(this.ctx, id, urls, false);
      this.peers.set(id, peer);
      peer.tick(this.coarseNowMs);
    }
    this.log.info(MILESTONES.addedRemotePeer.msg, {
      "local-member-id": formatId(this.memberId),
      "remote-peer-id": formatId(id),
      "remote-peer-urls": [...urls],
    });
  }

  removePeer(id: bigint): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    peer.stop();
    this.peers.delete(id);
    this.countersById.delete(id);
    if (this.ctx.isRemoved(id)) this.inbound.byId.get(id)?.close(new Error("member removed"));
    this.log.info("removed remote peer", {
      "local-member-id": formatId(this.memberId),
      "removed-remote-peer-id": formatId(id),
    });
  }

  updatePeer(id: bigint, urls: readonly string[]): void {
    this.checkPeer(id, urls);
    const peer = this.peers.get(id);
    if (peer === undefined || this.closed) return;
    peer.update(urls);
    this.log.info("updated remote peer", {
      "local-member-id": formatId(this.memberId),
      "updated-remote-peer-id": formatId(id),
      "updated-remote-peer-urls": [...urls],
    });
  }

  /**
   * Queues raft messages for their peers and returns at once; the frames go out at the end of this
   * event-loop turn (one frame per peer carries everything queued in the turn). A message to an unknown
   * id is ignored (as etcd does); one that finds its peer's queue full is dropped and the peer reported
   * unreachable, once per call. A MsgSnap goes to sendSnapshot with the `snapshotData` source.
   */
  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      if (message.to === NONE) continue;
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        this.log.debug("ignored message send request; unknown remote peer target", () => ({
          type: message.type,
          "unknown-target-peer-id": formatId(message.to),
        }));
        continue;
      }
      if (message.type === MessageType.Snap) {
        this.sendSnapMessage(message);
        continue;
      }
      const sizeBytes = messageSizeBoundBytes(message);
      if (peer.enqueue(message, sizeBytes)) continue;
      // A full queue on a live stream first moves into the socket (up to writeBufferBytesMax): a burst
      // larger than the queue is not a reason to drop while the connection can take it.
      peer.flush();
      if (peer.enqueue(message, sizeBytes)) continue;
      if (peer.pendingDrops === 0) this.dropped.push(peer);
      peer.pendingDrops++;
    }
    if (this.dropped.length > 0) this.reportDrops();
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushAllBound);
    }
  }

  /**
   * Sends a MsgSnap with its data on a snapshot connection; the result comes back through
   * onSnapshotStatus (and onUnreachable on failure). At most one snapshot per peer is in flight; another
   * fails at once. The chunks must not be modified once yielded (they are written asynchronously).
   */
  sendSnapshot(message: Message, data: AsyncIterable<Uint8Array>): void {
    assert(message.type === MessageType.Snap && message.snapshot !== null, "sendSnapshot takes a MsgSnap");
    const peer = this.peers.get(message.to);
    if (this.closed || peer === undefined) {
      closeSource(data);
      if (this.closed) return;
      this.log.warn("failed to send database snapshot", {
        "remote-peer-id": formatId(message.to),
        error: EtcdPeerText.memberNotFound,
      });
      this.options.onSnapshotStatus(message.to, false);
      return;
    }
    if (!peer.startSnapshot(message, data)) {
      closeSource(data);
      this.log.warn("failed to send database snapshot", {
        "remote-peer-id": peer.idText,
        error: "a snapshot is already being sent to this peer",
      });
      this.reportUnreachable(peer.id);
      this.options.onSnapshotStatus(peer.id, false);
      return;
    }
    const done = peer.snapshotDone;
    this.snapshotWork.add(done);
    void done.finally(() => this.snapshotWork.delete(done));
  }

  /** Epoch ms since the stream to `id` became active, or 0 if it is not (etcd's ActiveSince). */
  activeSince(id: bigint): number {
    const peer = this.peers.get(id);
    return peer === undefined || peer.isRemote ? 0 : peer.activeSince;
  }

  /** Peers (not remotes) whose stream is active. */
  activePeers(): number {
    let count = 0;
    for (const peer of this.peers.values()) if (!peer.isRemote && peer.activeSince !== 0) count++;
    return count;
  }

  peerStatus(id: bigint): PeerStatus | undefined {
    const peer = this.peers.get(id);
    if (peer === undefined) return undefined;
    return {
      id,
      urls: peer.peerUrls,
      isRemote: peer.isRemote,
      activeSince: peer.activeSince,
      queuedMessages: peer.queuedMessages,
      snapshotInFlight: peer.snapshotInFlight,
      counters: { ...peer.counters },
    };
  }

  /** Counters of any member we exchanged with (a copy), e.g. what arrived from a sender. */
  countersFor(id: bigint): Readonly<PeerCounters> | undefined {
    const counters = this.countersById.get(id);
    return counters === undefined ? undefined : { ...counters };
  }

  /** Ids with an inbound stream open now. */
  inboundStreams(): bigint[] {
    return [...this.inbound.byId.keys()];
  }

  /** Stops dialing and listening, closes every connection, waits for snapshot transfers to unwind. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    for (const peer of this.peers.values()) peer.stop();
    this.peers.clear();
    for (const stream of [...this.inbound.byId.values()]) stream.close(new Error("transport closed"));
    for (const inbound of this.inboundSnapshots.active) {
      inbound.request.destroy(new TransportError(TransportErrorCode.Closed, "transport closed"));
    }
    await closeServers(this.servers);
    await Promise.allSettled([...this.snapshotWork]);
  }

  private checkPeer(id: bigint, urls: readonly string[]): void {
    if (id === NONE || id === this.memberId) {
      throw new TransportError(TransportErrorCode.BadConfig, `bad peer id ${formatId(id)}`);
    }
    if (urls.length === 0) {
      throw new TransportError(TransportErrorCode.BadConfig, `peer ${formatId(id)} has no URLs`);
    }
    for (const url of urls) assertSupported(this.network, parseUrl(url, "peer URL"), "peer URL");
  }

  private addRemote(id: bigint, urls: readonly string[]): void {
    if (this.closed || urls.length === 0 || id === this.memberId || this.peers.has(id)) return;
    if (this.ctx.isRemoved(id)) return;
    if (!urls.every((url) => this.network.supports(new URL(url)))) return;
    let remotes = 0;
    for (const peer of this.peers.values()) if (peer.isRemote) remotes++;
    if (remotes >= this.limits.remotesMax) {
      this.log.debug("not adding remote peer: too many remotes", { "remote-peer-id": formatId(id) });
      return;
    }
    const peer = new Peer(this.ctx, id, urls, true);
    this.peers.set(id, peer);
    peer.tick(this.coarseNowMs);
    this.log.info("added new remote peer", {
      "local-member-id": formatId(this.memberId),
      "remote-peer-id": formatId(id),
      "remote-peer-urls": [...urls],
    });
  }

  private sendSnapMessage(message: Message): void {
    const source = this.options.snapshotData;
    if (source === undefined) {
      this.log.warn("failed to send database snapshot", {
        "remote-peer-id": formatId(message.to),
        error: "no snapshot data source (snapshotData option)",
      });
      this.reportUnreachable(message.to);
      this.options.onSnapshotStatus(message.to, false);
      return;
    }
    this.sendSnapshot(message, source(message));
  }

  private reportDrops(): void {
    for (const peer of this.dropped) {
      const count = peer.pendingDrops;
      peer.pendingDrops = 0;
      peer.counters.messagesDropped += count;
      const fields = {
        "local-member-id": formatId(this.memberId),
        "remote-peer-id": peer.idText,
        "remote-peer-active": peer.activeSince !== 0,
        "dropped-messages": count,
      };
      // etcd warns only while the peer is active; for a dead peer dropping is the expected state.
      if (peer.activeSince !== 0) {
        this.log.warn(
          "dropped internal Raft message since sending buffer is full (overloaded network)",
          fields,
        );
      } else {
        this.log.debug("dropped Raft message since sending buffer is full (overloaded network)", fields);
      }
      this.reportUnreachable(peer.id);
    }
    this.dropped.length = 0;
  }

  private reportUnreachable(id: bigint): void {
    if (this.closed) return;
    const peer = this.peers.get(id);
    if (peer !== undefined) peer.counters.unreachableReports++;
    this.options.onUnreachable(id);
  }

  private memberRemoved(error: TransportError): void {
    if (this.removedReported || this.closed) return;
    this.removedReported = true;
    this.log.error(EtcdPeerText.memberRemoved, {
      "local-member-id": formatId(this.memberId),
      error: error.message,
    });
    this.options.onMemberRemoved?.(error);
  }

  private countersOf(id: bigint): PeerCounters {
    let counters = this.countersById.get(id);
    if (counters === undefined) {
      counters = newPeerCounters();
      if (this.countersById.size < COUNTERS_MAX || this.peers.has(id)) this.countersById.set(id, counters);
    }
    return counters;
  }

  private flushAll(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    for (const peer of this.peers.values()) if (peer.queuedMessages > 0) peer.flush();
  }

  private housekeeping(): void {
    const now = Date.now();
    this.coarseNowMs = now;
    for (const peer of this.peers.values()) peer.tick(now);
    for (const stream of this.inbound.byId.values()) stream.tick(now);
    for (const inbound of this.inboundSnapshots.active) {
      if (now - inbound.lastProgressMs > this.limits.snapshotStallTimeoutMs) {
        inbound.request.destroy(
          new TransportError(
            TransportErrorCode.SnapshotStalled,
            `snapshot receive made no progress for ${this.limits.snapshotStallTimeoutMs} ms`,
          ),
        );
      }
    }
  }

  private serve(request: IncomingMessage, response: ServerResponse, expectsContinue: boolean): void {
    const path = (request.url ?? "/").split("?")[0]!;
    if (path === SNAPSHOT_PATH) {
      const work = receiveSnapshot(this.ctx, this.inboundSnapshots, request, response, expectsContinue);
      this.snapshotWork.add(work);
      work.then(
        () => this.snapshotWork.delete(work),
        (error: unknown) => {
          this.snapshotWork.delete(work);
          // Only a broken invariant from onMessage gets here (I/O failures are answered 500): stop.
          setImmediate(() => {
            throw error;
          });
        },
      );
      return;
    }
    if (path.startsWith(STREAM_PREFIX)) {
      // A plain request where a stream handshake belongs (e.g. a real etcd's stream reader).
      const refusal = checkStreamRequest(this.ctx, this.inbound, request);
      if (refusal?.status === 405) {
        sendError(response, 405, EtcdPeerText.methodNotAllowed, { Allow: "GET" });
        return;
      }
      sendError(response, refusal?.status ?? 412, refusal?.text ?? EtcdPeerText.incompatibleVersion, {
        ...streamResponseHeaders(this.ctx),
      });
      return;
    }
    const handler = this.router.find(path) ?? notFound;
    if (expectsContinue) response.writeContinue();
    runHandler(this.log, handler, request, response);
  }

  private upgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const path = (request.url ?? "/").split("?")[0]!;
    if (!path.startsWith(STREAM_PREFIX)) {
      refuseUpgrade(socket);
      return;
    }
    try {
      acceptStream(this.ctx, this.inbound, request, socket, head);
    } catch (error) {
      if (error instanceof TransportError || isRaftError(error)) {
        this.log.warn("failed to accept stream", { error: reasonOf(error) });
        socket.destroy();
        return;
      }
      throw error;
    }
  }
}

/** Lets a data source that will not be read release what it holds (a file, a read transaction). */
function closeSource(data: AsyncIterable<Uint8Array>): void {
  const iterator = data[Symbol.asyncIterator]();
  void iterator.return?.()?.catch(() => {});
}
