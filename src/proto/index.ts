/**
 * The etcd wire protocol, as the rest of etcd-ts imports it. Everything here is generated from the
 * .proto files beside this module (npm run proto:gen) or is thin glue; see ./README.md for the
 * representation rules (64-bit fields, bytes views, Init shapes, oneofs).
 *
 * - Namespaces `etcdserverpb`, `mvccpb`, `authpb`, `v3lockpb`, `v3electionpb`: for each message `M`,
 *   the decoded type `M` (every field present), the input type `MInit` (every field optional) and the
 *   codec value `M` with `encode(init): Buffer`, `encodeInto(init, target, offset)`, `decode(bytes)`,
 *   `create(init)`; enums as `const` objects plus union types (`RangeRequest_SortOrder`).
 * - grpc-js service definitions `KVService` ... `ElectionService` (paths "/etcdserverpb.KV/Range" etc.),
 *   server handler types `KVHandlers` ..., and typed client constructors `KVClient` ....
 */
export * as authpb from "./gen/authpb.js";
export * as etcdserverpb from "./gen/etcdserverpb.js";
export * as membershippb from "./gen/membershippb.js";
export * as mvccpb from "./gen/mvccpb.js";
export {
  AuthClient,
  type AuthHandlers,
  AuthService,
  ClusterClient,
  type ClusterHandlers,
  ClusterService,
  ElectionClient,
  type ElectionHandlers,
  ElectionService,
  KVClient,
  type KVHandlers,
  KVService,
  LeaseClient,
  type LeaseHandlers,
  LeaseService,
  LockClient,
  type LockHandlers,
  LockService,
  MaintenanceClient,
  type MaintenanceHandlers,
  MaintenanceService,
  WatchClient,
  type WatchHandlers,
  WatchService,
} from "./gen/services.js";
export * as v3electionpb from "./gen/v3electionpb.js";
export * as v3lockpb from "./gen/v3lockpb.js";
export {
  type BidiClientMethod,
  type ClientConstructor,
  callUnary,
  type EtcdMethodDefinition,
  makeClient,
  type PreEncodedClient,
  preEncodedService,
  type ServerStreamClientMethod,
  type UnaryClientMethod,
} from "./grpc.js";
export { EMPTY_BYTES, type MessageType, ProtoDecodeError } from "./runtime.js";

import * as etcdserverpb from "./gen/etcdserverpb.js";
import * as mvccpb from "./gen/mvccpb.js";

/**
 * Hot-path encoders: one exact-size Buffer each, ready to hand to grpc-js or to reuse. A load
 * generator encodes a request once and sends the same bytes every time through a client built with
 * preEncodedService (see ./grpc.ts).
 */
export const encodePutRequest = etcdserverpb.PutRequest.encode;
export const encodeRangeRequest = etcdserverpb.RangeRequest.encode;
export const encodeDeleteRangeRequest = etcdserverpb.DeleteRangeRequest.encode;
export const encodeTxnRequest = etcdserverpb.TxnRequest.encode;
export const encodeRangeResponse = etcdserverpb.RangeResponse.encode;
export const encodeWatchResponse = etcdserverpb.WatchResponse.encode;
export const encodeKeyValue = mvccpb.KeyValue.encode;
export const decodeKeyValue = mvccpb.KeyValue.decode;
