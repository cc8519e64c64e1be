// Helpers for the WAL tests: temp dirs, deterministic entries, hand-built segments, a recording logger.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CRC_FRAME_BYTES,
  encodeCrcRecord,
  encodeEntry,
  encodeHardState,
  encodeMetadata,
  encodeSnapshotMarker,
  entryFrameBytes,
  HARD_STATE_FRAME_BYTES,
  METADATA_FRAME_BYTES,
  sealFrame,
  snapshotFrameBytes,
} from "../../src/wal/format.js";
import type { WalLogger } from "../../src/wal/log.js";
import type { WalEntry, WalHardState, WalMetadata, WalSnapshotMarker } from "../../src/wal/types.js";

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "etcd-ts-wal-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Data that depends on (index, term) only, so a reader can check every byte. */
export function entryData(index: number, term: number, sizeBytes: number): Uint8Array {
  const data = new Uint8Array(sizeBytes);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < sizeBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function makeEntry(index: number, term = 1, sizeBytes = 64, type = 0): WalEntry {
  return { index, term, type, data: entryData(index, term, sizeBytes) };
}

export function makeEntries(from: number, to: number, term = 1, sizeBytes = 64): WalEntry[] {
  const out: WalEntry[] = [];
  for (let i = from; i <= to; i++) out.push(makeEntry(i, term, sizeBytes));
  return out;
}

export const METADATA: WalMetadata = { memberId: 0x8e9e05c52164694dn, clusterId: 0xcdf818194e3a8c32n };

export type RecordSpec =
  | { kind: "entry"; entry: WalEntry }
  | { kind: "hardState"; hardState: WalHardState }
  | { kind: "marker"; marker: WalSnapshotMarker }
  | { kind: "metadata"; metadata: WalMetadata };

export interface BuiltSegment {
  bytes: Uint8Array;
  /** Start offset of each record after the CRC record, in order. */
  offsets: number[];
  /** Offset just after the last record. */
  endOffset: number;
  chainCrc: number;
}

function specBytes(spec: RecordSpec): number {
  switch (spec.kind) {
    case "entry":
      return entryFrameBytes(spec.entry.data.length);
    case "hardState":
      return HARD_STATE_FRAME_BYTES;
    case "marker":
      return snapshotFrameBytes(spec.marker.confState.length);
    case "metadata":
      return METADATA_FRAME_BYTES;
  }
}

/** A segment as the writer would produce it: CRC record seeded with `chainCrc`, then the records. */
export function buildSegment(records: RecordSpec[], chainCrc = 0, sizeBytes?: number): BuiltSegment {
  let total = CRC_FRAME_BYTES;
  for (const r of records) total += specBytes(r);
  const bytes = new Uint8Array(Math.max(total, sizeBytes ?? 0));
  const view = new DataView(bytes.buffer);
  let off = encodeCrcRecord(view, 0, chainCrc);
  const offsets: number[] = [];
  let chain = chainCrc;
  for (const r of records) {
    offsets.push(off);
    const at = off;
    switch (r.kind) {
      case "entry":
        off += encodeEntry(view, bytes, off, r.entry);
        break;
      case "hardState":
        off += encodeHardState(view, bytes, off, r.hardState);
        break;
      case "marker":
        off += encodeSnapshotMarker(view, bytes, off, r.marker);
        break;
      case "metadata":
        off += encodeMetadata(view, bytes, off, r.metadata);
        break;
    }
    chain = sealFrame(view, bytes, at, chain);
  }
  return { bytes, offsets, endOffset: off, chainCrc: chain };
}

export const entryRec = (entry: WalEntry): RecordSpec => ({ kind: "entry", entry });
export const hardStateRec = (hardState: WalHardState): RecordSpec => ({ kind: "hardState", hardState });
export const markerRec = (index: number, term: number): RecordSpec => ({
  kind: "marker",
  marker: { index, term, confState: new Uint8Array([1, 2, 3]) },
});
export const metadataRec = (metadata: WalMetadata = METADATA): RecordSpec => ({ kind: "metadata", metadata });

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(): WalLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ level: "info", msg, fields }),
    warn: (fields, msg) => lines.push({ level: "warn", msg, fields }),
    error: (fields, msg) => lines.push({ level: "error", msg, fields }),
  };
}

/** Entry sizes of the crash test: mostly small, one in 16 spanning several sectors. */
export function crashEntrySize(index: number): number {
  return index % 16 === 0 ? 1500 + ((index * 131) % 3500) : 20 + ((index * 37) % 180);
}
