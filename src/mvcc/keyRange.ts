import { bytesToLatin1 } from "../backend/bytes.js";

/**
 * A key range as the index walks it (spec §5.1), keys as latin1 strings:
 * - `rangeEnd` absent or empty: the single key `key`;
 * - `rangeEnd` = "\0" (one zero byte): every key >= `key` (`end` null);
 * - otherwise [key, rangeEnd), empty when rangeEnd <= key.
 */
export interface KeyRange {
  start: string;
  /** Exclusive upper bound; null = none. Ignored when `single`. */
  end: string | null;
  single: boolean;
}

export function toKeyRange(key: Uint8Array, rangeEnd: Uint8Array | undefined): KeyRange {
  const start = bytesToLatin1(key);
  if (rangeEnd === undefined || rangeEnd.length === 0) return { start, end: null, single: true };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: null, single: false };
  return { start, end: bytesToLatin1(rangeEnd), single: false };
}

/** True when the unbounded-ness comes from the "\0" range end (used by the txn duplicate-key quirk). */
export function isFromKeyRangeEnd(rangeEnd: Uint8Array | undefined): boolean {
  return rangeEnd !== undefined && rangeEnd.length === 1 && rangeEnd[0] === 0;
}
