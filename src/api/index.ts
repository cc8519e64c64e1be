import * as grpc from "@grpc/grpc-js";
import {
  AuthService,
  type ClusterHandlers,
  ClusterService,
  ElectionService,
  KVService,
  LeaseService,
  LockService,
  type MaintenanceHandlers,
  MaintenanceService,
  WatchService,
} from "../proto/index.js";
import { type EtcdServerApi, hasCluster, hasLeases } from "../server/api.js";
import { serveUnary } from "./call.js";
import type { HttpHandler } from "./clientPort.js";
import { HealthService, HealthStatus } from "./health.js";
import { createHttpHandler, type HttpApiOptions } from "./http.js";
import { kvHandlers } from "./kv.js";
import { leaseHandlers } from "./lease.js";
import { withTolerantDecoding } from "./malformed.js";
import { useGrpcGoOversizeText } from "./oversize.js";
import { type GrpcStatus, unimplementedStatus } from "./status.js";
import { watchServiceDefinition } from "./watch.js";

/**
 * The client-facing API of one member: the gRPC server with etcd's services and options, and the HTTP/1.1
 * handler, both to be handed to listenClientPort (./clientPort.ts), which serves them on one port.
 *
 *   const api = createApi(server);
 *   const port = await listenClientPort({ host, port, grpcServer: api.grpcServer, http: api.httpHandler });
 *
 * Served now: KV (all five RPCs), Maintenance Status/Hash/HashKV/Alarm/Defragment, Cluster MemberList, and
 * grpc.health.v1.Health. Everything else answers as grpc-go answers for what a server does not register
 * (UNIMPLEMENTED "unknown service etcdserverpb.Watch", or "unknown method Snapshot for service
 * etcdserverpb.Maintenance" inside a registered service), so clients see etcd's shape of "not here".
 */

export interface ApiOptions {
  /**
   * etcd's --max-request-bytes; gRPC accepts messages up to this plus 512 KiB (etcd's headroom for the
   * envelope). Default: the server's own limit.
   */
  maxRequestBytes?: number;
  /** etcd's --grpc-keepalive-interval (server pings an idle connection), default 2 h. */
  keepaliveIntervalMs?: number;
  /** etcd's --grpc-keepalive-timeout (a ping unanswered this long closes the connection), default 20 s. */
  keepaliveTimeoutMs?: number;
  /** Seams for /metrics and the JSON gateway, and the /health read timeout. */
  http?: HttpApiOptions;
  /** The Watch service's handlers (src/api/watch.ts createWatchService); absent: Watch is not served. */
  watch?: grpc.UntypedServiceImplementation;
  /** The v3lock service's handlers (src/api/coordination.ts); absent: not served. */
  lock?: grpc.UntypedServiceImplementation;
  /** The v3election service's handlers (src/api/coordination.ts); absent: not served. */
  election?: grpc.UntypedServiceImplementation;
}

export interface Api {
  grpcServer: grpc.Server;
  httpHandler: HttpHandler;
  /** The health service's statuses: the member may set "" to NOT_SERVING while it stops. */
  health: HealthStatus;
}

/** etcd's grpc.MaxRecvMsgSize headroom above --max-request-bytes (embed/serve.go, v3rpc/grpc.go). */
const GRPC_RECEIVE_HEADROOM_BYTES = 512 * 1024;
/** etcd's grpc.MaxSendMsgSize: math.MaxInt32. */
const GRPC_SEND_BYTES_MAX = 2 ** 31 - 1;
/** etcd's grpc.MaxConcurrentStreams: math.MaxUint32. */
const GRPC_CONCURRENT_STREAMS_MAX = 2 ** 32 - 1;
const KEEPALIVE_INTERVAL_MS_DEFAULT = 2 * 60 * 60 * 1000;
const KEEPALIVE_TIMEOUT_MS_DEFAULT = 20 * 1000;

export function createApi(server: EtcdServerApi, options: ApiOptions = {}): Api {
  const maxRequestBytes = options.maxRequestBytes ?? server.limits.maxRequestBytes;
  // etcd's text for an oversized message (./oversize.ts): grpc-js builds that status below any hook.
  useGrpcGoOversizeText();
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": maxRequestBytes + GRPC_RECEIVE_HEADROOM_BYTES,
    "grpc.max_send_message_length": GRPC_SEND_BYTES_MAX,
    "grpc.max_concurrent_streams": GRPC_CONCURRENT_STREAMS_MAX,
    "grpc.keepalive_time_ms": options.keepaliveIntervalMs ?? KEEPALIVE_INTERVAL_MS_DEFAULT,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? KEEPALIVE_TIMEOUT_MS_DEFAULT,
    // Channelz bookkeeping costs ~5% per call (PERFORMANCE.md) and etcd exposes no channelz service.
    "grpc.enable_channelz": 0,
    // Not settable in grpc-js 1.14: etcd's keepalive enforcement (a client pinging more often than every
    // 5 s gets GOAWAY ENHANCE_YOUR_CALM). grpc-js servers accept pings at any rate.
  });

  // Every etcd service decodes tolerantly (./malformed.ts): bad bytes get grpc-go's answer, not grpc-js's.
  const add = <D extends grpc.ServiceDefinition>(
    definition: D,
    handlers: grpc.UntypedServiceImplementation,
  ) => grpcServer.addService(withTolerantDecoding(definition), handlers);
  add(KVService, kvHandlers(server) as unknown as grpc.UntypedServiceImplementation);
  add(MaintenanceService, maintenanceHandlers(server) as unknown as grpc.UntypedServiceImplementation);
  add(ClusterService, clusterHandlers(server) as unknown as grpc.UntypedServiceImplementation);
  // Registered so that their calls get grpc-go's text; grpc-js's own answer for an unknown path differs.
  if (options.watch !== undefined) {
    // Its responses are pre-encoded bytes: the definition's serializer passes them through.
    grpcServer.addService(watchServiceDefinition, options.watch);
  } else {
    add(WatchService, unimplemented(WatchService, "etcdserverpb.Watch", false));
  }
  if (hasLeases(server)) {
    add(LeaseService, leaseHandlers(server) as unknown as grpc.UntypedServiceImplementation);
  } else {
    add(LeaseService, unimplemented(LeaseService, "etcdserverpb.Lease", false));
  }
  add(AuthService, unimplemented(AuthService, "etcdserverpb.Auth", false));
  add(LockService, options.lock ?? unimplemented(LockService, "v3lockpb.Lock", false));
  add(ElectionService, options.election ?? unimplemented(ElectionService, "v3electionpb.Election", false));

  const health = new HealthStatus();
  grpcServer.addService(HealthService, health.handlers());

  return { grpcServer, httpHandler: createHttpHandler(server, options.http), health };
}

/** Alarm and Defragment answer without a header (etcd's maintenanceServer leaves it nil, spec §4). */
function maintenanceHandlers(server: EtcdServerApi): MaintenanceHandlers {
  return {
    ...(unimplemented(
      MaintenanceService,
      "etcdserverpb.Maintenance",
      true,
    ) as unknown as MaintenanceHandlers),
    Status(call, callback) {
      serveUnary(server, call, callback, true, () => server.status());
    },
    Hash(call, callback) {
      serveUnary(server, call, callback, true, () => server.hash());
    },
    HashKV(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.hashKV(request));
    },
    Alarm(call, callback) {
      serveUnary(server, call, callback, false, (request) => server.alarm(request));
    },
    Defragment(call, callback) {
      serveUnary(server, call, callback, false, () => server.defragment());
    },
    ...(hasCluster(server)
      ? {
          MoveLeader(call, callback) {
            serveUnary(server, call, callback, false, (request) => server.moveLeader(request));
          },
        }
      : {}),
  };
}

/** MemberList only; its header's revision stays 0 as etcd's Cluster responses (spec §4). */
function clusterHandlers(server: EtcdServerApi): ClusterHandlers {
  return {
    ...(unimplemented(ClusterService, "etcdserverpb.Cluster", true) as unknown as ClusterHandlers),
    MemberList(call, callback) {
      serveUnary(server, call, callback, true, (request) => server.memberList(request));
    },
    ...(hasCluster(server)
      ? {
          MemberAdd(call, callback) {
            serveUnary(server, call, callback, true, (request) => server.memberAdd(request));
          },
          MemberRemove(call, callback) {
            serveUnary(server, call, callback, true, (request) => server.memberRemove(request));
          },
          MemberUpdate(call, callback) {
            serveUnary(server, call, callback, true, (request) => server.memberUpdate(request));
          },
          MemberPromote(call, callback) {
            serveUnary(server, call, callback, true, (request) => server.memberPromote(request));
          },
        }
      : {}),
  };
}

type AnyDefinition = Record<string, { requestStream: boolean; responseStream: boolean }>;

/**
 * Handlers that fail every method of `definition` as grpc-go fails a call it has no handler for:
 * "unknown service S" when the service is not served at all, "unknown method M for service S" when the
 * service is served but not this method.
 */
function unimplemented(
  definition: AnyDefinition,
  service: string,
  serviceServed: boolean,
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const [method, shape] of Object.entries(definition)) {
    const status: GrpcStatus = unimplementedStatus(service, serviceServed ? method : undefined);
    if (!shape.requestStream && !shape.responseStream) {
      handlers[method] = ((_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
        callback(status, null)) as grpc.handleUnaryCall<unknown, unknown>;
    } else {
      handlers[method] = ((call: { emit(event: "error", status: GrpcStatus): boolean }) => {
        call.emit("error", status);
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    }
  }
  return handlers;
}
