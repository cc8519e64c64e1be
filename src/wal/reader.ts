import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { crc32cUpdate } from "./crc32c.js";
import { WalCorruptError, WalError } from "./errors.js";
import {
  BODY_BYTES_LIMIT,
  ENTRY_FIXED_BYTES,
  FRAME_HEADER_BYTES,
  HARD_STATE_BYTES,
  METADATA_BYTES,
  PAYLOAD_OFFSET,
  RECORD_HEADER_BYTES,
  RecordType,
  readU64,
  SNAPSHOT_FIXED_BYTES,
} from "./format.js";
import { isContiguous, listSegments, type SegmentName, searchSegment } from "./segments.js";
import {
  EMPTY_HARD_STATE,
  type WalEntry,
  type WalHardState,
  type WalMetadata,
  type WalSnapshotMarker,
  type WalSnapshotPosition,
} from "./types.js";

/**
 * Torn writes are recognised at sector granularity: a device persists a 512-byte sector whole or not at
 * all, and unwritten space in a segment reads as zeros (segments are preallocated with zeros, and the
 * tail beyond the last valid record is zeroed at open). A record whose CRC fails and which has a
 * sector-aligned chunk of all zeros in its body is a write that did not finish: it, and everything
 * after it, was never reported durable (the writer reports durability only after fdatasync).
 */
export const SECTOR_BYTES = 512;

/** Everything recovery learns from the records, in the order they were written. */
export interface DecodeState {
  readonly start: WalSnapshotPosition;
  /** Chain value after the last record read. */
  chainCrc: number;
  /** No record read yet: the first record must be a CRC record, whose value seeds the chain. */
  atStart: boolean;
  metadata: WalMetadata | null;
  hardState: WalHardState;
  /** Entries above `start.index`, contiguous, with overwritten tails already replaced. */
  entries: WalEntry[];
  snapshotMarkers: WalSnapshotMarker[];
  /** A marker equal to `start` was read (always true for the empty start, index 0). */
  startFound: boolean;
  /** Index of the last entry (or later snapshot marker) read: where appends continue. */
  lastIndex: number;
  /** False when only markers and hard state are wanted (reading from the first segment on disk). */
  collectEntries: boolean;
}

export function newDecodeState(start: WalSnapshotPosition): DecodeState {
  return {
    start,
    chainCrc: 0,
    atStart: true,
    metadata: null,
    hardState: { ...EMPTY_HARD_STATE },
    entries: [],
    snapshotMarkers: [],
    startFound: false,
    lastIndex: 0,
    collectEntries: true,
  };
}

export interface SegmentDecodeResult {
  /** Offset just after the last valid record. */
  endOffset: number;
  /** Set when the segment ends in a torn write (only possible in the last segment). */
  torn: { offsetBytes: number; reason: string } | null;
}

function isAllZero(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** True when some sector-aligned piece of [start, end) is all zeros: a sector that was never written. */
function hasUnwrittenSector(bytes: Uint8Array, start: number, end: number): boolean {
  let chunkStart = start;
  while (chunkStart < end) {
    const chunkEnd = Math.min(end, (Math.floor(chunkStart / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    if (isAllZero(bytes, chunkStart, chunkEnd)) return true;
    chunkStart = chunkEnd;
  }
  return false;
}

/**
 * Decodes one segment into `state`. Throws WalCorruptError (naming file and offset) for a bad record that
 * a torn write cannot explain; in the last segment (`isLast`) a torn write ends decoding instead.
 */
export function decodeSegment(
  bytes: Uint8Array,
  file: string,
  isLast: boolean,
  state: DecodeState,
): SegmentDecodeResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = bytes.length;
  let off = 0;
  const corrupt = (reason: string): never => {
    throw new WalCorruptError(file, off, reason);
  };
  for (;;) {
    if (off + FRAME_HEADER_BYTES > size) {
      if (off === size || isAllZero(bytes, off, size)) return { endOffset: off, torn: null };
      if (isLast)
        return { endOffset: off, torn: { offsetBytes: off, reason: "partial length word at end of file" } };
      corrupt("partial length word at end of file");
    }
    const bodyBytes = view.getUint32(off, true);
    const padWord = view.getUint32(off + 4, true);
    if (bodyBytes === 0 && padWord === 0) {
      // Never-written space. A segment the writer has moved past was truncated at its end and synced,
      // so nothing may follow; in the last segment, leftovers of an unfinished write are cut at open.
      if (!isLast && !isAllZero(bytes, off, size)) corrupt("data after the end of records");
      return { endOffset: off, torn: null };
    }
    if (bodyBytes < RECORD_HEADER_BYTES || bodyBytes > BODY_BYTES_LIMIT)
      corrupt(`bad body length ${bodyBytes}`);
    const padBytes = ((bodyBytes + 7) & ~7) - bodyBytes;
    if (padWord !== padBytes) corrupt(`bad padding word ${padWord} for body length ${bodyBytes}`);
    const bodyEnd = off + FRAME_HEADER_BYTES + bodyBytes;
    const frameEnd = bodyEnd + padBytes;
    if (frameEnd > size) {
      if (isLast)
        return { endOffset: off, torn: { offsetBytes: off, reason: "record runs past end of file" } };
      corrupt("record runs past end of file");
    }
    const storedCrc = view.getUint32(off + 8, true);
    const type = bytes[off + 12]!;
    // Each segment opens with exactly one CRC record, and only there.
    if ((off === 0) !== (type === RecordType.CRC)) corrupt("CRC record out of place");
    if (type === RecordType.CRC) {
      if (bodyBytes !== RECORD_HEADER_BYTES) corrupt("bad CRC record length");
      if (!state.atStart && storedCrc !== state.chainCrc) corrupt("CRC record does not continue the chain");
      state.chainCrc = storedCrc;
      state.atStart = false;
    } else {
      if (state.atStart) corrupt("segment does not start with a CRC record");
      const computed = crc32cUpdate(state.chainCrc, bytes, off + 12, bodyEnd);
      if (computed !== storedCrc) {
        if (isLast && hasUnwrittenSector(bytes, off + FRAME_HEADER_BYTES, bodyEnd)) {
          return {
            endOffset: off,
            torn: { offsetBytes: off, reason: "CRC mismatch in a partly written record" },
          };
        }
        corrupt("CRC mismatch");
      }
      state.chainCrc = computed;
      applyRecord(view, bytes, off, type, bodyBytes, state, corrupt);
    }
    if (bytes[off + 13] !== 0 || bytes[off + 14] !== 0 || bytes[off + 15] !== 0)
      corrupt("non-zero reserved bytes");
    if (!isAllZero(bytes, bodyEnd, frameEnd)) corrupt("non-zero padding");
    off = frameEnd;
  }
}

function applyRecord(
  view: DataView,
  bytes: Uint8Array,
  off: number,
  type: number,
  bodyBytes: number,
  state: DecodeState,
  corrupt: (reason: string) => never,
): void {
  const p = off + PAYLOAD_OFFSET;
  const payloadBytes = bodyBytes - RECORD_HEADER_BYTES;
  switch (type) {
    case RecordType.ENTRY: {
      if (payloadBytes < ENTRY_FIXED_BYTES) corrupt("short entry record");
      const term = readU64(view, p);
      const index = readU64(view, p + 8);
      if (term < 0 || index < 1) corrupt("entry term or index out of range");
      if (view.getUint32(p + 20, true) !== 0) corrupt("non-zero reserved entry bytes");
      const entry: WalEntry = {
        term,
        index,
        type: view.getUint32(p + 16, true),
        data: bytes.slice(p + ENTRY_FIXED_BYTES, p + payloadBytes),
      };
      applyEntry(entry, state);
      return;
    }
    case RecordType.HARD_STATE: {
      if (payloadBytes !== HARD_STATE_BYTES) corrupt("bad hard state record length");
      const term = readU64(view, p);
      const commit = readU64(view, p + 16);
      if (term < 0 || commit < 0) corrupt("hard state term or commit out of range");
      state.hardState = { term, vote: view.getBigUint64(p + 8, true), commit };
      return;
    }
    case RecordType.METADATA: {
      if (payloadBytes !== METADATA_BYTES) corrupt("bad metadata record length");
      const metadata = { memberId: view.getBigUint64(p, true), clusterId: view.getBigUint64(p + 8, true) };
      if (
        state.metadata !== null &&
        (state.metadata.memberId !== metadata.memberId || state.metadata.clusterId !== metadata.clusterId)
      ) {
        throw new WalError("WAL_METADATA_CONFLICT", "wal: conflicting metadata found");
      }
      state.metadata = metadata;
      return;
    }
    case RecordType.SNAPSHOT: {
      if (payloadBytes < SNAPSHOT_FIXED_BYTES) corrupt("short snapshot record");
      const index = readU64(view, p);
      const term = readU64(view, p + 8);
      if (index < 0 || term < 0) corrupt("snapshot index or term out of range");
      const marker = { index, term, confState: bytes.slice(p + SNAPSHOT_FIXED_BYTES, p + payloadBytes) };
      state.snapshotMarkers.push(marker);
      if (index === state.start.index) {
        if (term !== state.start.term) {
          throw new WalError(
            "WAL_SNAPSHOT_MISMATCH",
            `wal: snapshot mismatch: opened at index ${index} term ${state.start.term}, recorded term ${term}`,
          );
        }
        state.startFound = true;
      }
      if (state.lastIndex < index) state.lastIndex = index;
      return;
    }
    default:
      corrupt(`unknown record type ${type}`);
  }
}

/**
 * Raft may overwrite an uncommitted tail: an entry at or below the last one read replaces it and
 * everything after it (raft paper, figure 7). Entries at or below the start snapshot are already in the
 * snapshot. A gap (an entry beyond last + 1) means records are missing: refuse.
 */
function applyEntry(entry: WalEntry, state: DecodeState): void {
  const start = state.start.index;
  if (state.collectEntries && entry.index > start) {
    const position = entry.index - start - 1;
    if (position > state.entries.length) {
      throw new WalError(
        "WAL_INDEX_GAP",
        `wal: entry ${entry.index} does not follow entry ${start + state.entries.length} (snapshot at ${start})`,
      );
    }
    state.entries.length = position;
    state.entries.push(entry);
  }
  state.lastIndex = entry.index;
}

export interface WalReadResult {
  state: DecodeState;
  /** Segments read, from the one the start position selected to the last. */
  segments: SegmentName[];
  /** The last segment and where its valid records end. */
  tail: { segment: SegmentName; endOffsetBytes: number; fileSizeBytes: number; lastNonZeroEnd: number };
  torn: { file: string; offsetBytes: number; reason: string } | null;
  tempFiles: string[];
}

function lastNonZeroEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.length - 1; i >= from; i--) if (bytes[i] !== 0) return i + 1;
  return from;
}

/** Bytes read per read(2) while following a segment's records and while checking its zero tail. */
const SEGMENT_READ_CHUNK_BYTES = 1 << 20;

export interface LoadedSegment {
  /**
   * The file's first bytes: every frame up to the first zero length word (the end of records), or the
   * whole file. The rest of the file, when any, is all zeros.
   */
  bytes: Uint8Array;
  fileSizeBytes: number;
}

/**
 * Reads a segment's records without reading its preallocated zero tail into memory. A fresh segment is
 * 64 MB of zeros with a few KiB of records: reading it whole made a 64 MB buffer at every open (RSS that
 * stayed until a full GC). Instead the frames are followed by their length words, reading chunk by chunk
 * into a buffer of the file's size whose untouched pages the kernel never backs, and the rest is checked
 * to be zeros through one small chunk. `decodeSegment` of the result gives exactly what it gives for the
 * whole file: it reads no byte past the frames walked here, and past them the file is zeros. Anything
 * unusual (a bad length word, non-zero bytes after the end of records) falls back to the whole file, so
 * errors and torn-write handling are those of the whole-file decode.
 */
export async function loadSegment(path: string): Promise<LoadedSegment> {
  const handle = await open(path, "r");
  try {
    const fileSizeBytes = (await handle.stat()).size;
    const bytes = new Uint8Array(fileSizeBytes);
    let loaded = 0;
    /** Makes bytes [0, end) present (end is clamped to the file's size). */
    const loadTo = async (end: number): Promise<void> => {
      const target = Math.min(end, fileSizeBytes);
      while (loaded < target) {
        const length = Math.max(target - loaded, Math.min(SEGMENT_READ_CHUNK_BYTES, fileSizeBytes - loaded));
        const { bytesRead } = await handle.read(bytes, loaded, length, loaded);
        if (bytesRead === 0) throw new WalError("WAL_CORRUPT", `wal: ${path} shrank while being read`);
        loaded += bytesRead;
      }
    };
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    for (;;) {
      await loadTo(off + FRAME_HEADER_BYTES);
      if (off + FRAME_HEADER_BYTES > fileSizeBytes) break;
      const bodyBytes = view.getUint32(off, true);
      const padWord = view.getUint32(off + 4, true);
      if (bodyBytes === 0 && padWord === 0) break;
      if (bodyBytes < RECORD_HEADER_BYTES || bodyBytes > BODY_BYTES_LIMIT)
        return await loadWhole(handle, path);
      off += FRAME_HEADER_BYTES + ((bodyBytes + 7) & ~7);
      await loadTo(off);
      if (off >= fileSizeBytes) break;
    }
    const prefixEnd = Math.min(off, fileSizeBytes);
    await loadTo(prefixEnd);
    if (!(await zerosFrom(handle, loaded, fileSizeBytes))) return await loadWhole(handle, path);
    return { bytes: bytes.subarray(0, loaded), fileSizeBytes };
  } finally {
    await handle.close();
  }
}

/** The original way: the whole file in one buffer (for segments whose tail is not plain zeros). */
async function loadWhole(handle: FileHandle, path: string): Promise<LoadedSegment> {
  const fileSizeBytes = (await handle.stat()).size;
  const bytes = new Uint8Array(fileSizeBytes);
  let loaded = 0;
  while (loaded < fileSizeBytes) {
    const { bytesRead } = await handle.read(bytes, loaded, fileSizeBytes - loaded, loaded);
    if (bytesRead === 0) throw new WalError("WAL_CORRUPT", `wal: ${path} shrank while being read`);
    loaded += bytesRead;
  }
  return { bytes, fileSizeBytes };
}

/** True when the file's bytes [from, end) are all zeros, read through one small reused chunk. */
async function zerosFrom(handle: FileHandle, from: number, end: number): Promise<boolean> {
  if (from >= end) return true;
  const chunk = new Uint8Array(Math.min(SEGMENT_READ_CHUNK_BYTES, end - from));
  let position = from;
  while (position < end) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, end - position), position);
    if (bytesRead === 0) return false;
    if (!isAllZero(chunk, 0, bytesRead)) return false;
    position += bytesRead;
  }
  return true;
}

/**
 * Reads every record from the segment that holds `start` to the end of the log, without changing any
 * file. Segments are read one at a time; entry payloads are copied out so segment buffers can be freed.
 * With `allSegments`, reading starts at the oldest segment on disk and entries are not collected (for
 * listing snapshot markers).
 */
export async function readWal(
  dir: string,
  start: WalSnapshotPosition,
  allSegments = false,
): Promise<WalReadResult> {
  const { segments: all, tempFiles } = await listSegments(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new WalError("WAL_NOT_FOUND", `wal: directory ${dir} does not exist`);
    }
    throw err;
  });
  if (all.length === 0) throw new WalError("WAL_NOT_FOUND", `wal: no segment files in ${dir}`);
  const from = allSegments ? 0 : searchSegment(all, start.index);
  if (from < 0) {
    throw new WalError(
      "WAL_NOT_FOUND",
      `wal: no segment file covers snapshot index ${start.index} in ${dir}`,
    );
  }
  if (!isContiguous(all, from)) {
    throw new WalError(
      "WAL_CORRUPT",
      `wal: segment sequence numbers in ${dir} are not contiguous (a file is missing)`,
    );
  }
  const segments = all.slice(from);
  const state = newDecodeState(start);
  state.collectEntries = !allSegments;
  if (start.index === 0) state.startFound = true;
  let torn: WalReadResult["torn"] = null;
  let tail: WalReadResult["tail"] | null = null;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const isLast = i === segments.length - 1;
    const { bytes, fileSizeBytes } = await loadSegment(join(dir, segment.name));
    state.atStart = i === 0;
    const result = decodeSegment(bytes, segment.name, isLast, state);
    if (result.torn !== null) torn = { file: segment.name, ...result.torn };
    if (isLast) {
      tail = {
        segment,
        endOffsetBytes: result.endOffset,
        fileSizeBytes,
        // Beyond `bytes` the file is all zeros (loadSegment checked), so the scan can stop at its end.
        lastNonZeroEnd: lastNonZeroEnd(bytes, result.endOffset),
      };
    }
  }
  return { state, segments, tail: tail!, torn, tempFiles };
}
