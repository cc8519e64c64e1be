/**
 * Errors of the lock and election recipes (etcd's clientv3/concurrency and v3election), and the rule
 * that every error the services return reaches the client as gRPC UNKNOWN with the plain text.
 *
 * Why UNKNOWN: etcd runs these services through an in-process clientv3 whose calls turn each server
 * status into a plain `rpctypes.EtcdError` (text, no gRPC status); the outer gRPC server then sends any
 * such error as UNKNOWN. So "etcdserver: requested lease not found" arrives with code 2, not 5 (spec §9).
 */

export const CoordinationErrors = {
  /** concurrency.ErrElectionNotLeader: Proclaim by a key that no longer holds its create revision. */
  ElectionNotLeader: "election: not leader",
  /** concurrency.ErrElectionNoLeader: Leader on a name without keys. */
  ElectionNoLeader: "election: no leader",
  /** v3election.ErrMissingLeaderKey: Proclaim/Resign without `leader`. */
  MissingLeaderKey: '"leader" field must be provided',
  /** The call was cancelled (or its deadline passed) while it waited; the client sees its own status. */
  Cancelled: "context canceled",
  /** clientv3 waitDelete's text when its watch closed without an error (the member is stopping). */
  LostWatcher: "lost watcher waiting for delete",
} as const;

export type CoordinationErrorCode = keyof typeof CoordinationErrors;

/**
 * A coordination error: `code` is stable, `message` etcd's text. `passThrough` errors carry the text of
 * an error the member raised (an EtcdError or a watch cancel reason) under code "Server".
 */
export class CoordinationError extends Error {
  override readonly name = "CoordinationError";

  constructor(
    readonly code: CoordinationErrorCode | "Server",
    message?: string,
  ) {
    super(message ?? (code === "Server" ? "server error" : CoordinationErrors[code]));
  }
}

export function isCoordinationError(
  error: unknown,
  code?: CoordinationErrorCode,
): error is CoordinationError {
  return error instanceof CoordinationError && (code === undefined || error.code === code);
}
