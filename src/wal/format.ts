import { assert } from "../assert.js";
import { crc32cUpdate } from "./crc32c.js";
import type { WalEntry, WalHardState, WalMetadata, WalSnapshotMarker } from "./types.js";

/**
 * On-disk record layout. Every record is a frame, 8-byte aligned from the start of its segment:
 *
 *   offset  size  field
 *   0       4     bodyBytes (u32 LE): bytes of the body that follows, without padding; >= 8
 *   4       1     padBytes: zero bytes after the body so the next frame starts 8-byte aligned (0..7)
 *   5       3     zero
 *   8       4     crc (u32 LE): CRC32C of body[4, bodyBytes) chained from the previous record's crc
 *   12      1     type (RecordType)
 *   13      3     zero
 *   16      ...   type-specific payload (bodyBytes - 8 bytes), then padBytes zero bytes
 *
 * Why this shape (after etcd's wal/doc.go): the 8-byte length word is aligned, so it lies inside one
 * sector and a torn write cannot tear it; a length word of zero (never valid, bodyBytes >= 8) is the
 * preallocated, never-written space that ends a segment; the length word carries the padding, so a
 * reader can check it against bodyBytes. The CRC chain starts at each segment's first record (a CRC
 * record carrying the previous segment's last crc), so a record moved, dropped or replayed from another
 * place fails its check.
 *
 * All integers are little-endian. u64 terms and indexes are written as two u32 halves from numbers
 * asserted to be safe integers; ids (vote, member and cluster id) are bigint.
 */

export const RecordType = {
  METADATA: 1,
  ENTRY: 2,
  HARD_STATE: 3,
  CRC: 4,
  SNAPSHOT: 5,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** The length word. */
export const FRAME_HEADER_BYTES = 8;
/** crc + type + zero bytes, the start of every body. */
export const RECORD_HEADER_BYTES = 8;
/** Offset of the payload from the start of the frame. */
export const PAYLOAD_OFFSET = FRAME_HEADER_BYTES + RECORD_HEADER_BYTES;
/** term u64, index u64, entry type u32, zero u32. */
export const ENTRY_FIXED_BYTES = 24;
/** term u64, vote u64, commit u64. */
export const HARD_STATE_BYTES = 24;
/** index u64, term u64 (then the opaque conf state). */
export const SNAPSHOT_FIXED_BYTES = 16;
/** member id u64, cluster id u64. */
export const METADATA_BYTES = 16;
/**
 * The largest body any reader accepts, whatever the writer's configured limit: a sanity bound so a
 * corrupt length word cannot make recovery allocate gigabytes.
 */
export const BODY_BYTES_LIMIT = 1 << 30;

const TWO_POW_32 = 4294967296;
/** Largest high half of a u64 that still gives a safe integer. */
const SAFE_HIGH_MAX = 0x1fffff;

export function align8(n: number): number {
  return (n + 7) & ~7;
}

export function frameBytesForBody(bodyBytes: number): number {
  return FRAME_HEADER_BYTES + align8(bodyBytes);
}

export function entryFrameBytes(dataBytes: number): number {
  return frameBytesForBody(RECORD_HEADER_BYTES + ENTRY_FIXED_BYTES + dataBytes);
}

export const HARD_STATE_FRAME_BYTES = frameBytesForBody(RECORD_HEADER_BYTES + HARD_STATE_BYTES);
export const METADATA_FRAME_BYTES = frameBytesForBody(RECORD_HEADER_BYTES + METADATA_BYTES);
export const CRC_FRAME_BYTES = frameBytesForBody(RECORD_HEADER_BYTES);

export function snapshotFrameBytes(confStateBytes: number): number {
  return frameBytesForBody(RECORD_HEADER_BYTES + SNAPSHOT_FIXED_BYTES + confStateBytes);
}

export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_POW_32), true);
}

/** Reads a u64 as a number, or -1 if it is not a safe integer (only a corrupt record can hold one). */
export function readU64(view: DataView, offset: number): number {
  const high = view.getUint32(offset + 4, true);
  if (high > SAFE_HIGH_MAX) return -1;
  return high * TWO_POW_32 + view.getUint32(offset, true);
}

/**
 * Writes a frame's length word and record header (crc left zero: the writer seals it) and the zero
 * padding after the body. Returns the frame size. `bytes` and `view` cover the same memory.
 */
function writeFrameHeader(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  type: RecordType,
  bodyBytes: number,
): number {
  const frameBytes = frameBytesForBody(bodyBytes);
  const padBytes = frameBytes - FRAME_HEADER_BYTES - bodyBytes;
  view.setUint32(offset, bodyBytes, true);
  view.setUint32(offset + 4, padBytes, true);
  view.setUint32(offset + 8, 0, true);
  view.setUint32(offset + 12, type, true);
  if (padBytes > 0) bytes.fill(0, offset + frameBytes - padBytes, offset + frameBytes);
  return frameBytes;
}

export function encodeEntry(view: DataView, bytes: Uint8Array, offset: number, entry: WalEntry): number {
  const dataBytes = entry.data.length;
  const frameBytes = writeFrameHeader(
    view,
    bytes,
    offset,
    RecordType.ENTRY,
    RECORD_HEADER_BYTES + ENTRY_FIXED_BYTES + dataBytes,
  );
  const p = offset + PAYLOAD_OFFSET;
  writeU64(view, p, entry.term);
  writeU64(view, p + 8, entry.index);
  view.setUint32(p + 16, entry.type, true);
  view.setUint32(p + 20, 0, true);
  bytes.set(entry.data, p + ENTRY_FIXED_BYTES);
  return frameBytes;
}

export function encodeHardState(view: DataView, bytes: Uint8Array, offset: number, hs: WalHardState): number {
  const frameBytes = writeFrameHeader(
    view,
    bytes,
    offset,
    RecordType.HARD_STATE,
    RECORD_HEADER_BYTES + HARD_STATE_BYTES,
  );
  const p = offset + PAYLOAD_OFFSET;
  writeU64(view, p, hs.term);
  view.setBigUint64(p + 8, hs.vote, true);
  writeU64(view, p + 16, hs.commit);
  return frameBytes;
}

export function encodeSnapshotMarker(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  marker: WalSnapshotMarker,
): number {
  const frameBytes = writeFrameHeader(
    view,
    bytes,
    offset,
    RecordType.SNAPSHOT,
    RECORD_HEADER_BYTES + SNAPSHOT_FIXED_BYTES + marker.confState.length,
  );
  const p = offset + PAYLOAD_OFFSET;
  writeU64(view, p, marker.index);
  writeU64(view, p + 8, marker.term);
  bytes.set(marker.confState, p + SNAPSHOT_FIXED_BYTES);
  return frameBytes;
}

export function encodeMetadata(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  metadata: WalMetadata,
): number {
  const frameBytes = writeFrameHeader(
    view,
    bytes,
    offset,
    RecordType.METADATA,
    RECORD_HEADER_BYTES + METADATA_BYTES,
  );
  const p = offset + PAYLOAD_OFFSET;
  view.setBigUint64(p, metadata.memberId, true);
  view.setBigUint64(p + 8, metadata.clusterId, true);
  return frameBytes;
}

/**
 * A CRC record opens every segment. Its crc field is not a checksum of itself: it carries the chain value
 * the segment starts from (the last crc of the previous segment, 0 for the first one).
 */
export function encodeCrcRecord(view: DataView, offset: number, chainCrc: number): number {
  view.setUint32(offset, RECORD_HEADER_BYTES, true);
  view.setUint32(offset + 4, 0, true);
  view.setUint32(offset + 8, chainCrc >>> 0, true);
  view.setUint32(offset + 12, RecordType.CRC, true);
  return CRC_FRAME_BYTES;
}

/** Validates the fields of an entry the caller hands in (programmer errors: asserts). */
export function assertEntryFields(entry: WalEntry): void {
  assert(Number.isSafeInteger(entry.index) && entry.index >= 1, "entry index is a safe integer >= 1");
  assert(Number.isSafeInteger(entry.term) && entry.term >= 0, "entry term is a safe integer >= 0");
  assert(
    Number.isInteger(entry.type) && entry.type >= 0 && entry.type <= 0xffffffff,
    "entry type is a uint32",
  );
  assert(entry.data instanceof Uint8Array, "entry data is a Uint8Array");
}

const UINT64_MAX = (1n << 64n) - 1n;

export function assertHardStateFields(hs: WalHardState): void {
  assert(Number.isSafeInteger(hs.term) && hs.term >= 0, "hard state term is a safe integer >= 0");
  assert(Number.isSafeInteger(hs.commit) && hs.commit >= 0, "hard state commit is a safe integer >= 0");
  assert(
    typeof hs.vote === "bigint" && hs.vote >= 0n && hs.vote <= UINT64_MAX,
    "hard state vote is a uint64",
  );
}

export function assertMetadataFields(metadata: WalMetadata): void {
  for (const id of [metadata.memberId, metadata.clusterId]) {
    assert(typeof id === "bigint" && id >= 0n && id <= UINT64_MAX, "metadata ids are uint64 bigints");
  }
}

export function assertSnapshotMarkerFields(marker: WalSnapshotMarker): void {
  assert(Number.isSafeInteger(marker.index) && marker.index >= 0, "snapshot index is a safe integer >= 0");
  assert(Number.isSafeInteger(marker.term) && marker.term >= 0, "snapshot term is a safe integer >= 0");
  assert(marker.confState instanceof Uint8Array, "snapshot conf state is a Uint8Array");
}

/** Size of the frame at `offset` (length word, body and padding), from its length word. */
export function frameBytesAt(view: DataView, offset: number): number {
  return frameBytesForBody(view.getUint32(offset, true));
}

/**
 * Computes and stores the chained CRC of the frame at `offset` and returns the new chain value. A CRC
 * record stores the chain value itself and leaves it unchanged. `view` and `bytes` cover the same memory.
 */
export function sealFrame(view: DataView, bytes: Uint8Array, offset: number, chainCrc: number): number {
  const bodyBytes = view.getUint32(offset, true);
  assert(bodyBytes >= RECORD_HEADER_BYTES, "a frame's body holds at least the record header");
  const type = bytes[offset + 12]!;
  assert(type >= RecordType.METADATA && type <= RecordType.SNAPSHOT, "a frame has a known record type");
  if (type === RecordType.CRC) {
    view.setUint32(offset + 8, chainCrc, true);
    return chainCrc;
  }
  const crc = crc32cUpdate(chainCrc, bytes, offset + 12, offset + FRAME_HEADER_BYTES + bodyBytes);
  view.setUint32(offset + 8, crc, true);
  return crc;
}
