/**
 * The storage backend: named tables of byte keys to byte values, written in batches that carry the raft
 * consistent index, read synchronously on the main thread.
 *
 * Contract (every implementation: lmdb here, the pure-TypeScript one in native-free/ later):
 * - Writes (`put`, `delete`) are grouped into units. `seal(index, term)` ends the current unit; a unit is
 *   the writes of one applied raft entry (or of one internal step such as a compaction batch). Units are
 *   committed to disk in order and atomically, each together with the consistent index and term of its
 *   seal, so after a crash the store holds every unit up to some seal and nothing after it.
 * - Reads (`get`, `range`) see every write handed to the backend so far, sealed or not, committed or not:
 *   "read your writes", like etcd's txReadBuffer. They are synchronous and consistent for the duration of
 *   one call (a range visits one point-in-time view).
 * - Bytes handed to `put` are owned by the backend from then on (the caller must not change them). Bytes
 *   returned by `get` and passed to `range` visitors are never changed by the backend and may be kept; they
 *   may be shared with the backend, so the caller must not change them either.
 * - `forceCommit()` resolves once every sealed unit so far is durable on disk.
 * - A failed commit is fatal: the implementation ends the process (or calls its `onFatal`), it never goes
 *   on with a backend that lost writes.
 */

/** Tables, named after etcd 3.4's bbolt buckets. */
export const TABLES = [
  "key",
  "meta",
  "lease",
  "alarm",
  "cluster",
  "members",
  "members_removed",
  "auth",
  "authUsers",
  "authRoles",
] as const;

export type TableName = (typeof TABLES)[number];

/** Numeric table ids, for compact framing between threads. */
export const TABLE_ID: Readonly<Record<TableName, number>> = Object.fromEntries(
  TABLES.map((name, i) => [name, i]),
) as Record<TableName, number>;

/**
 * Keys of the meta table. `consistent_index` and `term` are written by the backend itself at each commit
 * (8-byte big-endian); the compaction keys are written by mvcc (8-byte big-endian main revision).
 */
export const MetaKeys = {
  consistentIndex: "consistent_index",
  term: "term",
  scheduledCompactRev: "scheduledCompactRev",
  finishedCompactRev: "finishedCompactRev",
} as const;

/** Return false to stop a range scan. */
export type RangeVisitor = (key: Uint8Array, value: Uint8Array) => boolean | undefined;

/** A consistent point-in-time image of the whole backend, streamed in chunks (Maintenance.Snapshot). */
export interface BackendSnapshot {
  /** Total bytes the chunks will add up to. */
  readonly sizeBytes: number;
  /** Chunks of at most `chunkBytes` bytes, in order. */
  chunks(chunkBytes: number): AsyncIterable<Uint8Array>;
  /** Releases the image (temporary files). Safe to call twice. */
  close(): Promise<void>;
}

export interface Backend {
  /** Reads one value, or undefined. */
  get(table: TableName, key: Uint8Array): Uint8Array | undefined;

  /**
   * Visits keys with start <= key < end in ascending byte order (end null: no upper bound), at most
   * `limit` of them (0: no limit), until the visitor returns false.
   */
  range(
    table: TableName,
    start: Uint8Array,
    end: Uint8Array | null,
    visit: RangeVisitor,
    limit?: number,
  ): void;

  /** Stores `value` at `key` in the current unit. The backend owns both arrays from now on. */
  put(table: TableName, key: Uint8Array, value: Uint8Array): void;

  /** Removes `key` in the current unit (no error when absent). */
  delete(table: TableName, key: Uint8Array): void;

  /**
   * Ends the current unit: it will be committed atomically with this consistent index and term.
   * `index` never goes back (the same index may seal internal units, e.g. compaction batches).
   */
  seal(index: number, term: number): void;

  /** The consistent index and term of the last seal (as read at open before any seal). */
  readonly consistentIndex: number;
  readonly term: number;

  /** The consistent index of the last unit known to be durable on disk. */
  durableIndex(): number;

  /** Resolves when every unit sealed before the call is durable. */
  forceCommit(): Promise<void>;

  /** Bytes held by the backend files on disk. */
  sizeBytes(): number;

  /** Bytes of `sizeBytes` holding live data (the rest is free pages). */
  sizeInUseBytes(): number;

  /** Rewrites the files without free space. Writes must not be issued until it resolves. */
  defragment(): Promise<void>;

  /** True while `defragment` or `installSnapshot` runs: the caller must hold writes back. */
  readonly defragmenting: boolean;

  /**
   * Replaces the whole contents (every table, the consistent index and term) with those of the backend
   * image in the file at `path`, as a follower installs the database of a raft snapshot (etcd's
   * applySnapshot). The image is what another backend of the same kind streamed from `snapshot()`.
   *
   * - Preconditions: every write so far is sealed; no write is issued until the promise resolves (the
   *   backend reports `defragmenting` meanwhile, like defragmentation).
   * - Reads go on against the old contents until one synchronous step switches them to the new ones;
   *   `onInstalled`, when given, runs inside that same step, so the layers above rebuild their in-memory
   *   state before any other code can read the new contents. It may read the backend, never write it.
   * - Crash safety: a crash at any point leaves the old contents whole (and the file at `path` in place,
   *   so the install can be run again) or the new contents whole (and the file gone); never a mix.
   * - The file is consumed: moved into the backend or deleted. It must be on the same file system as the
   *   backend (it is: the received snapshot lies in the member's snap directory, beside `snap/db`).
   * - Afterwards `consistentIndex`/`term` are the image's. They are not checked against the old ones: the
   *   caller installs only an image newer than what it applied.
   * - A file that is not a backend image fails with InvalidSnapshotFileError, leaving everything as it was.
   */
  installSnapshot(path: string, onInstalled?: () => void): Promise<void>;

  /** A consistent copy of everything sealed before the call. */
  snapshot(): Promise<BackendSnapshot>;

  /** Commits everything sealed, stops the writer and releases the files. */
  close(): Promise<void>;
}

/** `installSnapshot` was given a file that is not a backend image of this kind (nothing was changed). */
export class InvalidSnapshotFileError extends Error {
  readonly code = "InvalidSnapshotFile";
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path} is not a backend snapshot: ${reason}`);
    this.name = "InvalidSnapshotFileError";
  }
}
