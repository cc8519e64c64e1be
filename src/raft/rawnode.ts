import { assert } from "./assert.js";
import { encodeConfChange, encodeConfChangeV2 } from "./codec.js";
import { toConfChangeV2 } from "./confchange.js";
import { RaftError, RaftErrorCode } from "./errors.js";
import { Raft, type RaftConfig, type Status } from "./raft.js";
import type {
  ConfChange,
  ConfChangeV2,
  ConfState,
  Entry,
  HardState,
  Message,
  ReadState,
  Snapshot,
  SoftState,
} from "./types.js";
import {
  ConfChangeType,
  EMPTY_BYTES,
  EMPTY_HARD_STATE,
  EntryType,
  isConfChangeV2,
  MessageType,
  NONE,
  newMessage,
  payloadSizeBytes,
  SnapshotStatus,
  StateRole,
} from "./types.js";

/**
 * The work raft hands to the application. The contract, in order (etcd's, with the leader optimisation of
 * raft thesis §10.2.1 made explicit by splitting the messages in two lists):
 *
 * 1. `messages` may be sent at once, before or while persisting: they never vouch for unpersisted local
 *    state (appends, heartbeats, snapshots, vote requests, forwarded proposals and reads). This is how a
 *    leader sends its new entries to followers in parallel with its own fsync: the leader counts its own
 *    copy only after it is persisted (step 4), so a commit never rests on an unwritten leader log. (In a
 *    Ready that changes the term, raft itself moves everything but vote requests to the second list: a
 *    leader speaks for its term only once the term is durable.)
 * 2. Persist `entries` (appending, and replacing any stored suffix from entries[0].index), `hardState` if
 *    not null, and `snapshot` if not null, durably when `mustSync` (fsync), and make them visible through
 *    the Storage raft reads (MemoryStorage.append / setHardState / applySnapshot).
 * 3. Then send `messagesAfterPersist`: append acknowledgements and vote answers, which promise that the
 *    state above survives a crash (thesis §3.8). Sending them earlier can lose acknowledged data or elect
 *    two leaders in one term.
 * 4. Apply the `snapshot` (if any) and then `committedEntries` to the state machine, in order; for conf
 *    change entries call applyConfChange(). Serve `readStates` once applied >= their index.
 * 5. Call advance(ready). Only then may ready() be called again. step(), tick(), propose() etc. may be
 *    called at any time, including between ready() and advance().
 *
 * If a message in either list is a snapshot (type Snap), report the outcome with reportSnapshot().
 * Fields not changed since the previous Ready are null (softState, hardState, snapshot) or empty.
 */
export interface Ready {
  /** Leader and role, when changed since the previous Ready; not persisted. */
  readonly softState: SoftState | null;
  /** Term, vote and commit index to persist, when changed. */
  readonly hardState: HardState | null;
  /** New log entries to persist (possibly replacing a stored uncommitted suffix). */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader, to persist and apply. */
  readonly snapshot: Snapshot | null;
  /** Entries known committed, to apply in order (after persisting this Ready). */
  readonly committedEntries: readonly Entry[];
  /** Messages that may be sent immediately. */
  readonly messages: readonly Message[];
  /** Messages that may only be sent after this Ready's entries, hard state and snapshot are durable. */
  readonly messagesAfterPersist: readonly Message[];
  /** Answers to readIndex() calls. */
  readonly readStates: readonly ReadState[];
  /** Whether persisting needs an fsync (new entries, or a new term or vote); a commit-only change does not. */
  readonly mustSync: boolean;
}

/** What advance() must do for the Ready last handed out. */
interface AcceptedReady {
  readonly ready: Ready;
  /** Self-addressed messages (own append ack, own vote) to step once persisted. */
  readonly selfMessages: Message[];
  /** Unstable entries up to (index, term) are persisted, if the term is unchanged at advance (-1: none). */
  readonly stableIndex: number;
  readonly stableLogTerm: number;
  readonly stableAtTerm: number;
  /** Highest index applied with this Ready's committed entries (-1: none), and their payload bytes. */
  readonly appliedIndex: number;
  readonly appliedPayloadBytes: number;
}

/** A peer for bootstrap(): its id and the context carried by its ConfChange (etcd: the member JSON). */
export interface Peer {
  readonly id: bigint;
  readonly context?: Uint8Array;
}

const localMessageTypes: ReadonlySet<MessageType> = new Set([
  MessageType.Hup,
  MessageType.Beat,
  MessageType.Unreachable,
  MessageType.SnapStatus,
  MessageType.CheckQuorum,
]);
const responseMessageTypes: ReadonlySet<MessageType> = new Set([
  MessageType.AppResp,
  MessageType.VoteResp,
  MessageType.HeartbeatResp,
  MessageType.Unreachable,
  MessageType.ReadIndexResp,
  MessageType.PreVoteResp,
]);
const MESSAGE_TYPE_MAX = MessageType.PreVoteResp;
/** What only a leader sends: it speaks for the leader's term, which must be durable first. */
const LEADER_MESSAGE_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.App,
  MessageType.Snap,
  MessageType.Heartbeat,
  MessageType.TimeoutNow,
  MessageType.ReadIndexResp,
]);

/**
 * The application's handle on a raft group (etcd's RawNode): single-threaded, no I/O. The server calls
 * tick() on its clock, step() for every received message, propose()/readIndex()/... for requests, and
 * processes ready()/advance() in a loop (see Ready for the contract).
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private accepted: AcceptedReady | null = null;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /**
   * Initializes a brand-new node's log with AddNode conf change entries for the initial members (at term
   * 1, committed), as etcd does for a new cluster. The first Ready persists them and hands them out for
   * applying. Throws if the storage is not empty.
   */
  bootstrap(peers: readonly Peer[]): void {
    if (peers.length === 0)
      throw new RaftError(RaftErrorCode.InvalidConfig, "bootstrap needs at least one peer");
    const storage = this.raft.log.storage;
    if (storage.lastIndex() !== 0) {
      throw new RaftError(RaftErrorCode.InvalidConfig, "cannot bootstrap a non-empty storage");
    }
    // Nothing is persisted yet: the first Ready must carry the hard state.
    this.prevHardState = EMPTY_HARD_STATE;
    this.raft.becomeFollower(1, NONE);
    const entries: Entry[] = peers.map((p, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({
        id: 0n,
        type: ConfChangeType.AddNode,
        nodeId: p.id,
        context: p.context ?? EMPTY_BYTES,
      }),
    }));
    this.raft.log.append(entries);
    this.raft.log.committed = entries.length;
    // Apply them now so that the node can campaign at once; the application applies them again from the
    // committed entries, which is harmless (adding a present voter changes nothing).
    for (const p of peers) {
      this.raft.applyConfChange(
        toConfChangeV2({ id: 0n, type: ConfChangeType.AddNode, nodeId: p.id, context: EMPTY_BYTES }),
      );
    }
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (tests, or an operator forcing one). */
  campaign(): void {
    this.raft.step(newMessage(MessageType.Hup, NONE, this.raft.id, 0));
  }

  /**
   * Proposes data for the log. On a follower the proposal is forwarded to the leader (and may be lost with
   * the message: the application must time out and retry). Throws RaftError NoLeader or ProposalDropped.
   */
  propose(data: Uint8Array): void {
    const m = newMessage(MessageType.Prop, NONE, this.raft.id, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data }];
    this.raft.step(m);
  }

  /** Proposes several entries as one batch (one message, one append). */
  proposeBatch(datas: readonly Uint8Array[]): void {
    if (datas.length === 0) return;
    const m = newMessage(MessageType.Prop, NONE, this.raft.id, 0);
    const entries: Entry[] = new Array(datas.length);
    for (let i = 0; i < datas.length; i++)
      entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: datas[i]! };
    m.entries = entries;
    this.raft.step(m);
  }

  /**
   * Proposes a configuration change (v1: one change; v2: joint consensus when several changes or an
   * explicit transition). Refused (ProposalDropped) while another change is pending or when the change
   * does not fit the joint state. Takes effect when the application calls applyConfChange() on applying it.
   */
  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    const m = newMessage(MessageType.Prop, NONE, this.raft.id, 0);
    const entry: Entry = isConfChangeV2(cc)
      ? { term: 0, index: 0, type: EntryType.ConfChangeV2, data: encodeConfChangeV2(cc) }
      : { term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) };
    m.entries = [entry];
    this.raft.step(m);
  }

  /**
   * Applies a committed conf change to raft's configuration and returns the new ConfState (to store with
   * snapshots). Call it for every conf change entry applied; to reject one, pass it with nodeId 0n.
   */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(toConfChangeV2(cc));
  }

  /**
   * Steps a message received from a peer. Throws RaftError for messages that must not come from the
   * network (local types), answers from unknown peers, or malformed fields; the server logs and drops them.
   */
  step(m: Message): void {
    validateMessage(m);
    if (localMessageTypes.has(m.type)) {
      throw new RaftError(RaftErrorCode.StepLocalMessage, `cannot step local message type ${m.type}`);
    }
    if (responseMessageTypes.has(m.type) && !this.raft.tracker.progress.has(m.from)) {
      throw new RaftError(RaftErrorCode.StepPeerNotFound, `no peer ${m.from.toString(16)} for response`);
    }
    this.raft.step(m);
  }

  /**
   * Requests a read index. The answer comes as a ReadState with the same context in a later Ready; reads
   * that started before this call may be served once applied >= its index. Concurrent calls share one
   * heartbeat round. Throws NoLeader when no leader is known.
   */
  readIndex(context: Uint8Array): void {
    const m = newMessage(MessageType.ReadIndex, NONE, NONE, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: context }];
    this.raft.step(m);
  }

  /** Asks the leader to hand leadership to `transferee` (thesis §3.10); forwarded when called on a follower. */
  transferLeader(transferee: bigint): void {
    this.raft.step(newMessage(MessageType.TransferLeader, NONE, transferee, 0));
  }

  /** The transport could not deliver the last message to `id` (likely lost): probe it again. */
  reportUnreachable(id: bigint): void {
    this.raft.step(newMessage(MessageType.Unreachable, NONE, id, 0));
  }

  /** The outcome of sending a snapshot to `id`. */
  reportSnapshot(id: bigint, status: SnapshotStatus): void {
    const m = newMessage(MessageType.SnapStatus, NONE, id, 0);
    m.reject = status === SnapshotStatus.Failure;
    this.raft.step(m);
  }

  /** Whether ready() would return anything. Cheap; may prepare deferred messages. */
  hasReady(): boolean {
    const r = this.raft;
    r.flushBroadcast();
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0) return true;
    // Compare fields in place: hasReady is polled often and must not allocate.
    if (r.lead !== this.prevSoftState.leader || r.state !== this.prevSoftState.role) return true;
    const prev = this.prevHardState;
    const hardChanged = r.term !== prev.term || r.vote !== prev.vote || r.log.committed !== prev.commit;
    if (hardChanged && !(r.term === 0 && r.vote === NONE && r.log.committed === 0)) return true;
    if (r.log.unstable.nextSnapshot() !== null) return true;
    if (r.log.hasNextUnstableEntries() || r.log.hasNextCommittedEntries()) return true;
    return r.readStates.length > 0;
  }

  /**
   * Returns the pending work (see Ready for the contract) and marks it as handed out. Must be followed by
   * advance(ready) before the next ready().
   */
  ready(): Ready {
    assert(this.accepted === null, "ready() called again before advance()");
    const r = this.raft;
    r.flushBroadcast();
    const log = r.log;

    const entries = log.unstable.nextEntries();
    const committedEntries = log.nextCommittedEntries();
    const prevSoft = this.prevSoftState;
    const softState = r.lead !== prevSoft.leader || r.state !== prevSoft.role ? r.softState() : null;
    const prevHard = this.prevHardState;
    const hardState =
      r.term !== prevHard.term || r.vote !== prevHard.vote || r.log.committed !== prevHard.commit
        ? r.hardState()
        : null;
    const snapshot = log.unstable.nextSnapshot();

    let messages: Message[] = r.msgs;
    let messagesAfterPersist: Message[] = r.msgsAfterAppend;
    if (hardState !== null && hardState.term !== prevHard.term && messages.length > 0) {
      // The term moved in this Ready and is not durable yet. Vote requests may still go early (a candidate's
      // own vote counts only once persisted), but nothing a leader says in this term may: after a crash the
      // node would be back in the old term, could win this term again (votes for it are already cast) and
      // append different entries under the same (index, term). Found in review; ready.test.ts reproduces
      // it and the simulator checks that no leader message leaves before its term is durable.
      const early: Message[] = [];
      const held: Message[] = messagesAfterPersist.slice();
      for (const m of messages) {
        if (LEADER_MESSAGE_TYPES.has(m.type)) held.push(m);
        else early.push(m);
      }
      messages = early;
      messagesAfterPersist = held;
    }

    const selfMessages: Message[] = [];
    for (let i = 0; i < messagesAfterPersist.length; i++) {
      if (messagesAfterPersist[i]!.to === r.id) {
        // Rare path (own acks and votes are at most a few per Ready): split the list.
        const all = messagesAfterPersist;
        messagesAfterPersist = all.filter((m) => m.to !== r.id);
        for (const m of all) if (m.to === r.id) selfMessages.push(m);
        break;
      }
    }

    // Term and vote must be durable before any vote answer leaves; a commit-only change need not be.
    const mustSync =
      entries.length > 0 ||
      (hardState !== null && (hardState.term !== prevHard.term || hardState.vote !== prevHard.vote));
    const ready: Ready = {
      softState,
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages,
      messagesAfterPersist,
      readStates: r.readStates.length > 0 ? r.readStates : [],
      mustSync,
    };

    // Accept: from here on raft considers all of it handed out.
    if (softState !== null) this.prevSoftState = softState;
    if (hardState !== null) this.prevHardState = hardState;
    r.readStates = [];
    r.msgs = [];
    r.msgsAfterAppend = [];
    let stableIndex = -1;
    let stableLogTerm = 0;
    if (log.unstable.entries.length > 0) {
      // Everything unstable (new or already in progress) is persisted once this Ready is.
      stableIndex = log.lastIndex();
      stableLogTerm = log.lastTerm();
    }
    log.unstable.acceptInProgress();
    let appliedIndex = -1;
    let appliedPayloadBytes = 0;
    if (committedEntries.length > 0) {
      appliedIndex = committedEntries[committedEntries.length - 1]!.index;
      appliedPayloadBytes = payloadSizeBytes(committedEntries);
      log.applying = appliedIndex;
    }
    this.accepted = {
      ready,
      selfMessages,
      stableIndex,
      stableLogTerm,
      stableAtTerm: r.term,
      appliedIndex,
      appliedPayloadBytes,
    };
    return ready;
  }

  /**
   * Tells raft that the Ready was persisted, sent and applied (see Ready). Steps the node's own append
   * acknowledgement and vote, marks entries stable and advances the applied index.
   */
  advance(ready: Ready): void {
    const a = this.accepted;
    assert(a !== null && a.ready === ready, "advance() must be given the last Ready handed out");
    this.accepted = null;
    const r = this.raft;
    // Own acknowledgements first: they may commit entries (and their stale-term copies are ignored by step).
    for (const m of a.selfMessages) r.step(m);
    // A term change since ready() means the unstable tail may have been replaced: wait for a later Ready.
    if (a.stableIndex >= 0 && r.term === a.stableAtTerm) r.log.stableTo(a.stableIndex, a.stableLogTerm);
    if (ready.snapshot !== null) r.appliedSnapshot(ready.snapshot);
    if (a.appliedIndex >= 0) {
      r.appliedTo(a.appliedIndex);
      r.reduceUncommittedSize(a.appliedPayloadBytes);
    }
  }

  status(): Status {
    return this.raft.status();
  }

  /** Whether a Ready has been handed out and not yet advanced. */
  hasPendingReady(): boolean {
    return this.accepted !== null;
  }

  /** The role and leader right now (cheap). */
  softState(): SoftState {
    return this.raft.softState();
  }

  isLeader(): boolean {
    return this.raft.state === StateRole.Leader;
  }
}

function isIndex(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

/** Rejects messages with impossible field values before they reach raft (bad input, not an invariant). */
function validateMessage(m: Message): void {
  const bad = (what: string): never => {
    throw new RaftError(RaftErrorCode.InvalidMessage, `invalid message: ${what}`);
  };
  if (!Number.isInteger(m.type) || m.type < 0 || m.type > MESSAGE_TYPE_MAX) bad(`type ${m.type}`);
  if (
    !isIndex(m.term) ||
    !isIndex(m.logTerm) ||
    !isIndex(m.index) ||
    !isIndex(m.commit) ||
    !isIndex(m.rejectHint)
  ) {
    bad(`numeric fields term ${m.term} logTerm ${m.logTerm} index ${m.index} commit ${m.commit}`);
  }
  if (m.from === NONE) bad("from is none");
  if (m.type === MessageType.App) {
    // Terms never decrease along a log, and no entry is newer than the leader sending it.
    let prevTerm = m.logTerm;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (e.index !== m.index + 1 + i) bad(`entry ${i} has index ${e.index}, expected ${m.index + 1 + i}`);
      if (!Number.isSafeInteger(e.term) || e.term < prevTerm || e.term > m.term)
        bad(`entry ${e.index} term ${e.term}`);
      prevTerm = e.term;
    }
  }
  if (m.type === MessageType.Snap && (m.snapshot === null || m.snapshot.metadata.index === 0))
    bad("empty snapshot");
}
