import { assert } from "../assert.js";
import type { Logger } from "../log/logger.js";
import {
  type ConfState,
  encodeConfState,
  isRaftError,
  type MemoryStorage,
  RaftErrorCode,
  type Snapshot,
} from "../raft/index.js";
import type { WalSnapshotMarker } from "../wal/types.js";
import { formatId } from "./ids.js";
import { decodeMemberContext, encodeMemberContext, type Member } from "./membership.js";

/**
 * Raft snapshots every --snapshot-count applied entries (etcd's triggerSnapshot and snapshot in
 * etcdserver/server.go), so the WAL and the in-memory raft log stop growing without bound.
 *
 * A snapshot at applied index S, in this order (each step relies on the ones before it):
 *   1. the backend is made durable up to S (forceCommit): the WAL below S may go away only once the
 *      state it built is on disk, since a restart replays the WAL only above the backend's consistent
 *      index (ARCHITECTURE.md, write path step 5);
 *   2. MemoryStorage records the snapshot at S with the ConfState as of S, so raft can send it;
 *   3. the snapshot file is written and synced (Snapshotter.save, which also purges beyond
 *      --max-snapshots);
 *   4. the WAL gets its snapshot marker: only a file with a marker is loaded at restart, so a crash
 *      between 3 and 4 leaves an orphan file that is passed over, never a marker without a file;
 *   5. WAL segments wholly below S are deleted, keeping --max-wals;
 *   6. MemoryStorage drops entries below S - catchUpEntries (the rest lets a slightly slow follower catch
 *      up from the log instead of needing a whole snapshot).
 *
 * The snapshot's data is what a member needs beyond the backend: the member list (JSON). The key-value
 * state is in the backend, which a follower that receives a snapshot gets separately (the cluster issue).
 *
 * The trigger is synchronous and cheap (it captures the member list and ConfState at S, as etcd clones its
 * v2 store); the rest runs off the Ready loop, which keeps applying meanwhile. At most one snapshot runs at
 * a time: a due snapshot waits until the previous one is done, and the next Ready triggers it.
 */

/** etcd's DefaultSnapshotCount (the --snapshot-count default). */
export const DEFAULT_SNAPSHOT_COUNT = 100_000;
/** etcd's DefaultSnapshotCatchUpEntries: raft entries kept in memory below each snapshot. */
export const DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES = 5000;

/** The persistence points of one snapshot, in order: named failpoints for crash tests. */
export type SnapshotStep =
  | "backendCommitted"
  | "created"
  | "fileSaved"
  | "markerSaved"
  | "walReleased"
  | "compacted";

/** The parts of the WAL a snapshot writes (src/wal's Wal satisfies it). */
export interface SnapshotWal {
  saveSnapshotMarker(marker: WalSnapshotMarker): Promise<void>;
  releaseTo(index: number): Promise<number>;
}

/** The snapshot file store (src/wal's Snapshotter satisfies it). */
export interface SnapshotFiles {
  save(snapshot: { index: number; term: number; confState: Uint8Array; data: Uint8Array }): Promise<string>;
}

/** The backend as a snapshot needs it. */
export interface SnapshotBackend {
  forceCommit(): Promise<void>;
  durableIndex(): number;
}

/** What EtcdServer passes to enable snapshots (absent: no snapshots, the WAL grows). */
export interface SnapshotConfig {
  snapshotter: SnapshotFiles;
  /** Applied entries between snapshots (etcd's --snapshot-count); 0 means etcd's default, 100,000. */
  snapshotCount: number;
  /** Entries kept in MemoryStorage below a snapshot; default etcd's 5,000. */
  catchUpEntries?: number;
  /** Test failpoint: called after each step of each snapshot (e.g. to SIGKILL the process there). */
  afterStep?: (step: SnapshotStep, index: number) => void;
}

export interface RaftSnapshotsOptions extends SnapshotConfig {
  memberId: bigint;
  storage: MemoryStorage;
  wal: SnapshotWal;
  backend: SnapshotBackend;
  logger: Logger;
  /** A failed snapshot step (a file or WAL write): the member must stop. */
  onFatal: (error: unknown) => void;
}

/** The applied state a snapshot captures, read synchronously at its trigger. */
export interface SnapshotPoint {
  /** The applied index; the backend's units are sealed up to it. */
  index: number;
  /** The configuration as of `index` (as returned by the last applyConfChange). */
  confState: ConfState;
  members: readonly Member[];
}

const RESOLVED: Promise<void> = Promise.resolve();

export class RaftSnapshots {
  private readonly options: RaftSnapshotsOptions;
  private readonly catchUpEntries: number;
  private readonly snapshotCount: number;
  /** Index of the newest snapshot started (or loaded at start): the next is due snapshotCount later. */
  private snapshotIndexValue: number;
  private inflight: Promise<void> | null = null;
  private failed = false;

  constructor(options: RaftSnapshotsOptions) {
    assert(
      Number.isSafeInteger(options.snapshotCount) && options.snapshotCount >= 0,
      "snapshotCount is a safe integer >= 0",
    );
    this.snapshotCount = options.snapshotCount;
    if (this.snapshotCount === 0) {
      options.logger.info("updating snapshot-count to default", {
        "given-snapshot-count": 0,
        "updated-snapshot-count": DEFAULT_SNAPSHOT_COUNT,
      });
      this.snapshotCount = DEFAULT_SNAPSHOT_COUNT;
    }
    this.catchUpEntries = options.catchUpEntries ?? DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES;
    assert(Number.isSafeInteger(this.catchUpEntries) && this.catchUpEntries >= 0, "catchUpEntries >= 0");
    this.options = options;
    this.snapshotIndexValue = options.storage.snapshot().metadata.index;
  }

  /** Index of the newest snapshot taken or started by this member (0: none). */
  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  /** True while a snapshot is being written. */
  get running(): boolean {
    return this.inflight !== null;
  }

  /**
   * Called after each processed Ready. Starts a snapshot when more than snapshotCount entries were
   * applied since the last one and none is running; `point` is only evaluated then.
   */
  maybeTrigger(appliedIndex: number, point: () => SnapshotPoint): void {
    if (this.inflight !== null || this.failed) return;
    if (appliedIndex - this.snapshotIndexValue <= this.snapshotCount) return;
    const at = point();
    assert(at.index === appliedIndex, "a snapshot is taken at the applied index");
    this.options.logger.info("triggering snapshot", {
      "local-member-id": formatId(this.options.memberId),
      "local-member-applied-index": appliedIndex,
      "local-member-snapshot-index": this.snapshotIndexValue,
      "local-member-snapshot-count": this.snapshotCount,
    });
    this.snapshotIndexValue = appliedIndex;
    // Captured now: the member list changes as later entries apply while the snapshot is written.
    const data = encodeSnapshotData(at.members);
    this.inflight = this.run(at.index, at.confState, data)
      .catch((error: unknown) => {
        this.failed = true;
        this.options.onFatal(error);
      })
      .finally(() => {
        this.inflight = null;
      });
  }

  /**
   * Persists a snapshot received from the leader before raft's storage takes it (etcd's SaveSnap ahead
   * of the WAL save): the file, then the WAL marker, so a restart loads it. Its database was installed
   * into the backend separately; the next snapshot of our own is due snapshotCount entries after it.
   */
  async saveReceived(snapshot: Snapshot): Promise<void> {
    await this.idle();
    const { index, term, confState } = snapshot.metadata;
    const confStateBytes = encodeConfState(confState);
    await this.options.snapshotter.save({ index, term, confState: confStateBytes, data: snapshot.data });
    await this.options.wal.saveSnapshotMarker({ index, term, confState: confStateBytes });
    this.snapshotIndexValue = Math.max(this.snapshotIndexValue, index);
    this.options.logger.info("saved snapshot", { "snapshot-index": index });
  }

  /** Settles once no snapshot is running (never rejects: a failure went to onFatal). */
  idle(): Promise<void> {
    return this.inflight ?? RESOLVED;
  }

  private async run(index: number, confState: ConfState, data: Uint8Array): Promise<void> {
    const { backend, storage, wal, snapshotter, logger } = this.options;
    await backend.forceCommit();
    assert(backend.durableIndex() >= index, "the backend is durable up to the snapshot index");
    this.step("backendCommitted", index);

    let snapshot: Snapshot;
    try {
      snapshot = storage.createSnapshot(index, confState, data);
    } catch (error) {
      // Raft installed a newer snapshot from the leader meanwhile (etcd ignores ErrSnapOutOfDate too).
      if (isRaftError(error, RaftErrorCode.SnapshotOutOfDate)) return;
      throw error;
    }
    this.step("created", index);

    const { term } = snapshot.metadata;
    const confStateBytes = encodeConfState(confState);
    await snapshotter.save({ index, term, confState: confStateBytes, data });
    this.step("fileSaved", index);
    await wal.saveSnapshotMarker({ index, term, confState: confStateBytes });
    this.step("markerSaved", index);
    logger.info("saved snapshot", { "snapshot-index": index });

    // Deleted segments are logged by the WAL ("purged").
    await wal.releaseTo(index);
    this.step("walReleased", index);

    const compactIndex = index > this.catchUpEntries ? index - this.catchUpEntries : 1;
    try {
      storage.compact(compactIndex);
    } catch (error) {
      // Already compacted that far (a snapshot from the leader, or fewer entries than catchUpEntries).
      if (isRaftError(error, RaftErrorCode.Compacted)) return;
      throw error;
    }
    logger.info("compacted Raft logs", { "compact-index": compactIndex });
    this.step("compacted", index);
  }

  private step(step: SnapshotStep, index: number): void {
    this.options.afterStep?.(step, index);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A snapshot's data: `{"members":[<member JSON>...]}`, each member in the members table's JSON. */
export function encodeSnapshotData(members: readonly Member[]): Uint8Array {
  const parts = members.map((m) => decoder.decode(encodeMemberContext(m)));
  return encoder.encode(`{"members":[${parts.join(",")}]}`);
}

/** The members a snapshot carries (for a member that installs a snapshot received from the leader). */
export function decodeSnapshotData(data: Uint8Array): Member[] {
  const parsed = JSON.parse(decoder.decode(data)) as unknown;
  assert(
    typeof parsed === "object" && parsed !== null && Array.isArray((parsed as { members?: unknown }).members),
    "snapshot data holds a members list",
  );
  const members = (parsed as { members: unknown[] }).members;
  return members.map((m) => decodeMemberContext(encoder.encode(JSON.stringify(m))));
}
