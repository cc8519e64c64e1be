import { type Database, open, type RootDatabase } from "lmdb";
import { TABLES } from "./backend.js";

/**
 * Opens the lmdb environment with every option that matters for durability set explicitly (lmdb-js
 * defaults have changed between versions; ours must not). The main thread (reads) and the writer thread
 * (commits) open the same directory with these same options; lmdb-js shares one native environment
 * between the threads of a process.
 *
 * Durability (see PERFORMANCE.md, "durability trap"):
 * - `overlappingSync: false`: a commit returns only after its pages and meta page are synced. With the
 *   Linux default (true) a commit becomes visible before it is flushed, and the flushed state is only
 *   known through `db.flushed`. We want "committed" to mean "durable" so that the committed index the
 *   writer publishes can bound WAL truncation.
 * - `noSync: false`, `noMetaSync: false`: fsync data and meta on every commit. The writer commits a large
 *   batch at a time (100 ms or 10k operations by default), so this is a few fsyncs per second.
 * - `useWritemap: false`: pages are written with write(2), a stray pointer cannot scribble on the map.
 * - `eventTurnBatching: false`, `commitDelay: 0`: we never use lmdb-js's asynchronous writes; every write
 *   happens in the writer's explicit `transactionSync`.
 * - `pageSize: 4096`, `mapSize`: the file grows on demand up to `mapSizeBytes` of address space.
 * - `cache: false`, `compression: false`, `encoding: "binary"`, `keyEncoding: "binary"`: raw bytes in and
 *   out, ordered bytewise.
 */
export interface LmdbEnv {
  env: RootDatabase;
  tables: Database<Buffer, Uint8Array>[];
}

export function openLmdbEnv(dir: string, mapSizeBytes: number): LmdbEnv {
  const env = open({
    path: dir,
    // Always a directory holding data.mdb and lock.mdb, even when the name has a dot in it.
    noSubdir: false,
    maxDbs: TABLES.length + 2,
    mapSize: mapSizeBytes,
    pageSize: 4096,
    overlappingSync: false,
    noSync: false,
    noMetaSync: false,
    useWritemap: false,
    eventTurnBatching: false,
    commitDelay: 0,
    cache: false,
    compression: false,
    encoding: "binary",
    keyEncoding: "binary",
  });
  const tables = TABLES.map(
    (name) =>
      env.openDB({
        name,
        encoding: "binary",
        keyEncoding: "binary",
        cache: false,
        compression: false,
      }) as unknown as Database<Buffer, Uint8Array>,
  );
  return { env, tables };
}

/** File names inside the environment directory (lmdb's default layout). */
export const DATA_FILE = "data.mdb";
export const LOCK_FILE = "lock.mdb";
