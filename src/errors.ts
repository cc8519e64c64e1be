/**
 * Every error a client can see from etcd 3.4, with its exact message text and the gRPC status code number
 * etcd sends (spec §13). Clients match on the text (Go's rpctypes table, the npm `etcd3` substring checks),
 * so the text is copied byte for byte; the code is what `api/` puts in the gRPC status.
 *
 * This module must not import grpc-js: layers below `api/` (mvcc, lease, auth, server) throw `EtcdError`
 * with a stable `code` (the key of `Errors`), and `api/` maps it to a status in one place.
 *
 * Rows with code 2 (UNKNOWN) are errors etcd returns without a gRPC status of their own (they reach the
 * client as UNKNOWN with the same text), see etcd's `toGRPCErrorMap` and spec §13.
 */

/** gRPC status code numbers (the subset etcd uses), named so that tables below read like spec §13. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export interface ErrorSpec {
  readonly message: string;
  readonly grpcCode: number;
}

const C = GrpcCode;

export const Errors = {
  // KV (spec §5, §6)
  EmptyKey: { message: "etcdserver: key is not provided", grpcCode: C.INVALID_ARGUMENT },
  KeyNotFound: { message: "etcdserver: key not found", grpcCode: C.INVALID_ARGUMENT },
  ValueProvided: { message: "etcdserver: value is provided", grpcCode: C.INVALID_ARGUMENT },
  LeaseProvided: { message: "etcdserver: lease is provided", grpcCode: C.INVALID_ARGUMENT },
  TooManyOps: { message: "etcdserver: too many operations in txn request", grpcCode: C.INVALID_ARGUMENT },
  DuplicateKey: { message: "etcdserver: duplicate key given in txn request", grpcCode: C.INVALID_ARGUMENT },
  Compacted: { message: "etcdserver: mvcc: required revision has been compacted", grpcCode: C.OUT_OF_RANGE },
  FutureRev: {
    message: "etcdserver: mvcc: required revision is a future revision",
    grpcCode: C.OUT_OF_RANGE,
  },
  NoSpace: { message: "etcdserver: mvcc: database space exceeded", grpcCode: C.RESOURCE_EXHAUSTED },

  // Lease (spec §8)
  LeaseNotFound: { message: "etcdserver: requested lease not found", grpcCode: C.NOT_FOUND },
  LeaseExist: { message: "etcdserver: lease already exists", grpcCode: C.FAILED_PRECONDITION },
  LeaseTTLTooLarge: { message: "etcdserver: too large lease TTL", grpcCode: C.OUT_OF_RANGE },

  // Watch
  WatchCanceled: { message: "etcdserver: watch canceled", grpcCode: C.CANCELLED },

  // Cluster (spec §10)
  MemberExist: { message: "etcdserver: member ID already exist", grpcCode: C.FAILED_PRECONDITION },
  PeerURLExist: { message: "etcdserver: Peer URLs already exists", grpcCode: C.FAILED_PRECONDITION },
  MemberNotEnoughStarted: {
    message: "etcdserver: re-configuration failed due to not enough started members",
    grpcCode: C.UNKNOWN,
  },
  MemberBadURLs: { message: "etcdserver: given member URLs are invalid", grpcCode: C.INVALID_ARGUMENT },
  MemberNotFound: { message: "etcdserver: member not found", grpcCode: C.NOT_FOUND },
  MemberNotLearner: {
    message: "etcdserver: can only promote a learner member",
    grpcCode: C.FAILED_PRECONDITION,
  },
  LearnerNotReady: {
    message: "etcdserver: can only promote a learner member which is in sync with leader",
    grpcCode: C.FAILED_PRECONDITION,
  },
  TooManyLearners: {
    message: "etcdserver: too many learner members in cluster",
    grpcCode: C.FAILED_PRECONDITION,
  },

  // Request admission (spec §14)
  RequestTooLarge: { message: "etcdserver: request is too large", grpcCode: C.INVALID_ARGUMENT },
  TooManyRequests: { message: "etcdserver: too many requests", grpcCode: C.UNKNOWN },

  // Auth (spec §12)
  RootUserNotExist: { message: "etcdserver: root user does not exist", grpcCode: C.FAILED_PRECONDITION },
  RootRoleNotExist: {
    message: "etcdserver: root user does not have root role",
    grpcCode: C.FAILED_PRECONDITION,
  },
  UserAlreadyExist: { message: "etcdserver: user name already exists", grpcCode: C.FAILED_PRECONDITION },
  UserEmpty: { message: "etcdserver: user name is empty", grpcCode: C.INVALID_ARGUMENT },
  UserNotFound: { message: "etcdserver: user name not found", grpcCode: C.FAILED_PRECONDITION },
  RoleAlreadyExist: { message: "etcdserver: role name already exists", grpcCode: C.FAILED_PRECONDITION },
  RoleNotFound: { message: "etcdserver: role name not found", grpcCode: C.FAILED_PRECONDITION },
  RoleEmpty: { message: "etcdserver: role name is empty", grpcCode: C.INVALID_ARGUMENT },
  AuthFailed: {
    message: "etcdserver: authentication failed, invalid user ID or password",
    grpcCode: C.INVALID_ARGUMENT,
  },
  PermissionDenied: { message: "etcdserver: permission denied", grpcCode: C.PERMISSION_DENIED },
  RoleNotGranted: { message: "etcdserver: role is not granted to the user", grpcCode: C.FAILED_PRECONDITION },
  PermissionNotGranted: {
    message: "etcdserver: permission is not granted to the role",
    grpcCode: C.FAILED_PRECONDITION,
  },
  AuthNotEnabled: { message: "etcdserver: authentication is not enabled", grpcCode: C.FAILED_PRECONDITION },
  InvalidAuthToken: { message: "etcdserver: invalid auth token", grpcCode: C.UNAUTHENTICATED },
  InvalidAuthMgmt: { message: "etcdserver: invalid auth management", grpcCode: C.INVALID_ARGUMENT },
  AuthOldRevision: { message: "etcdserver: revision of auth store is old", grpcCode: C.INVALID_ARGUMENT },

  // Server state (spec §13)
  NoLeader: { message: "etcdserver: no leader", grpcCode: C.UNAVAILABLE },
  NotLeader: { message: "etcdserver: not leader", grpcCode: C.FAILED_PRECONDITION },
  LeaderChanged: { message: "etcdserver: leader changed", grpcCode: C.UNAVAILABLE },
  NotCapable: { message: "etcdserver: not capable", grpcCode: C.UNAVAILABLE },
  Stopped: { message: "etcdserver: server stopped", grpcCode: C.UNAVAILABLE },
  Timeout: { message: "etcdserver: request timed out", grpcCode: C.UNAVAILABLE },
  TimeoutDueToLeaderFail: {
    message: "etcdserver: request timed out, possibly due to previous leader failure",
    grpcCode: C.UNAVAILABLE,
  },
  TimeoutDueToConnectionLost: {
    message: "etcdserver: request timed out, possibly due to connection lost",
    grpcCode: C.UNAVAILABLE,
  },
  TimeoutWaitAppliedIndex: {
    message: "etcdserver: request timed out, waiting for the applied index took too long",
    grpcCode: C.UNAVAILABLE,
  },
  Unhealthy: { message: "etcdserver: unhealthy cluster", grpcCode: C.UNAVAILABLE },
  Corrupt: { message: "etcdserver: corrupt cluster", grpcCode: C.DATA_LOSS },
  NotSupportedForLearner: { message: "etcdserver: rpc not supported for learner", grpcCode: C.UNAVAILABLE },
  BadLeaderTransferee: { message: "etcdserver: bad leader transferee", grpcCode: C.FAILED_PRECONDITION },
  RequestCancelled: { message: "etcdserver: request cancelled", grpcCode: C.UNKNOWN },
  TimeoutLeaderTransfer: {
    message: "etcdserver: request timed out, leader transfer took too long",
    grpcCode: C.UNKNOWN,
  },

  // Raw errors without a status of their own: Maintenance admin RPCs under auth, Lock/Election (spec §13).
  AuthRawPermissionDenied: { message: "auth: permission denied", grpcCode: C.UNKNOWN },
  AuthRawUserEmpty: { message: "auth: user name is empty", grpcCode: C.UNKNOWN },
  AuthRawUserNotFound: { message: "auth: user name not found", grpcCode: C.UNKNOWN },
  AuthRawPasswordForNoPasswordUser: {
    message: "auth: authentication failed, password was given for no password user",
    grpcCode: C.UNKNOWN,
  },
  ElectionNoLeader: { message: "election: no leader", grpcCode: C.UNKNOWN },
  ElectionNotLeader: { message: "election: not leader", grpcCode: C.UNKNOWN },
  ElectionLeaderMissing: { message: '"leader" field must be provided', grpcCode: C.UNKNOWN },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof Errors;

/** A client-visible etcd error. `code` is stable (match on it, not on the text); `message` is etcd's text. */
export class EtcdError extends Error {
  override readonly name = "EtcdError";
  readonly grpcCode: number;

  constructor(readonly code: ErrorCode) {
    super(Errors[code].message);
    this.grpcCode = Errors[code].grpcCode;
  }
}

/** Builds the typed error for `code`: `throw etcdError("Compacted")`. */
export function etcdError(code: ErrorCode): EtcdError {
  return new EtcdError(code);
}

export function isEtcdError(error: unknown, code?: ErrorCode): error is EtcdError {
  return error instanceof EtcdError && (code === undefined || error.code === code);
}
