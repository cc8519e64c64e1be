import { TransportError, TransportErrorCode } from "./errors.js";

/**
 * Every bound of the transport, with its unit, its reason and what happens at the edge (STYLE: a limit
 * on everything). The server may override any of them (createTransport's `limits`).
 */
export interface TransportLimits {
  /**
   * Messages queued for one peer and not yet written (etcd's streamBufSize, 4096). At the edge a message
   * is dropped and raft hears onUnreachable(peer), as etcd does; the queue is also dropped (and reported)
   * when a connection to the peer fails, so what waits for a dead peer never outlives one dial attempt.
   */
  readonly queueMessagesMax: number;
  /** Bytes (encoded-size bound) queued for one peer; same edge as queueMessagesMax. */
  readonly queueBytesMax: number;
  /** A flush closes a Messages frame once it reaches this size: large enough to batch, small to pipeline. */
  readonly frameTargetBytes: number;
  /**
   * The largest frame sent or accepted. Must exceed the largest raft message (MaxSizePerMsg plus one
   * entry of --max-request-bytes); a message that cannot fit is dropped and reported unreachable, and a
   * received frame above it closes the connection as malformed.
   */
  readonly frameMaxBytes: number;
  /**
   * Bytes a stream socket may hold unsent in user space (at most this plus one frame). Past it no more
   * frames are written until the socket drains; the peer's queue takes the slack, then drops. This is
   * what keeps a slow peer from growing memory without bound.
   */
  readonly writeBufferBytesMax: number;
  /** Size of the chunks a snapshot is sent in (source chunks larger than this are split). */
  readonly snapshotChunkBytes: number;
  /** Snapshots being received at once; more are answered 503. */
  readonly inboundSnapshotsMax: number;
  /** Inbound streams at once (one per sending member; a new one from the same member replaces the old). */
  readonly inboundStreamsMax: number;
  /**
   * Members not (yet) added as peers that we answer because they reached us first (etcd's remotes: a
   * member that joined after this one's last applied conf change). More are not answered until added.
   */
  readonly remotesMax: number;
  /** Connect + handshake of a stream or snapshot request (etcd: 1 s + election timeout). */
  readonly dialTimeoutMs: number;
  /** First redial delay after a failure; doubles per failure up to backoffMaxMs (etcd: a flat 100 ms). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** An idle stream sends a heartbeat frame this often, both ways (etcd: ConnReadTimeout / 3). */
  readonly heartbeatIntervalMs: number;
  /** An open stream with no byte received for this long is closed as dead (etcd's ConnReadTimeout, 5 s). */
  readonly readTimeoutMs: number;
  /** A snapshot transfer (either side) with no progress for this long is aborted. */
  readonly snapshotStallTimeoutMs: number;
  /** Period of the one housekeeping timer (dial deadlines, redials, heartbeats, timeouts). */
  readonly housekeepingIntervalMs: number;
  /** Bytes read of an error answer's body (the refusal text). */
  readonly errorBodyBytesMax: number;
  /** Concurrent HTTP connections on each peer listener (net.Server maxConnections). */
  readonly connectionsMax: number;
}

export const TRANSPORT_LIMITS_DEFAULT: TransportLimits = Object.freeze({
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  frameTargetBytes: 256 * 1024,
  frameMaxBytes: 16 * 1024 * 1024,
  writeBufferBytesMax: 4 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  inboundSnapshotsMax: 2,
  inboundStreamsMax: 64,
  remotesMax: 16,
  dialTimeoutMs: 2000,
  backoffInitialMs: 50,
  backoffMaxMs: 1000,
  heartbeatIntervalMs: 1000,
  readTimeoutMs: 5000,
  snapshotStallTimeoutMs: 30_000,
  housekeepingIntervalMs: 50,
  errorBodyBytesMax: 4096,
  connectionsMax: 1024,
});

export function resolveLimits(overrides: Partial<TransportLimits> | undefined): TransportLimits {
  const limits: TransportLimits = { ...TRANSPORT_LIMITS_DEFAULT, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TransportError(
        TransportErrorCode.BadConfig,
        `transport limit ${name} must be a positive integer`,
      );
    }
  }
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new TransportError(TransportErrorCode.BadConfig, `transport limits: ${what}`);
  };
  check(limits.frameTargetBytes <= limits.frameMaxBytes, "frameTargetBytes must not exceed frameMaxBytes");
  check(
    limits.snapshotChunkBytes <= limits.frameMaxBytes,
    "snapshotChunkBytes must not exceed frameMaxBytes",
  );
  check(limits.frameMaxBytes <= 0xffffffff, "frameMaxBytes must fit the 32-bit frame length");
  check(limits.backoffInitialMs <= limits.backoffMaxMs, "backoffInitialMs must not exceed backoffMaxMs");
  check(limits.heartbeatIntervalMs < limits.readTimeoutMs, "heartbeatIntervalMs must be below readTimeoutMs");
  return Object.freeze(limits);
}
