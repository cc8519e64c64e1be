/**
 * The data shapes of the raft core. Field names and numbering follow etcd's raftpb so that a reader who
 * knows etcd recognises them; the WAL stores Entry and HardState objects of exactly these shapes.
 *
 * Ids (members, conf change ids) are bigint: etcd member ids are uint64 hashes, often above 2^53. 0n means
 * "none". Terms and indexes are numbers, asserted to be safe integers where they enter raft.
 *
 * Every object handed to or returned by raft is treated as immutable once created: raft never mutates an
 * Entry, Snapshot or Message it has handed out or received, and callers must not either (entries are shared
 * between the unstable log, Ready, MemoryStorage and outgoing messages without copying).
 */

export const NONE = 0n;

export const EntryType = { Normal: 0, ConfChange: 1, ConfChangeV2: 2 } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

export interface HardState {
  readonly term: number;
  readonly vote: bigint;
  readonly commit: number;
}

export interface ConfState {
  /** The voters of the incoming (or only) configuration. */
  readonly voters: bigint[];
  readonly learners: bigint[];
  /** The voters of the outgoing configuration; non-empty only while joint. */
  readonly votersOutgoing: bigint[];
  /** Voters of the outgoing config that become learners when the joint config is left. */
  readonly learnersNext: bigint[];
  /** Leave the joint configuration automatically once it is applied. */
  readonly autoLeave: boolean;
}

export interface SnapshotMetadata {
  readonly confState: ConfState;
  readonly index: number;
  readonly term: number;
}

export interface Snapshot {
  readonly data: Uint8Array;
  readonly metadata: SnapshotMetadata;
}

export const ConfChangeType = { AddNode: 0, RemoveNode: 1, UpdateNode: 2, AddLearnerNode: 3 } as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** etcd's single-change (v1) configuration change; `id` is the application's request id. */
export interface ConfChange {
  readonly id: bigint;
  readonly type: ConfChangeType;
  readonly nodeId: bigint;
  readonly context: Uint8Array;
}

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: bigint;
}

/**
 * How a ConfChangeV2 moves between configurations:
 * - Auto: one change is applied directly (simple); several changes use joint consensus and leave the joint
 *   configuration automatically.
 * - JointImplicit: joint consensus, left automatically once applied.
 * - JointExplicit: joint consensus, left only by an explicit empty ConfChangeV2 from the application.
 */
export const ConfChangeTransition = { Auto: 0, JointImplicit: 1, JointExplicit: 2 } as const;
export type ConfChangeTransition = (typeof ConfChangeTransition)[keyof typeof ConfChangeTransition];

export interface ConfChangeV2 {
  readonly transition: ConfChangeTransition;
  readonly changes: ConfChangeSingle[];
  readonly context: Uint8Array;
}

export function isConfChangeV2(cc: ConfChange | ConfChangeV2): cc is ConfChangeV2 {
  return (cc as ConfChangeV2).changes !== undefined;
}

/** Numbering follows etcd's raftpb.MessageType (the storage-thread types 19..22 are not used here). */
export const MessageType = {
  Hup: 0,
  Beat: 1,
  Prop: 2,
  App: 3,
  AppResp: 4,
  Vote: 5,
  VoteResp: 6,
  Snap: 7,
  Heartbeat: 8,
  HeartbeatResp: 9,
  Unreachable: 10,
  SnapStatus: 11,
  CheckQuorum: 12,
  TransferLeader: 13,
  TimeoutNow: 14,
  ReadIndex: 15,
  ReadIndexResp: 16,
  PreVote: 17,
  PreVoteResp: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const messageTypeNames: readonly string[] = Object.keys(MessageType).map((name) => `Msg${name}`);

export function messageTypeName(type: MessageType): string {
  return messageTypeNames[type] ?? `Msg(${type})`;
}

/**
 * One raft message. Every field is always present (defaults: 0, 0n, false, empty arrays) so that all
 * messages share one object shape, which keeps V8's property access monomorphic on the hot path.
 */
export interface Message {
  type: MessageType;
  to: bigint;
  from: bigint;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot: Snapshot | null;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
/** Shared empty entry list; frozen so that an accidental push fails loudly instead of corrupting others. */
export const EMPTY_ENTRIES: Entry[] = Object.freeze([]) as unknown as Entry[];

/** Creates a message with every field set (see Message); callers then set the fields they need. */
export function newMessage(type: MessageType, to: bigint, from: bigint, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: EMPTY_ENTRIES,
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
}

export const StateRole = { Follower: 0, Candidate: 1, Leader: 2, PreCandidate: 3 } as const;
export type StateRole = (typeof StateRole)[keyof typeof StateRole];

const roleNames = ["Follower", "Candidate", "Leader", "PreCandidate"] as const;
export function roleName(role: StateRole): string {
  return roleNames[role];
}

/** Volatile state; not persisted. */
export interface SoftState {
  readonly leader: bigint;
  readonly role: StateRole;
}

/**
 * The answer to a readIndex(context) call: once the application has applied up to `index`, a read that
 * started before the readIndex call may be served from local state and is linearizable.
 */
export interface ReadState {
  readonly index: number;
  readonly requestContext: Uint8Array;
}

export const SnapshotStatus = { Finish: 0, Failure: 1 } as const;
export type SnapshotStatus = (typeof SnapshotStatus)[keyof typeof SnapshotStatus];

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
}) as ConfState;

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  data: EMPTY_BYTES,
  metadata: Object.freeze({ confState: EMPTY_CONF_STATE, index: 0, term: 0 }),
});

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isEmptySnapshot(s: Snapshot | null): boolean {
  return s === null || s.metadata.index === 0;
}

/**
 * Size of an entry for the byte limits (maxSizePerMsgBytes, maxCommittedSizePerReadyBytes, inflight
 * bytes): the payload plus a fixed estimate of the framing (term, index, type), as etcd counts the
 * protobuf size. Exactness is not needed: the limits bound memory and message size, not correctness.
 */
export const ENTRY_OVERHEAD_BYTES = 16;
export function entrySizeBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Payload size, used for the uncommitted-tail limit (etcd's payloadSize: only the data counts). */
export function payloadSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (let i = 0; i < entries.length; i++) total += entries[i]!.data.length;
  return total;
}
