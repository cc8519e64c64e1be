import { bytesToLatin1, compareBytes } from "../backend/bytes.js";
import { EtcdError } from "../errors.js";
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from "./types.js";

/**
 * Request checks etcd makes before proposing (etcdserver/api/v3rpc/key.go), raising the exact errors of
 * spec §5. `api/` calls them on every KV request; the store assumes they passed.
 */

/** etcd's --max-txn-ops default. */
export const DEFAULT_MAX_TXN_OPS = 128;

export function checkRangeRequest(request: RangeRequest): void {
  if (request.key.length === 0) throw new EtcdError("EmptyKey");
}

export function checkPutRequest(request: PutRequest): void {
  if (request.key.length === 0) throw new EtcdError("EmptyKey");
  if (request.ignoreValue && request.value !== undefined && request.value.length !== 0) {
    throw new EtcdError("ValueProvided");
  }
  if (request.ignoreLease && (request.lease ?? 0n) !== 0n) throw new EtcdError("LeaseProvided");
}

export function checkDeleteRequest(request: DeleteRangeRequest): void {
  if (request.key.length === 0) throw new EtcdError("EmptyKey");
}

/**
 * etcd's checkTxnRequest then checkIntervals on each branch: op counts (nested txns against the budget
 * left), empty keys and per-op checks, then the duplicate-key rule (spec §5.6).
 */
export function checkTxnRequest(request: TxnRequest, maxTxnOps = DEFAULT_MAX_TXN_OPS): void {
  checkTxnOps(request, maxTxnOps);
  checkIntervals(request.success ?? []);
  checkIntervals(request.failure ?? []);
}

function checkTxnOps(request: TxnRequest, maxTxnOps: number): void {
  const compare = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const opCount = Math.max(compare.length, success.length, failure.length);
  if (opCount > maxTxnOps) throw new EtcdError("TooManyOps");
  for (const c of compare) if (c.key.length === 0) throw new EtcdError("EmptyKey");
  for (const op of success) checkRequestOp(op, maxTxnOps - opCount);
  for (const op of failure) checkRequestOp(op, maxTxnOps - opCount);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if (op.requestRange !== undefined) checkRangeRequest(op.requestRange);
  else if (op.requestPut !== undefined) checkPutRequest(op.requestPut);
  else if (op.requestDeleteRange !== undefined) checkDeleteRequest(op.requestDeleteRange);
  else if (op.requestTxn !== undefined) checkTxnOps(op.requestTxn, maxTxnOps);
  else throw new EtcdError("KeyNotFound");
}

/**
 * A delete's interval: [key, rangeEnd), or the point [key, key + "\0") without a range end. An interval
 * whose end is not above its start contains nothing, which is how a "\0" range end escapes the check.
 */
interface Interval {
  start: Uint8Array;
  end: Uint8Array;
}

function contains(intervals: readonly Interval[], key: Uint8Array): boolean {
  return intervals.some((iv) => compareBytes(iv.start, key) <= 0 && compareBytes(key, iv.end) < 0);
}

function pointEnd(key: Uint8Array): Uint8Array {
  const end = new Uint8Array(key.length + 1);
  end.set(key);
  return end;
}

/**
 * etcd's checkIntervals, step by step (the order matters): the list's deletes are collected first; then
 * each nested txn's puts (then branch, then else branch) are checked against the puts and deletes gathered
 * so far and added, and its deletes are added after; finally the list's own puts are checked. So a put in
 * a nested txn followed by a nested delete of the same key passes, while the reverse order fails.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    const del = op.requestDeleteRange;
    if (del === undefined) continue;
    const rangeEnd = del.rangeEnd ?? new Uint8Array(0);
    dels.push({ start: del.key, end: rangeEnd.length !== 0 ? rangeEnd : pointEnd(del.key) });
  }
  const puts = new Set<string>();
  const keyOf = (key: Uint8Array) => bytesToLatin1(key);
  for (const op of ops) {
    const txn = op.requestTxn;
    if (txn === undefined) continue;
    const then = checkIntervals(txn.success ?? []);
    const otherwise = checkIntervals(txn.failure ?? []);
    for (const key of then.puts) {
      if (puts.has(key) || contains(dels, Buffer.from(key, "latin1"))) throw new EtcdError("DuplicateKey");
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) throw new EtcdError("DuplicateKey");
      if (contains(dels, Buffer.from(key, "latin1"))) throw new EtcdError("DuplicateKey");
      puts.add(key);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    const put = op.requestPut;
    if (put === undefined) continue;
    const key = keyOf(put.key);
    if (puts.has(key) || contains(dels, put.key)) throw new EtcdError("DuplicateKey");
    puts.add(key);
  }
  return { puts, dels };
}
