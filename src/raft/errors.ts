/**
 * Typed errors for expected conditions (bad input, no leader, compacted log). Callers match on `code`,
 * never on the message text. Broken invariants are RaftAssertionError (assert.ts) instead, and must stop
 * the member.
 */
export const RaftErrorCode = {
  /** A proposal (or conf change) was made while this node knows no leader. Server: "etcdserver: no leader". */
  NoLeader: "RAFT_NO_LEADER",
  /**
   * A proposal was refused for another reason: a leadership transfer is in progress, this leader was
   * removed from the configuration, forwarding is disabled, or the uncommitted tail is over its limit.
   * Server: proposal dropped (etcd answers "etcdserver: too many requests" / retries).
   */
  ProposalDropped: "RAFT_PROPOSAL_DROPPED",
  /** The requested index is below the storage's first index (compacted away). */
  Compacted: "RAFT_COMPACTED",
  /** The requested index is above the storage's last index. */
  Unavailable: "RAFT_UNAVAILABLE",
  /** A snapshot older than (or equal to) the one held was applied or created. */
  SnapshotOutOfDate: "RAFT_SNAPSHOT_OUT_OF_DATE",
  /** Storage cannot produce a snapshot right now; raft retries later. */
  SnapshotTemporarilyUnavailable: "RAFT_SNAPSHOT_TEMPORARILY_UNAVAILABLE",
  /** A local-only message type (Hup, Beat, ...) arrived through step() from the network. */
  StepLocalMessage: "RAFT_STEP_LOCAL_MESSAGE",
  /** A response arrived from a node that is not in the progress tracker. */
  StepPeerNotFound: "RAFT_STEP_PEER_NOT_FOUND",
  /** A message or configuration change is malformed (bad field values). */
  InvalidMessage: "RAFT_INVALID_MESSAGE",
  /** A configuration change cannot be applied to the current configuration. */
  InvalidConfChange: "RAFT_INVALID_CONF_CHANGE",
  /** Bad configuration passed to the constructor. */
  InvalidConfig: "RAFT_INVALID_CONFIG",
  /** A byte string could not be decoded (codec.ts). */
  Decode: "RAFT_DECODE",
} as const;
export type RaftErrorCode = (typeof RaftErrorCode)[keyof typeof RaftErrorCode];

export class RaftError extends Error {
  override readonly name = "RaftError";
  readonly code: RaftErrorCode;

  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}
