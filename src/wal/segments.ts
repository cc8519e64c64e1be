import { readdir } from "node:fs/promises";
import { assert } from "../assert.js";

/**
 * Segment files are named `%016x-%016x.wal`: a sequence number that grows by one per segment, and the
 * raft index of the first entry expected in the segment (the last entry index written before the cut,
 * plus one), as etcd names them. Names sort in sequence order as strings.
 *
 * A name's index is a lower bound only in the common case: an entry at or below it may reappear in a
 * later segment when raft overwrites an uncommitted tail. Every valid entry at or above the name's index
 * is in that segment or a later one, which is what opening at a snapshot relies on.
 */

export interface SegmentName {
  name: string;
  seq: number;
  firstIndex: number;
}

const SEGMENT_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
export const SEGMENT_SUFFIX = ".wal";
/** Files the writer creates before renaming them into place; stale ones are removed at open. */
export const TEMP_SUFFIX = ".tmp";

function hex16(n: number): string {
  assert(Number.isSafeInteger(n) && n >= 0, "segment numbers are safe non-negative integers");
  return n.toString(16).padStart(16, "0");
}

export function segmentName(seq: number, firstIndex: number): string {
  return `${hex16(seq)}-${hex16(firstIndex)}${SEGMENT_SUFFIX}`;
}

export function parseSegmentName(name: string): SegmentName | null {
  const m = SEGMENT_NAME.exec(name);
  if (m === null) return null;
  const seq = Number.parseInt(m[1]!, 16);
  const firstIndex = Number.parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { name, seq, firstIndex };
}

/** The segments in `dir`, in sequence order; other files are not segments and are left alone. */
export async function listSegments(dir: string): Promise<{ segments: SegmentName[]; tempFiles: string[] }> {
  const names = await readdir(dir);
  const segments: SegmentName[] = [];
  const tempFiles: string[] = [];
  for (const name of names) {
    const parsed = parseSegmentName(name);
    if (parsed !== null) segments.push(parsed);
    else if (name.endsWith(TEMP_SUFFIX)) tempFiles.push(name);
  }
  segments.sort((a, b) => a.seq - b.seq);
  return { segments, tempFiles };
}

/** The position of the last segment whose first index is <= `index`, or -1 (etcd's searchIndex). */
export function searchSegment(segments: readonly SegmentName[], index: number): number {
  for (let i = segments.length - 1; i >= 0; i--) {
    if (segments[i]!.firstIndex <= index) return i;
  }
  return -1;
}

/** True when sequence numbers grow by exactly one from `from` to the end: no segment is missing. */
export function isContiguous(segments: readonly SegmentName[], from: number): boolean {
  for (let i = from + 1; i < segments.length; i++) {
    if (segments[i]!.seq !== segments[i - 1]!.seq + 1) return false;
  }
  return true;
}

/**
 * How many leading segments may be released once everything below `index` is covered by a snapshot:
 * all segments before the last one whose first index is below `index` (that one may still hold entries
 * at or above `index`). Mirrors etcd's ReleaseLockTo, including its caution when names are not
 * monotonic after an overwritten tail: it stops at the first name at or above `index`.
 */
export function releasableCount(segments: readonly SegmentName[], index: number): number {
  let keepFrom = segments.length - 1;
  for (let i = 0; i < segments.length; i++) {
    if (segments[i]!.firstIndex >= index) {
      keepFrom = i - 1;
      break;
    }
  }
  return Math.max(0, keepFrom);
}
