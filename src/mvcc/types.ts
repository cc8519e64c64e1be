/**
 * Requests, responses and events of the MVCC store, as plain objects (no protobuf, no gRPC). Field names
 * are the camelCase of etcd's proto fields (spec §3) so that `api/` maps them one to one.
 *
 * Numbers: revisions, versions, limits and counts are JavaScript numbers that must be safe integers; the
 * api layer clamps int64 wire values outside ±(2^53 - 1) to that bound, which keeps every rule exact
 * because no stored revision or version can reach 2^53. Lease ids are int64 on the wire and often above
 * 2^53: they are bigint, 0n meaning "no lease".
 *
 * Bytes: keys and values are Uint8Array, read-only on both sides. Arrays the store returns (in responses
 * and events) may be views shared with the store and with other callers: keep them as long as you like,
 * never write to them. A put's key and value, and a compare's or range's key, are owned by the store once
 * passed (a put's arrays end up in events and in the write buffer).
 */

export interface KeyValue {
  key: Uint8Array;
  /** Revision of the put that (re)created the key. */
  createRevision: number;
  /** Revision of the last put (for a DELETE event's kv: the delete's revision). */
  modRevision: number;
  /** 1 at creation, +1 per put; reset by a delete. */
  version: number;
  value: Uint8Array;
  /** Attached lease id, or 0n. */
  lease: bigint;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

/**
 * The response header as the store fills it: only `revision`. `api/` adds cluster_id, member_id and
 * raft_term to top-level responses (ops inside a txn carry only the revision; a nested txn's header has
 * revision 0, i.e. is empty, as in etcd).
 */
export interface ResponseHeader {
  revision: number;
}

export interface RangeRequest {
  key: Uint8Array;
  /** Empty or absent: the single key. "\0": every key >= key. Otherwise [key, rangeEnd). */
  rangeEnd?: Uint8Array;
  /** <= 0: no limit. */
  limit?: number;
  /** <= 0: the current revision. */
  revision?: number;
  /** SortOrder; any other value leaves the order as fetched. */
  sortOrder?: number;
  /** SortTarget. */
  sortTarget?: number;
  /** Passed through for the server (linearizable or local read); the store ignores it. */
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  /** 0: no filter. */
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value?: Uint8Array;
  /** 0n or absent: no lease. */
  lease?: bigint;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

/** One branch operation of a txn: exactly one field set (none set is rejected as etcd does). */
export interface RequestOp {
  requestRange?: RangeRequest;
  requestPut?: PutRequest;
  requestDeleteRange?: DeleteRangeRequest;
  requestTxn?: TxnRequest;
}

export interface ResponseOp {
  responseRange?: RangeResponse;
  responsePut?: PutResponse;
  responseDeleteRange?: DeleteRangeResponse;
  responseTxn?: TxnResponse;
}

/**
 * A txn compare. The comparand is read from the field matching `target` (the proto oneof); when that field
 * is unset the comparand is 0 or empty bytes, as in etcd.
 */
export interface Compare {
  /** CompareResult; an unknown value compares true (etcd's default branch). */
  result: number;
  /** CompareTarget; an unknown value compares as equal (etcd's default branch). */
  target: number;
  key: Uint8Array;
  rangeEnd?: Uint8Array;
  version?: number;
  createRevision?: number;
  modRevision?: number;
  value?: Uint8Array;
  lease?: bigint;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  /** The server waits for `physicalDone` before answering when set. */
  physical?: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

/** A change, for watchers: `kv` is the new state (for DELETE: key and modRevision only). */
export interface MvccEvent {
  type: "PUT" | "DELETE";
  kv: KeyValue;
  /** The key's state before the write's revision (absent when the key did not exist). */
  prevKv?: KeyValue;
}

/** A write the apply loop hands to the store with its raft index. */
export type WriteOp =
  | { type: "put"; request: PutRequest }
  | { type: "deleteRange"; request: DeleteRangeRequest }
  | { type: "txn"; request: TxnRequest }
  | { type: "compaction"; request: CompactionRequest };

export type ApplyResult =
  | { type: "put"; response: PutResponse; events: MvccEvent[] }
  | { type: "deleteRange"; response: DeleteRangeResponse; events: MvccEvent[] }
  | { type: "txn"; response: TxnResponse; events: MvccEvent[] }
  | {
      type: "compaction";
      response: CompactionResponse;
      events: MvccEvent[];
      /** Resolves once the physical compaction finished and is durable (what `physical: true` waits for). */
      physicalDone: Promise<void>;
    };

export type ApplyResultFor<O extends WriteOp> = Extract<ApplyResult, { type: O["type"] }>;
