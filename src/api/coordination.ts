import type * as grpc from "@grpc/grpc-js";
import { MemberClient } from "../concurrency/client.js";
import { campaign, leader, observe, proclaim, resign } from "../concurrency/election.js";
import { CoordinationError } from "../concurrency/errors.js";
import { lock, unlock } from "../concurrency/mutex.js";
import { EtcdError } from "../errors.js";
import type { ElectionHandlers, LockHandlers, v3electionpb } from "../proto/index.js";
import type { EtcdServerApi, LeaseServerApi } from "../server/api.js";
import type { WatchHub } from "../watch/hub.js";
import { learnerRefuses, requireLeaderFails, serveUnary } from "./call.js";
import { isMalformed, malformedStreamStatus } from "./malformed.js";
import { toGrpcStatus } from "./status.js";

/**
 * The v3lock and v3election services (spec §9): etcd's server implements them on top of its own lease,
 * txn and watch; so do these (src/concurrency). createApi serves each one given here and answers "unknown
 * service" for one that is absent.
 *
 * Calls pass etcd's interceptor checks first (malformed request, learner, `hasleader`), which answer
 * with their own codes; every error after that is sent as UNKNOWN with etcd's text, because etcd's
 * services see their member through an in-process client that turns statuses into plain errors (spec
 * §9). A waiting call (Lock, Campaign, Observe) ends when the client cancels it or its deadline passes:
 * the wait's watch is closed, and Lock/Campaign delete their key as etcd's Mutex/Election do then.
 */
export interface CoordinationDeps {
  readonly server: EtcdServerApi & LeaseServerApi;
  readonly hub: WatchHub;
  /**
   * etcd's election timeout (--election-timeout, default 1000 ms): the tick of the monitor that ends
   * `hasleader` Observe streams after NO_LEADER_TICKS_MAX ticks without a leader.
   */
  readonly electionTimeoutMs?: number;
}

const ELECTION_TIMEOUT_MS_DEFAULT = 1000;
/** etcd's maxNoLeaderCnt: election timeouts without a leader before `hasleader` streams end. */
const NO_LEADER_TICKS_MAX = 3;

export interface CoordinationServices {
  readonly lock?: grpc.UntypedServiceImplementation;
  readonly election?: grpc.UntypedServiceImplementation;
}

export function createCoordinationServices(deps: CoordinationDeps): CoordinationServices {
  const client = new MemberClient(deps.server, deps.hub);
  const monitor = new LeaderMonitor(deps.server, deps.electionTimeoutMs ?? ELECTION_TIMEOUT_MS_DEFAULT);
  return {
    lock: lockHandlers(client) as unknown as grpc.UntypedServiceImplementation,
    election: electionHandlers(client, monitor) as unknown as grpc.UntypedServiceImplementation,
  };
}

export function lockHandlers(client: MemberClient): LockHandlers {
  return {
    Lock(call, callback) {
      serveWaiting(client, call, callback, (request, signal) =>
        lock(client, request.name, request.lease, signal),
      );
    },
    Unlock(call, callback) {
      serveWaiting(client, call, callback, async (request) => ({
        header: await unlock(client, request.key),
      }));
    },
  };
}

export function electionHandlers(client: MemberClient, monitor: LeaderMonitor): ElectionHandlers {
  return {
    Campaign(call, callback) {
      serveWaiting(client, call, callback, (request, signal) => campaign(client, request, signal));
    },
    Proclaim(call, callback) {
      serveWaiting(client, call, callback, (request) => proclaim(client, request));
    },
    Resign(call, callback) {
      serveWaiting(client, call, callback, (request) => resign(client, request));
    },
    Leader(call, callback) {
      serveWaiting(client, call, callback, (request) => leader(client, request));
    },
    Observe(call) {
      serveObserve(client, monitor, call);
    },
  };
}

/** Any error past the interceptor checks, as etcd's services return it: UNKNOWN with the text. */
function asServiceError(error: unknown): unknown {
  if (error instanceof EtcdError) return new CoordinationError("Server", error.message);
  return error;
}

/** A unary call whose work gets a signal that aborts when the client cancels (or the deadline passes). */
function serveWaiting<Req, Res extends object>(
  client: MemberClient,
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
  run: (request: Req, signal: AbortSignal) => Promise<Res>,
): void {
  const controller = new AbortController();
  call.once("cancelled", () => controller.abort());
  // Headers are the inner calls' own (filled as each returned), as etcd's services pass them on.
  serveUnary(client.server, call, callback, false, (request) =>
    run(request, controller.signal).catch((error: unknown) => {
      throw asServiceError(error);
    }),
  );
}

function serveObserve(
  client: MemberClient,
  monitor: LeaderMonitor,
  call: grpc.ServerWritableStream<v3electionpb.LeaderRequest, v3electionpb.LeaderResponseInit>,
): void {
  const request: unknown = call.request;
  if (isMalformed(request)) {
    call.emit("error", malformedStreamStatus(request));
    return;
  }
  const server = client.server;
  // etcd's stream interceptor: learners serve no streams; `hasleader` without a leader is refused.
  if (learnerRefuses(server, call.getPath(), request)) {
    call.emit("error", toGrpcStatus(new EtcdError("NotSupportedForLearner")));
    return;
  }
  if (requireLeaderFails(server, call.metadata)) {
    call.emit("error", toGrpcStatus(new EtcdError("NoLeader")));
    return;
  }
  const controller = new AbortController();
  const signal = controller.signal;
  const abort = (): void => {
    monitor.remove(abort);
    controller.abort();
  };
  call.once("cancelled", abort);
  call.once("close", abort);
  if (wantsLeader(call.metadata)) {
    // etcd's stream interceptor cancels the stream's context with ErrGRPCNoLeader; Observe returns it.
    monitor.add(abort, () => {
      if (signal.aborted) return;
      abort();
      call.emit("error", toGrpcStatus(new EtcdError("NoLeader")));
    });
  }
  const send = (response: v3electionpb.LeaderResponseInit): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(new CoordinationError("Cancelled"));
        return;
      }
      if (call.write(response)) {
        resolve();
        return;
      }
      // The client reads slowly: wait for grpc-js to drain before reading the watch further.
      const onAbort = (): void => {
        call.removeListener("drain", onDrain);
        reject(new CoordinationError("Cancelled"));
      };
      const onDrain = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      call.once("drain", onDrain);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  observe(client, (request as v3electionpb.LeaderRequest).name, signal, send).then(
    () => {
      monitor.remove(abort);
      if (!signal.aborted) call.end();
    },
    (error: unknown) => {
      monitor.remove(abort);
      if (!signal.aborted) call.emit("error", toGrpcStatus(asServiceError(error)));
    },
  );
}

function wantsLeader(metadata: grpc.Metadata): boolean {
  const values = metadata.get("hasleader");
  return values.length > 0 && values[0] === "true";
}

/**
 * etcd's monitorLeader for the Election service's streams: every election timeout it counts whether the
 * member has a leader; after NO_LEADER_TICKS_MAX ticks without one, every registered `hasleader` stream
 * ends with "etcdserver: no leader". Its timer runs only while streams are registered.
 */
export class LeaderMonitor {
  /** Registered streams: the key is the stream's own abort, the value ends it with NoLeader. */
  private readonly streams = new Map<() => void, () => void>();
  private timer: NodeJS.Timeout | null = null;
  private noLeaderTicks = 0;

  constructor(
    private readonly server: Pick<EtcdServerApi, "leader">,
    private readonly tickMs: number,
  ) {}

  add(key: () => void, endNoLeader: () => void): void {
    this.streams.set(key, endNoLeader);
    if (this.timer === null) {
      this.noLeaderTicks = 0;
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  remove(key: () => void): void {
    this.streams.delete(key);
    if (this.streams.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private tick(): void {
    this.noLeaderTicks = this.server.leader === 0n ? this.noLeaderTicks + 1 : 0;
    if (this.noLeaderTicks < NO_LEADER_TICKS_MAX) return;
    for (const end of [...this.streams.values()]) end();
  }
}
