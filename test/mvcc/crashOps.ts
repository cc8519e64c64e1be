/**
 * The crash test's operations: op i is a pure function of (seed, i), so the child that applies them and
 * the parent that replays them into the model agree without talking.
 */
import type { WriteOp } from "../../src/mvcc/types.js";
import { rng } from "../support/prng.js";
import { LIVE_LEASE } from "./harness.js";

const KEYS = 40;

export function crashOp(seed: number, index: number): WriteOp {
  const r = rng(seed * 1_000_003 + index);
  const pick = (n: number) => Math.floor(r() * n);
  const key = () => Buffer.from(`key/${String(pick(KEYS)).padStart(3, "0")}`);
  const value = () => Buffer.alloc(pick(2000), 97 + pick(26));
  const kind = r();
  if (kind < 0.55) {
    return { type: "put", request: { key: key(), value: value(), lease: r() < 0.1 ? LIVE_LEASE : 0n } };
  }
  if (kind < 0.7) {
    const start = key();
    const end = r() < 0.5 ? undefined : Buffer.from(`key/${String(pick(KEYS)).padStart(3, "0")}`);
    return { type: "deleteRange", request: { key: start, rangeEnd: end } };
  }
  if (kind < 0.95) {
    const k = key();
    return {
      type: "txn",
      request: {
        compare: [{ key: k, target: 0, result: pick(4), version: pick(3) }],
        success: [{ requestPut: { key: k, value: value() } }, { requestDeleteRange: { key: key() } }],
        failure: [{ requestPut: { key: key(), value: value() } }],
      },
    };
  }
  // Compaction to a revision drawn from a wide window: errors (compacted, future) are part of the history.
  return { type: "compaction", request: { revision: Math.floor(index * 0.6) - pick(20) } };
}
