import type { Logger } from "../log/logger.js";
import type { Message } from "../raft/index.js";
import type { TransportError } from "./errors.js";
import type { MessageFrameBuilder } from "./frame.js";
import type { LocalIdentity } from "./headers.js";
import type { TransportLimits } from "./limits.js";
import type { PeerNetwork } from "./network.js";

/** A snapshot's data file as the receiver wrote it (fsynced and renamed into place before raft sees it). */
export interface ReceivedSnapshot {
  /** `<snapshotDir>/<index as %016x>.snap.db`, etcd's name for a received database snapshot. */
  readonly path: string;
  readonly sizeBytes: number;
  /** The raft snapshot index (message.snapshot.metadata.index). */
  readonly index: number;
}

/** Counters of one peer, both directions (the figures behind etcd's etcd_network_peer_* metrics). */
export interface PeerCounters {
  messagesSent: number;
  framesSent: number;
  bytesSent: number;
  /** Messages dropped for a full queue, a failed connection, or a size over frameMaxBytes. */
  messagesDropped: number;
  /** Times raft was told the peer is unreachable. */
  unreachableReports: number;
  dialFailures: number;
  connectionsOpened: number;
  messagesReceived: number;
  framesReceived: number;
  bytesReceived: number;
  snapshotsSent: number;
  snapshotsSendFailed: number;
  snapshotsReceived: number;
}

export function newPeerCounters(): PeerCounters {
  return {
    messagesSent: 0,
    framesSent: 0,
    bytesSent: 0,
    messagesDropped: 0,
    unreachableReports: 0,
    dialFailures: 0,
    connectionsOpened: 0,
    messagesReceived: 0,
    framesReceived: 0,
    bytesReceived: 0,
    snapshotsSent: 0,
    snapshotsSendFailed: 0,
    snapshotsReceived: 0,
  };
}

/** What the peers, inbound streams and snapshot code share with their transport. */
export interface TransportContext {
  readonly local: LocalIdentity;
  readonly limits: TransportLimits;
  readonly network: PeerNetwork;
  readonly log: Logger;
  /** One frame builder for every peer: the loop is single-threaded and each frame is copied out. */
  readonly frames: MessageFrameBuilder;
  readonly snapshotDir: string;
  /** A coarse clock (Date.now at the last housekeeping tick or event): no clock read per message. */
  nowMs(): number;
  isClosed(): boolean;
  isRemoved(id: bigint): boolean;
  /** Counters of a member (created on first use; bounded by peers + remotes + inbound streams). */
  counters(id: bigint): PeerCounters;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, ok: boolean): void;
  /** A remote said this member was removed: the server must stop (reported once). */
  memberRemoved(error: TransportError): void;
  /** Hands a received message (and, for MsgSnap, its data file) to the server. */
  deliver(message: Message, snapshot?: ReceivedSnapshot): void;
  /** A member we do not know reached us; remember its URLs so we can answer (bounded by remotesMax). */
  addRemote(id: bigint, urls: readonly string[]): void;
}
