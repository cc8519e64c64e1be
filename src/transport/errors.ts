/**
 * Typed errors of the peer transport, and etcd's exact texts for the refusals a peer sees.
 *
 * The texts are what etcd 3.4's rafthttp writes in HTTP bodies (followed by "\n", Go's http.Error) and in
 * its errors: a peer (or an operator reading logs, or a script) that knows etcd recognises them. A test
 * checks each against a real etcd. Callers match on `code`, never on the text.
 */

/** etcd's rafthttp texts, byte for byte. */
export const EtcdPeerText = {
  /** 412 body: the sender's X-Etcd-Cluster-ID differs from ours (rafthttp errClusterIDMismatch). */
  clusterIdMismatch: "cluster ID mismatch",
  /** 412 body: the sender's versions (or, here, peer protocol) are not compatible (errIncompatibleVersion). */
  incompatibleVersion: "incompatible version",
  /** 410 body: a stream from a member that was removed from the cluster (streamHandler). */
  removedMember: "removed member",
  /** 403 body: a snapshot (or pipeline message) from a removed member (EtcdServer.Process). */
  removedMemberMessage: "cannot process message from removed member",
  /** What the removed member's transport reports, so its server stops (rafthttp errMemberRemoved). */
  memberRemoved: "the member has been permanently removed from the cluster",
  /** sendSnapshot to an id that is not a peer (errMemberNotFound). */
  memberNotFound: "member not found",
  /** 412 body: X-Raft-To is not this member. */
  toFieldMismatch: "to field mismatch",
  /** 404 bodies of the stream handler. */
  invalidPath: "invalid path",
  invalidFrom: "invalid from",
  /** 400 body on the snapshot path. */
  wrongMessageType: "wrong raft message type",
  /** Go's http.NotFound body. */
  notFound: "404 page not found",
  methodNotAllowed: "Method Not Allowed",
} as const;

export const TransportErrorCode = {
  /** The remote refused us: its cluster id differs (412 "cluster ID mismatch"). */
  ClusterIdMismatch: "TRANSPORT_CLUSTER_ID_MISMATCH",
  /** The remote refused our versions or peer protocol (412 "incompatible version"). */
  IncompatibleVersion: "TRANSPORT_INCOMPATIBLE_VERSION",
  /** The remote says this member was removed from the cluster (410/403); the member must stop. */
  MemberRemoved: "TRANSPORT_MEMBER_REMOVED",
  /** sendSnapshot to an unknown peer. */
  MemberNotFound: "TRANSPORT_MEMBER_NOT_FOUND",
  /** Any other refusal or unexpected answer of the remote (status and body in the message). */
  PeerRefused: "TRANSPORT_PEER_REFUSED",
  /** Connecting took longer than dialTimeoutMs. */
  DialTimeout: "TRANSPORT_DIAL_TIMEOUT",
  /** No byte arrived from an open connection within readTimeoutMs (a dead or paused peer). */
  ReadTimeout: "TRANSPORT_READ_TIMEOUT",
  /** A snapshot transfer made no progress within snapshotStallTimeoutMs. */
  SnapshotStalled: "TRANSPORT_SNAPSHOT_STALLED",
  /** The bytes on a connection break the framing or the codec (bad length, kind, or message). */
  MalformedFrame: "TRANSPORT_MALFORMED_FRAME",
  /** A received snapshot's size or checksum differs from what the sender announced. */
  SnapshotCorrupt: "TRANSPORT_SNAPSHOT_CORRUPT",
  /** A URL this transport cannot serve or dial (e.g. https before the TLS issue), or a bad option. */
  BadConfig: "TRANSPORT_BAD_CONFIG",
  /** A listen URL could not be bound. */
  ListenFailed: "TRANSPORT_LISTEN_FAILED",
  /** The transport (or the peer) was closed while the operation ran. */
  Closed: "TRANSPORT_CLOSED",
} as const;
export type TransportErrorCode = (typeof TransportErrorCode)[keyof typeof TransportErrorCode];

export class TransportError extends Error {
  override readonly name = "TransportError";
  readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isTransportError(error: unknown, code?: TransportErrorCode): error is TransportError {
  return error instanceof TransportError && (code === undefined || error.code === code);
}

/** A short reason for logs: the message of an Error, else the value as text. */
export function reasonOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Classifies a refused handshake or snapshot POST as etcd's streamReader.dial and checkPostResponse do. */
export function refusalError(
  status: number,
  text: string,
  peerIdText: string,
  localIdText: string,
): TransportError {
  switch (status) {
    case 410:
    case 403:
      return new TransportError(TransportErrorCode.MemberRemoved, EtcdPeerText.memberRemoved);
    case 404:
      return new TransportError(
        TransportErrorCode.PeerRefused,
        `peer ${peerIdText} failed to find local node ${localIdText}`,
      );
    case 412:
      if (text === EtcdPeerText.incompatibleVersion) {
        return new TransportError(TransportErrorCode.IncompatibleVersion, EtcdPeerText.incompatibleVersion);
      }
      if (text === EtcdPeerText.clusterIdMismatch) {
        return new TransportError(TransportErrorCode.ClusterIdMismatch, EtcdPeerText.clusterIdMismatch);
      }
      return new TransportError(
        TransportErrorCode.PeerRefused,
        `unhandled error ${JSON.stringify(text)} when precondition failed`,
      );
    default:
      return new TransportError(
        TransportErrorCode.PeerRefused,
        `unhandled http status ${status}${text === "" ? "" : ` (${text})`}`,
      );
  }
}
