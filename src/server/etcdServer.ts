import { rm } from "node:fs/promises";
import { assert } from "../assert.js";
import type { Backend } from "../backend/backend.js";
import type { AutoCompaction } from "../config/types.js";
import { ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION } from "../config/version.js";
import { EtcdError, isEtcdError } from "../errors.js";
import {
  type Clock,
  EXPIRY_ROUND_INTERVAL_MS,
  Lessor,
  minLeaseTtlSeconds,
  monotonicClock,
  REVOKES_IN_FLIGHT_MAX,
} from "../lease/index.js";
import type { Logger } from "../log/logger.js";
import type { MvccStore } from "../mvcc/store.js";
import type { MvccEvent } from "../mvcc/types.js";
import { etcdserverpb } from "../proto/index.js";
import {
  type ConfChange,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  decodeConfChange,
  decodeConfChangeV2,
  type Entry,
  EntryType,
  isRaftError,
  type MemoryStorage,
  type Message,
  MessageType,
  RaftErrorCode,
  type RawNode,
  type ReadState,
  type Snapshot,
  SnapshotStatus,
  type SoftState,
  StateRole,
} from "../raft/index.js";
import type { ReceivedSnapshot } from "../transport/index.js";
import type { Wal } from "../wal/wal.js";
import type { EtcdServerApi } from "./api.js";
import { Compactor } from "./compactor.js";
import * as convert from "./convert.js";
import { formatId, memberIdFor } from "./ids.js";
import { decodeMemberContext, encodeMemberContext, type Member, Membership } from "./membership.js";
import { FORWARD_TIMEOUT_MS_DEFAULT, forwardToLeader } from "./peerHandlers.js";
import { RaftLoop, type RaftTransport } from "./raftLoop.js";
import { ReadIndexRounds } from "./readIndex.js";
import { encodeSnapshotData, RaftSnapshots, type SnapshotConfig } from "./snapshot.js";
import { Waiters } from "./waiters.js";

/**
 * The member (etcd's EtcdServer): turns client requests into raft proposals, applies committed entries to
 * mvcc in order, answers each proposer once its entry is applied, and serves linearizable reads through
 * ReadIndex. Single-threaded on the main thread; persistence happens on the WAL and backend workers.
 *
 * Write path: request -> InternalRaftRequest (unique id) -> raft propose -> WAL fsync (group commit in
 * RaftLoop) -> committed -> apply -> the waiter for that id resolves -> the gRPC call returns.
 */

/** etcd refuses new proposals when applying lags committing by more than this many entries. */
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX = 5000;
/** Proposals waiting for their apply, at most (each holds a gRPC call). */
const PROPOSALS_WAITING_MAX = 100_000;
/** Readers queued for the next ReadIndex round, at most. */
const READERS_WAITING_MAX = 100_000;
/** How often request deadlines are checked (one coarse timer for all of them). */
const DEADLINE_SWEEP_MS = 100;

export interface EtcdServerOptions {
  memberId: bigint;
  clusterId: bigint;
  name: string;
  clientUrls: string[];
  node: RawNode;
  storage: MemoryStorage;
  wal: Wal;
  store: MvccStore;
  backend: Backend;
  transport: RaftTransport;
  /** The peer transport's peer list, kept in step with applied membership changes; absent: no peers. */
  peers?: PeerControl;
  /**
   * Installs a received backend snapshot (the peer transport's file) before raft's snapshot is applied:
   * the backend swaps its contents and, in the same synchronous step, calls `onInstalled` (the store and
   * everything built on the backend rebuild there, before any request can read).
   */
  installSnapshot?: (path: string, onInstalled: () => void) => Promise<void>;
  /** This member was removed from the cluster: it stops serving (the bin exits). */
  onRemoved?: () => void;
  /** etcd's --strict-reconfig-check (default on). */
  strictReconfigCheck?: boolean;
  /**
   * Fault injection for the linearizability tests only: linearizable reads are answered from local
   * state without ReadIndex (a broken server the checker must catch). Never set in production.
   */
  unsafeLocalReads?: boolean;
  logger: Logger;
  tickMs: number;
  electionTimeoutMs: number;
  maxTxnOps: number;
  maxRequestBytes: number;
  /** <= 0: no quota. */
  quotaBackendBytes: number;
  /** The member stops when persistence fails; the default exits the process. */
  onFatal: (error: unknown) => void;
  /** Lease expiry clock (tests pass a manual one). Default: the monotonic clock. */
  leaseClock?: Clock;
  /** etcd's --auto-compaction-mode/--auto-compaction-retention; absent or retention 0: off. */
  autoCompaction?: AutoCompaction;
  /** Raft snapshots every snapshotCount applied entries (src/server/snapshot.ts); absent: none. */
  snapshots?: SnapshotConfig;
}

/** What the server needs of the peer transport (src/transport's Transport satisfies it). */
export interface PeerControl {
  addPeer(id: bigint, urls: readonly string[]): void;
  removePeer(id: bigint): void;
  updatePeer(id: bigint, urls: readonly string[]): void;
  /** Epoch ms since the stream to `id` is up, 0 when it is not. */
  activeSince(id: bigint): number;
}

/** etcd's HealthInterval: a peer must have been connected this long for membership changes to be safe. */
const HEALTH_INTERVAL_MS = 5000;
/** etcd's readyPercent: a learner is promotable once its match index reaches 90% of the leader's. */
const LEARNER_READY_PERCENT = 0.9;
/** Received snapshot databases remembered until raft applies one (older ones are deleted). */
const RECEIVED_SNAPSHOTS_MAX = 4;
/** Lease reads waiting for the apply loop to reach the commit index, at most, and how long each may wait. */
const APPLIED_WAITERS_MAX = 100_000;
const APPLIED_WAIT_MS = 1000;
/** How often a configuration change refused for a pending one is proposed again. */
const CONF_CHANGE_RETRY_MS = 10;
/** etcd's maxLearners. */
const LEARNERS_MAX = 1;

type Applied =
  | { type: "put"; response: etcdserverpb.PutResponseInit }
  | { type: "deleteRange"; response: etcdserverpb.DeleteRangeResponseInit }
  | { type: "txn"; response: etcdserverpb.TxnResponseInit }
  | { type: "compaction"; response: etcdserverpb.CompactionResponseInit; physicalDone: Promise<void> }
  | { type: "alarm"; response: etcdserverpb.AlarmResponseInit }
  | { type: "leaseGrant"; response: etcdserverpb.LeaseGrantResponseInit }
  | { type: "leaseRevoke"; response: etcdserverpb.LeaseRevokeResponseInit }
  | { type: "confChange"; members: Member[] }
  | { type: "none" };

const ALARM_NONE = 0;
const ALARM_NOSPACE = 1;
const ALARM_CORRUPT = 2;
const ALARM_NAMES = ["NONE", "NOSPACE", "CORRUPT"];

export class EtcdServer implements EtcdServerApi {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly limits: { maxTxnOps: number; maxRequestBytes: number };
  readonly store: MvccStore;
  readonly backend: Backend;
  readonly membership: Membership;
  readonly lessor: Lessor;
  private readonly node: RawNode;
  private readonly loop: RaftLoop;
  private readonly log: Logger;
  private readonly waiters: Waiters<Applied>;
  private readonly reads: ReadIndexRounds;
  private readonly quotaBackendBytes: number;
  private readonly name: string;
  private readonly clientUrls: string[];
  private readonly onFatal: (error: unknown) => void;
  private appliedIndexValue: number;
  /** The term of the entry at appliedIndexValue (0 until an entry is applied in this process). */
  private appliedTermValue = 0;
  private leaderId = 0n;
  private term = 0;
  private readonly alarms = new Map<string, etcdserverpb.AlarmMember>();
  private clusterVersion: string | null = null;
  private published = false;
  private readonly readyWaiters: Array<() => void> = [];
  private sweeper: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  private revokesInFlight = 0;
  private readonly compactor: Compactor | null;
  /** Where applied events go (the watch hub); none until the member attaches one. */
  private eventSink: ((revision: number, events: readonly MvccEvent[]) => void) | null = null;
  private readonly electionTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private requestIdNext: bigint;
  private stopped = false;
  /** The configuration as of the applied index (what the last applyConfChange returned). */
  private confState: ConfState;
  /** Null when snapshots are not configured. */
  readonly raftSnapshots: RaftSnapshots | null;
  private readonly peers: PeerControl | null;
  private readonly installSnapshotFile: ((path: string, onInstalled: () => void) => Promise<void>) | null;
  private readonly onRemoved: () => void;
  private readonly strictReconfigCheck: boolean;
  /** Database files received with MsgSnap, by snapshot index, until raft hands that snapshot out. */
  private readonly receivedSnapshots = new Map<number, string>();
  private removed = false;
  private readonly unsafeLocalReads: boolean;
  /** Peer messages are dropped until start() (etcd starts its raft node there); raft retries them. */
  private running = false;

  constructor(options: EtcdServerOptions) {
    this.memberId = options.memberId;
    this.clusterId = options.clusterId;
    this.name = options.name;
    this.clientUrls = options.clientUrls;
    this.node = options.node;
    this.store = options.store;
    this.backend = options.backend;
    this.log = options.logger;
    this.onFatal = options.onFatal;
    this.peers = options.peers ?? null;
    this.installSnapshotFile = options.installSnapshot ?? null;
    this.onRemoved = options.onRemoved ?? (() => {});
    this.strictReconfigCheck = options.strictReconfigCheck ?? true;
    this.unsafeLocalReads = options.unsafeLocalReads === true;
    this.limits = { maxTxnOps: options.maxTxnOps, maxRequestBytes: options.maxRequestBytes };
    this.quotaBackendBytes = options.quotaBackendBytes;
    this.membership = new Membership(options.backend);
    this.compactor =
      options.autoCompaction === undefined
        ? null
        : new Compactor(
            options.autoCompaction,
            {
              isLeader: () => this.leaderId === this.memberId,
              currentRevision: () => this.store.revision,
              compact: (revision) => this.compact({ revision, physical: false }),
            },
            options.logger,
          );
    this.electionTimeoutMs = options.electionTimeoutMs;
    // etcd's request timeout: 5 s plus two election timeouts.
    this.requestTimeoutMs = 5000 + 2 * options.electionTimeoutMs;
    this.lessor = Lessor.open({
      backend: options.backend,
      clock: options.leaseClock ?? monotonicClock,
      minTtlSeconds: minLeaseTtlSeconds(
        Math.round(options.electionTimeoutMs / options.tickMs),
        options.tickMs,
      ),
      expiredRetryMs: this.requestTimeoutMs,
    });
    // The store learns which leases exist (puts with a lease) and the lessor deletes through the store.
    options.store.setLeases(this.lessor);
    this.lessor.setRangeDeleter(() => options.store.beginWrite());
    this.appliedIndexValue = options.backend.consistentIndex;
    // The snapshot's (restart) or empty (new member); replayed and new conf changes update it.
    this.confState = options.storage.initialState().confState;
    this.raftSnapshots =
      options.snapshots === undefined
        ? null
        : new RaftSnapshots({
            ...options.snapshots,
            memberId: options.memberId,
            storage: options.storage,
            wal: options.wal,
            backend: options.backend,
            logger: options.logger,
            onFatal: (error) => this.fail(error),
          });
    this.loadAlarms();
    this.loadClusterVersion();
    this.waiters = new Waiters(PROPOSALS_WAITING_MAX, this.requestTimeoutMs);
    this.reads = new ReadIndexRounds(
      {
        requestReadIndex: (context) => {
          try {
            this.node.readIndex(context);
          } catch (error) {
            throw this.proposalError(error);
          }
          this.loop.kick();
        },
        appliedIndex: () => this.appliedIndexValue,
      },
      READERS_WAITING_MAX,
      this.requestTimeoutMs,
    );
    // Request ids as etcd's idutil makes them: the member id's low 16 bits, then a millisecond clock and a
    // counter, so ids of different members never collide in one log.
    this.requestIdNext = ((this.memberId & 0xffffn) << 48n) | ((BigInt(Date.now()) & 0xff_ffff_ffffn) << 8n);
    this.loop = new RaftLoop({
      node: options.node,
      storage: options.storage,
      wal: options.wal,
      transport: { send: (messages) => options.transport.send(this.mergeSnapshots(messages)) },
      tickMs: options.tickMs,
      hooks: {
        apply: (entries) => this.applyEntries(entries),
        saveSnapshot: (snapshot) => this.saveReceivedSnapshot(snapshot),
        applySnapshot: (snapshot) => this.applyReceivedSnapshot(snapshot),
        softStateChanged: (state) => this.onSoftState(state),
        readStates: (states) => this.onReadStates(states),
        afterReady: () => this.afterReady(),
        fatal: (error) => this.fail(error),
      },
    });
  }

  start(): void {
    this.running = true;
    this.loop.start();
    this.sweeper = setInterval(() => {
      this.waiters.expire(() => new EtcdError("Timeout"));
      this.reads.expire();
      if (this.heldProposals.length > 0)
        this.heldProposals = this.heldProposals.filter((p) => this.waiters.has(p.id));
    }, DEADLINE_SWEEP_MS);
    this.sweeper.unref();
    this.leaseTimer = setInterval(() => this.revokeExpiredLeases(), EXPIRY_ROUND_INTERVAL_MS);
    this.leaseTimer.unref();
    this.compactor?.start();
  }

  /**
   * Hands every applied write's events to `sink` from now on (the watch hub), with the store's revision
   * after the write. Called synchronously from apply, in revision order.
   */
  setEventSink(sink: (revision: number, events: readonly MvccEvent[]) => void): void {
    this.eventSink = sink;
  }

  /** Calls `hook` each time a received snapshot replaced the store (the watch hub resyncs its watchers). */
  setRestoredHook(hook: () => void): void {
    this.onRestored = hook;
  }

  private onRestored: (() => void) | null = null;

  private publishEvents(events: readonly MvccEvent[]): void {
    if (events.length > 0 && this.eventSink !== null) this.eventSink(this.store.revision, events);
  }

  /** Resolves once this member's attributes are committed through raft (etcd's ReadyNotify). */
  readyNotify(): Promise<void> {
    if (this.published) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    if (this.leaseTimer !== null) clearInterval(this.leaseTimer);
    this.compactor?.stop();
    await this.loop.stop();
    // A snapshot in flight writes to the WAL, which the caller closes next.
    await this.raftSnapshots?.idle();
    const error = new EtcdError("Stopped");
    this.waiters.failAll(error);
    this.reads.failAll(error);
    this.lessor.close();
  }

  // ---------------------------------------------------------------------------------------------------
  // EtcdServerApi

  header(): { clusterId: bigint; memberId: bigint; raftTerm: number } {
    return { clusterId: this.clusterId, memberId: this.memberId, raftTerm: this.term };
  }

  async range(request: etcdserverpb.RangeRequest): Promise<etcdserverpb.RangeResponseInit> {
    if (!request.serializable && !this.unsafeLocalReads) await this.reads.barrier();
    return convert.rangeResponseToWire(this.store.range(convert.rangeRequestToStore(request)));
  }

  async put(request: etcdserverpb.PutRequest): Promise<etcdserverpb.PutResponseInit> {
    this.checkQuota(256 + request.key.length + request.value.length);
    const applied = await this.propose({ put: request });
    assert(applied.type === "put", "a put applies as a put");
    return applied.response;
  }

  async deleteRange(request: etcdserverpb.DeleteRangeRequest): Promise<etcdserverpb.DeleteRangeResponseInit> {
    const applied = await this.propose({ deleteRange: request });
    assert(applied.type === "deleteRange", "a delete applies as a delete");
    return applied.response;
  }

  async txn(request: etcdserverpb.TxnRequest): Promise<etcdserverpb.TxnResponseInit> {
    if (isTxnReadOnly(request)) {
      // etcd serves a read-only txn like a range: no proposal, linearizable unless every range in it
      // is serializable.
      if (!isTxnSerializable(request) && !this.unsafeLocalReads) await this.reads.barrier();
      return convert.txnResponseToWire(this.store.txnReadOnly(convert.txnRequestToStore(request)));
    }
    this.checkQuota(txnPutCost(request));
    const applied = await this.propose({ txn: request });
    assert(applied.type === "txn", "a txn applies as a txn");
    return applied.response;
  }

  async compact(request: etcdserverpb.CompactionRequest): Promise<etcdserverpb.CompactionResponseInit> {
    const applied = await this.propose({ compaction: request });
    assert(applied.type === "compaction", "a compaction applies as a compaction");
    if (request.physical) await applied.physicalDone;
    return applied.response;
  }

  async status(): Promise<etcdserverpb.StatusResponseInit> {
    const hardState = this.node.status().hardState;
    const errors: string[] = [];
    if (this.leaderId === 0n) errors.push(new EtcdError("NoLeader").message);
    for (const alarm of this.alarmList(ALARM_NONE)) {
      errors.push(`memberID:${alarm.memberID} alarm:${ALARM_NAMES[alarm.alarm] ?? alarm.alarm} `);
    }
    return {
      header: { revision: this.store.revision },
      version: ETCD_SERVER_VERSION,
      dbSize: this.backend.sizeBytes(),
      dbSizeInUse: this.backend.sizeInUseBytes(),
      leader: this.leaderId,
      raftIndex: hardState.commit,
      raftTerm: hardState.term,
      raftAppliedIndex: this.appliedIndexValue,
      errors,
      isLearner: this.isLearner,
    };
  }

  async hash(): Promise<etcdserverpb.HashResponseInit> {
    const { hash, revision } = this.store.hash();
    return { header: { revision }, hash };
  }

  async hashKV(request: etcdserverpb.HashKVRequest): Promise<etcdserverpb.HashKVResponseInit> {
    const result = this.store.hashKV(request.revision);
    return {
      header: { revision: result.revision },
      hash: result.hash,
      compactRevision: result.compactRevision,
    };
  }

  async alarm(request: etcdserverpb.AlarmRequest): Promise<etcdserverpb.AlarmResponseInit> {
    const applied = await this.propose({ alarm: request });
    assert(applied.type === "alarm", "an alarm request applies as one");
    return applied.response;
  }

  async defragment(): Promise<etcdserverpb.DefragmentResponseInit> {
    await this.loop.pause();
    try {
      // A running snapshot commits the backend; defragment swaps it. Paused, the loop starts no other.
      await this.raftSnapshots?.idle();
      await this.backend.defragment();
    } finally {
      this.loop.resume();
    }
    return {};
  }

  async memberList(_request: etcdserverpb.MemberListRequest): Promise<etcdserverpb.MemberListResponseInit> {
    return {
      header: { revision: 0 },
      members: this.membership.list().map(memberToWire),
    };
  }

  async health(options: {
    excludeAlarms: readonly number[];
    timeoutMs: number;
  }): Promise<{ health: boolean; reason: string }> {
    for (const alarm of this.alarmList(ALARM_NONE)) {
      if (!options.excludeAlarms.includes(alarm.alarm)) {
        return { health: false, reason: `ALARM ${ALARM_NAMES[alarm.alarm] ?? alarm.alarm}` };
      }
    }
    if (this.leaderId === 0n) return { health: false, reason: "RAFT NO LEADER" };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.reads.barrier(),
        new Promise((_resolve, reject) => {
          timer = setTimeout(() => reject(new EtcdError("Timeout")), options.timeoutMs);
        }),
      ]);
      return { health: true, reason: "" };
    } catch (error) {
      return {
        health: false,
        reason: `QGET ERROR:${error instanceof Error ? error.message : String(error)}`,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Peers: what the transport delivers

  /** A raft message from a peer (with MsgSnap, its database file, already durable). */
  step(message: Message, snapshot?: ReceivedSnapshot): void {
    if (this.stopped || !this.running) return;
    if (message.type === MessageType.Snap && snapshot !== undefined) {
      this.receivedSnapshots.set(snapshot.index, snapshot.path);
      // Raft may pass over a received snapshot (a newer one, or the log caught up): keep a few, newest first.
      while (this.receivedSnapshots.size > RECEIVED_SNAPSHOTS_MAX) {
        const oldest = Math.min(...this.receivedSnapshots.keys());
        const path = this.receivedSnapshots.get(oldest);
        this.receivedSnapshots.delete(oldest);
        if (path !== undefined) void rm(path, { force: true }).catch(() => {});
      }
    }
    try {
      this.node.step(message);
    } catch (error) {
      if (!isRaftError(error)) throw error;
      this.log.debug("failed to process Raft message", { error: error.message });
      return;
    }
    this.loop.kick();
  }

  reportUnreachable(id: bigint): void {
    if (this.stopped) return;
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    if (this.stopped) return;
    this.node.reportSnapshot(id, ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
    this.loop.kick();
  }

  /** A peer says this member was removed (or it applied its own removal): stop serving. */
  removedFromCluster(): void {
    if (this.removed) return;
    this.removed = true;
    this.log.warn("the member has been permanently removed from the cluster", {
      "local-member-id": formatId(this.memberId),
    });
    // After this turn: the apply in progress finishes first (a member removing itself gets its answer).
    // Then requests still waiting fail at once with "server stopped" rather than wait out the member's
    // graceful stop, which waits for them.
    setImmediate(() => {
      const stopped = new EtcdError("Stopped");
      this.waiters.failAll(stopped);
      this.reads.failAll(stopped);
      this.onRemoved();
    });
  }

  get isLearner(): boolean {
    return this.membership.get(this.memberId)?.isLearner === true;
  }

  private async saveReceivedSnapshot(snapshot: Snapshot): Promise<void> {
    assert(this.raftSnapshots !== null, "a member in a cluster takes snapshots");
    await this.raftSnapshots.saveReceived(snapshot);
  }

  /** etcd's applySnapshot: the received database replaces the backend, then everything built on it. */
  private async applyReceivedSnapshot(snapshot: Snapshot): Promise<void> {
    const { index } = snapshot.metadata;
    if (index <= this.appliedIndexValue) return;
    const path = this.receivedSnapshots.get(index);
    if (path === undefined || this.installSnapshotFile === null) {
      throw new Error(`no database file was received for the raft snapshot at index ${index}`);
    }
    for (const key of [...this.receivedSnapshots.keys()])
      if (key <= index) this.receivedSnapshots.delete(key);
    this.log.info("applying snapshot", {
      "incoming-leader-snapshot-index": index,
      "local-member-applied-index": this.appliedIndexValue,
    });
    await this.installSnapshotFile(path, () => {
      // Synchronously with the swap (the store restored itself just before): nothing reads old in-memory
      // state over the new backend.
      this.lessor.reload();
      this.store.setLeases(this.lessor);
      this.membership.reload();
      this.alarms.clear();
      this.loadAlarms();
      this.loadClusterVersion();
      this.confState = snapshot.metadata.confState;
      this.appliedIndexValue = Math.max(index, this.backend.consistentIndex);
    });
    this.syncPeers();
    this.onRestored?.();
    this.reads.onApplied();
    this.log.info("applied snapshot", { "local-member-applied-index": this.appliedIndexValue });
  }

  /**
   * etcd's createMergedSnapshotMessage: a MsgSnap raft asks to send carries the stored snapshot, taken
   * perhaps long ago (before the receiver was even a member: its ConfState would not list it, and the
   * receiver's raft would refuse it). It is sent instead as of now: the applied index and term, the
   * current ConfState and member list, beside the backend image taken when the send starts (which holds
   * at least everything applied now).
   */
  private mergeSnapshots(messages: readonly Message[]): readonly Message[] {
    let merged: Message[] | null = null;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      if (message.type !== MessageType.Snap || message.snapshot === null) continue;
      const stored = message.snapshot.metadata;
      if (this.appliedTermValue === 0 || this.appliedIndexValue <= stored.index) continue;
      merged ??= [...messages];
      merged[i] = {
        ...message,
        snapshot: {
          data: encodeSnapshotData(this.membership.list()),
          metadata: { index: this.appliedIndexValue, term: this.appliedTermValue, confState: this.confState },
        },
      };
    }
    return merged ?? messages;
  }

  /** Makes the transport's peers the member list's (after a snapshot replaced it). */
  private syncPeers(): void {
    if (this.peers === null) return;
    for (const member of this.membership.list()) {
      if (member.id !== this.memberId) this.peers.addPeer(member.id, member.peerUrls);
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Cluster service (spec §10) and MoveLeader (§11.6)

  async memberAdd(request: etcdserverpb.MemberAddRequest): Promise<etcdserverpb.MemberAddResponseInit> {
    const peerUrls = parseMemberUrls(request.peerURLs);
    const id = memberIdFor(peerUrls, undefined, Math.floor(Date.now() / 1000));
    const member: Member = { id, name: "", peerUrls, clientUrls: [], isLearner: request.isLearner };
    if (this.strictReconfigCheck) {
      if (!member.isLearner && !this.readyToAddVoter()) throw new EtcdError("MemberNotEnoughStarted");
      if (!this.connectedFullySince(Date.now() - HEALTH_INTERVAL_MS)) throw new EtcdError("Unhealthy");
    }
    const members = await this.proposeConfChange({
      id: 0n,
      type: request.isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
      nodeId: id,
      context: encodeMemberContext(member),
    });
    return {
      header: { revision: 0 },
      member: { ID: id, peerURLs: peerUrls, isLearner: request.isLearner, name: "", clientURLs: [] },
      members: members.map(memberToWire),
    };
  }

  async memberRemove(
    request: etcdserverpb.MemberRemoveRequest,
  ): Promise<etcdserverpb.MemberRemoveResponseInit> {
    const id = request.ID;
    if (this.strictReconfigCheck) this.mayRemoveMember(id);
    const members = await this.proposeConfChange({
      id: 0n,
      type: ConfChangeType.RemoveNode,
      nodeId: id,
      context: new Uint8Array(0),
    });
    return { header: { revision: 0 }, members: members.map(memberToWire) };
  }

  async memberUpdate(
    request: etcdserverpb.MemberUpdateRequest,
  ): Promise<etcdserverpb.MemberUpdateResponseInit> {
    const peerUrls = parseMemberUrls(request.peerURLs);
    const member: Member = { id: request.ID, name: "", peerUrls, clientUrls: [], isLearner: false };
    const members = await this.proposeConfChange({
      id: 0n,
      type: ConfChangeType.UpdateNode,
      nodeId: request.ID,
      context: encodeMemberContext(member),
    });
    return { header: { revision: 0 }, members: members.map(memberToWire) };
  }

  /** Only the leader knows whether a learner caught up: a follower forwards to the leader's peer port. */
  async memberPromote(
    request: etcdserverpb.MemberPromoteRequest,
  ): Promise<etcdserverpb.MemberPromoteResponseInit> {
    const id = request.ID;
    if (!this.node.isLeader()) {
      const members = await forwardToLeader.promote(this.leaderPeerUrls(), id, this.requestTimeoutMs);
      return { header: { revision: 0 }, members: members.map(memberToWire) };
    }
    const members = await this.promoteOnLeader(id);
    return { header: { revision: 0 }, members: members.map(memberToWire) };
  }

  /** The leader's peer URLs, for requests only the leader answers; NoLeader when there is none. */
  private leaderPeerUrls(): readonly string[] {
    const leader = this.leaderId === 0n ? undefined : this.membership.get(this.leaderId);
    if (leader === undefined || leader.id === this.memberId) throw new EtcdError("NoLeader");
    return leader.peerUrls;
  }

  /** The leader's half of MemberPromote (also what a forwarded promote runs). */
  async promoteOnLeader(id: bigint): Promise<Member[]> {
    const progress = this.node.status().progress;
    if (progress === null) throw new EtcdError("NotLeader");
    const learner = progress.get(id);
    const leader = progress.get(this.memberId);
    if (
      learner !== undefined &&
      leader !== undefined &&
      learner.match < leader.match * LEARNER_READY_PERCENT
    ) {
      throw new EtcdError("LearnerNotReady");
    }
    // etcd 3.4's mayPromoteMember checks started members only (no connectivity check, unlike add/remove).
    if (this.strictReconfigCheck && !this.readyToPromote(id)) throw new EtcdError("MemberNotEnoughStarted");
    return this.proposeConfChange({
      id: 0n,
      type: ConfChangeType.AddNode,
      nodeId: id,
      context: new TextEncoder().encode(JSON.stringify({ id: id.toString(), isPromote: true })),
    });
  }

  async moveLeader(request: etcdserverpb.MoveLeaderRequest): Promise<etcdserverpb.MoveLeaderResponseInit> {
    if (!this.node.isLeader()) throw new EtcdError("NotLeader");
    const target = request.targetID;
    const member = this.membership.get(target);
    if (member === undefined || member.isLearner) throw new EtcdError("BadLeaderTransferee");
    if (target === this.memberId) return {};
    this.log.info("leadership transfer starting", {
      "local-member-id": formatId(this.memberId),
      "current-leader-member-id": formatId(this.leaderId),
      "transferee-member-id": formatId(target),
    });
    this.node.transferLeader(target);
    this.loop.kick();
    const deadline = Date.now() + this.requestTimeoutMs;
    const tickMs = Math.max(1, Math.round(this.electionTimeoutMs / 10));
    while (this.leaderId !== target) {
      if (Date.now() > deadline || this.stopped) throw new EtcdError("TimeoutLeaderTransfer");
      await new Promise((resolve) => setTimeout(resolve, tickMs));
    }
    this.log.info("leadership transfer finished", {
      "local-member-id": formatId(this.memberId),
      "old-leader-member-id": formatId(this.memberId),
      "new-leader-member-id": formatId(target),
    });
    return {};
  }

  /**
   * etcd's TransferLeadership on a graceful stop: a leader with other voters hands leadership to the one
   * connected longest, so the cluster does not wait an election timeout for a new leader.
   */
  async transferLeadershipOnStop(): Promise<void> {
    if (!this.node.isLeader()) return;
    let transferee: bigint | null = null;
    let longest = Number.POSITIVE_INFINITY;
    for (const m of this.membership.voters()) {
      const since = m.id === this.memberId ? 0 : (this.peers?.activeSince(m.id) ?? 0);
      if (since !== 0 && since < longest) {
        longest = since;
        transferee = m.id;
      }
    }
    if (transferee === null) return;
    try {
      await this.moveLeader({ targetID: transferee });
    } catch (error) {
      this.log.warn("failed to transfer leadership", { error: String(error) });
    }
  }

  /** Spends `ticks` raft ticks at once (etcd's advanceTicks at start-up); the loop then runs. */
  advanceTicks(ticks: number): void {
    if (this.stopped) return;
    for (let i = 0; i < ticks; i++) this.node.tick();
    this.loop.kick();
  }

  /** Voters other than `excluded`, and how many of them have started (published a name). */
  private votersStarted(excluded: bigint | null): { members: number; started: number } {
    let members = 0;
    let started = 0;
    for (const m of this.membership.voters()) {
      if (m.id === excluded) continue;
      if (m.name !== "") started++;
      members++;
    }
    return { members, started };
  }

  /** etcd's IsReadyToAddVotingMember: counting the new one, the started voters still make a quorum. */
  private readyToAddVoter(): boolean {
    const { members, started } = this.votersStarted(null);
    // One started voter adding a second is allowed (etcd's special case).
    if (started === 1 && members === 1) return true;
    return started >= Math.floor((members + 1) / 2) + 1;
  }

  /** etcd's IsReadyToPromoteMember: counting the promoted learner, the started voters make a quorum. */
  private readyToPromote(id: bigint): boolean {
    const { members, started } = this.votersStarted(id);
    return started + 1 >= Math.floor((members + 1) / 2) + 1;
  }

  /** etcd's isConnectedFullySince: every other voter's stream has been up since `sinceMs`. */
  private connectedFullySince(sinceMs: number): boolean {
    return this.connectedSince(sinceMs) === this.membership.voters().length;
  }

  private connectedSince(sinceMs: number): number {
    let connected = 0;
    for (const m of this.membership.voters()) {
      if (m.id === this.memberId) {
        connected++;
        continue;
      }
      const since = this.peers?.activeSince(m.id) ?? 0;
      if (since !== 0 && since <= sinceMs) connected++;
    }
    return connected;
  }

  /** etcd's mayRemoveMember (strict reconfiguration check). */
  private mayRemoveMember(id: bigint): void {
    const member = this.membership.get(id);
    if (member?.isLearner === true) return;
    const { members, started } = this.votersStarted(id);
    if (started < Math.floor(members / 2) + 1) throw new EtcdError("MemberNotEnoughStarted");
    // A member that is down is not part of the active quorum: removing it is safe.
    if (id !== this.memberId && (this.peers?.activeSince(id) ?? 0) === 0) return;
    const voters = this.membership.voters().length;
    const active = this.connectedSince(Date.now() - HEALTH_INTERVAL_MS);
    if (active - 1 < 1 + Math.floor((voters - 1) / 2)) throw new EtcdError("Unhealthy");
  }

  private async proposeConfChange(cc: ConfChange): Promise<Member[]> {
    if (this.stopped) throw new EtcdError("Stopped");
    const id = this.nextRequestId();
    const change: ConfChange = { ...cc, id };
    const applied = this.waiters.wait(id);
    // Raft takes one configuration change at a time: until the previous one is applied (raft learns that
    // at the end of the Ready that applied it), a new one is refused. Retry until then, within the
    // request timeout, rather than fail a change that is merely early.
    const deadline = Date.now() + this.requestTimeoutMs;
    for (;;) {
      try {
        this.node.proposeConfChange(change);
        break;
      } catch (error) {
        const retry = isRaftError(error, RaftErrorCode.ProposalDropped) && this.leaderId !== 0n;
        if (!retry || Date.now() > deadline || this.stopped || !this.waiters.has(id)) {
          this.waiters.fail(id, this.proposalError(error));
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, CONF_CHANGE_RETRY_MS));
      }
    }
    this.loop.kick();
    const result = await applied;
    assert(result.type === "confChange", "a conf change applies as one");
    return result.members;
  }

  // ---------------------------------------------------------------------------------------------------
  // Leases (spec §8). Grant and revoke go through raft; keepalive, TimeToLive and Leases are answered by
  // the leader's lessor (the primary), after the member has applied everything committed.

  async leaseGrant(request: etcdserverpb.LeaseGrantRequest): Promise<etcdserverpb.LeaseGrantResponseInit> {
    this.checkQuota(64);
    // A server-chosen id comes from the request-id generator, top bit cleared (ids are positive).
    const id = request.ID === 0n ? this.nextRequestId() & 0x7fff_ffff_ffff_ffffn : request.ID;
    const applied = await this.propose({ leaseGrant: { ID: id, TTL: request.TTL } });
    assert(applied.type === "leaseGrant", "a lease grant applies as one");
    return applied.response;
  }

  async leaseRevoke(request: etcdserverpb.LeaseRevokeRequest): Promise<etcdserverpb.LeaseRevokeResponseInit> {
    const applied = await this.propose({ leaseRevoke: { ID: request.ID } });
    assert(applied.type === "leaseRevoke", "a lease revoke applies as one");
    return applied.response;
  }

  /** One keepalive: the granted TTL after refreshing, or 0 for an unknown lease (spec §8.2). */
  async leaseRenew(id: bigint): Promise<etcdserverpb.LeaseKeepAliveResponseInit> {
    await this.waitAppliedCommitted();
    const result = this.lessor.renew(id);
    let ttl = 0;
    switch (result.kind) {
      case "renewed":
        ttl = result.ttlSeconds;
        break;
      case "notFound":
        break;
      case "expired":
        // etcd answers only once the revoke is applied; a demotion means another member leads now.
        if (!(await result.revoked)) throw new EtcdError("NoLeader");
        break;
      case "notPrimary": {
        // etcd's follower forwards the keepalive to the leader's /leases.
        const answer = await forwardToLeader.keepAlive(this.leaderPeerUrls(), id, FORWARD_TIMEOUT_MS_DEFAULT);
        ttl = Number(answer.TTL);
        break;
      }
    }
    return { header: { revision: this.store.revision }, ID: id, TTL: ttl };
  }

  async leaseTimeToLive(
    request: etcdserverpb.LeaseTimeToLiveRequest,
  ): Promise<etcdserverpb.LeaseTimeToLiveResponseInit> {
    if (!this.node.isLeader()) {
      const answer = await forwardToLeader.timeToLive(
        this.leaderPeerUrls(),
        request,
        FORWARD_TIMEOUT_MS_DEFAULT,
      );
      return {
        header: { revision: this.store.revision },
        ID: answer.ID,
        TTL: answer.TTL,
        grantedTTL: answer.grantedTTL,
        keys: answer.keys,
      };
    }
    await this.waitAppliedCommitted();
    const result = this.lessor.timeToLive(request.ID, request.keys);
    return {
      header: { revision: this.store.revision },
      ID: request.ID,
      TTL: result.ttlSeconds,
      grantedTTL: result.grantedTtlSeconds,
      keys: result.keys,
    };
  }

  async leaseLeases(): Promise<etcdserverpb.LeaseLeasesResponseInit> {
    return { header: { revision: this.store.revision }, leases: this.lessor.leases().map((ID) => ({ ID })) };
  }

  /**
   * etcd's waitAppliedIndex before lease reads on the leader: until everything committed now is applied,
   * up to 1 s ("etcdserver: timed out waiting for the applied index"). Woken by the apply loop.
   */
  private waitAppliedCommitted(): Promise<void> {
    const target = this.node.raft.log.committed;
    if (this.appliedIndexValue >= target) return Promise.resolve();
    if (this.appliedWaiters.length >= APPLIED_WAITERS_MAX)
      return Promise.reject(new EtcdError("TooManyRequests"));
    return new Promise((resolve, reject) => {
      this.appliedWaiters.push({ index: target, deadlineMs: Date.now() + APPLIED_WAIT_MS, resolve, reject });
    });
  }

  /** Callers of waitAppliedCommitted, in arrival order (their targets never decrease). */
  private appliedWaiters: Array<{
    index: number;
    deadlineMs: number;
    resolve: () => void;
    reject: (error: unknown) => void;
  }> = [];

  /** After an apply (resolve the reached ones) and on the sweep (fail the late ones). */
  private settleAppliedWaiters(nowMs: number | null): void {
    if (this.appliedWaiters.length === 0) return;
    const waiting: typeof this.appliedWaiters = [];
    for (const waiter of this.appliedWaiters) {
      if (this.appliedIndexValue >= waiter.index) waiter.resolve();
      else if (this.stopped) waiter.reject(new EtcdError("Stopped"));
      else if (nowMs !== null && nowMs > waiter.deadlineMs)
        waiter.reject(new EtcdError("TimeoutWaitAppliedIndex"));
      else waiting.push(waiter);
    }
    this.appliedWaiters = waiting;
  }

  /** Every EXPIRY_ROUND_INTERVAL_MS on the leader: propose a revoke for each expired lease (<= 16 in flight). */
  private revokeExpiredLeases(): void {
    if (this.stopped || !this.lessor.isPrimary) return;
    const room = REVOKES_IN_FLIGHT_MAX - this.revokesInFlight;
    if (room <= 0) return;
    for (const id of this.lessor.expired(room)) {
      this.revokesInFlight++;
      this.propose({ leaseRevoke: { ID: id } })
        .catch((error) => {
          if (!isEtcdError(error, "LeaseNotFound")) {
            this.log.warn("failed to revoke lease", { "lease-id": id.toString(16), error: String(error) });
          }
        })
        .finally(() => {
          this.revokesInFlight--;
        });
    }
  }

  versions(): { etcdserver: string; etcdcluster: string } {
    return { etcdserver: ETCD_SERVER_VERSION, etcdcluster: this.clusterVersion ?? "not_decided" };
  }

  /** Status for operators and tests. */
  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get leader(): bigint {
    return this.leaderId;
  }

  // ---------------------------------------------------------------------------------------------------
  // Proposals

  private nextRequestId(): bigint {
    this.requestIdNext += 1n;
    return this.requestIdNext;
  }

  private propose(request: etcdserverpb.InternalRaftRequestInit): Promise<Applied> {
    if (this.stopped) return Promise.reject(new EtcdError("Stopped"));
    if (this.node.raft.log.committed - this.appliedIndexValue > MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX) {
      return Promise.reject(new EtcdError("TooManyRequests"));
    }
    const id = this.nextRequestId();
    request.ID = id;
    request.header = { ID: id };
    // An exact-size copy: the encoder's Buffer is a slice of Node's shared 8 KiB pool, and raft keeps
    // entries until the next snapshot, so a pooled slice would pin its whole pool block (measured: ~2.7
    // KiB retained per entry instead of ~1.4).
    const data = new Uint8Array(etcdserverpb.InternalRaftRequest.encode(request));
    if (data.length > this.limits.maxRequestBytes) return Promise.reject(new EtcdError("RequestTooLarge"));
    const applied = this.waiters.wait(id);
    this.submit(id, data);
    return applied;
  }

  /**
   * Hands a proposal to raft. Without a leader, etcd's raft node does not take proposals until one is
   * elected, and the request times out ("request timed out") if none is: held here the same way, bounded
   * by the waiters' limit, and proposed when a leader appears.
   */
  private submit(id: bigint, data: Uint8Array): void {
    try {
      this.node.propose(data);
    } catch (error) {
      const refused = this.proposalError(error);
      if (this.leaderId === 0n && isEtcdError(refused, "NoLeader")) {
        this.heldProposals.push({ id, data });
        return;
      }
      this.waiters.fail(id, refused);
      return;
    }
    this.loop.kick();
  }

  /** Proposals made while there was no leader, proposed once one is known (or expired by then). */
  private heldProposals: Array<{ id: bigint; data: Uint8Array }> = [];

  private releaseHeldProposals(): void {
    const held = this.heldProposals;
    if (held.length === 0) return;
    this.heldProposals = [];
    for (const { id, data } of held) if (this.waiters.has(id)) this.submit(id, data);
  }

  /** Maps raft's refusal of a proposal to etcd's client-visible error. */
  private proposalError(error: unknown): unknown {
    if (isRaftError(error, RaftErrorCode.NoLeader)) return new EtcdError("NoLeader");
    // A follower or candidate that knows no leader drops proposals: the same as no leader.
    if (isRaftError(error, RaftErrorCode.ProposalDropped) && this.leaderId === 0n)
      return new EtcdError("NoLeader");
    if (isRaftError(error, RaftErrorCode.ProposalDropped)) return new EtcdError("TooManyRequests");
    return error;
  }

  private checkQuota(cost: number): void {
    if (this.hasAlarm(ALARM_NOSPACE) && cost > 0) throw new EtcdError("NoSpace");
    if (this.quotaBackendBytes <= 0 || cost <= 0) return;
    if (this.backend.sizeBytes() + cost >= this.quotaBackendBytes) {
      // etcd raises the alarm for itself (through raft) and fails this request.
      this.propose({
        alarm: { action: 1, memberID: this.memberId, alarm: etcdserverpb.AlarmType.NOSPACE },
      }).catch(() => {});
      throw new EtcdError("NoSpace");
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Apply

  private applyEntries(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.index <= this.appliedIndexValue) {
        // Already in the backend (replayed from the WAL after a restart); raft still needs conf changes.
        if (entry.type !== EntryType.Normal) this.replayConfChange(entry);
        continue;
      }
      switch (entry.type) {
        case EntryType.Normal:
          this.applyNormal(entry);
          break;
        case EntryType.ConfChange:
        case EntryType.ConfChangeV2:
          this.applyConfChange(entry);
          break;
        default:
          throw new Error(`unknown entry type ${entry.type}`);
      }
      this.appliedIndexValue = entry.index;
      this.appliedTermValue = entry.term;
    }
    this.reads.onApplied();
    this.settleAppliedWaiters(null);
  }

  private applyNormal(entry: Entry): void {
    if (entry.data.length === 0) {
      // A new leader's empty entry. Once the leader applies the one of its own term it becomes the
      // lessor's primary: every lease restarts at now + TTL + an election timeout (etcd's promote).
      this.backend.seal(entry.index, entry.term);
      if (this.node.isLeader() && entry.term === this.node.raft.term && !this.lessor.isPrimary) {
        this.lessor.promote(this.electionTimeoutMs);
      }
      return;
    }
    const request = etcdserverpb.InternalRaftRequest.decode(entry.data);
    const id = request.ID;
    const mine = this.waiters.has(id);
    let applied: Applied;
    try {
      applied = this.applyRequest(entry, request);
    } catch (error) {
      if (!isEtcdError(error)) throw error;
      if (mine) this.waiters.fail(id, error);
      return;
    }
    if (mine) this.waiters.trigger(id, applied);
  }

  private applyRequest(entry: Entry, request: etcdserverpb.InternalRaftRequest): Applied {
    const { index, term } = entry;
    const kvWrite =
      request.put !== undefined ||
      request.deleteRange !== undefined ||
      request.txn !== undefined ||
      request.compaction !== undefined;
    if (kvWrite && this.hasAlarm(ALARM_CORRUPT)) {
      // etcd's applierV3Corrupt: a member that found corruption refuses every write.
      this.backend.seal(index, term);
      throw new EtcdError("Corrupt");
    }
    if (request.put !== undefined) {
      this.applyCapped(entry, 1);
      const result = this.store.apply(index, term, {
        type: "put",
        request: convert.putRequestToStore(request.put),
      });
      this.publishEvents(result.events);
      return { type: "put", response: convert.putResponseToWire(result.response) };
    }
    if (request.deleteRange !== undefined) {
      const result = this.store.apply(index, term, {
        type: "deleteRange",
        request: convert.deleteRangeRequestToStore(request.deleteRange),
      });
      this.publishEvents(result.events);
      return { type: "deleteRange", response: convert.deleteRangeResponseToWire(result.response) };
    }
    if (request.txn !== undefined) {
      this.applyCapped(entry, txnPutCost(request.txn));
      const result = this.store.apply(index, term, {
        type: "txn",
        request: convert.txnRequestToStore(request.txn),
      });
      this.publishEvents(result.events);
      return { type: "txn", response: convert.txnResponseToWire(result.response) };
    }
    if (request.compaction !== undefined) {
      const result = this.store.apply(index, term, {
        type: "compaction",
        request: { revision: request.compaction.revision, physical: request.compaction.physical },
      });
      return {
        type: "compaction",
        response: { header: { revision: result.response.header.revision } },
        physicalDone: result.physicalDone,
      };
    }
    if (request.leaseGrant !== undefined) {
      this.applyCapped(entry, 64);
      try {
        const granted = this.lessor.grant(request.leaseGrant.ID, request.leaseGrant.TTL);
        return {
          type: "leaseGrant",
          response: { header: { revision: this.store.revision }, ID: granted.id, TTL: granted.ttlSeconds },
        };
      } finally {
        this.backend.seal(index, term);
      }
    }
    if (request.leaseRevoke !== undefined) {
      try {
        const events = this.lessor.revoke(request.leaseRevoke.ID);
        this.publishEvents(events);
        return { type: "leaseRevoke", response: { header: { revision: this.store.revision } } };
      } finally {
        this.backend.seal(index, term);
      }
    }
    if (request.leaseCheckpoint !== undefined) {
      for (const checkpoint of request.leaseCheckpoint.checkpoints) {
        this.lessor.checkpoint(checkpoint.ID, checkpoint.remainingTTL);
      }
      this.backend.seal(index, term);
      return { type: "none" };
    }
    if (request.alarm !== undefined) {
      const response = this.applyAlarm(request.alarm);
      this.backend.seal(index, term);
      return { type: "alarm", response };
    }
    if (request.clusterMemberAttrSet !== undefined) {
      const attr = request.clusterMemberAttrSet;
      const attributes = attr.memberAttributes;
      this.membership.setAttributes(attr.memberID, attributes?.name ?? "", attributes?.clientUrls ?? []);
      this.backend.seal(index, term);
      // Only this process's own publish counts: one replayed from the WAL (a backend that lagged before a
      // crash) says nothing about a leader now, and readiness must wait for one.
      const proposedHere = this.waiters.has(request.ID);
      if (attr.memberID === this.memberId && !this.published && proposedHere) this.onPublished();
      return { type: "none" };
    }
    if (request.clusterVersionSet !== undefined) {
      this.setClusterVersion(request.clusterVersionSet.ver);
      this.backend.seal(index, term);
      return { type: "none" };
    }
    // A request type this version does not apply (auth, leases: later issues). Record the index only.
    this.backend.seal(index, term);
    return { type: "none" };
  }

  /** In NOSPACE mode writes that add data are applied as errors (etcd's applierV3Capped). */
  private applyCapped(entry: Entry, cost: number): void {
    if (cost > 0 && this.hasAlarm(ALARM_NOSPACE)) {
      this.backend.seal(entry.index, entry.term);
      throw new EtcdError("NoSpace");
    }
  }

  private applyConfChange(entry: Entry): void {
    let cc = decodeConfChangeAny(entry);
    const requestId = "changes" in cc ? null : cc.id;
    const mine = requestId !== null && this.waiters.has(requestId);
    let failure: EtcdError | null = null;
    if (!("changes" in cc)) {
      failure = this.validateConfChange(cc);
      // etcd applies a refused change to raft as a no-op (node id 0) so every member stays in step.
      if (failure !== null) cc = { ...cc, nodeId: 0n };
    }
    if (failure === null) {
      for (const change of changesOf(cc)) this.applyMembershipChange(change, cc.context);
    }
    this.confState = this.node.applyConfChange(cc);
    this.backend.seal(entry.index, entry.term);
    if (mine && requestId !== null) {
      if (failure !== null) this.waiters.fail(requestId, failure);
      else this.waiters.trigger(requestId, { type: "confChange", members: this.membership.list() });
    }
  }

  /**
   * A conf change the backend already holds (replayed after a restart): raft needs it again, with the same
   * verdict as the first time; the membership already has its effect.
   */
  private replayConfChange(entry: Entry): void {
    let cc = decodeConfChangeAny(entry);
    if (!("changes" in cc) && this.validateReplayed(cc)) cc = { ...cc, nodeId: 0n };
    this.confState = this.node.applyConfChange(cc);
  }

  /** Whether a replayed v1 change had been refused: judged from the membership it left behind. */
  private validateReplayed(cc: ConfChange): boolean {
    const member = this.membership.get(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode:
        return member === undefined && !this.membership.isRemoved(cc.nodeId);
      default:
        return false;
    }
  }

  /** etcd's ValidateConfigurationChange, at apply so that every member decides the same. */
  private validateConfChange(cc: ConfChange): EtcdError | null {
    const id = cc.nodeId;
    if (this.membership.isRemoved(id)) return new EtcdError("MemberNotFound");
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        if (cc.context.length === 0) return null;
        const existing = this.membership.get(id);
        if (isPromoteContext(cc.context)) {
          if (existing === undefined) return new EtcdError("MemberNotFound");
          if (!existing.isLearner) return new EtcdError("MemberNotLearner");
          return null;
        }
        if (existing !== undefined) return new EtcdError("MemberExist");
        if (this.peerUrlInUse(decodeMemberContext(cc.context).peerUrls, null))
          return new EtcdError("PeerURLExist");
        if (cc.type === ConfChangeType.AddLearnerNode) {
          const learners = this.membership.list().filter((m) => m.isLearner).length;
          if (learners + 1 > LEARNERS_MAX) return new EtcdError("TooManyLearners");
        }
        return null;
      }
      case ConfChangeType.RemoveNode:
        return this.membership.get(id) === undefined ? new EtcdError("MemberNotFound") : null;
      case ConfChangeType.UpdateNode: {
        if (this.membership.get(id) === undefined) return new EtcdError("MemberNotFound");
        if (this.peerUrlInUse(decodeMemberContext(cc.context).peerUrls, id))
          return new EtcdError("PeerURLExist");
        return null;
      }
      default:
        return null;
    }
  }

  /** Whether any member other than `except` already uses one of `urls` as a peer URL. */
  private peerUrlInUse(urls: readonly string[], except: bigint | null): boolean {
    return this.membership
      .list()
      .some((m) => m.id !== except && m.peerUrls.some((url) => urls.includes(url)));
  }

  private applyMembershipChange(change: { type: number; nodeId: bigint }, context: Uint8Array): void {
    const id = change.nodeId;
    switch (change.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        if (context.length === 0) break;
        if (isPromoteContext(context)) {
          this.membership.promote(id);
          this.log.info("promote member", {
            "cluster-id": formatId(this.clusterId),
            "local-member-id": formatId(this.memberId),
            "promoted-member-id": formatId(id),
          });
          break;
        }
        const member = decodeMemberContext(context);
        member.isLearner = change.type === ConfChangeType.AddLearnerNode;
        this.membership.add(member);
        if (member.id !== this.memberId) this.peers?.addPeer(member.id, member.peerUrls);
        this.log.info("added member", {
          "cluster-id": formatId(this.clusterId),
          "local-member-id": formatId(this.memberId),
          "added-peer-id": formatId(member.id),
          "added-peer-peer-urls": member.peerUrls.join(","),
        });
        break;
      }
      case ConfChangeType.RemoveNode:
        if (this.membership.get(id) === undefined) break;
        this.membership.remove(id);
        this.log.info("removed member", {
          "cluster-id": formatId(this.clusterId),
          "local-member-id": formatId(this.memberId),
          "removed-remote-peer-id": formatId(id),
        });
        if (id === this.memberId) this.removedFromCluster();
        else this.peers?.removePeer(id);
        break;
      case ConfChangeType.UpdateNode: {
        if (context.length === 0) break;
        const member = decodeMemberContext(context);
        this.membership.updatePeerUrls(id, member.peerUrls);
        if (id !== this.memberId) this.peers?.updatePeer(id, member.peerUrls);
        this.log.info("updated member", {
          "cluster-id": formatId(this.clusterId),
          "local-member-id": formatId(this.memberId),
          "updated-remote-peer-id": formatId(id),
          "updated-remote-peer-urls": member.peerUrls,
        });
        break;
      }
    }
  }

  private applyAlarm(request: etcdserverpb.AlarmRequest): etcdserverpb.AlarmResponseInit {
    const key = `${request.memberID}:${request.alarm}`;
    switch (request.action) {
      case 0: // GET
        return { alarms: this.alarmList(request.alarm) };
      case 1: {
        // ACTIVATE
        if (request.alarm === ALARM_NONE) return { alarms: [] };
        const alarm: etcdserverpb.AlarmMember = { memberID: request.memberID, alarm: request.alarm };
        if (!this.alarms.has(key)) {
          this.alarms.set(key, alarm);
          this.backend.put("alarm", new TextEncoder().encode(key), new Uint8Array(0));
          this.log.warn("alarm raised", {
            alarm: ALARM_NAMES[request.alarm] ?? request.alarm,
            from: formatId(request.memberID),
          });
        }
        return { alarms: [alarm] };
      }
      case 2: {
        // DEACTIVATE
        const alarm = this.alarms.get(key);
        if (alarm === undefined) return { alarms: [] };
        this.alarms.delete(key);
        this.backend.delete("alarm", new TextEncoder().encode(key));
        return { alarms: [alarm] };
      }
      default:
        return { alarms: [] };
    }
  }

  private alarmList(type: number): etcdserverpb.AlarmMember[] {
    return [...this.alarms.values()].filter((a) => type === ALARM_NONE || a.alarm === type);
  }

  private hasAlarm(type: number): boolean {
    for (const alarm of this.alarms.values()) if (alarm.alarm === type) return true;
    return false;
  }

  private loadAlarms(): void {
    const decoder = new TextDecoder();
    this.backend.range("alarm", new Uint8Array(0), null, (key) => {
      const [member, alarm] = decoder.decode(key).split(":");
      if (member !== undefined && alarm !== undefined) {
        this.alarms.set(`${member}:${alarm}`, {
          memberID: BigInt(member),
          alarm: Number(alarm) as etcdserverpb.AlarmType,
        });
      }
      return true;
    });
  }

  private loadClusterVersion(): void {
    const value = this.backend.get("cluster", new TextEncoder().encode("clusterVersion"));
    if (value !== undefined) this.clusterVersion = new TextDecoder().decode(value);
  }

  private setClusterVersion(version: string): void {
    const first = this.clusterVersion === null;
    this.clusterVersion = version;
    this.backend.put(
      "cluster",
      new TextEncoder().encode("clusterVersion"),
      new TextEncoder().encode(version),
    );
    if (first) {
      this.log.info("set initial cluster version", {
        "cluster-id": formatId(this.clusterId),
        "local-member-id": formatId(this.memberId),
        "cluster-version": version.split(".").slice(0, 2).join("."),
      });
      this.log.info("enabled capabilities for version", {
        "cluster-version": version.split(".").slice(0, 2).join("."),
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Raft events

  private onSoftState(state: SoftState): void {
    const previous = this.leaderId;
    this.leaderId = state.leader;
    this.term = this.node.raft.term;
    if (state.leader !== previous) {
      if (state.leader === 0n) {
        this.log.info("raft.node: lost leader", {
          "local-member-id": formatId(this.memberId),
          term: this.term,
        });
      } else if (previous === 0n) {
        this.log.info(
          `raft.node: ${formatId(this.memberId)} elected leader ${formatId(state.leader)} at term ${this.term}`,
        );
      } else {
        this.log.info(
          `raft.node: ${formatId(this.memberId)} changed leader from ${formatId(previous)} to ${formatId(state.leader)} at term ${this.term}`,
        );
      }
    }
    if (state.leader !== previous) {
      this.reads.leaderChanged(state.leader !== 0n);
      if (state.leader !== 0n) this.releaseHeldProposals();
    }
    if (state.role === StateRole.Leader) this.onBecameLeader();
    else if (this.lessor.isPrimary) this.lessor.demote();
    if (state.leader !== 0n && !this.published) this.publish();
  }

  private onBecameLeader(): void {
    if (this.clusterVersion === null) {
      this.log.info("setting up initial cluster version", { "cluster-version": "3.4" });
      this.propose({ clusterVersionSet: { ver: ETCD_CLUSTER_VERSION } }).catch((error) =>
        this.log.warn("failed to set cluster version", { error: String(error) }),
      );
    }
  }

  private publishing = false;
  private publish(): void {
    if (this.publishing) return;
    this.publishing = true;
    this.propose({
      clusterMemberAttrSet: {
        memberID: this.memberId,
        memberAttributes: { name: this.name, clientUrls: this.clientUrls },
      },
    })
      .catch((error) =>
        this.log.warn("failed to publish local member to cluster through raft", { error: String(error) }),
      )
      .finally(() => {
        this.publishing = false;
        // Retry until the attributes are committed (etcd retries every request timeout).
        if (!this.published && !this.stopped && this.leaderId !== 0n)
          setTimeout(() => this.publish(), 500).unref();
      });
  }

  private onPublished(): void {
    this.published = true;
    this.log.info("published local member to cluster through raft", {
      "local-member-id": formatId(this.memberId),
      "local-member-attributes": JSON.stringify({ Name: this.name, ClientURLs: this.clientUrls }),
      "request-path": `/0/members/${formatId(this.memberId)}/attributes`,
      "cluster-id": formatId(this.clusterId),
      "publish-timeout": "7s",
    });
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  private afterReady(): void {
    if (this.stopped || this.raftSnapshots === null) return;
    this.raftSnapshots.maybeTrigger(this.appliedIndexValue, () => ({
      index: this.appliedIndexValue,
      confState: this.confState,
      members: this.membership.list(),
    }));
  }

  private onReadStates(states: readonly ReadState[]): void {
    for (const state of states) this.reads.onReadState(state.requestContext, state.index);
  }

  private fail(error: unknown): void {
    this.stopped = true;
    this.waiters.failAll(new EtcdError("Stopped"));
    this.reads.failAll(new EtcdError("Stopped"));
    this.onFatal(error);
  }
}

/** etcd's types.NewURLs for member URLs: trimmed, scheme://host:port, no path; else MemberBadURLs. */
function parseMemberUrls(urls: readonly string[]): string[] {
  if (urls.length === 0) throw new EtcdError("MemberBadURLs");
  const out: string[] = [];
  for (const raw of urls) {
    const text = raw.trim();
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new EtcdError("MemberBadURLs");
    }
    if (!["http:", "https:", "unix:", "unixs:"].includes(url.protocol)) throw new EtcdError("MemberBadURLs");
    if (url.port === "" && !/:\d+$/.test(url.host)) throw new EtcdError("MemberBadURLs");
    if (url.pathname !== "" && url.pathname !== "/") throw new EtcdError("MemberBadURLs");
    if (text.endsWith("/")) throw new EtcdError("MemberBadURLs");
    out.push(text);
  }
  return out.sort();
}

/** A conf change context that promotes a learner (etcd's ConfigChangeContext with isPromote). */
function isPromoteContext(context: Uint8Array): boolean {
  return (JSON.parse(new TextDecoder().decode(context)) as { isPromote?: boolean }).isPromote === true;
}

function memberToWire(m: Member): etcdserverpb.MemberInit {
  return { ID: m.id, name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner };
}

function decodeConfChangeAny(entry: Entry): ConfChange | ConfChangeV2 {
  return entry.type === EntryType.ConfChange ? decodeConfChange(entry.data) : decodeConfChangeV2(entry.data);
}

function changesOf(cc: ConfChange | ConfChangeV2): Array<{ type: number; nodeId: bigint }> {
  if ("changes" in cc) return cc.changes.map((c) => ({ type: c.type, nodeId: c.nodeId }));
  return [{ type: cc.type, nodeId: cc.nodeId }];
}

function isTxnReadOnly(request: etcdserverpb.TxnRequest): boolean {
  const ops = [...request.success, ...request.failure];
  return ops.every((op) => {
    const inner = op.request;
    if (inner === undefined) return true;
    // etcd 3.4's isTxnReadonly: only ranges; a nested txn counts as a write even when it only reads.
    return inner.case === "requestRange";
  });
}

function isTxnSerializable(request: etcdserverpb.TxnRequest): boolean {
  const ops = [...request.success, ...request.failure];
  return ops.every((op) => {
    const inner = op.request;
    if (inner === undefined) return true;
    if (inner.case === "requestRange") return inner.value.serializable;
    if (inner.case === "requestTxn") return isTxnSerializable(inner.value);
    return true;
  });
}

/** etcd's quota cost of a txn: the larger of the two branches' top-level puts (spec §14.3). */
function txnPutCost(request: etcdserverpb.TxnRequest): number {
  const branch = (ops: readonly etcdserverpb.RequestOp[]): number => {
    let cost = 0;
    for (const op of ops) {
      if (op.request?.case === "requestPut")
        cost += 256 + op.request.value.key.length + op.request.value.value.length;
    }
    return cost;
  };
  return Math.max(branch(request.success), branch(request.failure));
}
