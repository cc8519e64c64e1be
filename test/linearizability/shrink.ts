import { assert } from "../../src/assert.js";
import type { HistoryOp } from "./history.js";
import { writtenValue } from "./model.js";
import { searchKey } from "./search.js";

/**
 * Shrinks a non-linearizable sub-history of one key to a small one that is still non-linearizable, so a
 * report shows the few ops that prove the bug rather than thousands.
 *
 * 1. Prefix cut: the history up to time t (ops still running at t become pending, reads running at t are
 *    dropped) only gains constraints as t grows, so the earliest t at which it is already illegal is found
 *    by binary search over the return times.
 * 2. Delta debugging (ddmin) on what is left: remove chunks, then single ops, keeping a removal when the
 *    rest is still illegal. A removal takes with it every op that observed a removed write (a read of its
 *    value, a compare that held on its value or revision): otherwise "a read of a value nobody wrote"
 *    would be an illegal but meaningless witness. A failed compare observed a write too, only not which
 *    one (any write of another value that could precede it may be why it failed), so removing a write
 *    also removes the failed compares it could explain: "put a; cas a->b failed" must not be reported
 *    without the "put c" in between that made the compare fail.
 *
 * The result is 1-minimal (no single op, with its observers, can go) unless the check budget ran out.
 * The ops returned are the originals (completed ones as recorded), checked illegal once more.
 */

export interface ShrinkOptions {
  /** Searches allowed in total. */
  checksMax: number;
  /** Steps allowed per search; a search that runs out counts as "not shown illegal". */
  stepBudget: number;
}

export interface Shrunk {
  ops: HistoryOp[];
  /** True when the last single-op pass removed nothing (1-minimal); false when the budget ran out. */
  minimal: boolean;
  checks: number;
}

export function shrinkViolation(history: readonly HistoryOp[], options: ShrinkOptions): Shrunk {
  let checks = 0;
  const illegal = (ops: readonly HistoryOp[]): boolean => {
    checks++;
    return searchKey(ops, options.stepBudget).kind === "violation";
  };
  let current = prefixCut(history, illegal);
  let minimal = false;
  let chunk = Math.max(1, Math.floor(current.length / 2));
  while (checks < options.checksMax) {
    let removedAny = false;
    for (let start = current.length - chunk; start > -chunk && checks < options.checksMax; start -= chunk) {
      const slice = current.slice(Math.max(0, start), start + chunk);
      const removed = withObservers(current, slice);
      if (removed.size === current.length) continue;
      const candidate = current.filter((op) => !removed.has(op.id));
      if (illegal(candidate)) {
        current = candidate;
        removedAny = true;
        start = Math.min(start, current.length);
      }
    }
    if (chunk === 1 && !removedAny) {
      minimal = true;
      break;
    }
    if (!removedAny || chunk > 1) chunk = Math.max(1, Math.floor(chunk / 2));
  }
  const byId = new Map(history.map((op) => [op.id, op]));
  const originals = current.map((op) => byId.get(op.id) as HistoryOp);
  // Completing an op only adds constraints, so the originals are illegal too; check it all the same.
  assert(
    searchKey(originals, options.stepBudget).kind !== "linearizable",
    "a shrunk history became linearizable",
  );
  return { ops: originals, minimal, checks };
}

/** The shortest prefix (by time) that is already illegal. */
function prefixCut(
  history: readonly HistoryOp[],
  illegal: (ops: readonly HistoryOp[]) => boolean,
): HistoryOp[] {
  const returns = [...new Set(history.flatMap((op) => (op.completeNs === null ? [] : [op.completeNs])))].sort(
    (a, b) => a - b,
  );
  let low = 0;
  let high = returns.length - 1;
  let best: HistoryOp[] = [...history];
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const prefix = prefixAt(history, returns[mid] as number);
    if (illegal(prefix)) {
      best = prefix;
      high = mid - 1;
    } else {
      low = mid + 1;
    }
  }
  return best;
}

function prefixAt(history: readonly HistoryOp[], timeNs: number): HistoryOp[] {
  const prefix: HistoryOp[] = [];
  for (const op of history) {
    if (op.invokeNs > timeNs) continue;
    if (op.completeNs !== null && op.completeNs <= timeNs) prefix.push(op);
    else if (op.input.kind !== "get") prefix.push({ ...op, completeNs: null, output: null });
  }
  return prefix;
}

/** The ids of `slice` and of every op in `ops` that (transitively) observed one of their writes. */
function withObservers(ops: readonly HistoryOp[], slice: readonly HistoryOp[]): Set<number> {
  const removed = new Set(slice.map((op) => op.id));
  // Revisions some answered write is known to have: a compare on another revision may be on an unknown write's.
  const knownRevisions = new Set<number>();
  for (const op of ops)
    if (op.output !== null && op.output.kind !== "get") knownRevisions.add(op.output.revision);
  let frontier = [...slice];
  while (frontier.length > 0) {
    const values = new Set<string>();
    const revisions = new Set<number>();
    let unknownWrite = false;
    for (const op of frontier) {
      const value = writtenValue(op.input);
      if (value !== null) values.add(value);
      if (op.output !== null && op.output.kind !== "get") revisions.add(op.output.revision);
      if (value !== null && op.output === null) unknownWrite = true;
    }
    const observesAny = (op: HistoryOp): boolean =>
      observes(
        op,
        values,
        (revision) => revisions.has(revision) || (unknownWrite && !knownRevisions.has(revision)),
      );
    const writes = frontier.filter((op) => writtenValue(op.input) !== null && !isFailedCas(op));
    frontier = [];
    for (const op of ops) {
      if (removed.has(op.id)) continue;
      if (!observesAny(op) && !writes.some((write) => couldExplainFailure(write, op))) continue;
      removed.add(op.id);
      frontier.push(op);
    }
  }
  return removed;
}

function isFailedCas(op: HistoryOp): boolean {
  return op.output !== null && op.output.kind === "cas" && !op.output.succeeded;
}

/** Whether `write` may be the reason `op`, a failed compare, failed: it may precede it and differs from what it expected. */
function couldExplainFailure(write: HistoryOp, op: HistoryOp): boolean {
  if (!isFailedCas(op) || op.input.kind !== "cas") return false;
  if (write.invokeNs > (op.completeNs as number)) return false;
  const { expect } = op.input;
  if ("value" in expect) return writtenValue(write.input) !== expect.value;
  return write.output === null || write.output.kind === "get" || write.output.revision !== expect.modRevision;
}

/** Whether `op` saw one of `values`, or compared equal to a revision `revisionRemoved` says is going. */
function observes(
  op: HistoryOp,
  values: ReadonlySet<string>,
  revisionRemoved: (revision: number) => boolean,
): boolean {
  const { input, output } = op;
  if (input.kind === "get") {
    return output !== null && output.kind === "get" && output.value !== null && values.has(output.value);
  }
  // A compare that held, or may have held (unknown outcome: its write may be what a later read shows).
  if (input.kind !== "cas" || (output !== null && (output.kind !== "cas" || !output.succeeded))) return false;
  if ("value" in input.expect) return values.has(input.expect.value);
  return input.expect.modRevision !== 0 && revisionRemoved(input.expect.modRevision);
}
