import type * as mvcc from "../mvcc/types.js";
import type { etcdserverpb, mvccpb } from "../proto/index.js";

/**
 * Conversions between the wire messages (etcdserverpb, as src/proto decodes them) and the store's own
 * types (src/mvcc/types.ts). The server calls the request side when it applies an entry (and the api layer
 * to run the store's admission checks); the response side turns what the store returns into the Init
 * shapes grpc-js encodes.
 *
 * Allocation: both type families use the same field names, so Range, Put and DeleteRange requests and the
 * Range/Put/DeleteRange/Compaction responses and KeyValues pass through as the same objects (no copy, no
 * new object) unless a number needs clamping. Only the oneofs differ (the wire's `{ case, value }` against
 * the store's optional fields), so a Txn costs one object per compare, op and response op.
 *
 * Numbers: a client can send any int64; src/proto decodes it to the nearest double, which can be above
 * 2^53. The store wants safe integers (mvcc/types.ts), so every number field is clamped to
 * ±Number.MAX_SAFE_INTEGER. No stored revision, version or count can reach 2^53, so every comparison the
 * store makes gives the answer the exact value would.
 *
 * Bytes: keys and values stay views of the decoded message's buffer (src/proto/README.md). The store keeps
 * none of them by reference beyond the call (it encodes its own records), so no copy is needed.
 */

const MAX = Number.MAX_SAFE_INTEGER;

/** The number, or the nearest of ±(2^53 - 1) when it is outside. */
export function clampInt64(value: number): number {
  return Math.min(MAX, Math.max(-MAX, value));
}

function unsafe(value: number): boolean {
  return value > MAX || value < -MAX;
}

// ---- requests: wire -> mvcc ------------------------------------------------------------------------

export function rangeRequestToStore(request: etcdserverpb.RangeRequest): mvcc.RangeRequest {
  if (
    !unsafe(request.limit) &&
    !unsafe(request.revision) &&
    !unsafe(request.minModRevision) &&
    !unsafe(request.maxModRevision) &&
    !unsafe(request.minCreateRevision) &&
    !unsafe(request.maxCreateRevision)
  ) {
    return request;
  }
  return {
    ...request,
    limit: clampInt64(request.limit),
    revision: clampInt64(request.revision),
    minModRevision: clampInt64(request.minModRevision),
    maxModRevision: clampInt64(request.maxModRevision),
    minCreateRevision: clampInt64(request.minCreateRevision),
    maxCreateRevision: clampInt64(request.maxCreateRevision),
  };
}

/** Same object: a put has no number field (its lease is a bigint, passed as is). */
export function putRequestToStore(request: etcdserverpb.PutRequest): mvcc.PutRequest {
  return request;
}

/** Same object: a delete has no number field. */
export function deleteRangeRequestToStore(request: etcdserverpb.DeleteRangeRequest): mvcc.DeleteRangeRequest {
  return request;
}

export function compactionRequestToStore(request: etcdserverpb.CompactionRequest): mvcc.CompactionRequest {
  return unsafe(request.revision)
    ? { revision: clampInt64(request.revision), physical: request.physical }
    : request;
}

/**
 * A compare: the comparand goes into the field its oneof names; the others stay unset, so a compare whose
 * target and oneof disagree (target VALUE, oneof `version`) compares against empty bytes or 0, as etcd does.
 */
export function compareToStore(compare: etcdserverpb.Compare): mvcc.Compare {
  const out: mvcc.Compare = {
    result: compare.result,
    target: compare.target,
    key: compare.key,
    rangeEnd: compare.rangeEnd,
  };
  const union = compare.targetUnion;
  if (union !== undefined) {
    switch (union.case) {
      case "version":
        out.version = clampInt64(union.value);
        break;
      case "createRevision":
        out.createRevision = clampInt64(union.value);
        break;
      case "modRevision":
        out.modRevision = clampInt64(union.value);
        break;
      case "value":
        out.value = union.value;
        break;
      case "lease":
        out.lease = union.value;
        break;
      default: {
        const never: never = union;
        throw new Error(`unknown compare oneof ${JSON.stringify(never)}`);
      }
    }
  }
  return out;
}

/** An op with no oneof set becomes `{}`: the admission check rejects it ("key not found"), as etcd does. */
export function requestOpToStore(op: etcdserverpb.RequestOp): mvcc.RequestOp {
  const request = op.request;
  if (request === undefined) return {};
  switch (request.case) {
    case "requestRange":
      return { requestRange: rangeRequestToStore(request.value) };
    case "requestPut":
      return { requestPut: request.value };
    case "requestDeleteRange":
      return { requestDeleteRange: request.value };
    case "requestTxn":
      return { requestTxn: txnRequestToStore(request.value) };
    default: {
      const never: never = request;
      throw new Error(`unknown request op ${JSON.stringify(never)}`);
    }
  }
}

function mapArray<A, B>(items: readonly A[], map: (item: A) => B): B[] {
  const out = new Array<B>(items.length);
  for (let i = 0; i < items.length; i++) out[i] = map(items[i] as A);
  return out;
}

export function txnRequestToStore(request: etcdserverpb.TxnRequest): mvcc.TxnRequest {
  return {
    compare: mapArray(request.compare, compareToStore),
    success: mapArray(request.success, requestOpToStore),
    failure: mapArray(request.failure, requestOpToStore),
  };
}

// ---- responses: mvcc -> wire Init ------------------------------------------------------------------

/** Same object: the store's KeyValue has the wire's fields. */
export function keyValueToWire(kv: mvcc.KeyValue): mvccpb.KeyValueInit {
  return kv;
}

/** Same object; the header carries only the revision (top-level responses get the rest from `api/`). */
export function rangeResponseToWire(response: mvcc.RangeResponse): etcdserverpb.RangeResponseInit {
  return response;
}

export function putResponseToWire(response: mvcc.PutResponse): etcdserverpb.PutResponseInit {
  return response;
}

export function deleteRangeResponseToWire(
  response: mvcc.DeleteRangeResponse,
): etcdserverpb.DeleteRangeResponseInit {
  return response;
}

export function compactionResponseToWire(
  response: mvcc.CompactionResponse,
): etcdserverpb.CompactionResponseInit {
  return response;
}

/**
 * A txn response: each op's response in its oneof. Nested txns keep the store's header with revision 0,
 * which encodes as an empty but present header, as etcd sends it (spec §4).
 */
export function txnResponseToWire(response: mvcc.TxnResponse): etcdserverpb.TxnResponseInit {
  return {
    header: response.header,
    succeeded: response.succeeded,
    responses: mapArray(response.responses, responseOpToWire),
  };
}

export function responseOpToWire(op: mvcc.ResponseOp): etcdserverpb.ResponseOpInit {
  if (op.responseRange !== undefined) return { response: { case: "responseRange", value: op.responseRange } };
  if (op.responsePut !== undefined) return { response: { case: "responsePut", value: op.responsePut } };
  if (op.responseDeleteRange !== undefined) {
    return { response: { case: "responseDeleteRange", value: op.responseDeleteRange } };
  }
  if (op.responseTxn !== undefined) {
    return { response: { case: "responseTxn", value: txnResponseToWire(op.responseTxn) } };
  }
  // etcd leaves an empty ResponseOp for an op it did not run (cannot happen after admission).
  return {};
}
