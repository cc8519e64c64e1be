import type * as grpc from "@grpc/grpc-js";
import { EtcdError } from "../errors.js";
import type { etcdserverpb, LeaseHandlers } from "../proto/index.js";
import type { EtcdServerApi, LeaseServerApi } from "../server/api.js";
import { fillHeader, requireLeaderFails, serveUnary } from "./call.js";
import { isMalformed, malformedStreamStatus } from "./malformed.js";
import { type GrpcStatus, toGrpcStatus } from "./status.js";

/**
 * etcdserverpb.Lease over the server (etcd's api/v3rpc/lease.go). Grant and revoke go through raft;
 * keepalive, TimeToLive and Leases are answered by the leader's lessor.
 */

/**
 * Keepalive requests of one stream waiting for their answer. A client that sends faster than the member
 * answers is paused (back-pressure on its HTTP/2 stream) until the backlog drains below half.
 */
const KEEPALIVES_PENDING_MAX = 1024;

type LeaseServer = EtcdServerApi & LeaseServerApi;

export function leaseHandlers(server: LeaseServer): LeaseHandlers {
  return {
    LeaseGrant(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.leaseGrant(request));
    },
    LeaseRevoke(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.leaseRevoke(request));
    },
    LeaseTimeToLive(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.leaseTimeToLive(request));
    },
    LeaseLeases(call, callback) {
      serveUnary(server, call, callback, true, () => server.leaseLeases());
    },
    LeaseKeepAlive(call) {
      serveKeepAlive(server, call);
    },
  };
}

/**
 * One LeaseKeepAlive stream: answers each request in order with {header, ID, TTL}; TTL 0 for an unknown
 * lease, the stream stays open (spec §8.2). Client EOF ends the stream normally; an error ends it with
 * the error's status.
 */
function serveKeepAlive(
  server: LeaseServer,
  call: grpc.ServerDuplexStream<etcdserverpb.LeaseKeepAliveRequest, etcdserverpb.LeaseKeepAliveResponseInit>,
): void {
  if ((server as { isLearner?: boolean }).isLearner === true) {
    call.emit("error", toGrpcStatus(new EtcdError("NotSupportedForLearner")));
    return;
  }
  if (requireLeaderFails(server, call.metadata)) {
    call.emit("error", toGrpcStatus(new EtcdError("NoLeader")));
    return;
  }
  let chain: Promise<void> = Promise.resolve();
  let pending = 0;
  let paused = false;
  let ended = false;
  let failed = false;
  const fail = (status: GrpcStatus): void => {
    if (failed) return;
    failed = true;
    call.emit("error", status);
  };
  call.on("data", (request: unknown) => {
    if (failed) return;
    if (isMalformed(request)) {
      fail(malformedStreamStatus(request));
      return;
    }
    const id = (request as etcdserverpb.LeaseKeepAliveRequest).ID;
    pending++;
    if (pending >= KEEPALIVES_PENDING_MAX && !paused) {
      paused = true;
      call.pause();
    }
    chain = chain.then(async () => {
      if (failed || call.cancelled) return;
      try {
        const response = await server.leaseRenew(id);
        fillHeader(server, response);
        call.write(response);
      } catch (error) {
        fail(toGrpcStatus(error));
      } finally {
        pending--;
        if (paused && pending < KEEPALIVES_PENDING_MAX / 2) {
          paused = false;
          call.resume();
        }
      }
    });
  });
  call.on("end", () => {
    if (ended) return;
    ended = true;
    chain.then(() => {
      if (!failed) call.end();
    });
  });
  call.on("error", () => {
    failed = true;
  });
}
