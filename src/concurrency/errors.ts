/**
 * Errors of the lock and election recipes (etcd's clientv3/concurrency and v3election), and the rule
 * that every error the services return reaches the client as gRPC UNKNOWN with the plain text.
 *
 * Why UNKNOWN: etcd runs these services through an in-process clientv3 whose calls turn each server
 * status into a plain `rpctypes.EtcdError` (text, no gRPC status); the outer gRPC server then sends any
 * such error as UNKNOWN. So "etcdserver: requested lease not found" arrives with code 2, not 5 (spec §9).
 */

/**
 * Errors of this layer only. etcd's client-visible election errors ("election: not leader", "election:
 * no leader", the missing leader key) are in src/errors.ts with the other etcd texts.
 */
export const CoordinationErrors = {
  /** The call was cancelled (or its deadline passed) while it waited; the client sees its own status. */
  Cancelled: "context canceled",
} as const;

export type CoordinationErrorCode = keyof typeof CoordinationErrors;

/**
 * A coordination error: `code` is stable, `message` etcd's text. Code "Server" carries the text of an
 * error the member raised (an EtcdError passed on as UNKNOWN, a watch cancel reason, "server stopped").
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
