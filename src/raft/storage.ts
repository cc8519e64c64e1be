import { assert } from "./assert.js";
import { RaftError, RaftErrorCode } from "./errors.js";
import type { ConfState, Entry, HardState, Snapshot } from "./types.js";
import { EMPTY_BYTES, EMPTY_HARD_STATE, EMPTY_SNAPSHOT, EntryType, entrySizeBytes } from "./types.js";

/** "No byte limit" for entries(lo, hi, maxBytes) and the size limits in RaftConfig. */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * The persisted part of the raft log, as raft reads it. Raft never writes through this interface: the
 * application persists each Ready (entries, hard state, snapshot) and then makes them visible here before
 * calling advance(). etcd-ts uses MemoryStorage for this, filled from the WAL at start (as etcd does).
 *
 * Errors are typed RaftErrors: Compacted (index below firstIndex) and Unavailable (index above lastIndex);
 * snapshot() may throw SnapshotTemporarilyUnavailable and raft will retry later.
 */
export interface Storage {
  /** The saved HardState and the ConfState of the latest snapshot (both empty for a new node). */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi), at most maxBytes in total but always at least one entry if the range is
   * non-empty. Throws Compacted if lo <= the snapshot index.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; valid for i in [firstIndex - 1, lastIndex] (firstIndex - 1 is the snapshot's). */
  term(i: number): number;
  /** Index of the last entry (the snapshot index if the log is empty). */
  lastIndex(): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

/**
 * In-memory Storage. Entry 0 of `ents` is a dummy holding the index and term of the last compaction point
 * (the snapshot), so term(firstIndex - 1) answers without a special case.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = EMPTY_SNAPSHOT;
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  hardStateNow(): HardState {
    return this.hardState;
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset)
      throw new RaftError(RaftErrorCode.Compacted, `entries(${lo}): compacted up to ${offset}`);
    assert(lo <= hi, `MemoryStorage.entries: lo ${lo} > hi ${hi}`);
    assert(
      hi <= this.lastIndex() + 1,
      `MemoryStorage.entries: hi ${hi} beyond last index ${this.lastIndex()}`,
    );
    if (this.ents.length === 1)
      throw new RaftError(RaftErrorCode.Unavailable, "MemoryStorage holds no entries");
    return limitSize(this.ents, lo - offset, hi - offset, maxBytes);
  }

  term(i: number): number {
    const offset = this.offset();
    if (i < offset) throw new RaftError(RaftErrorCode.Compacted, `term(${i}): compacted up to ${offset}`);
    const e = this.ents[i - offset];
    if (e === undefined) throw new RaftError(RaftErrorCode.Unavailable, `term(${i}): beyond last index`);
    return e.term;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot received from the leader (or loaded at start). */
  applySnapshot(snap: Snapshot): void {
    const current = this.snap.metadata.index;
    const next = snap.metadata.index;
    if (current >= next && current !== 0) {
      throw new RaftError(RaftErrorCode.SnapshotOutOfDate, `snapshot ${next} is not newer than ${current}`);
    }
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: next, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /**
   * Records a snapshot of the application state at index i (i <= applied). confState is the configuration
   * as of i (null keeps the previous one). Does not compact: call compact() separately, typically leaving
   * some entries behind so that slow followers can catch up without a snapshot.
   */
  createSnapshot(i: number, confState: ConfState | null, data: Uint8Array): Snapshot {
    const current = this.snap.metadata.index;
    if (i <= current) {
      throw new RaftError(RaftErrorCode.SnapshotOutOfDate, `snapshot ${i} is not newer than ${current}`);
    }
    assert(i <= this.lastIndex(), `createSnapshot(${i}) beyond last index ${this.lastIndex()}`);
    const term = this.ents[i - this.offset()]!.term;
    this.snap = {
      data,
      metadata: { confState: confState ?? this.snap.metadata.confState, index: i, term },
    };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex (which must not exceed the applied index). */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) {
      throw new RaftError(
        RaftErrorCode.Compacted,
        `compact(${compactIndex}): already compacted to ${offset}`,
      );
    }
    assert(
      compactIndex <= this.lastIndex(),
      `compact(${compactIndex}) beyond last index ${this.lastIndex()}`,
    );
    const i = compactIndex - offset;
    const kept = this.ents.slice(i);
    const first = kept[0]!;
    kept[0] = { term: first.term, index: first.index, type: EntryType.Normal, data: EMPTY_BYTES };
    this.ents = kept;
  }

  /**
   * Appends entries, replacing any existing suffix from entries[0].index on (a new leader may overwrite an
   * uncommitted tail). Entries below firstIndex are skipped; a gap after lastIndex is a bug.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const firstNew = entries[0]!.index;
    const lastNew = entries[entries.length - 1]!.index;
    assert(lastNew - firstNew === entries.length - 1, "MemoryStorage.append: entries are not contiguous");
    const first = this.firstIndex();
    if (lastNew < first) return;
    const skip = first > firstNew ? first - firstNew : 0;
    const at = firstNew + skip - this.offset();
    assert(
      at <= this.ents.length,
      `MemoryStorage.append: gap, last ${this.lastIndex()}, append at ${firstNew}`,
    );
    this.ents.length = at;
    for (let k = skip; k < entries.length; k++) this.ents.push(entries[k]!);
  }
}

/**
 * Returns source[from, to) cut to at most maxBytes, but never empty when the range is non-empty (a single
 * oversized entry must still be able to move).
 */
export function limitSize(source: readonly Entry[], from: number, to: number, maxBytes: number): Entry[] {
  if (from >= to) return [];
  let size = entrySizeBytes(source[from]!);
  let end = from + 1;
  if (maxBytes !== NO_LIMIT) {
    while (end < to) {
      size += entrySizeBytes(source[end]!);
      if (size > maxBytes) break;
      end++;
    }
  } else {
    end = to;
  }
  return source.slice(from, end);
}
