import { compareBytes } from "../backend/bytes.js";
import { toKeyRange } from "./keyRange.js";
import type { MvccStore } from "./store.js";
import { type KeyValue, type RangeRequest, type RangeResponse, SortOrder, SortTarget } from "./types.js";

/**
 * etcd's applierV3backend.Range (spec §5.3), at `curRev` (the current revision, or inside a write txn the
 * revision its reads see). The order of steps is etcd's and is observable:
 * 1. a limit applies to the fetch (limit + 1 keys, to know `more`) only when there is no sort and no
 *    min/max filter; otherwise every key in the range is fetched;
 * 2. the filters drop kvs (count still counts every key in the range);
 * 3. a non-KEY target with order NONE sorts ASCEND, after the limited fetch, so with a limit it sorts only
 *    the first limit + 1 keys;
 * 4. the limit cuts, setting `more`.
 * Sorting is stable, so ties keep key order, ascending or descending; this is what etcd 3.4 (Go's
 * insertion sort below 13 elements) returns for small results. An unknown sort target or order leaves the
 * key order (etcd 3.4.23 crashes on an unknown target).
 */
export function rangeWith(store: MvccStore, request: RangeRequest, curRev: number): RangeResponse {
  const sortOrder = request.sortOrder ?? SortOrder.NONE;
  const sortTarget = request.sortTarget ?? SortTarget.KEY;
  const minMod = request.minModRevision ?? 0;
  const maxMod = request.maxModRevision ?? 0;
  const minCreate = request.minCreateRevision ?? 0;
  const maxCreate = request.maxCreateRevision ?? 0;
  const requestLimit = request.limit ?? 0;
  let limit = requestLimit;
  if (sortOrder !== SortOrder.NONE || minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0) {
    limit = 0;
  }
  if (limit > 0) limit++;
  const keysOnly = request.keysOnly === true;
  // Values are needed to sort by value even when the response drops them.
  const skipValues = keysOnly && sortTarget !== SortTarget.VALUE;
  const result = store.rangeKeys(
    toKeyRange(request.key, request.rangeEnd),
    curRev,
    request.revision ?? 0,
    limit,
    request.countOnly === true,
    skipValues,
  );
  let kvs = result.kvs;
  if (maxMod !== 0) kvs = kvs.filter((kv) => kv.modRevision <= maxMod);
  if (minMod !== 0) kvs = kvs.filter((kv) => kv.modRevision >= minMod);
  if (maxCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision <= maxCreate);
  if (minCreate !== 0) kvs = kvs.filter((kv) => kv.createRevision >= minCreate);

  let order = sortOrder;
  if (sortTarget !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  const compare = comparatorFor(sortTarget);
  if (compare !== undefined && order === SortOrder.ASCEND) kvs.sort(compare);
  else if (compare !== undefined && order === SortOrder.DESCEND) kvs.sort((a, b) => compare(b, a));

  let more = false;
  if (requestLimit > 0 && kvs.length > requestLimit) {
    kvs = kvs.slice(0, requestLimit);
    more = true;
  }
  if (keysOnly && !skipValues) for (const kv of kvs) kv.value = new Uint8Array(0);
  return { header: { revision: curRev }, kvs, more, count: result.count };
}

type KvComparator = (a: KeyValue, b: KeyValue) => number;

const byKey: KvComparator = (a, b) => compareBytes(a.key, b.key);
const byVersion: KvComparator = (a, b) => a.version - b.version;
const byCreate: KvComparator = (a, b) => a.createRevision - b.createRevision;
const byMod: KvComparator = (a, b) => a.modRevision - b.modRevision;
const byValue: KvComparator = (a, b) => compareBytes(a.value, b.value);

function comparatorFor(target: number): KvComparator | undefined {
  switch (target) {
    case SortTarget.KEY:
      return byKey;
    case SortTarget.VERSION:
      return byVersion;
    case SortTarget.CREATE:
      return byCreate;
    case SortTarget.MOD:
      return byMod;
    case SortTarget.VALUE:
      return byValue;
    default:
      return undefined;
  }
}
