import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from "../mvcc/validate.js";
import type { KVHandlers } from "../proto/index.js";
import { etcdserverpb } from "../proto/index.js";
import type { EtcdServerApi } from "../server/api.js";
import * as convert from "../server/convert.js";
import { serveUnary } from "./call.js";
import { ApiError } from "./status.js";

/**
 * etcdserverpb.KV over the server (etcd's api/v3rpc/key.go): admission checks before the server sees the
 * request, then the server's answer with its header filled.
 *
 * The checks are the store's own (src/mvcc/validate.ts, a port of key.go's checkRangeRequest,
 * checkPutRequest, checkDeleteRequest, checkTxnRequest and checkIntervals) run on the request in the
 * store's types: for Range/Put/DeleteRange those are the same objects (convert.ts), so the checks cost no
 * allocation; a Txn is converted once for them. The only check added here is etcd 3.6's sort option check
 * (see ApiErrors.InvalidSortOption), made after the store's checks.
 */
export function kvHandlers(server: EtcdServerApi): KVHandlers {
  return {
    Range(call, callback) {
      serveUnary(server, call, callback, true, (request) => {
        checkRangeRequest(convert.rangeRequestToStore(request));
        checkSortOptions(request);
        return server.range(request);
      });
    },
    Put(call, callback) {
      serveUnary(server, call, callback, true, (request) => {
        checkPutRequest(convert.putRequestToStore(request));
        return server.put(request);
      });
    },
    DeleteRange(call, callback) {
      serveUnary(server, call, callback, true, (request) => {
        checkDeleteRequest(convert.deleteRangeRequestToStore(request));
        return server.deleteRange(request);
      });
    },
    Txn(call, callback) {
      serveUnary(server, call, callback, true, (request) => {
        checkTxnRequest(convert.txnRequestToStore(request), server.limits.maxTxnOps);
        checkTxnSortOptions(request);
        return server.txn(request);
      });
    },
    Compact(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.compact(request));
    },
  };
}

function checkSortOptions(request: etcdserverpb.RangeRequest): void {
  if (etcdserverpb.RangeRequest_SortOrder_name[request.sortOrder] === undefined) {
    throw new ApiError("InvalidSortOption");
  }
  if (etcdserverpb.RangeRequest_SortTarget_name[request.sortTarget] === undefined) {
    throw new ApiError("InvalidSortOption");
  }
}

/** Every range of both branches, nested txns included (etcd 3.6 checks each range op alike). */
function checkTxnSortOptions(request: etcdserverpb.TxnRequest): void {
  for (const ops of [request.success, request.failure]) {
    for (const op of ops) {
      const inner = op.request;
      if (inner?.case === "requestRange") checkSortOptions(inner.value);
      else if (inner?.case === "requestTxn") checkTxnSortOptions(inner.value);
    }
  }
}
