import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { assert } from "../assert.js";
import { crc32cUpdate } from "./crc32c.js";
import { WalError } from "./errors.js";
import { readU64, writeU64 } from "./format.js";
import { stderrLogger, type WalLogger } from "./log.js";
import type { WalSnapshotPosition } from "./types.js";

/**
 * Raft snapshot files: the snapshot's metadata (index, term, conf state) and the application state blob,
 * one file per snapshot, named `%016x-%016x.snap` (term, index) as etcd names them, so names sort oldest
 * to newest.
 *
 * File layout (little-endian):
 *
 *   0   8  magic "ETSSNAP1"
 *   8   4  CRC32C of every byte from offset 12 to the end
 *   12  4  zero
 *   16  8  index      24  8  term
 *   32  4  conf state bytes   36  4  zero
 *   40  8  data bytes
 *   48  ...  conf state, then data
 *
 * Written atomically: to a temporary file, fsynced, renamed into place, directory fsynced. A file that
 * fails its checks at load is renamed `.broken` (kept for inspection, as etcd does) and the next older
 * one is tried.
 */

export interface SnapshotFile {
  index: number;
  term: number;
  confState: Uint8Array;
  data: Uint8Array;
}

export interface SnapshotterOptions {
  /** Snapshot files kept after each save, newest first (etcd's --max-snapshots); 0 keeps all. */
  maxSnapshots?: number;
  logger?: WalLogger;
}

export const SNAPSHOTTER_DEFAULTS = { maxSnapshots: 5 } as const;

const MAGIC = new TextEncoder().encode("ETSSNAP1");
const HEADER_BYTES = 48;
const CRC_START = 12;
const SNAP_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const SNAP_SUFFIX = ".snap";
const TEMP_SUFFIX = ".tmp";
const BROKEN_SUFFIX = ".broken";

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}

export function snapshotName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}${SNAP_SUFFIX}`;
}

function encodeHeader(snapshot: SnapshotFile): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(MAGIC, 0);
  writeU64(view, 16, snapshot.index);
  writeU64(view, 24, snapshot.term);
  view.setUint32(32, snapshot.confState.length, true);
  writeU64(view, 40, snapshot.data.length);
  let crc = crc32cUpdate(0, header, CRC_START, HEADER_BYTES);
  crc = crc32cUpdate(crc, snapshot.confState);
  crc = crc32cUpdate(crc, snapshot.data);
  view.setUint32(8, crc, true);
  return header;
}

/** Decodes and checks a snapshot file's bytes; throws SNAP_CORRUPT with the reason. */
export function decodeSnapshot(bytes: Uint8Array, file: string): SnapshotFile {
  const corrupt = (reason: string): never => {
    throw new WalError("SNAP_CORRUPT", `snap: ${file} is corrupt: ${reason}`);
  };
  if (bytes.length < HEADER_BYTES) corrupt(`${bytes.length} bytes is shorter than the header`);
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) corrupt("bad magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const index = readU64(view, 16);
  const term = readU64(view, 24);
  const confBytes = view.getUint32(32, true);
  const dataBytes = readU64(view, 40);
  // Sizes first: a truncated file (the common damage) gets a message that says so.
  if (HEADER_BYTES + confBytes + dataBytes !== bytes.length) corrupt("sizes do not add up to the file size");
  const crc = crc32cUpdate(0, bytes, CRC_START, bytes.length);
  if (crc !== view.getUint32(8, true)) corrupt("CRC mismatch");
  if (index < 0 || term < 0 || dataBytes < 0) corrupt("index, term or size out of range");
  const confEnd = HEADER_BYTES + confBytes;
  return {
    index,
    term,
    confState: bytes.slice(HEADER_BYTES, confEnd),
    data: bytes.slice(confEnd, confEnd + dataBytes),
  };
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class Snapshotter {
  private readonly maxSnapshots: number;
  private readonly logger: WalLogger;

  constructor(
    readonly dir: string,
    options: SnapshotterOptions = {},
  ) {
    this.maxSnapshots = options.maxSnapshots ?? SNAPSHOTTER_DEFAULTS.maxSnapshots;
    assert(Number.isSafeInteger(this.maxSnapshots) && this.maxSnapshots >= 0, "maxSnapshots >= 0");
    this.logger = options.logger ?? stderrLogger;
  }

  /**
   * Writes a snapshot file atomically and durably, then purges beyond maxSnapshots. Resolves with the
   * file name once the file and its directory entry are synced.
   */
  async save(snapshot: SnapshotFile): Promise<string> {
    assert(
      Number.isSafeInteger(snapshot.index) && snapshot.index >= 1,
      "snapshot index is a safe integer >= 1",
    );
    assert(Number.isSafeInteger(snapshot.term) && snapshot.term >= 0, "snapshot term is a safe integer >= 0");
    assert(snapshot.confState.length <= 0xffffffff, "conf state fits a u32 length");
    await mkdir(this.dir, { recursive: true });
    const name = snapshotName(snapshot.term, snapshot.index);
    const tempPath = join(this.dir, name + TEMP_SUFFIX);
    const handle = await open(tempPath, "w", 0o600);
    try {
      const parts = [encodeHeader(snapshot), snapshot.confState, snapshot.data];
      const total = HEADER_BYTES + snapshot.confState.length + snapshot.data.length;
      const { bytesWritten } = await handle.writev(parts, 0);
      if (bytesWritten !== total)
        throw new Error(`snap: short write of ${name}: ${bytesWritten} of ${total}`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tempPath, join(this.dir, name));
    await fsyncDirectory(this.dir);
    await this.purge();
    return name;
  }

  /** The newest valid snapshot, or null if there is none. Corrupt files are renamed `.broken`. */
  loadNewest(): Promise<SnapshotFile | null> {
    return this.loadMatching(() => true);
  }

  /**
   * The newest valid snapshot that has a marker in the WAL (etcd's LoadNewestAvailable): a snapshot
   * file written just before a crash, whose marker never reached the WAL, is passed over.
   */
  loadNewestAvailable(markers: readonly WalSnapshotPosition[]): Promise<SnapshotFile | null> {
    return this.loadMatching((s) => markers.some((m) => m.index === s.index && m.term === s.term));
  }

  private async loadMatching(match: (snapshot: SnapshotFile) => boolean): Promise<SnapshotFile | null> {
    const names = await this.snapshotNames();
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const path = join(this.dir, name);
      let snapshot: SnapshotFile;
      try {
        const buffer = await readFile(path);
        snapshot = decodeSnapshot(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), name);
      } catch (err) {
        this.logger.warn({ path, error: (err as Error).message }, "snap: failed to read a snapshot file");
        await rename(path, path + BROKEN_SUFFIX);
        this.logger.warn({ path, brokenPath: path + BROKEN_SUFFIX }, "snap: renamed a broken snapshot file");
        continue;
      }
      if (match(snapshot)) return snapshot;
    }
    return null;
  }

  /** Snapshot file names, oldest first; none when the directory does not exist. */
  private async snapshotNames(): Promise<string[]> {
    let all: string[];
    try {
      all = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    // Temporary files of an interrupted save are ignored; the next save of that name overwrites it.
    return all.filter((name) => SNAP_NAME.test(name)).sort();
  }

  /** Deletes the oldest snapshot files beyond maxSnapshots; returns how many. */
  async purge(): Promise<number> {
    if (this.maxSnapshots === 0) return 0;
    const names = (await readdir(this.dir)).filter((n) => SNAP_NAME.test(n)).sort();
    const excess = names.length - this.maxSnapshots;
    for (let i = 0; i < excess; i++) {
      await rm(join(this.dir, names[i]!), { force: true });
      this.logger.info({ path: join(this.dir, names[i]!) }, "purged");
    }
    return Math.max(0, excess);
  }
}
