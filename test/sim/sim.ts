/**
 * Deterministic simulation of a raft cluster (TigerBeetle's VOPR idea, STYLE.md): one seed decides every
 * tick, message delivery order, drop, duplicate, delay, partition, crash, restart, membership change,
 * leadership transfer and log compaction. After every micro-step the checker verifies the safety
 * invariants; after the faults heal it checks liveness. A failure names its seed, and the same seed with
 * the same options replays it exactly.
 *
 * Model of a node: `storage` is its disk (survives crashes); the RawNode and the state machine are memory
 * (lost on crash). Handling a Ready is split in two micro-steps, so a crash can fall between them:
 *   take:    ready() and send `messages` at once (as a leader sending before its fsync);
 *   persist: write entries/hard state/snapshot to storage atomically, send `messagesAfterPersist`,
 *            apply, advance().
 * The state machine is a running hash over applied entries; snapshots carry (index, hash).
 */
import { decodeConfChangeEntry, decodeMessage, encodeMessage } from "../../src/raft/codec.js";
import { isRaftError, RaftError, RaftErrorCode } from "../../src/raft/errors.js";
import type { RaftBug } from "../../src/raft/raft.js";
import { RawNode, type Ready } from "../../src/raft/rawnode.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { ConfChangeSingle, ConfState, Entry, Message } from "../../src/raft/types.js";
import {
  ConfChangeTransition,
  ConfChangeType,
  EMPTY_BYTES,
  EntryType,
  MessageType,
  SnapshotStatus,
  StateRole,
} from "../../src/raft/types.js";

export interface SimOptions {
  seed: number;
  /** Ticks of the chaos phase (faults on); the heal phase follows. */
  steps: number;
  /** Deliberately broken raft behaviours (test-only). */
  bugs?: ReadonlySet<RaftBug>;
  /** Round-trip every message through the binary codec (default true). */
  codec?: boolean;
  /** Ticks allowed after healing for a leader to emerge and every write to commit everywhere. */
  livenessTicks?: number;
  /** Record a trace of events (for replaying a failure); bounded. */
  trace?: boolean;
  /**
   * Force the fault mood instead of drawing it from the seed: "calm" (few faults, deep progress),
   * "normal", or "storm" (contested elections, crashes between sending and persisting).
   */
  mood?: SimMood;
}

export type SimMood = "calm" | "normal" | "storm";
const MOODS: readonly SimMood[] = ["calm", "normal", "normal", "storm"];

export class SimFailure extends Error {
  override readonly name = "SimFailure";
  constructor(
    readonly seed: number,
    readonly tick: number,
    message: string,
  ) {
    super(`seed ${seed} tick ${tick}: ${message}`);
  }
}

export interface SimResult {
  seed: number;
  ticks: number;
  microSteps: number;
  committed: number;
  elections: number;
  writesAcked: number;
  reads: number;
  confChanges: number;
  snapshotsSent: number;
  crashes: number;
  maxTerm: number;
}

/** Per-seed shape of the cluster and fault rates, all drawn from the seed. */
interface Profile {
  voters: number;
  learners: number;
  spares: number;
  preVote: boolean;
  checkQuorum: boolean;
  dropRate: number;
  dupRate: number;
  maxDelayTicks: number;
  crashRate: number;
  /** Chance of crashing right after taking a Ready (early messages sent, nothing persisted). */
  crashBeforePersistRate: number;
  campaignRate: number;
  /** Chance of a bounce (crash and immediate restart) right after taking a Ready. */
  bounceRate: number;
  /** Chance that a forced campaign starts on two nodes at once (dueling candidates). */
  duelRate: number;
  /** Chance of stalling a node's Ready loop for a few ticks (messages are still stepped). */
  stallRate: number;
  partitionRate: number;
  confChangeRate: number;
  transferRate: number;
  compactRate: number;
  proposeRate: number;
  readRate: number;
  bootstrapWithConfChanges: boolean;
  maxInflight: number;
  maxSizePerMsgBytes: number;
}

interface InFlight {
  m: Message;
  deliverAt: number;
}

interface WriteRecord {
  readonly id: number;
  /** Tick of the last (re)proposal, for the client's retry timeout (with exponential backoff). */
  proposedAt: number;
  retries: number;
  /** Tick of the first apply anywhere (the earliest possible client acknowledgement), or -1. */
  ackedAt: number;
  /** Index of the first committed copy, or -1. */
  index: number;
}

interface ReadRecord {
  readonly id: number;
  readonly node: bigint;
  /** The highest index of a write acknowledged before this read began. */
  readonly minIndex: number;
  answered: boolean;
}

const LEADER_MESSAGES: ReadonlySet<number> = new Set([
  MessageType.App,
  MessageType.Snap,
  MessageType.Heartbeat,
  MessageType.TimeoutNow,
  MessageType.ReadIndexResp,
]);

/** RaftErrors that are normal answers in a faulty cluster; any other error code is a bug. */
const EXPECTED_REFUSALS: ReadonlySet<string> = new Set([
  RaftErrorCode.NoLeader,
  RaftErrorCode.ProposalDropped,
  RaftErrorCode.StepPeerNotFound,
]);

const ELECTION_TICK = 10;
/** A client retries an unacknowledged write after this many ticks (etcd's request timeout is 5 s = 50). */
const CLIENT_RETRY_TICKS = 50;
/** Liveness: ticks after healing allowed for electing a leader and committing every write everywhere. */
const LIVENESS_TICKS_BASE = 40 * ELECTION_TICK;
const LIVENESS_TICKS_PER_BACKLOG_ENTRY = 1;
const HEARTBEAT_TICK = 1;
const MICRO_STEPS_PER_TICK_MAX = 400;
const TRACE_LINES_MAX = 4000;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

function bytesKey(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function entryKey(e: Entry): string {
  return `${e.term}|${e.type}|${bytesKey(e.data)}`;
}

function encodeState(index: number, hash: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  v.setUint32(0, index % 2 ** 32);
  v.setUint32(4, Math.floor(index / 2 ** 32));
  v.setUint32(8, hash);
  return out;
}

function decodeState(b: Uint8Array): { index: number; hash: number } {
  if (b.length === 0) return { index: 0, hash: FNV_OFFSET };
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { index: v.getUint32(0) + v.getUint32(4) * 2 ** 32, hash: v.getUint32(8) };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

class SimNode {
  rn: RawNode | null = null;
  pending: Ready | null = null;
  removed = false;
  appliedIndex = 0;
  stateHash = FNV_OFFSET;
  confState: ConfState;
  /** Commit index up to which this incarnation's log was checked against the global record. */
  checkedCommit = 0;
  seenLeaderTerm = -1;
  /** Until this tick the node's Ready loop is stalled (slow disk, busy apply); it still steps messages. */
  stalledUntil = 0;
  /** Initial members of a cluster bootstrapped with conf change entries (null otherwise). */
  bootstrapPeers: bigint[] | null = null;
  /** Has this node ever seen itself in an applied configuration (so leaving it means removal)? */
  wasMember = false;

  constructor(
    readonly id: bigint,
    readonly storage: MemoryStorage,
    confState: ConfState,
  ) {
    this.confState = confState;
  }

  get alive(): boolean {
    return this.rn !== null && !this.removed;
  }
}

export class Simulation {
  private readonly rng: Xoshiro128;
  private readonly profile: Profile;
  private readonly nodes = new Map<bigint, SimNode>();
  private readonly allIds: bigint[] = [];
  private inflight: InFlight[] = [];
  private readonly blocked = new Set<string>();
  private now = 0;
  private microSteps = 0;
  private healing = false;
  private readonly traceLines: string[] = [];

  // Checker state.
  private readonly leaderByTerm = new Map<number, bigint>();
  private readonly entryAt = new Map<string, { key: string; prevTerm: number }>();
  private readonly committed: string[] = [];
  /**
   * For each committed index, the term of the node that first reported it committed: at least the term
   * in which it was committed (a node learns of a commit only from a leader of that term or later).
   */
  private readonly committedTerm: number[] = [];
  private committedMax = 0;
  private readonly stateHashAt = new Map<number, number>();
  private readonly writes: WriteRecord[] = [];
  private readonly writeByKey = new Map<string, WriteRecord>();
  private readonly reads = new Map<number, ReadRecord>();
  /** Granted votes seen on the wire: "voter@term" -> candidate. */
  private readonly votesCast = new Map<string, bigint>();
  /** Index of the committed conf change that removed each id (cluster membership history). */
  private readonly removedAt = new Map<bigint, number>();
  private ackedIndexMax = 0;
  private readonly stats = { elections: 0, reads: 0, confChanges: 0, snapshotsSent: 0, crashes: 0 };

  constructor(private readonly opts: SimOptions) {
    this.rng = new Xoshiro128(opts.seed);
    this.profile = this.drawProfile();
    this.buildCluster();
  }

  private chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }

  private pick<T>(items: readonly T[]): T | undefined {
    if (items.length === 0) return undefined;
    return items[this.rng.nextInt(items.length)];
  }

  private drawProfile(): Profile {
    const p = this.drawProfileRates();
    p.maxInflight = p.maxSizePerMsgBytes === 1 ? 8 + this.rng.nextInt(9) : 1 + this.rng.nextInt(8);
    return p;
  }

  private drawProfileRates(): Profile {
    const r = this.rng;
    const voters = r.nextInt(2) === 0 ? 3 : 5;
    // A quarter of the seeds run with few faults (deep progress), a quarter are storms of contested
    // elections and crashes between sending and persisting (where vote and ack durability bugs show).
    const drawn = MOODS[r.nextInt(MOODS.length)]!;
    const mood = this.opts.mood ?? drawn;
    const f = mood === "calm" ? 0.25 : 1;
    const storm = mood === "storm" ? 1 : 0;
    return {
      voters,
      learners: r.nextInt(3),
      spares: 2,
      preVote: r.nextInt(2) === 0,
      checkQuorum: r.nextInt(2) === 0,
      dropRate: (r.nextInt(4) * 0.03 + 0.01) * f,
      dupRate: r.nextInt(3) * 0.03 * f,
      maxDelayTicks: r.nextInt(3),
      crashRate: (r.nextInt(3) * 0.004 + 0.001) * f,
      crashBeforePersistRate: r.nextInt(3) * 0.002 * f + storm * 0.03,
      campaignRate: r.nextInt(3) * 0.005 * f + storm * 0.05,
      bounceRate: r.nextInt(2) * 0.005 * f + storm * 0.15,
      duelRate: 0.2 + storm * 0.6,
      stallRate: r.nextInt(2) * 0.01 * f + storm * 0.05,
      partitionRate: (r.nextInt(3) * 0.01 + 0.005) * f,
      confChangeRate: r.nextInt(3) * 0.01,
      transferRate: r.nextInt(2) * 0.005,
      compactRate: r.nextInt(3) * 0.01,
      proposeRate: 0.05 + r.nextInt(3) * 0.05,
      readRate: 0.02 + r.nextInt(2) * 0.03,
      bootstrapWithConfChanges: r.nextInt(2) === 0,
      // Tiny messages (one entry each) exercise flow control; with them a few more slots keep throughput
      // high enough for the liveness bound.
      maxInflight: 0, // set below
      maxSizePerMsgBytes: r.nextInt(4) === 0 ? 1 : 64 * 1024,
    };
  }

  private trace(line: string): void {
    if (!this.opts.trace) return;
    this.traceLines.push(`[${this.now}] ${line}`);
    if (this.traceLines.length > TRACE_LINES_MAX) this.traceLines.shift();
  }

  traceTail(): string[] {
    return [...this.traceLines];
  }

  private fail(message: string): never {
    throw new SimFailure(this.opts.seed, this.now, message);
  }

  // ------------------------------------------------------------ cluster

  private buildCluster(): void {
    const p = this.profile;
    // Ids above 2^53 on purpose: etcd member ids are uint64 hashes and raft must keep them exact.
    const base = 0x9e3779b97f4a7c15n;
    const total = p.voters + p.learners + p.spares;
    for (let i = 0; i < total; i++) this.allIds.push(base + BigInt(i) * 0x1000000000001n);
    const voters = this.allIds.slice(0, p.voters);
    const learners = this.allIds.slice(p.voters, p.voters + p.learners);
    const useBootstrap = p.bootstrapWithConfChanges && learners.length === 0;
    for (const id of [...voters, ...learners]) {
      const storage = new MemoryStorage();
      let cs: ConfState = { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
      if (!useBootstrap) {
        storage.applySnapshot({
          data: encodeState(1, FNV_OFFSET),
          metadata: { index: 1, term: 1, confState: cs },
        });
        storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      } else {
        cs = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
      }
      const node = new SimNode(id, storage, cs);
      if (useBootstrap) node.bootstrapPeers = voters;
      this.nodes.set(id, node);
      this.start(node);
    }
    if (!useBootstrap) this.stateHashAt.set(1, FNV_OFFSET);
  }

  private start(node: SimNode): void {
    const snap = node.storage.snapshot();
    const state = decodeState(snap.data);
    node.appliedIndex = snap.metadata.index;
    node.stateHash = state.hash;
    node.confState = snap.metadata.confState;
    // Membership is part of the state machine: rebuilt from the snapshot, then from replayed entries.
    node.wasMember = this.inConfig(node.id, node.confState);
    node.pending = null;
    node.rn = new RawNode({
      id: node.id,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      storage: node.storage,
      rng: new Xoshiro128(this.rng.nextUint32()),
      applied: snap.metadata.index,
      maxInflightMessages: this.profile.maxInflight,
      maxSizePerMsgBytes: this.profile.maxSizePerMsgBytes,
      preVote: this.profile.preVote,
      checkQuorum: this.profile.checkQuorum,
      bugs: this.opts.bugs,
    });
    // Like etcd: a member of the initial cluster that finds no log (it crashed before persisting its first
    // Ready) bootstraps again, producing the same entries. Replaying them from an empty log instead would
    // pass through a one-voter configuration {first peer}.
    if (node.bootstrapPeers !== null && node.storage.lastIndex() === 0) {
      node.rn.bootstrap(node.bootstrapPeers.map((v) => ({ id: v })));
    }
    node.checkedCommit = node.rn.raft.log.committed;
    node.seenLeaderTerm = -1;
    this.checkRestartedLog(node);
  }

  private liveNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.alive) out.push(n);
    return out;
  }

  // ------------------------------------------------------------ network

  private linkBlocked(from: bigint, to: bigint): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  private send(from: SimNode, msgs: readonly Message[]): void {
    for (let m0 of msgs) {
      if (m0.type === MessageType.VoteResp && !m0.reject) this.checkVote(m0);
      this.checkTermDurable(from, m0);
      if (m0.type === MessageType.Snap) m0 = this.mergedSnapshot(from, m0);
      const m = this.opts.codec === false ? m0 : decodeMessage(encodeMessage(m0));
      const lost = this.linkBlocked(m.from, m.to) || (!this.healing && this.chance(this.profile.dropRate));
      if (lost) {
        this.onLost(from, m);
        continue;
      }
      const delay = () => this.rng.nextInt(this.profile.maxDelayTicks + 1);
      this.inflight.push({ m, deliverAt: this.now + delay() });
      if (!this.healing && this.chance(this.profile.dupRate)) {
        const copy = decodeMessage(encodeMessage(m));
        this.inflight.push({ m: copy, deliverAt: this.now + delay() + 1 });
      }
    }
  }

  /**
   * Like etcd's createMergedSnapshotMessage: the snapshot sent is the sender's state at its applied index
   * with its current configuration, not the possibly older one in its raft storage (which may predate the
   * recipient's membership, and raft ignores a snapshot that does not name the recipient).
   */
  private mergedSnapshot(from: SimNode, m: Message): Message {
    const old = m.snapshot!;
    const index = from.appliedIndex;
    if (index <= old.metadata.index) return m;
    const term = from.storage.term(index);
    const snapshot = {
      data: encodeState(index, from.stateHash),
      metadata: { index, term, confState: from.confState },
    };
    return { ...m, snapshot };
  }

  /** The transport reports failed sends: snapshots always (raft waits for it), others now and then. */
  private onLost(from: SimNode, m: Message): void {
    if (!from.alive) return;
    if (m.type === MessageType.Snap) from.rn!.reportSnapshot(m.to, SnapshotStatus.Failure);
    else if (this.chance(0.1)) from.rn!.reportUnreachable(m.to);
  }

  private deliverOne(): boolean {
    const ready: number[] = [];
    for (let i = 0; i < this.inflight.length; i++) if (this.inflight[i]!.deliverAt <= this.now) ready.push(i);
    const k = this.pick(ready);
    if (k === undefined) return false;
    const { m } = this.inflight[k]!;
    this.inflight.splice(k, 1);
    const target = this.nodes.get(m.to);
    const sender = this.nodes.get(m.from);
    if (target === undefined || !target.alive || this.linkBlocked(m.from, m.to)) {
      if (sender !== undefined) this.onLost(sender, m);
      return true;
    }
    const removedAt = this.removedAt.get(m.from);
    if (removedAt !== undefined && target.appliedIndex >= removedAt) {
      // etcd's transport refuses messages from a member it knows was removed, and that member then shuts
      // down; without this a removed node that missed its removal keeps calling elections.
      if (sender?.alive) {
        this.trace(`node ${short(m.from)} told by ${short(m.to)} that it was removed; stopping`);
        sender.removed = true;
        sender.rn = null;
        sender.pending = null;
      }
      return true;
    }
    this.trace(
      `deliver ${m.type} ${short(m.from)}->${short(m.to)} t${m.term} i${m.index} n${m.entries.length}`,
    );
    this.stepNode(target, () => target.rn!.step(m));
    if (m.type === MessageType.Snap && sender?.alive) {
      sender.rn!.reportSnapshot(m.to, SnapshotStatus.Finish);
      this.afterStep(sender);
      this.stats.snapshotsSent++;
    }
    return true;
  }

  /** Runs an operation on a node; expected refusals are RaftErrors, anything else fails the run. */
  private stepNode(node: SimNode, op: () => void): boolean {
    try {
      op();
    } catch (err) {
      if (err instanceof SimFailure) throw err;
      if (!isRaftError(err)) {
        this.fail(`node ${short(node.id)} threw ${(err as Error).stack ?? String(err)}`);
      }
      if (!EXPECTED_REFUSALS.has(err.code))
        this.fail(`node ${short(node.id)}: unexpected ${err.code}: ${err.stack}`);
      this.afterStep(node);
      return false;
    }
    this.afterStep(node);
    return true;
  }

  // ------------------------------------------------------------ ready handling

  private takeReady(node: SimNode): void {
    const rn = node.rn!;
    const rd = rn.ready();
    node.pending = rd;
    this.send(node, rd.messages);
    this.afterStep(node);
    // The most interesting crash point: after sending the early messages, before anything is durable.
    if (this.healing) return;
    if (this.chance(this.profile.bounceRate)) {
      // A bounce: killed here and restarted at once by its supervisor while its early messages fly.
      this.crashNode(node);
      this.trace(`restart ${short(node.id)} at once`);
      this.start(node);
      // Sometimes its election timer fires at once: it campaigns again while answers to what it sent before
      // the crash are still arriving.
      if (this.chance(0.3)) {
        this.stepNode(node, () => node.rn!.campaign());
        // A restarted process may be slow to get its Ready loop going (loading state) while the transport
        // already delivers messages to it.
        if (this.chance(0.5)) node.stalledUntil = this.now + 1 + this.rng.nextInt(3);
      }
    } else if (this.chance(this.profile.crashBeforePersistRate)) {
      this.crashNode(node);
    }
  }

  private persist(node: SimNode): void {
    const rd = node.pending!;
    const rn = node.rn!;
    node.pending = null;
    if (rd.snapshot !== null) node.storage.applySnapshot(rd.snapshot);
    this.checkLogMatching(node, rd.entries);
    node.storage.append(rd.entries);
    if (rd.hardState !== null) node.storage.setHardState(rd.hardState);
    this.send(node, rd.messagesAfterPersist);
    if (rd.snapshot !== null) this.applySnapshotToState(node, rd.snapshot.data, rd.snapshot.metadata.index);
    if (rd.snapshot !== null) node.confState = rd.snapshot.metadata.confState;
    for (const e of rd.committedEntries) this.apply(node, e);
    for (const rs of rd.readStates) this.checkRead(node, bytesKey(rs.requestContext), rs.index);
    rn.advance(rd);
    this.afterStep(node);
    const member = this.inConfig(node.id, node.confState);
    if (member) node.wasMember = true;
    if (node.wasMember && !member) {
      // A member that applied its own removal shuts down, as etcd does.
      this.trace(`node ${short(node.id)} removed; stopping`);
      node.removed = true;
      node.rn = null;
    }
  }

  private inConfig(id: bigint, cs: ConfState): boolean {
    return cs.voters.includes(id) || cs.learners.includes(id) || cs.votersOutgoing.includes(id);
  }

  private apply(node: SimNode, e: Entry): void {
    if (e.index !== node.appliedIndex + 1) {
      this.fail(`node ${short(node.id)} applied index ${e.index} after ${node.appliedIndex}`);
    }
    const key = entryKey(e);
    const want = this.committed[e.index];
    if (want === undefined) this.recordCommitted(e.index, key, node.rn!.raft.term);
    else if (want !== key)
      this.fail(`node ${short(node.id)} applied ${key} at ${e.index}, committed was ${want}`);
    node.appliedIndex = e.index;
    node.stateHash = fnv(fnv(node.stateHash, String(e.index)), key);
    const h = this.stateHashAt.get(e.index);
    if (h === undefined) this.stateHashAt.set(e.index, node.stateHash);
    else if (h !== node.stateHash) this.fail(`node ${short(node.id)} state diverged at ${e.index}`);
    if (e.type === EntryType.Normal) {
      const w = this.writeByKey.get(bytesKey(e.data));
      if (w !== undefined && w.ackedAt < 0) {
        w.ackedAt = this.now;
        w.index = e.index;
        if (e.index > this.ackedIndexMax) this.ackedIndexMax = e.index;
      }
    } else {
      const cc = decodeConfChangeEntry(e);
      const before = node.confState;
      node.confState = node.rn!.applyConfChange(cc);
      for (const id of [...before.voters, ...before.votersOutgoing, ...before.learners]) {
        if (!this.inConfig(id, node.confState) && !this.removedAt.has(id)) this.removedAt.set(id, e.index);
      }
      if (h === undefined) this.stats.confChanges++;
      this.trace(`node ${short(node.id)} applied conf change at ${e.index}: ${describeConf(node.confState)}`);
      for (const c of cc.changes) this.maybeStartNewNode(c);
    }
  }

  private applySnapshotToState(node: SimNode, data: Uint8Array, index: number): void {
    const s = decodeState(data);
    if (s.index !== index) this.fail(`snapshot at ${index} carries state of ${s.index}`);
    const h = this.stateHashAt.get(index);
    if (h === undefined) this.stateHashAt.set(index, s.hash);
    else if (h !== s.hash) this.fail(`snapshot at ${index} has a diverged state`);
    node.appliedIndex = index;
    node.stateHash = s.hash;
  }

  /** A node added by a committed conf change starts (empty) once the change is applied somewhere. */
  private maybeStartNewNode(c: ConfChangeSingle): void {
    if (c.type !== ConfChangeType.AddNode && c.type !== ConfChangeType.AddLearnerNode) return;
    if (this.nodes.has(c.nodeId)) return;
    const empty: ConfState = {
      voters: [],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    const node = new SimNode(c.nodeId, new MemoryStorage(), empty);
    this.nodes.set(c.nodeId, node);
    this.start(node);
    this.trace(`node ${short(c.nodeId)} started empty`);
  }

  // ------------------------------------------------------------ checks

  /** Called after every operation on a node: cheap incremental safety checks. */
  private afterStep(node: SimNode): void {
    this.microSteps++;
    const rn = node.rn;
    if (rn === null) return;
    const r = rn.raft;
    if (r.state === StateRole.Leader) {
      const other = this.leaderByTerm.get(r.term);
      if (other === undefined) {
        this.leaderByTerm.set(r.term, node.id);
        this.stats.elections++;
      } else if (other !== node.id) {
        this.fail(`two leaders in term ${r.term}: ${short(other)} and ${short(node.id)}`);
      }
      if (node.seenLeaderTerm !== r.term) {
        node.seenLeaderTerm = r.term;
        this.checkLeaderCompleteness(node);
      }
    }
    const commit = r.log.committed;
    if (commit > node.checkedCommit) {
      const first = r.log.firstIndex();
      for (let i = Math.max(node.checkedCommit + 1, first); i <= commit; i++) {
        const e = r.log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!;
        const key = entryKey(e);
        const want = this.committed[i];
        if (want === undefined) this.recordCommitted(i, key, r.term);
        else if (want !== key)
          this.fail(`node ${short(node.id)} commits ${key} at ${i}, committed was ${want}`);
      }
      node.checkedCommit = commit;
    }
  }

  private recordCommitted(index: number, key: string, term: number): void {
    this.committed[index] = key;
    this.committedTerm[index] = term;
    if (index > this.committedMax) this.committedMax = index;
  }

  /**
   * Leader Completeness: the leader of term T holds every entry committed in a term before T. (A leader of
   * an older term may still be elected late, by delayed votes, and lack later commits: that is legal.)
   */
  private checkLeaderCompleteness(node: SimNode): void {
    const r = node.rn!.raft;
    const log = r.log;
    for (let i = log.firstIndex(); i <= this.committedMax; i++) {
      const want = this.committed[i];
      if (want === undefined || this.committedTerm[i]! >= r.term) continue;
      if (i > log.lastIndex()) {
        this.fail(
          `leader ${short(node.id)} of term ${r.term} (last ${log.lastIndex()}) misses committed ${want} at ${i}`,
        );
      }
      const got = entryKey(log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!);
      if (got !== want)
        this.fail(`leader ${short(node.id)} of term ${r.term} has ${got} at ${i}, committed was ${want}`);
    }
  }

  /**
   * Log matching, checked on every write to a node's disk: one (index, term) pair always names the same
   * entry, with the same previous term (so, by induction, the same whole prefix). Entries at committed
   * indexes must be the committed ones.
   */
  private checkLogMatching(node: SimNode, entries: readonly Entry[]): void {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      let prevTerm = -1;
      if (k > 0) prevTerm = entries[k - 1]!.term;
      else {
        try {
          prevTerm = node.storage.term(e.index - 1);
        } catch (err) {
          if (!isRaftError(err)) throw err;
        }
      }
      const key = entryKey(e);
      const at = `${e.index}:${e.term}`;
      const seen = this.entryAt.get(at);
      if (seen === undefined) this.entryAt.set(at, { key, prevTerm });
      else {
        if (seen.key !== key) this.fail(`log matching: two entries at ${at}: ${seen.key} vs ${key}`);
        if (seen.prevTerm >= 0 && prevTerm >= 0 && seen.prevTerm !== prevTerm) {
          this.fail(
            `log matching: entry ${at} follows term ${prevTerm} on ${short(node.id)}, ${seen.prevTerm} elsewhere`,
          );
        }
        if (seen.prevTerm < 0) seen.prevTerm = prevTerm;
      }
      // A stale node may still store an old uncommitted entry at an index committed differently elsewhere
      // (a delayed append from a deposed leader): legal as long as it never commits or applies it, which
      // afterStep and apply check.
    }
  }

  /**
   * A leader's message carrying term T may leave only once T is on the leader's disk. Otherwise it could
   * lead term T, send appends, crash, come back in term T-1, win T again with the same (or delayed) votes
   * and write different entries at the same (index, term).
   */
  private checkTermDurable(from: SimNode, m: Message): void {
    // Only what a leader sends vouches for its term. (A heartbeat answer may precede the follower's own
    // fsync of the term: it only says "I had not seen a newer term", which a crash cannot undo.)
    if (!LEADER_MESSAGES.has(m.type)) return;
    const durable = from.storage.hardStateNow().term;
    if (durable < m.term) {
      this.fail(`node ${short(from.id)} sent ${m.type} at term ${m.term} with only term ${durable} on disk`);
    }
  }

  /**
   * One vote per node per term, ever (Election Safety rests on it): a granted vote must be durable before
   * it is sent, so no crash can let the node grant the same term to someone else.
   */
  private checkVote(m: Message): void {
    const key = `${m.from}@${m.term}`;
    const prev = this.votesCast.get(key);
    if (prev === undefined) this.votesCast.set(key, m.to);
    else if (prev !== m.to) {
      this.fail(`node ${short(m.from)} voted for ${short(prev)} and ${short(m.to)} in term ${m.term}`);
    }
  }

  /** After a restart, the durable log up to the durable commit must match the committed record. */
  private checkRestartedLog(node: SimNode): void {
    const log = node.rn!.raft.log;
    for (let i = log.firstIndex(); i <= log.committed; i++) {
      const want = this.committed[i];
      const got = entryKey(log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!);
      if (want === undefined) this.recordCommitted(i, got, node.rn!.raft.term);
      else if (want !== got)
        this.fail(`restarted ${short(node.id)} has ${got} at committed ${i}, was ${want}`);
    }
  }

  /** Linearizable reads: the read index covers every write acknowledged before the read began. */
  private checkRead(node: SimNode, ctx: string, index: number): void {
    const id = Number(ctx.slice(1));
    const read = this.reads.get(id);
    if (read === undefined || read.answered || read.node !== node.id) return;
    read.answered = true;
    this.stats.reads++;
    if (index < read.minIndex) {
      this.fail(
        `read r${id} on ${short(node.id)} got index ${index}, but a write at ${read.minIndex} was acked before`,
      );
    }
    if (index > this.committedMax) this.fail(`read r${id} got index ${index} beyond anything committed`);
  }

  // ------------------------------------------------------------ client and faults

  private propose(): void {
    const node = this.pick(this.liveNodes());
    if (node === undefined) return;
    const w: WriteRecord = {
      id: this.writes.length,
      proposedAt: this.now,
      retries: 0,
      ackedAt: -1,
      index: -1,
    };
    this.writes.push(w);
    this.writeByKey.set(`w${w.id}`, w);
    this.stepNode(node, () => node.rn!.propose(enc(`w${w.id}`)));
  }

  private retryWrite(w: WriteRecord): void {
    const leader = this.liveNodes().find((n) => n.rn!.raft.state === StateRole.Leader);
    const node = leader ?? this.pick(this.liveNodes());
    if (node === undefined) return;
    this.stepNode(node, () => node.rn!.propose(enc(`w${w.id}`)));
  }

  private read(): void {
    const node = this.pick(this.liveNodes());
    if (node === undefined) return;
    const id = this.reads.size;
    this.reads.set(id, { id, node: node.id, minIndex: this.ackedIndexMax, answered: false });
    this.stepNode(node, () => node.rn!.readIndex(enc(`r${id}`)));
  }

  private stall(): void {
    const node = this.pick(this.liveNodes());
    if (node === undefined) return;
    node.stalledUntil = this.now + 1 + this.rng.nextInt(4);
    this.trace(`stall ${short(node.id)} until ${node.stalledUntil}`);
  }

  private crash(): void {
    const node = this.pick(this.liveNodes());
    if (node !== undefined) this.crashNode(node);
  }

  private crashNode(node: SimNode): void {
    this.trace(`crash ${short(node.id)}${node.pending !== null ? " (with an unpersisted Ready)" : ""}`);
    node.rn = null;
    node.pending = null;
    this.stats.crashes++;
  }

  private restart(): void {
    const down = [...this.nodes.values()].filter((n) => n.rn === null && !n.removed);
    const node = this.pick(down);
    if (node === undefined) return;
    this.trace(`restart ${short(node.id)}`);
    this.start(node);
  }

  private partition(): void {
    this.blocked.clear();
    const ids = [...this.nodes.keys()];
    const kind = this.rng.nextInt(4);
    if (kind === 0) return; // heal
    if (kind === 1) {
      // Isolate one node.
      const x = this.pick(ids)!;
      for (const y of ids) if (y !== x) this.block(x, y, true);
    } else if (kind === 2) {
      // Split in two groups.
      const a = ids.filter(() => this.chance(0.5));
      for (const x of a) for (const y of ids) if (!a.includes(y)) this.block(x, y, true);
    } else {
      // Asymmetric: a few one-way links.
      for (let i = 0; i < 3; i++) {
        const x = this.pick(ids)!;
        const y = this.pick(ids)!;
        if (x !== y) this.block(x, y, false);
      }
    }
    this.trace(
      `partition: ${[...this.blocked]
        .map((l) =>
          l
            .split(">")
            .map((s) => short(BigInt(s)))
            .join(">"),
        )
        .join(" ")}`,
    );
  }

  private block(a: bigint, b: bigint, both: boolean): void {
    this.blocked.add(`${a}>${b}`);
    if (both) this.blocked.add(`${b}>${a}`);
  }

  private leaderNode(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.liveNodes()) {
      if (
        n.rn!.raft.state === StateRole.Leader &&
        (best === undefined || n.rn!.raft.term > best.rn!.raft.term)
      ) {
        best = n;
      }
    }
    return best;
  }

  private confChange(): void {
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const cs = leader.confState;
    const voters = cs.voters;
    const learners = cs.learners;
    const unused = this.allIds.filter((id) => !this.nodes.has(id));
    const changes: ConfChangeSingle[] = [];
    let transition: ConfChangeTransition = ConfChangeTransition.Auto;
    if (cs.votersOutgoing.length > 0) {
      // Joint: only leaving is allowed (explicit leave when auto-leave is off).
      if (!cs.autoLeave) this.proposeConf(leader, [], ConfChangeTransition.Auto);
      return;
    }
    const kind = this.rng.nextInt(7);
    if (kind === 0 && unused.length > 0)
      changes.push({ type: ConfChangeType.AddLearnerNode, nodeId: unused[0]! });
    else if (kind === 1 && learners.length > 0)
      changes.push({ type: ConfChangeType.AddNode, nodeId: this.pick(learners)! });
    else if (kind === 2 && voters.length > 2)
      changes.push({ type: ConfChangeType.RemoveNode, nodeId: this.pick(voters)! });
    else if (kind === 3 && learners.length > 0)
      changes.push({ type: ConfChangeType.RemoveNode, nodeId: this.pick(learners)! });
    else if (kind === 4 && voters.length > 2)
      changes.push({ type: ConfChangeType.AddLearnerNode, nodeId: this.pick(voters)! });
    else if (kind === 5 && unused.length > 0)
      changes.push({ type: ConfChangeType.AddNode, nodeId: unused[0]! });
    else if (kind === 6 && voters.length > 2) {
      // Joint consensus: replace a voter (by a learner or a new node) in one step.
      const out = this.pick(voters)!;
      const inId = learners.length > 0 ? this.pick(learners)! : unused[0];
      if (inId === undefined) return;
      changes.push({ type: ConfChangeType.RemoveNode, nodeId: out });
      changes.push({ type: ConfChangeType.AddNode, nodeId: inId });
      transition = this.pick([
        ConfChangeTransition.Auto,
        ConfChangeTransition.JointImplicit,
        ConfChangeTransition.JointExplicit,
      ])!;
    }
    if (changes.length === 0) return;
    // Single changes go as v1 or v2 at random; v1 is etcd's ConfChange.
    if (changes.length === 1 && transition === ConfChangeTransition.Auto && this.chance(0.5)) {
      const c = changes[0]!;
      this.trace(`propose v1 conf change ${c.type} ${short(c.nodeId)}`);
      this.stepNode(leader, () =>
        leader.rn!.proposeConfChange({
          id: BigInt(this.now),
          type: c.type,
          nodeId: c.nodeId,
          context: EMPTY_BYTES,
        }),
      );
      return;
    }
    this.proposeConf(leader, changes, transition);
  }

  private proposeConf(leader: SimNode, changes: ConfChangeSingle[], transition: ConfChangeTransition): void {
    this.trace(
      `propose conf change ${changes.map((c) => `${c.type}:${short(c.nodeId)}`).join(",")} t${transition}`,
    );
    this.stepNode(leader, () => leader.rn!.proposeConfChange({ transition, changes, context: EMPTY_BYTES }));
  }

  /** An election timeout firing early somewhere (clock skew, a paused process): contested elections. */
  private campaign(): void {
    const live = this.liveNodes();
    const node = this.pick(live);
    if (node === undefined) return;
    this.trace(`campaign ${short(node.id)}`);
    this.stepNode(node, () => node.rn!.campaign());
    if (this.chance(this.profile.duelRate)) {
      const other = this.pick(live.filter((n) => n !== node && n.alive));
      if (other === undefined) return;
      this.trace(`campaign ${short(other.id)} (duel)`);
      this.stepNode(other, () => other.rn!.campaign());
    }
  }

  private transfer(): void {
    const leader = this.leaderNode();
    if (leader === undefined) return;
    const target = this.pick(leader.confState.voters.filter((v) => v !== leader.id));
    if (target === undefined) return;
    this.trace(`transfer ${short(leader.id)} -> ${short(target)}`);
    this.stepNode(leader, () => leader.rn!.transferLeader(target));
  }

  private compact(): void {
    const node = this.pick(this.liveNodes().filter((n) => n.pending === null));
    if (node === undefined) return;
    const snapIndex = node.storage.snapshot().metadata.index;
    const applied = node.appliedIndex;
    if (applied <= snapIndex || applied > node.storage.lastIndex()) return;
    node.storage.createSnapshot(applied, node.confState, encodeState(applied, node.stateHash));
    const keep = this.rng.nextInt(4);
    const upTo = applied - keep;
    if (upTo > snapIndex) node.storage.compact(upTo);
    this.trace(`compact ${short(node.id)} snapshot ${applied}, compact to ${upTo}`);
  }

  // ------------------------------------------------------------ main loop

  private microStep(): boolean {
    const candidates: Array<() => void> = [];
    const deliverable = this.inflight.some((f) => f.deliverAt <= this.now);
    for (const n of this.nodes.values()) {
      if (!n.alive || n.stalledUntil > this.now) continue;
      if (n.pending !== null) candidates.push(() => this.persist(n));
      else if (n.rn!.hasReady()) candidates.push(() => this.takeReady(n));
    }
    if (deliverable) {
      // Weight delivery like the sum of the rest so that queues drain.
      const k = Math.max(1, candidates.length);
      for (let i = 0; i < k; i++) candidates.push(() => this.deliverOne());
    }
    const action = this.pick(candidates);
    if (action === undefined) return false;
    action();
    return true;
  }

  private faults(): void {
    const p = this.profile;
    if (this.healing) return; // after healing only client retries run (awaitLiveness)
    if (this.chance(p.proposeRate)) this.propose();
    if (this.chance(p.readRate)) this.read();
    if (this.chance(p.crashRate)) this.crash();
    if (this.chance(p.crashRate * 3)) this.restart();
    if (this.chance(p.partitionRate)) this.partition();
    if (this.chance(p.confChangeRate)) this.confChange();
    if (this.chance(p.transferRate)) this.transfer();
    if (this.chance(p.campaignRate)) this.campaign();
    if (this.chance(p.compactRate)) this.compact();
    if (this.chance(p.stallRate)) this.stall();
  }

  private tick(): void {
    this.now++;
    for (const n of this.nodes.values()) {
      if (!n.alive) continue;
      // A little clock skew: now and then a node misses a tick.
      if (!this.healing && this.chance(0.05)) continue;
      this.stepNode(n, () => n.rn!.tick());
    }
    this.faults();
    for (let i = 0; i < MICRO_STEPS_PER_TICK_MAX; i++) {
      if (this.chance(0.1)) this.faults();
      if (!this.microStep()) break;
    }
  }

  private heal(): void {
    this.healing = true;
    this.blocked.clear();
    for (const n of this.nodes.values()) n.stalledUntil = 0;
    for (const n of this.nodes.values()) if (n.rn === null && !n.removed) this.start(n);
    this.trace("heal");
  }

  /** Liveness: the healed cluster elects a leader and commits every write everywhere, within a bound. */
  private awaitLiveness(): void {
    // The bound grows with the backlog left by the chaos phase (writes to retry, uncommitted tails to
    // replicate), at a rate the slowest profile (one entry per message) sustains.
    let backlog = this.writes.filter((w) => w.ackedAt < 0).length;
    for (const n of this.liveNodes()) backlog += n.rn!.raft.log.lastIndex() - n.rn!.raft.log.committed;
    const bound = this.opts.livenessTicks ?? LIVENESS_TICKS_BASE + LIVENESS_TICKS_PER_BACKLOG_ENTRY * backlog;
    const start = this.now;
    while (this.now - start < bound) {
      this.tick();
      const leader = this.leaderNode();
      if (leader === undefined) continue;
      if (leader.confState.votersOutgoing.length > 0 && !leader.confState.autoLeave && this.now % 5 === 0) {
        this.proposeConf(leader, [], ConfChangeTransition.Auto);
      }
      const pending = this.writes.filter((w) => w.ackedAt < 0);
      if (pending.length > 0) {
        // Clients retry writes that may have been dropped (no leader, lost forward, overwritten tail) after
        // a request timeout, like etcd clients do.
        for (const w of pending) {
          if (this.now - w.proposedAt < CLIENT_RETRY_TICKS * 2 ** Math.min(w.retries, 3)) continue;
          w.proposedAt = this.now;
          w.retries++;
          this.retryWrite(w);
        }
        continue;
      }
      // Every write is committed; done once every member has applied all of them. (Duplicates from client
      // retries may still be committing behind them; they are not pending proposals any more.)
      let target = 0;
      for (const w of this.writes) target = Math.max(target, w.index);
      const members = this.liveNodes().filter((n) => this.inConfig(n.id, leader.confState));
      if (members.every((n) => n.appliedIndex >= target)) return;
    }
    const pending = this.writes.filter((w) => w.ackedAt < 0).length;
    const leader = this.leaderNode();
    this.fail(
      `liveness: ${bound} ticks after healing: leader ${leader ? short(leader.id) : "none"}, ${pending} writes pending, ` +
        [...this.nodes.values()]
          .map(
            (n) =>
              `${short(n.id)}:${n.removed ? "removed" : n.rn === null ? "down" : `${roleChar(n)}t${n.rn.raft.term}a${n.appliedIndex}c${n.rn.raft.log.committed}`}`,
          )
          .join(" "),
    );
  }

  run(): SimResult {
    while (this.now < this.opts.steps) this.tick();
    this.heal();
    this.awaitLiveness();
    // Final full cross-check of every live log against the committed record.
    for (const n of this.liveNodes()) this.checkRestartedLog(n);
    let maxTerm = 0;
    for (const t of this.leaderByTerm.keys()) maxTerm = Math.max(maxTerm, t);
    return {
      seed: this.opts.seed,
      ticks: this.now,
      microSteps: this.microSteps,
      committed: this.committedMax,
      elections: this.stats.elections,
      writesAcked: this.writes.filter((w) => w.ackedAt >= 0).length,
      reads: this.stats.reads,
      confChanges: this.stats.confChanges,
      snapshotsSent: this.stats.snapshotsSent,
      crashes: this.stats.crashes,
      maxTerm,
    };
  }
}

function short(id: bigint): string {
  return (id & 0xffffn).toString(16);
}

function roleChar(n: SimNode): string {
  return ["F", "C", "L", "P"][n.rn!.raft.state] ?? "?";
}

function describeConf(cs: ConfState): string {
  const ids = (xs: bigint[]) => xs.map(short).join(" ");
  let s = `voters(${ids(cs.voters)})`;
  if (cs.votersOutgoing.length > 0) s += `&&(${ids(cs.votersOutgoing)})`;
  if (cs.learners.length > 0) s += ` learners(${ids(cs.learners)})`;
  if (cs.learnersNext.length > 0) s += ` next(${ids(cs.learnersNext)})`;
  if (cs.autoLeave) s += " auto";
  return s;
}

/** Runs one seed; returns the result or the failure (never throws for a SimFailure). */
export function runSeed(opts: SimOptions): { result?: SimResult; failure?: SimFailure; trace?: string[] } {
  const sim = new Simulation(opts);
  try {
    return { result: sim.run() };
  } catch (err) {
    if (err instanceof SimFailure) return { failure: err, trace: sim.traceTail() };
    if (err instanceof RaftError) {
      return {
        failure: new SimFailure(opts.seed, -1, `unexpected ${err.code}: ${err.stack}`),
        trace: sim.traceTail(),
      };
    }
    return {
      failure: new SimFailure(opts.seed, -1, `crashed: ${(err as Error).stack ?? String(err)}`),
      trace: sim.traceTail(),
    };
  }
}

/** The one-line command that replays a seed exactly. */
export function replayCommand(opts: SimOptions): string {
  let cmd = `npm run sim -- --seed ${opts.seed} --steps ${opts.steps}`;
  if (opts.bugs !== undefined && opts.bugs.size > 0) cmd += ` --bugs ${[...opts.bugs].join(",")}`;
  if (opts.codec === false) cmd += " --no-codec";
  if (opts.mood !== undefined) cmd += ` --mood ${opts.mood}`;
  return cmd;
}
