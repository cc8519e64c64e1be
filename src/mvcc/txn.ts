import { compareBytes } from "../backend/bytes.js";
import { EtcdError } from "../errors.js";
import { found } from "./keyIndex.js";
import { isFromKeyRangeEnd, toKeyRange } from "./keyRange.js";
import { rangeWith } from "./range.js";
import { deleteRangeInTxn, type MvccStore, putInTxn, type WriteTxn } from "./store.js";
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type RequestOp,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from "./types.js";

/**
 * etcd's applierV3backend.Txn (spec §5.6):
 * 1. Every compare, of the txn and of each nested txn on the branch that will run, is evaluated against the
 *    state before the txn (`compareToPath`), so a nested compare does not see the outer txn's writes.
 * 2. On that path, puts are checked first (ignore_value/ignore_lease need the key, a lease must exist),
 *    then ranges (revision not in the future, not compacted); the first failure fails the whole txn
 *    before anything changes. Ops of branches that do not run are not checked.
 * 3. The ops run in order inside one write: one new main revision for all changes, reads seeing earlier
 *    writes of the same txn.
 * Inner responses carry only the revision as seen at their position; a nested txn's header is empty.
 */

/** The branch each txn on the executed path takes, and the same for its nested txns in op order. */
interface TxnPath {
  succeeded: boolean;
  nested: TxnPath[];
}

/** A txn is read-only when both branches hold only ranges (a nested txn makes it a write, as in etcd). */
export function isTxnReadOnly(request: TxnRequest): boolean {
  const onlyRanges = (ops: RequestOp[] | undefined) =>
    (ops ?? []).every((op) => op.requestRange !== undefined);
  return onlyRanges(request.success) && onlyRanges(request.failure);
}

/** A read-only txn may be served locally when every range in it asks for a serializable read. */
export function isTxnSerializable(request: TxnRequest): boolean {
  const serializable = (ops: RequestOp[] | undefined) =>
    (ops ?? []).every((op) => op.requestRange !== undefined && op.requestRange.serializable === true);
  return serializable(request.success) && serializable(request.failure);
}

export function executeTxn(
  store: MvccStore,
  tw: WriteTxn,
  request: TxnRequest,
  isWrite: boolean,
): TxnResponse {
  const path = compareToPath(store, request);
  if (isWrite) checkPuts(store, request, path, { unboundedDeleteStarts: [] });
  checkRanges(store, request, path);
  const responses = applyOps(store, tw, request, path);
  const revision = tw.changes > 0 ? tw.beginRev + 1 : tw.beginRev;
  return { header: { revision }, succeeded: path.succeeded, responses };
}

function branch(request: TxnRequest, path: TxnPath): RequestOp[] {
  return (path.succeeded ? request.success : request.failure) ?? [];
}

function compareToPath(store: MvccStore, request: TxnRequest): TxnPath {
  const succeeded = (request.compare ?? []).every((c) => applyCompare(store, c));
  const path: TxnPath = { succeeded, nested: [] };
  for (const op of branch(request, path)) {
    if (op.requestTxn !== undefined) path.nested.push(compareToPath(store, op.requestTxn));
  }
  return path;
}

/**
 * One compare against the current state: every key in the range must satisfy it. No key: a VALUE compare
 * is false, the others compare a zero KeyValue (so `version == 0` tests absence).
 */
function applyCompare(store: MvccStore, c: Compare): boolean {
  let any = false;
  let all = true;
  store.visitLive(toKeyRange(c.key, c.rangeEnd), store.revision, (ki) => {
    any = true;
    const order =
      c.target === CompareTarget.VALUE
        ? compareBytes(store.readKeyValue(found.main, found.sub).value, c.value ?? EMPTY)
        : compareOrder(c, found.createdMain, found.main, found.ver, ki.lease);
    all = resultHolds(c.result, order);
    return all;
  });
  if (any) return all;
  if (c.target === CompareTarget.VALUE) return false;
  return resultHolds(c.result, compareOrder(c, 0, 0, 0, 0n));
}

const EMPTY = new Uint8Array(0);

/** Compares a key's field named by the target with the comparand (0 when the oneof field is unset). */
function compareOrder(c: Compare, create: number, mod: number, version: number, lease: bigint): number {
  switch (c.target) {
    case CompareTarget.CREATE:
      return compareNumbers(create, c.createRevision ?? 0);
    case CompareTarget.MOD:
      return compareNumbers(mod, c.modRevision ?? 0);
    case CompareTarget.VERSION:
      return compareNumbers(version, c.version ?? 0);
    case CompareTarget.LEASE:
      return compareBigints(lease, c.lease ?? 0n);
    default:
      // etcd leaves an unknown target's result at 0 ("equal").
      return 0;
  }
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareBigints(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function resultHolds(result: number, order: number): boolean {
  switch (result) {
    case CompareResult.EQUAL:
      return order === 0;
    case CompareResult.NOT_EQUAL:
      return order !== 0;
    case CompareResult.GREATER:
      return order > 0;
    case CompareResult.LESS:
      return order < 0;
    default:
      return true;
  }
}

interface PutCheckState {
  /**
   * Start keys of deletes with range end "\0" met so far on the path. Such a delete escapes the
   * duplicate-key check (spec §5.6), so a later ignore_value/ignore_lease put may find its key deleted by
   * an earlier op of the same txn. etcd 3.4.23 panics there (and again at every restart); we fail the txn
   * with "key not found" before anything changes instead.
   */
  unboundedDeleteStarts: Uint8Array[];
}

function checkPuts(store: MvccStore, request: TxnRequest, path: TxnPath, state: PutCheckState): void {
  let nested = 0;
  for (const op of branch(request, path)) {
    if (op.requestTxn !== undefined) {
      checkPuts(store, op.requestTxn, path.nested[nested++] as TxnPath, state);
      continue;
    }
    const del = op.requestDeleteRange;
    if (del !== undefined && isFromKeyRangeEnd(del.rangeEnd)) state.unboundedDeleteStarts.push(del.key);
    const put = op.requestPut;
    if (put === undefined) continue;
    if (put.ignoreValue || put.ignoreLease) {
      let exists = false;
      store.visitLive(toKeyRange(put.key, undefined), store.revision, () => {
        exists = true;
        return false;
      });
      if (!exists || state.unboundedDeleteStarts.some((start) => compareBytes(start, put.key) <= 0)) {
        throw new EtcdError("KeyNotFound");
      }
    }
    const lease = put.lease ?? 0n;
    if (lease !== 0n && !store.leaseLookup.exists(lease)) throw new EtcdError("LeaseNotFound");
  }
}

function checkRanges(store: MvccStore, request: TxnRequest, path: TxnPath): void {
  let nested = 0;
  for (const op of branch(request, path)) {
    if (op.requestTxn !== undefined) {
      checkRanges(store, op.requestTxn, path.nested[nested++] as TxnPath);
      continue;
    }
    const range = op.requestRange;
    if (range === undefined) continue;
    // etcd compares against the pre-txn revision and the compact revision as they are, so a negative
    // revision fails as compacted once the store has a compact revision >= 0 (it reads as current outside
    // a txn).
    const revision = range.revision ?? 0;
    if (revision === 0) continue;
    if (revision > store.revision) throw new EtcdError("FutureRev");
    if (revision < store.compactRevision) throw new EtcdError("Compacted");
  }
}

function applyOps(store: MvccStore, tw: WriteTxn, request: TxnRequest, path: TxnPath): ResponseOp[] {
  const responses: ResponseOp[] = [];
  let nested = 0;
  for (const op of branch(request, path)) {
    if (op.requestRange !== undefined) {
      responses.push({ responseRange: rangeWith(store, op.requestRange, tw.readRev) });
    } else if (op.requestPut !== undefined) {
      responses.push({ responsePut: putInTxn(store, tw, op.requestPut) });
    } else if (op.requestDeleteRange !== undefined) {
      responses.push({ responseDeleteRange: deleteRangeInTxn(store, tw, op.requestDeleteRange) });
    } else if (op.requestTxn !== undefined) {
      const sub = path.nested[nested++] as TxnPath;
      responses.push({
        responseTxn: {
          header: { revision: 0 },
          succeeded: sub.succeeded,
          responses: applyOps(store, tw, op.requestTxn, sub),
        },
      });
    } else {
      // Rejected before raft ("key not found"); etcd leaves an empty response in place.
      responses.push({});
    }
  }
  return responses;
}
