/**
 * The shapes the WAL stores. The WAL knows nothing of raft beyond "records with an index": these are
 * declared here, structurally, so that raft's own types (same field names) are accepted without the WAL
 * importing raft.
 */

/** A raft log entry. `term` and `index` are safe integers; `type` is a uint32 chosen by the caller. */
export interface WalEntry {
  term: number;
  index: number;
  type: number;
  data: Uint8Array;
}

/** Raft's hard state. `vote` is a uint64 member id (0n = no vote). */
export interface WalHardState {
  term: number;
  vote: bigint;
  commit: number;
}

/**
 * Records that a raft snapshot at (index, term) was saved, so the WAL can be opened at it.
 * `confState` is opaque bytes encoded by the caller.
 */
export interface WalSnapshotMarker {
  index: number;
  term: number;
  confState: Uint8Array;
}

/** Written at the head of every segment; all segments of one WAL must agree on it. */
export interface WalMetadata {
  memberId: bigint;
  clusterId: bigint;
}

/** Where to start reading: the snapshot the state machine was restored from. */
export interface WalSnapshotPosition {
  index: number;
  term: number;
}

export const EMPTY_HARD_STATE: Readonly<WalHardState> = Object.freeze({ term: 0, vote: 0n, commit: 0 });

export function isEmptyHardState(hs: WalHardState): boolean {
  return hs.term === 0 && hs.vote === 0n && hs.commit === 0;
}
