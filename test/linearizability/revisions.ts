import type { HistoryOp } from "./history.js";

/**
 * Checks across keys that the per-key search cannot see, from the revisions etcd puts in every
 * response header. In a linearizable etcd every answered op sits at one revision of one global order:
 *
 * 1. Writes (a put, a txn whose compare held) each create a distinct revision.
 * 2. Real time: if A completed before B was invoked, rev(A) <= rev(B), and rev(A) < rev(B) when B is a
 *    write (B is applied after A, and a write makes a new revision).
 * 3. A read at header revision h that returned a key at mod revision m read the snapshot at h: m <= h,
 *    and no known write of that key has a revision in (m, h].
 *
 * These are necessary conditions only (the per-key search is the real proof), but they are cheap
 * (n log n) and catch a stale read on one key that the search of that key alone may accept: a follower
 * that answers from an old applied index shows an old header revision even for a key that did not change.
 */

export interface RevisionProblem {
  message: string;
  ops: HistoryOp[];
}

/** Reports stop after this many problems: the first ones explain the run. */
const PROBLEMS_MAX = 20;

export function checkRevisions(history: readonly HistoryOp[]): RevisionProblem[] {
  const problems: RevisionProblem[] = [];
  const answered = history.filter((op) => op.output !== null && op.completeNs !== null);
  checkDistinctWriteRevisions(answered, problems);
  checkRealTimeOrder(answered, problems);
  checkReadSnapshots(answered, problems);
  return problems.slice(0, PROBLEMS_MAX);
}

function revisionOf(op: HistoryOp): number {
  return (op.output as NonNullable<HistoryOp["output"]>).revision;
}

export function isAnsweredWrite(op: HistoryOp): boolean {
  const { output } = op;
  if (output === null) return false;
  return output.kind === "put" || (output.kind === "cas" && output.succeeded);
}

function checkDistinctWriteRevisions(answered: readonly HistoryOp[], problems: RevisionProblem[]): void {
  const byRevision = new Map<number, HistoryOp>();
  for (const op of answered) {
    if (!isAnsweredWrite(op)) continue;
    const other = byRevision.get(revisionOf(op));
    if (other !== undefined && problems.length < PROBLEMS_MAX) {
      problems.push({
        message: `two writes answered with the same revision ${revisionOf(op)}`,
        ops: [other, op],
      });
    }
    byRevision.set(revisionOf(op), op);
  }
}

function checkRealTimeOrder(answered: readonly HistoryOp[], problems: RevisionProblem[]): void {
  const byComplete = [...answered].sort((a, b) => (a.completeNs as number) - (b.completeNs as number));
  // prefixMax[i]: the op with the highest revision among byComplete[0..i].
  const prefixMax: HistoryOp[] = [];
  for (const op of byComplete) {
    const best = prefixMax[prefixMax.length - 1];
    prefixMax.push(best === undefined || revisionOf(op) > revisionOf(best) ? op : best);
  }
  for (const op of answered) {
    // Ops that completed strictly before this one was invoked.
    let low = 0;
    let high = byComplete.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (((byComplete[mid] as HistoryOp).completeNs as number) < op.invokeNs) low = mid + 1;
      else high = mid;
    }
    if (low === 0) continue;
    const before = prefixMax[low - 1] as HistoryOp;
    const write = isAnsweredWrite(op);
    const bad = write ? revisionOf(op) <= revisionOf(before) : revisionOf(op) < revisionOf(before);
    if (bad && problems.length < PROBLEMS_MAX) {
      problems.push({
        message: `op ${op.id} (${write ? "write" : "read"} at revision ${revisionOf(op)}) was invoked after op ${before.id} completed at revision ${revisionOf(before)}: ${write ? "a later write must have a higher revision" : "a later read must not go back in revisions (a stale read)"}`,
        ops: [before, op],
      });
    }
  }
}

function checkReadSnapshots(answered: readonly HistoryOp[], problems: RevisionProblem[]): void {
  const writesByKey = new Map<string, { revision: number; op: HistoryOp }[]>();
  for (const op of answered) {
    if (!isAnsweredWrite(op)) continue;
    const list = writesByKey.get(op.input.key) ?? [];
    list.push({ revision: revisionOf(op), op });
    writesByKey.set(op.input.key, list);
  }
  for (const list of writesByKey.values()) list.sort((a, b) => a.revision - b.revision);
  for (const op of answered) {
    const { output } = op;
    if (output === null || output.kind !== "get") continue;
    if (output.modRevision > output.revision) {
      if (problems.length < PROBLEMS_MAX) {
        problems.push({
          message: `op ${op.id} read mod revision ${output.modRevision} at header revision ${output.revision}`,
          ops: [op],
        });
      }
      continue;
    }
    const writes = writesByKey.get(op.input.key) ?? [];
    let low = 0;
    let high = writes.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((writes[mid] as { revision: number }).revision <= output.modRevision) low = mid + 1;
      else high = mid;
    }
    const missed = writes[low];
    if (missed !== undefined && missed.revision <= output.revision && problems.length < PROBLEMS_MAX) {
      problems.push({
        message: `op ${op.id} read ${op.input.key} at revision ${output.revision} and saw mod revision ${output.modRevision}, missing op ${missed.op.id}'s write at revision ${missed.revision}`,
        ops: [missed.op, op],
      });
    }
  }
}
