import { assert } from "./assert.js";
import { jointVoteResult, majorityIndex, VoteResult } from "./quorum.js";
import type { ConfState } from "./types.js";

export const ProgressState = { Probe: 0, Replicate: 1, Snapshot: 2 } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];
const progressStateNames = ["Probe", "Replicate", "Snapshot"] as const;
export function progressStateName(s: ProgressState): string {
  return progressStateNames[s];
}

/**
 * Flow control for one follower in Replicate state: a ring of the append messages in flight (the last
 * index each carried and its byte size). Full at maxCount messages or maxBytes bytes; the leader then sends
 * only empty appends until acknowledgements free slots. The ring is allocated once (STYLE.md: bounds set
 * at start).
 */
export class Inflights {
  private start = 0;
  private countNow = 0;
  private bytesNow = 0;
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {
    assert(maxCount > 0, "maxInflightMessages must be > 0");
    this.indexes = new Float64Array(maxCount);
    this.sizes = new Float64Array(maxCount);
  }

  add(index: number, bytes: number): void {
    assert(!this.full(), "cannot add to full inflights");
    let next = this.start + this.countNow;
    if (next >= this.maxCount) next -= this.maxCount;
    this.indexes[next] = index;
    this.sizes[next] = bytes;
    this.countNow++;
    this.bytesNow += bytes;
  }

  /** Frees every message whose last index is <= to (they were acknowledged). */
  freeLE(to: number): void {
    if (this.countNow === 0 || to < this.indexes[this.start]!) return;
    let idx = this.start;
    let freed = 0;
    let bytes = 0;
    while (freed < this.countNow && this.indexes[idx]! <= to) {
      bytes += this.sizes[idx]!;
      freed++;
      idx++;
      if (idx >= this.maxCount) idx -= this.maxCount;
    }
    this.countNow -= freed;
    this.bytesNow -= bytes;
    this.start = this.countNow === 0 ? 0 : idx;
  }

  full(): boolean {
    return this.countNow === this.maxCount || this.bytesNow >= this.maxBytes;
  }

  count(): number {
    return this.countNow;
  }

  bytes(): number {
    return this.bytesNow;
  }

  reset(): void {
    this.start = 0;
    this.countNow = 0;
    this.bytesNow = 0;
  }
}

/**
 * The leader's view of one follower (etcd's tracker.Progress). Invariant: match < next.
 * - Probe: one append per heartbeat interval until the follower's log position is found.
 * - Replicate: optimistic streaming; next is advanced as messages are sent, bounded by Inflights.
 * - Snapshot: a snapshot is on its way; no appends until it is reported done or failed.
 */
export class Progress {
  match = 0;
  next: number;
  /** Highest commit index sent to the follower (to avoid re-sending commit-only appends). */
  sentCommit = 0;
  state: ProgressState = ProgressState.Probe;
  /** Index of the snapshot in flight while in Snapshot state. */
  pendingSnapshot = 0;
  /** Heard from recently (CheckQuorum). */
  recentActive: boolean;
  /** In Probe: one message is out, wait for its answer. In Replicate: inflights are full. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, inflights: Inflights, isLearner: boolean, recentActive: boolean) {
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  /** A copy sharing the inflights ring (used by the conf changer, which then drops the original). */
  clone(): Progress {
    const p = new Progress(this.next, this.inflights, this.isLearner, this.recentActive);
    p.match = this.match;
    p.sentCommit = this.sentCommit;
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.msgAppFlowPaused = this.msgAppFlowPaused;
    return p;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, probe from the snapshot index (the follower has at least that much).
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
    this.sentCommit = snapshotIndex;
  }

  /** Records that an append with `entries` entries (`bytes` in size) was sent at `next`. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else {
      assert(this.state === ProgressState.Probe, `sending append in state ${progressStateName(this.state)}`);
      if (entries > 0) this.msgAppFlowPaused = true;
    }
  }

  /** Whether the follower should be told a newer commit index than the one it was last sent. */
  canBumpCommit(index: number): boolean {
    return index > this.sentCommit && this.sentCommit < this.next - 1;
  }

  sentCommitTo(commit: number): void {
    this.sentCommit = commit;
  }

  /** An acknowledgement up to n arrived; returns false if it was stale. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    this.next = Math.max(this.next, n + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * A rejection of the append at index `rejected` arrived, with the follower's hint `matchHint` (the
   * highest index that may match). Returns false if the rejection is stale (answers an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // In Replicate, a rejection at or below match is stale (it answers a message sent before match moved).
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      this.sentCommit = Math.min(this.sentCommit, this.next - 1);
      return true;
    }
    // In Probe only the answer to the last probe (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.sentCommit = Math.min(this.sentCommit, this.next - 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    return this.state === ProgressState.Snapshot || this.msgAppFlowPaused;
  }
}

/** Which nodes vote and which learn. Sets of ids; `outgoing` is non-empty only in a joint configuration. */
export class TrackerConfig {
  constructor(
    readonly incoming: Set<bigint> = new Set(),
    readonly outgoing: Set<bigint> = new Set(),
    readonly learners: Set<bigint> = new Set(),
    readonly learnersNext: Set<bigint> = new Set(),
    public autoLeave = false,
  ) {}

  clone(): TrackerConfig {
    return new TrackerConfig(
      new Set(this.incoming),
      new Set(this.outgoing),
      new Set(this.learners),
      new Set(this.learnersNext),
      this.autoLeave,
    );
  }

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  toConfState(): ConfState {
    return {
      voters: sortedIds(this.incoming),
      learners: sortedIds(this.learners),
      votersOutgoing: sortedIds(this.outgoing),
      learnersNext: sortedIds(this.learnersNext),
      autoLeave: this.autoLeave,
    };
  }

  describe(): string {
    const hex = (s: Set<bigint>) =>
      `(${sortedIds(s)
        .map((id) => id.toString(16))
        .join(" ")})`;
    let out = `voters=${hex(this.incoming)}`;
    if (this.isJoint()) out += `&&${hex(this.outgoing)}`;
    if (this.learners.size > 0) out += ` learners=${hex(this.learners)}`;
    if (this.learnersNext.size > 0) out += ` learners_next=${hex(this.learnersNext)}`;
    if (this.autoLeave) out += " autoleave";
    return out;
  }
}

export function sortedIds(ids: Iterable<bigint>): bigint[] {
  return Array.from(ids).sort(compareIds);
}

export function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Leader (and candidate) bookkeeping: the configuration, per-node progress and the votes of a campaign. */
export class ProgressTracker {
  config: TrackerConfig = new TrackerConfig();
  progress: Map<bigint, Progress> = new Map();
  votes: Map<bigint, boolean> = new Map();
  /** Sorted ids of every tracked node (voters and learners), for deterministic broadcasts. */
  ids: bigint[] = [];
  incomingIds: bigint[] = [];
  outgoingIds: bigint[] = [];
  private incomingProgress: Progress[] = [];
  private outgoingProgress: Progress[] = [];
  private scratch: Float64Array = new Float64Array(8);

  constructor(
    readonly maxInflightMessages: number,
    readonly maxInflightBytes: number,
  ) {}

  /** A tracker with the same limits and an empty configuration. */
  emptyCopy(): ProgressTracker {
    return new ProgressTracker(this.maxInflightMessages, this.maxInflightBytes);
  }

  newInflights(): Inflights {
    return new Inflights(this.maxInflightMessages, this.maxInflightBytes);
  }

  /** Installs a configuration and progress map produced by the conf changer and refreshes the caches. */
  install(config: TrackerConfig, progress: Map<bigint, Progress>): void {
    this.config = config;
    this.progress = progress;
    this.ids = sortedIds(progress.keys());
    this.incomingIds = sortedIds(config.incoming);
    this.outgoingIds = sortedIds(config.outgoing);
    this.incomingProgress = this.incomingIds.map((id) => this.mustGet(id));
    this.outgoingProgress = this.outgoingIds.map((id) => this.mustGet(id));
    const n = Math.max(this.incomingIds.length, this.outgoingIds.length);
    if (this.scratch.length < n) this.scratch = new Float64Array(n);
  }

  private mustGet(id: bigint): Progress {
    const pr = this.progress.get(id);
    assert(pr !== undefined, `no progress for voter ${id.toString(16)}`);
    return pr;
  }

  isSingleton(): boolean {
    return this.incomingIds.length === 1 && this.outgoingIds.length === 0;
  }

  isVoter(id: bigint): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** The largest index stored on a quorum (by the voters' match indexes). Allocation-free. */
  committed(): number {
    const s = this.scratch;
    const inc = this.incomingProgress;
    for (let i = 0; i < inc.length; i++) s[i] = inc[i]!.match;
    const a = majorityIndex(inc.length, s);
    const out = this.outgoingProgress;
    if (out.length === 0) return a;
    for (let i = 0; i < out.length; i++) s[i] = out[i]!.match;
    return Math.min(a, majorityIndex(out.length, s));
  }

  /** Whether a quorum of voters has been active since the last check (CheckQuorum). */
  quorumActive(): boolean {
    const active = new Map<bigint, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner) active.set(id, pr.recentActive);
    }
    return jointVoteResult(this.incomingIds, this.outgoingIds, active) === VoteResult.Won;
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records id's vote; only the first answer of each node counts. */
  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, v] of this.votes) {
      if (!this.isVoter(id)) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.incomingIds, this.outgoingIds, this.votes) };
  }

  /** Sorted ids of all voters (incoming and outgoing). */
  voterIds(): bigint[] {
    return sortedIds(new Set([...this.config.incoming, ...this.config.outgoing]));
  }

  learnerIds(): bigint[] {
    return sortedIds(this.config.learners);
  }
}
