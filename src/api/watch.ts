import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import { EtcdError } from "../errors.js";
import { type etcdserverpb, WatchService } from "../proto/index.js";
import type { EtcdServerApi } from "../server/api.js";
import type { WatchHub } from "../watch/hub.js";
import type { WatchStream } from "../watch/stream.js";
import type { StreamTransport } from "../watch/types.js";
import { isMalformed, malformedStreamStatus, withTolerantDecoding } from "./malformed.js";

/**
 * etcdserverpb.Watch over the watch hub (etcd's api/v3rpc/watch.go). The hub encodes every response
 * itself (the fan-out worker encodes event responses once per group of watchers), so this service's
 * definition serializes responses as identity: the handler writes bytes.
 *
 * Register it with this definition, not the generated WatchService:
 *
 *   grpcServer.addService(watchServiceDefinition, createWatchService({ hub, server }));
 *
 * Stream rules kept here (the rest is in src/watch): the `hasleader` metadata (spec §1.1: refused at once
 * without a leader; cancelled with "etcdserver: no leader" after three election timeouts without one),
 * the client's half-close does not end the stream (spec §7.1), the client's cancel drops its watchers.
 *
 * Writes: the hub hands over several responses at once, already framed (5-byte gRPC prefix each), e.g.
 * the same event for the 100 watchers of one stream. grpc-js frames each written message itself, one
 * http2 write per message (measured: with 1,000 watchers on 100 streams that per-message path took most
 * of the main thread). So its serializer is taught, once per process, to pass a `PreFramed` write
 * through as is: one write per stream per delivery. If grpc-js's internals move, nothing is patched and
 * each response is written on its own (slower, same bytes on the wire).
 */

/**
 * The Watch method with an identity response serializer (handlers write encoded WatchResponses) and a
 * tolerant request decoder (./malformed.ts): a message that does not decode ends the stream with
 * grpc-go's INTERNAL text, as etcd's does.
 */
export const watchServiceDefinition: grpc.ServiceDefinition = withTolerantDecoding({
  Watch: { ...WatchService.Watch, responseSerialize: (bytes: Buffer) => bytes },
});

export interface WatchServiceHandlers extends grpc.UntypedServiceImplementation {
  Watch: grpc.handleBidiStreamingCall<etcdserverpb.WatchRequest, Buffer | PreFramed>;
}

export interface WatchServiceOptions {
  hub: WatchHub;
  /** The member's current leader (0n: none), for the `hasleader` rule. */
  server: Pick<EtcdServerApi, "leader">;
  /** etcd's election timeout (--election-timeout, default 1000 ms): the leader monitor's tick. */
  electionTimeoutMs?: number;
  /**
   * Stream admission before anything else (etcd's stream interceptor: "not capable", learners): an error
   * ends the call with its status. Default: admit.
   */
  admitStream?: (metadata: grpc.Metadata) => EtcdError | null;
  /**
   * Auth for a create_request on key (an empty key already replaced by "\0", as etcd does before its
   * check) and rangeEnd as sent: null to allow, else the cancel_reason to answer with (etcd sends the
   * full gRPC error text, e.g. "rpc error: code = PermissionDenied desc = etcdserver: permission denied").
   */
  authorize?: (metadata: grpc.Metadata, key: Uint8Array, rangeEnd: Uint8Array) => string | null;
  /** Write each response on its own even when grpc-js takes pre-framed writes (tests the fallback). */
  perMessageWrites?: boolean;
}

/** Responses already framed as gRPC frames them: grpc-js (patched below) writes these bytes as they are. */
class PreFramed {
  constructor(readonly frames: Buffer) {}
}

const PRE_FRAMED_PATCHED = Symbol.for("etcd-ts.watchPreFramed");

interface ServerCallPrototype {
  serializeMessage(this: unknown, value: unknown): Buffer;
  [PRE_FRAMED_PATCHED]?: true;
}

/**
 * Teaches grpc-js's server call (BaseServerInterceptingCall.serializeMessage, which frames a handler's
 * message) to pass a PreFramed write through. Idempotent; false when the internals are not found.
 */
export function usePreFramedWrites(): boolean {
  let prototype: ServerCallPrototype | undefined;
  try {
    const require = createRequire(import.meta.url);
    const module = require("@grpc/grpc-js/build/src/server-interceptors.js") as {
      BaseServerInterceptingCall?: { prototype?: ServerCallPrototype };
    };
    prototype = module.BaseServerInterceptingCall?.prototype;
  } catch {
    return false;
  }
  if (prototype === undefined || typeof prototype.serializeMessage !== "function") return false;
  if (prototype[PRE_FRAMED_PATCHED] === true) return true;
  const serialize = prototype.serializeMessage;
  prototype.serializeMessage = function serializeOrPassFrames(this: unknown, value: unknown): Buffer {
    return value instanceof PreFramed ? value.frames : serialize.call(this, value);
  };
  prototype[PRE_FRAMED_PATCHED] = true;
  return true;
}

const preFramedWrites = usePreFramedWrites();

const ELECTION_TIMEOUT_MS_DEFAULT = 1000;
/** etcd's maxNoLeaderCnt: election timeouts without a leader before `hasleader` streams are cancelled. */
const NO_LEADER_TICKS_MAX = 3;
const ZERO_KEY = new Uint8Array([0]);

class CallTransport implements StreamTransport {
  constructor(
    private readonly call: grpc.ServerDuplexStream<etcdserverpb.WatchRequest, Buffer | PreFramed>,
    private readonly preFramed: boolean,
  ) {}

  write(frames: Buffer, written: () => void): void {
    if (this.preFramed) {
      this.call.write(new PreFramed(frames), written);
      return;
    }
    // Unpatched grpc-js: one write per response, `written` on the last (writes complete in order).
    let o = 0;
    while (o < frames.length) {
      const length = frames.readUInt32BE(o + 1);
      const end = o + 5 + length;
      const message = frames.subarray(o + 5, end);
      if (end === frames.length) this.call.write(message, written);
      else this.call.write(message);
      o = end;
    }
  }

  setReading(reading: boolean): void {
    if (reading) this.call.resume();
    else this.call.pause();
  }

  abort(code: number, message: string): void {
    const status: Partial<grpc.StatusObject> = { code, details: message, metadata: new grpc.Metadata() };
    this.call.emit("error", status);
  }
}

/** Cancels `hasleader` streams once the member has had no leader for NO_LEADER_TICKS_MAX ticks. */
class LeaderMonitor {
  private readonly streams = new Set<WatchStream>();
  private timer: NodeJS.Timeout | null = null;
  private noLeaderTicks = 0;

  constructor(
    private readonly server: Pick<EtcdServerApi, "leader">,
    private readonly tickMs: number,
  ) {}

  add(stream: WatchStream): void {
    this.streams.add(stream);
    if (this.timer === null) {
      this.noLeaderTicks = 0;
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  remove(stream: WatchStream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private tick(): void {
    this.noLeaderTicks = this.server.leader === 0n ? this.noLeaderTicks + 1 : 0;
    if (this.noLeaderTicks < NO_LEADER_TICKS_MAX) return;
    const error = new EtcdError("NoLeader");
    for (const stream of [...this.streams]) {
      this.remove(stream);
      stream.abort(error.grpcCode, error.message);
    }
  }
}

function wantsLeader(metadata: grpc.Metadata): boolean {
  const values = metadata.get("hasleader");
  return values.length > 0 && values[0] === "true";
}

export function createWatchService(options: WatchServiceOptions): WatchServiceHandlers {
  const { hub, server } = options;
  const monitor = new LeaderMonitor(server, options.electionTimeoutMs ?? ELECTION_TIMEOUT_MS_DEFAULT);
  const preFramed = preFramedWrites && options.perMessageWrites !== true;
  return {
    Watch(call) {
      const refused = options.admitStream?.(call.metadata) ?? null;
      const requireLeader = wantsLeader(call.metadata);
      const learner = (server as { isLearner?: boolean }).isLearner === true;
      const error =
        refused ??
        (learner ? new EtcdError("NotSupportedForLearner") : null) ??
        (requireLeader && server.leader === 0n ? new EtcdError("NoLeader") : null);
      if (error !== null) {
        new CallTransport(call, preFramed).abort(error.grpcCode, error.message);
        return;
      }
      const stream = hub.openStream(new CallTransport(call, preFramed));
      if (requireLeader) monitor.add(stream);
      const close = (): void => {
        monitor.remove(stream);
        stream.close();
      };
      call.on("data", (request: unknown) => {
        if (isMalformed(request)) {
          const status = malformedStreamStatus(request);
          monitor.remove(stream);
          stream.abort(status.code, status.details);
          return;
        }
        serveRequest(stream, call.metadata, request as etcdserverpb.WatchRequest, options);
      });
      // A client's half-close keeps the stream: watchers go on until the client cancels (spec §7.1).
      call.on("end", () => {});
      call.on("cancelled", close);
      call.on("error", close);
      call.on("close", close);
    },
  };
}

function serveRequest(
  stream: WatchStream,
  metadata: grpc.Metadata,
  request: etcdserverpb.WatchRequest,
  options: WatchServiceOptions,
): void {
  const union = request.requestUnion;
  switch (union?.case) {
    case "createRequest": {
      const create = union.value;
      if (options.authorize !== undefined) {
        const key = create.key.length === 0 ? ZERO_KEY : create.key;
        const reason = options.authorize(metadata, key, create.rangeEnd);
        if (reason !== null) {
          stream.refuse(reason);
          return;
        }
      }
      stream.create({
        key: create.key,
        rangeEnd: create.rangeEnd,
        startRevision: create.startRevision,
        progressNotify: create.progressNotify,
        filters: create.filters,
        prevKv: create.prevKv,
        watchId: create.watchId,
        fragment: create.fragment,
      });
      return;
    }
    case "cancelRequest":
      stream.cancel(union.value.watchId);
      return;
    case "progressRequest":
      stream.requestProgress();
      return;
    default:
      // etcd ignores a request with no known member set rather than ending the stream.
      return;
  }
}
