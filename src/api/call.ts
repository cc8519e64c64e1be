import type * as grpc from "@grpc/grpc-js";
import { EtcdError } from "../errors.js";
import type { etcdserverpb } from "../proto/index.js";
import type { EtcdServerApi } from "../server/api.js";
import { isMalformed, malformedUnaryStatus } from "./malformed.js";
import { toGrpcStatus } from "./status.js";

/**
 * What every unary handler does around the server call: etcd's unary interceptor checks (spec §1.2), the
 * response header as etcd's `hdr.fill` sets it, and the mapping of a rejection to a status.
 */

/** An answer without a header field to fill (Alarm, Defragment: etcd sends no header). */
type AnyResponse = object;
/** An answer whose header the api fills: cluster_id, member_id and raft_term from `server.header()`. */
type WithHeader = { header?: etcdserverpb.ResponseHeaderInit | null };

/**
 * etcd's `hasleader` metadata (spec §1.1): a client that sends `hasleader: true` wants the call to fail at
 * once with "etcdserver: no leader" when the member has no leader, instead of waiting for one.
 */
export function requireLeaderFails(server: EtcdServerApi, metadata: grpc.Metadata): boolean {
  if (server.leader !== 0n) return false;
  const values = metadata.get("hasleader");
  return values.length > 0 && values[0] === "true";
}

const noLeaderError = new EtcdError("NoLeader");

/**
 * etcd's learner check (spec §1.2): a learner answers Maintenance.Status and serializable Ranges only;
 * every other call (and every stream) fails with "etcdserver: rpc not supported for learner".
 */
export function learnerRefuses(server: EtcdServerApi, path: string, request: unknown): boolean {
  if ((server as { isLearner?: boolean }).isLearner !== true) return false;
  if (path === "/etcdserverpb.Maintenance/Status") return false;
  if (path === "/etcdserverpb.KV/Range") return (request as { serializable?: boolean }).serializable !== true;
  return true;
}

/** Sets the response header as etcd's header filler does: member fields from now, revision kept. */
export function fillHeader(server: EtcdServerApi, response: WithHeader): void {
  const member = server.header();
  const revision = response.header?.revision ?? 0;
  response.header = {
    clusterId: member.clusterId,
    memberId: member.memberId,
    revision,
    raftTerm: member.raftTerm,
  };
}

/**
 * Runs one unary call: `admit` may throw a client error (admission checks), then `run` produces the
 * response. With `header` the response header is filled. Errors of either step become statuses.
 */
export function serveUnary<Req, Res extends AnyResponse>(
  server: EtcdServerApi,
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
  header: boolean,
  run: (request: Req) => Promise<Res>,
): void {
  let pending: Promise<Res>;
  // The service's tolerant deserializer (./malformed.ts) hands bad bytes over as a MalformedRequest.
  const request: unknown = call.request;
  if (isMalformed(request)) {
    callback(malformedUnaryStatus(request), null);
    return;
  }
  try {
    if (learnerRefuses(server, call.getPath(), request)) throw new EtcdError("NotSupportedForLearner");
    if (requireLeaderFails(server, call.metadata)) throw noLeaderError;
    pending = run(call.request);
  } catch (error) {
    callback(toGrpcStatus(error), null);
    return;
  }
  pending.then(
    (response) => {
      if (header) fillHeader(server, response as WithHeader);
      callback(null, response);
    },
    (error: unknown) => callback(toGrpcStatus(error), null),
  );
}
