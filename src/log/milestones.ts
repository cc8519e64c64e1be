/**
 * etcd's own log lines at the moments deployment scripts and test harnesses wait for, with their
 * exact etcd 3.4.23 (--logger=zap) text, level and field names, taken from the real etcd's output
 * (test/log/testdata/*.jsonl; a test checks every entry against those captures). Log these with
 * the same msg and field names so `grep`-based readiness checks written for etcd keep working.
 */
import type { ZapLevel } from "../config/types.js";
import { formatId } from "./format.js";

export interface Milestone {
  readonly msg: string;
  readonly level: ZapLevel;
  /** etcd's "caller" for the line, for reference (etcd-ts prints its module name instead). */
  readonly etcdCaller: string;
  /** Field names in etcd's order. */
  readonly fields: readonly string[];
  /** False for lines etcd 3.4.23's zap logger does not print (see the entry's comment). */
  readonly inEtcd34Zap: boolean;
}

function milestone(
  level: ZapLevel,
  etcdCaller: string,
  msg: string,
  fields: readonly string[],
  inEtcd34Zap = true,
): Milestone {
  return Object.freeze({ msg, level, etcdCaller, fields: Object.freeze([...fields]), inEtcd34Zap });
}

const ADVERTISE_AND_LISTEN = [
  "initial-advertise-peer-urls",
  "listen-peer-urls",
  "advertise-client-urls",
  "listen-client-urls",
  "listen-metrics-urls",
];

export const MILESTONES = Object.freeze({
  /** etcdmain, when the configuration is rejected (process exits 1). */
  failedToVerifyFlags: milestone("warn", "etcdmain/etcd.go:66", "failed to verify flags", ["error"]),
  configuringPeerListeners: milestone("info", "embed/etcd.go:117", "configuring peer listeners", [
    "listen-peer-urls",
  ]),
  configuringClientListeners: milestone("info", "embed/etcd.go:127", "configuring client listeners", [
    "listen-client-urls",
  ]),
  /** The big start-up line with the effective configuration. */
  startingAnEtcdServer: milestone("info", "embed/etcd.go:305", "starting an etcd server", [
    "etcd-version",
    "git-sha",
    "go-version",
    "go-os",
    "go-arch",
    "max-cpu-set",
    "max-cpu-available",
    "member-initialized",
    "name",
    "data-dir",
    "wal-dir",
    "wal-dir-dedicated",
    "member-dir",
    "force-new-cluster",
    "heartbeat-interval",
    "election-timeout",
    "initial-election-tick-advance",
    "snapshot-count",
    "max-wals",
    "max-snapshots",
    "snapshot-catchup-entries",
    "initial-advertise-peer-urls",
    "listen-peer-urls",
    "advertise-client-urls",
    "listen-client-urls",
    "listen-metrics-urls",
    "cors",
    "host-whitelist",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "quota-backend-bytes",
    "max-request-bytes",
    "max-concurrent-streams",
    "pre-vote",
    "initial-corrupt-check",
    "corrupt-check-time-interval",
    "auto-compaction-mode",
    "auto-compaction-retention",
    "auto-compaction-interval",
    "discovery-url",
    "discovery-proxy",
  ]),
  openedBackendDb: milestone("info", "etcdserver/backend.go:80", "opened backend db", ["path", "took"]),
  startingLocalMember: milestone("info", "etcdserver/raft.go:536", "starting local member", [
    "local-member-id",
    "cluster-id",
  ]),
  simpleTokenNotSigned: milestone(
    "warn",
    "auth/store.go:1380",
    "simple token is not cryptographically signed",
    [],
  ),
  enabledBackendQuotaWithDefault: milestone(
    "info",
    "etcdserver/quota.go:98",
    "enabled backend quota with default value",
    ["quota-name", "quota-size-bytes", "quota-size"],
  ),
  startingEtcdServer: milestone("info", "etcdserver/server.go:816", "starting etcd server", [
    "local-member-id",
    "local-server-version",
    "cluster-version",
  ]),
  startedAsSingleNode: milestone(
    "info",
    "etcdserver/server.go:682",
    "started as single-node; fast-forwarding election ticks",
    ["local-member-id", "forward-ticks", "forward-duration", "election-ticks", "election-timeout"],
  ),
  startingInitialElectionTickAdvance: milestone(
    "info",
    "etcdserver/server.go:704",
    "starting initial election tick advance",
    ["election-ticks"],
  ),
  initializedPeerConnections: milestone(
    "info",
    "etcdserver/server.go:729",
    "initialized peer connections; fast-forwarding election ticks",
    [
      "local-member-id",
      "forward-ticks",
      "forward-duration",
      "election-ticks",
      "election-timeout",
      "active-remote-members",
    ],
  ),
  addedMember: milestone("info", "membership/cluster.go:392", "added member", [
    "cluster-id",
    "local-member-id",
    "added-peer-id",
    "added-peer-peer-urls",
  ]),
  servingPeerTraffic: milestone("info", "embed/etcd.go:587", "serving peer traffic", ["address"]),
  nowServingPeerClientMetrics: milestone("info", "embed/etcd.go:247", "now serving peer/client/metrics", [
    "local-member-id",
    ...ADVERTISE_AND_LISTEN,
  ]),
  addedRemotePeer: milestone("info", "rafthttp/transport.go:327", "added remote peer", [
    "local-member-id",
    "remote-peer-id",
    "remote-peer-urls",
  ]),
  peerBecameActive: milestone("info", "rafthttp/peer_status.go:51", "peer became active", ["peer-id"]),
  peerBecameInactive: milestone(
    "warn",
    "rafthttp/peer_status.go:68",
    "peer became inactive (message send to peer failed)",
    ["peer-id", "error"],
  ),
  establishedStream: milestone(
    "info",
    "rafthttp/stream.go:425",
    "established TCP streaming connection with remote peer",
    ["stream-reader-type", "local-member-id", "remote-peer-id"],
  ),
  settingUpInitialClusterVersion: milestone(
    "info",
    "etcdserver/server.go:2567",
    "setting up initial cluster version",
    ["cluster-version"],
  ),
  setInitialClusterVersion: milestone("info", "membership/cluster.go:558", "set initial cluster version", [
    "cluster-id",
    "local-member-id",
    "cluster-version",
  ]),
  /** The member joined: what most harnesses wait for besides the client port. */
  publishedLocalMember: milestone(
    "info",
    "etcdserver/server.go:2069",
    "published local member to cluster through raft",
    ["local-member-id", "local-member-attributes", "request-path", "cluster-id", "publish-timeout"],
  ),
  enabledCapabilities: milestone("info", "api/capability.go:76", "enabled capabilities for version", [
    "cluster-version",
  ]),
  clusterVersionIsUpdated: milestone("info", "etcdserver/server.go:2599", "cluster version is updated", [
    "cluster-version",
  ]),
  /**
   * etcd 3.4.23 prints this only with the default capnslog logger ("embed: ready to serve client
   * requests"); etcd 3.5's zap logger prints it as a JSON line. Harnesses grep for it, so log it.
   */
  readyToServeClientRequests: milestone(
    "info",
    "embed/serve.go:98",
    "ready to serve client requests",
    [],
    false,
  ),
  servingClientTrafficInsecurely: milestone(
    "info",
    "embed/serve.go:145",
    "serving client traffic insecurely; this is strongly discouraged!",
    ["address"],
  ),
  receivedSignal: milestone("info", "osutil/interrupt_unix.go:64", "received signal; shutting down", [
    "signal",
  ]),
  closingEtcdServer: milestone("info", "embed/etcd.go:371", "closing etcd server", [
    "name",
    "data-dir",
    "advertise-peer-urls",
    "advertise-client-urls",
  ]),
  skippedLeadershipTransferSingleMember: milestone(
    "info",
    "etcdserver/server.go:1507",
    "skipped leadership transfer for single voting member cluster",
    ["local-member-id", "current-leader-member-id"],
  ),
  skippedLeadershipTransferNotLeader: milestone(
    "info",
    "etcdserver/server.go:1494",
    "skipped leadership transfer; local server is not leader",
    ["local-member-id", "current-leader-member-id"],
  ),
  leadershipTransferStarting: milestone("info", "etcdserver/server.go:1456", "leadership transfer starting", [
    "local-member-id",
    "current-leader-member-id",
    "transferee-member-id",
  ]),
  stoppingServingPeerTraffic: milestone("info", "embed/etcd.go:566", "stopping serving peer traffic", [
    "address",
  ]),
  stoppedServingPeerTraffic: milestone("info", "embed/etcd.go:573", "stopped serving peer traffic", [
    "address",
  ]),
  closedEtcdServer: milestone("info", "embed/etcd.go:375", "closed etcd server", [
    "name",
    "data-dir",
    "advertise-peer-urls",
    "advertise-client-urls",
  ]),
} satisfies Record<string, Milestone>);

/** The "stream-reader-type"/"stream-writer-type" values etcd prints. */
export const STREAM_TYPES = Object.freeze({ message: "stream Message", msgAppV2: "stream MsgApp v2" });

/**
 * etcd's raft logs plain formatted messages (no fields), caller raft/raft.go or raft/node.go; ids
 * are %x, terms %d. These render them exactly.
 */
export const RAFT_MESSAGES = Object.freeze({
  becameFollower: (id: bigint, term: bigint) => `${formatId(id)} became follower at term ${term}`,
  becameCandidate: (id: bigint, term: bigint) => `${formatId(id)} became candidate at term ${term}`,
  becamePreCandidate: (id: bigint, term: bigint) => `${formatId(id)} became pre-candidate at term ${term}`,
  becameLeader: (id: bigint, term: bigint) => `${formatId(id)} became leader at term ${term}`,
  startingNewElection: (id: bigint, term: bigint) =>
    `${formatId(id)} is starting a new election at term ${term}`,
  /** `type` is the raft message type name, e.g. MsgVoteResp, MsgPreVoteResp. */
  receivedVote: (id: bigint, type: string, from: bigint, term: bigint) =>
    `${formatId(id)} received ${type} from ${formatId(from)} at term ${term}`,
  receivedVoteRejection: (id: bigint, type: string, from: bigint, term: bigint) =>
    `${formatId(id)} received ${type} rejection from ${formatId(from)} at term ${term}`,
  electedLeader: (id: bigint, leader: bigint, term: bigint) =>
    `raft.node: ${formatId(id)} elected leader ${formatId(leader)} at term ${term}`,
  changedLeader: (id: bigint, from: bigint, to: bigint, term: bigint) =>
    `raft.node: ${formatId(id)} changed leader from ${formatId(from)} to ${formatId(to)} at term ${term}`,
  lostLeader: (id: bigint, leader: bigint, term: bigint) =>
    `raft.node: ${formatId(id)} lost leader ${formatId(leader)} at term ${term}`,
  /** Voter ids print in decimal, ascending (raft's quorum.MajorityConfig.String). */
  switchedToConfiguration: (id: bigint, voters: readonly bigint[], learners: readonly bigint[] = []) => {
    const list = (ids: readonly bigint[]) => [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).join(" ");
    const learnerPart = learners.length > 0 ? ` learners=(${list(learners)})` : "";
    return `${formatId(id)} switched to configuration voters=(${list(voters)})${learnerPart}`;
  },
  newRaft: (
    id: bigint,
    peers: readonly bigint[],
    state: { term: bigint; commit: bigint; applied: bigint; lastIndex: bigint; lastTerm: bigint },
  ) =>
    `newRaft ${formatId(id)} [peers: [${peers.map(formatId).join(",")}], term: ${state.term}, commit: ${state.commit}, applied: ${state.applied}, lastindex: ${state.lastIndex}, lastterm: ${state.lastTerm}]`,
});
