import type { etcdserverpb } from "../proto/index.js";

/**
 * What `api/` (the gRPC services and the HTTP handlers) needs from a member. `server/` implements it on
 * raft + WAL + mvcc; tests can implement it over a bare MvccStore.
 *
 * Requests are the decoded wire messages: the server encodes them into its raft log as they are (an
 * InternalRaftRequest), so translating them to the store's own types happens once, at apply. Responses
 * are the wire messages' Init shapes without the header's cluster_id/member_id/raft_term, which `api/`
 * fills from `header()` (etcd fills them in the same place, after the call returns).
 *
 * Errors: every method rejects with an `EtcdError` (src/errors.ts) for anything a client can cause or see
 * (bad request, no leader, timeout, compacted, ...); `api/` maps it to the gRPC status in one table. Any
 * other exception is a bug and reaches the client as UNKNOWN.
 */
export interface EtcdServerApi {
  /** The fields of every response header except `revision`, as of now. */
  header(): { clusterId: bigint; memberId: bigint; raftTerm: number };
  /** The current leader's member id, 0n when there is none (the `hasleader` metadata check, spec §1.1). */
  readonly leader: bigint;
  /** Admission limits the api layer checks before calling (etcd's v3rpc checks). */
  readonly limits: { maxTxnOps: number; maxRequestBytes: number };

  /** Linearizable (ReadIndex) unless `request.serializable`. `header.revision` is the current revision. */
  range(request: etcdserverpb.RangeRequest): Promise<etcdserverpb.RangeResponseInit>;
  put(request: etcdserverpb.PutRequest): Promise<etcdserverpb.PutResponseInit>;
  deleteRange(request: etcdserverpb.DeleteRangeRequest): Promise<etcdserverpb.DeleteRangeResponseInit>;
  /** A txn whose ops are all ranges is served like a range (no raft proposal), as etcd does. */
  txn(request: etcdserverpb.TxnRequest): Promise<etcdserverpb.TxnResponseInit>;
  compact(request: etcdserverpb.CompactionRequest): Promise<etcdserverpb.CompactionResponseInit>;

  status(): Promise<etcdserverpb.StatusResponseInit>;
  hash(): Promise<etcdserverpb.HashResponseInit>;
  hashKV(request: etcdserverpb.HashKVRequest): Promise<etcdserverpb.HashKVResponseInit>;
  /** Response without header, as etcd's. */
  alarm(request: etcdserverpb.AlarmRequest): Promise<etcdserverpb.AlarmResponseInit>;
  /** Response without header, as etcd's. */
  defragment(): Promise<etcdserverpb.DefragmentResponseInit>;
  /** header.revision stays 0 for Cluster RPCs (spec §4). */
  memberList(request: etcdserverpb.MemberListRequest): Promise<etcdserverpb.MemberListResponseInit>;

  /**
   * For GET /health (spec §16): false with a reason when an alarm is active (except the excluded types),
   * there is no leader, or a linearizable read through raft does not complete within `timeoutMs`.
   */
  health(options: {
    excludeAlarms: readonly number[];
    timeoutMs: number;
  }): Promise<{ health: boolean; reason: string }>;
  /** For GET /version. */
  versions(): { etcdserver: string; etcdcluster: string };
}

/**
 * The Lease service's needs (spec §8), separate from EtcdServerApi so that test doubles without leases
 * still satisfy the KV/Maintenance contract; createApi serves the Lease service when the server has it.
 */
export interface LeaseServerApi {
  /** Through raft; a server-chosen id when request.ID is 0. */
  leaseGrant(request: etcdserverpb.LeaseGrantRequest): Promise<etcdserverpb.LeaseGrantResponseInit>;
  /** Through raft; deletes the attached keys in one revision. */
  leaseRevoke(request: etcdserverpb.LeaseRevokeRequest): Promise<etcdserverpb.LeaseRevokeResponseInit>;
  /** One keepalive: TTL after refreshing, 0 when the lease is unknown (a success, not an error). */
  leaseRenew(id: bigint): Promise<etcdserverpb.LeaseKeepAliveResponseInit>;
  /** TTL -1 for an unknown lease (a success, not an error). */
  leaseTimeToLive(
    request: etcdserverpb.LeaseTimeToLiveRequest,
  ): Promise<etcdserverpb.LeaseTimeToLiveResponseInit>;
  leaseLeases(): Promise<etcdserverpb.LeaseLeasesResponseInit>;
}

export function hasLeases(server: EtcdServerApi): server is EtcdServerApi & LeaseServerApi {
  return typeof (server as Partial<LeaseServerApi>).leaseGrant === "function";
}

/** Membership changes (spec §10) and MoveLeader (§11.6); served when the server has them. */
export interface ClusterServerApi {
  memberAdd(request: etcdserverpb.MemberAddRequest): Promise<etcdserverpb.MemberAddResponseInit>;
  memberRemove(request: etcdserverpb.MemberRemoveRequest): Promise<etcdserverpb.MemberRemoveResponseInit>;
  memberUpdate(request: etcdserverpb.MemberUpdateRequest): Promise<etcdserverpb.MemberUpdateResponseInit>;
  memberPromote(request: etcdserverpb.MemberPromoteRequest): Promise<etcdserverpb.MemberPromoteResponseInit>;
  /** Response without header, as etcd's. */
  moveLeader(request: etcdserverpb.MoveLeaderRequest): Promise<etcdserverpb.MoveLeaderResponseInit>;
  /** A learner answers only Status and serializable Range (spec §1.2). */
  readonly isLearner: boolean;
}

export function hasCluster(server: EtcdServerApi): server is EtcdServerApi & ClusterServerApi {
  return typeof (server as Partial<ClusterServerApi>).memberAdd === "function";
}
