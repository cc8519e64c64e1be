import { assert } from "./assert.js";
import { isRaftError, RaftError, RaftErrorCode } from "./errors.js";
import type { Storage } from "./storage.js";
import { limitSize, NO_LIMIT } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";
import { EMPTY_ENTRIES, entrySizeBytes } from "./types.js";

/** term() sentinel: the index is below the first index still held (compacted into a snapshot). */
export const TERM_COMPACTED = -1;
/** term() sentinel: the index is above the last index. */
export const TERM_UNAVAILABLE = -2;

/**
 * The tail of the log that raft holds in memory until the application reports it persisted: entries (and
 * possibly a snapshot) not yet handed out in a Ready, and those handed out whose advance() has not come.
 *
 * Layout: entries[k] has index offset + k. Entries below offsetInProgress were handed out in a Ready and
 * are being persisted; the rest are new. If `snapshot` is set it precedes entries (offset = its index + 1).
 */
export class Unstable {
  snapshot: Snapshot | null = null;
  snapshotInProgress = false;
  entries: Entry[] = [];
  offset: number;
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** The first index if the unstable part starts with a snapshot, else -1. */
  maybeFirstIndex(): number {
    return this.snapshot !== null ? this.snapshot.metadata.index + 1 : -1;
  }

  /** The last index if there are unstable entries or a snapshot, else -1. */
  maybeLastIndex(): number {
    if (this.entries.length !== 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return -1;
  }

  /** The term of entry i if the unstable part knows it, else -1. */
  maybeTerm(i: number): number {
    if (i < this.offset) {
      if (this.snapshot !== null && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return -1;
    }
    const e = this.entries[i - this.offset];
    return e === undefined ? -1 : e.term;
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress === this.entries.length) return EMPTY_ENTRIES;
    return this.entries.slice(inProgress);
  }

  hasNextEntries(): boolean {
    return this.offsetInProgress - this.offset < this.entries.length;
  }

  nextSnapshot(): Snapshot | null {
    if (this.snapshot === null || this.snapshotInProgress) return null;
    return this.snapshot;
  }

  /** Marks everything currently unstable as handed out (called when a Ready is taken). */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== null) this.snapshotInProgress = true;
  }

  /**
   * The application persisted entries up to (index, term). If the entry at `index` has been replaced since
   * (a different term), the report is stale and ignored: the newer entries are still being written.
   */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    if (t === -1 || index < this.offset || t !== term) return;
    const num = index + 1 - this.offset;
    this.entries = num === this.entries.length ? [] : this.entries.slice(num);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === index) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /**
   * Appends ents, first dropping any unstable entries at or after ents[0].index. The input array is never
   * kept (it may be a received message's, shared with others), only its elements.
   */
  truncateAndAppend(ents: readonly Entry[]): void {
    const fromIndex = ents[0]!.index;
    const end = this.offset + this.entries.length;
    if (fromIndex === end) {
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]!);
    } else if (fromIndex <= this.offset) {
      // Everything unstable is replaced, including entries whose persistence is in progress: a stale
      // stableTo for them will not match (different term) and is ignored.
      this.entries = ents.slice();
      this.offset = fromIndex;
      this.offsetInProgress = fromIndex;
    } else {
      assert(fromIndex < end, `unstable.truncateAndAppend: gap, append at ${fromIndex}, end ${end}`);
      this.entries.length = fromIndex - this.offset;
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]!);
      this.offsetInProgress = Math.min(this.offsetInProgress, fromIndex);
    }
  }

  /** entries[lo, hi) by index; the range must lie within the unstable entries. */
  slice(lo: number, hi: number): Entry[] {
    assert(
      lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length,
      `unstable.slice[${lo},${hi}) out of bounds [${this.offset},${this.offset + this.entries.length})`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

/**
 * The raft log: persisted entries (Storage) followed by the unstable tail. Invariants:
 * applied <= applying <= committed <= lastIndex, and firstIndex - 1 <= committed.
 */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed (stored on a quorum). */
  committed: number;
  /** Highest index handed to the application for applying (in a Ready not yet advanced). */
  applying: number;
  /** Highest index the application has applied (reported through advance()). */
  applied: number;
  /** Bound on the total size of committed entries handed out in one Ready. */
  readonly maxApplyingBytes: number;

  constructor(storage: Storage, maxApplyingBytes: number) {
    this.storage = storage;
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new Unstable(lastIndex + 1);
    this.committed = firstIndex - 1;
    this.applying = firstIndex - 1;
    this.applied = firstIndex - 1;
    this.maxApplyingBytes = maxApplyingBytes;
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i !== -1 ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i !== -1 ? i : this.storage.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t >= 0, `last term unavailable at ${this.lastIndex()}`);
    return t;
  }

  /** The term of entry i, or TERM_COMPACTED / TERM_UNAVAILABLE. Never throws for an out-of-range index. */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== -1) return t;
    if (i + 1 < this.firstIndex()) return TERM_COMPACTED;
    if (i > this.lastIndex()) return TERM_UNAVAILABLE;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (isRaftError(err, RaftErrorCode.Compacted)) return TERM_COMPACTED;
      if (isRaftError(err, RaftErrorCode.Unavailable)) return TERM_UNAVAILABLE;
      throw err;
    }
  }

  /** term(i), with 0 for an index out of range (etcd's zeroTermOnOutOfBounds). */
  termOrZero(i: number): number {
    const t = this.term(i);
    return Math.max(t, 0);
  }

  matchTerm(index: number, term: number): boolean {
    const t = this.term(index);
    return t >= 0 && t === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries. If our log has (prevIndex, prevTerm), appends the entries that are not
   * already present (dropping a conflicting uncommitted suffix), advances commit to min(committed, last new
   * index) and returns that last new index; returns -1 if the consistency check fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, committed: number, entries: readonly Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed entry ${this.committed}`);
      const from = conflict - (prevIndex + 1);
      assert(from >= 0 && from < entries.length, `conflict index ${conflict} outside the appended range`);
      this.append(from === 0 ? entries : entries.slice(from));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries (which may truncate an uncommitted unstable suffix); returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index - 1;
    assert(
      after >= this.committed,
      `append after ${after} would truncate committed entries (${this.committed})`,
    );
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /**
   * The index of the first entry that is not in our log with the same term (a conflict, or simply new), or
   * 0 if all are present. Entries must be contiguous.
   */
  findConflict(entries: readonly Entry[]): number {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking (see raft.ts): the largest index <= `index` whose term is <= `term`, with that term.
   * Returns [index, 0] when the term at an index is unknown (compacted).
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      const ourTerm = this.term(index);
      if (ourTerm < 0) return [index, 0];
      if (ourTerm <= term) return [index, ourTerm];
    }
    return [0, 0];
  }

  commitTo(toCommit: number): void {
    if (this.committed < toCommit) {
      assert(
        toCommit <= this.lastIndex(),
        `commit ${toCommit} is beyond the last index ${this.lastIndex()}; was the log lost or truncated?`,
      );
      this.committed = toCommit;
    }
  }

  /**
   * Leader commit rule (Raft §5.4.2): advance commit to `index` only if the entry there has the leader's
   * current term. Entries of earlier terms are committed indirectly, never by counting replicas.
   */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    assert(
      i <= this.committed && i >= this.applied,
      `applied ${i} out of range [${this.applied}, ${this.committed}]`,
    );
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  hasNextUnstableEntries(): boolean {
    return this.unstable.hasNextEntries();
  }

  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasNextOrInProgressSnapshot() && this.applying < this.committed;
  }

  /**
   * Committed entries not yet handed to the application, up to maxApplyingBytes (at least one). None while
   * a snapshot is pending: it must be applied first.
   */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return EMPTY_ENTRIES;
    return this.slice(this.applying + 1, this.committed + 1, this.maxApplyingBytes);
  }

  /** Entries from i to the end, up to maxBytes (at least one); empty if i > lastIndex. */
  entries(i: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return EMPTY_ENTRIES;
    return this.slice(i, last + 1, maxBytes);
  }

  /** Entries in [lo, hi) up to maxBytes; throws RaftError(Compacted) if lo is below firstIndex. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first)
      throw new RaftError(RaftErrorCode.Compacted, `entries from ${lo}: compacted below ${first}`);
    assert(hi <= this.lastIndex() + 1, `slice[${lo},${hi}) out of bounds [${first},${this.lastIndex()}]`);
    if (lo === hi) return EMPTY_ENTRIES;
    const u = this.unstable;
    if (lo >= u.offset) {
      return limitSize(u.entries, lo - u.offset, hi - u.offset, maxBytes);
    }
    const cut = Math.min(hi, u.offset);
    const stored = this.storage.entries(lo, cut, maxBytes);
    if (hi <= u.offset || stored.length < cut - lo) return stored;
    let size = 0;
    for (let k = 0; k < stored.length; k++) size += entrySizeBytes(stored[k]!);
    if (maxBytes !== NO_LIMIT && size >= maxBytes) return stored;
    const tail = limitSize(u.entries, 0, hi - u.offset, maxBytes === NO_LIMIT ? NO_LIMIT : maxBytes - size);
    if (maxBytes !== NO_LIMIT && tail.length === 1 && size + entrySizeBytes(tail[0]!) > maxBytes)
      return stored;
    return stored.concat(tail);
  }

  /** The snapshot to send to a follower: the unstable one if a newer one is being applied, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Every entry from firstIndex to lastIndex (tests and the simulator's checks). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), NO_LIMIT);
  }
}
