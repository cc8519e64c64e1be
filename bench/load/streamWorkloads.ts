import { performance } from "node:perf_hooks";
import type * as grpc from "@grpc/grpc-js";
import { assert } from "../../src/assert.js";
import { errorText, methods, passThrough, unaryCall } from "./connections.js";
import type { IssueRequest } from "./engine.js";
import { BenchError } from "./errors.js";
import { TokenBucket } from "./rateLimiter.js";
import type { LatencyRecorder } from "./recorder.js";
import type { CompleteRequest } from "./transport.js";
import {
  encodeLeaseGrantRequest,
  encodeLeaseKeepAliveRequest,
  encodeLeaseRevokeRequest,
  encodePutRequest,
  encodeWatchCreateRequest,
  readLeaseGrantResponse,
  readLeaseKeepAliveTtl,
  readWatchResponse,
} from "./wire.js";

/** etcd's benchmark grants its leases with this TTL, in seconds. */
const leaseTtlSeconds = 100;
const setupTimeoutMs = 30_000;

export interface LeaseKeepAliveWorkload {
  issue: IssueRequest;
  /** Ends the streams and revokes the leases. */
  close(): Promise<void>;
}

function hasTtl(response: Uint8Array): boolean {
  return readLeaseKeepAliveTtl(response) > 0;
}

/**
 * etcd tools/benchmark `lease-keepalive`: every client grants a lease, then renews it over and over.
 * etcd's clientv3 KeepAliveOnce opens a stream per renewal; here each client keeps one
 * LeaseKeepAlive stream open and sends one request at a time on it, which measures the server's
 * renewal path rather than stream setup. A response with TTL 0 (lease not found) counts as an error.
 */
export async function leaseKeepAliveWorkload(
  connections: readonly grpc.Client[],
  clients: number,
  complete: CompleteRequest,
): Promise<LeaseKeepAliveWorkload> {
  const leaseIds: bigint[] = [];
  for (let client = 0; client < clients; client++) {
    const grant = readLeaseGrantResponse(
      await unaryCall(
        connections[client % connections.length]!,
        methods.leaseGrant,
        encodeLeaseGrantRequest(leaseTtlSeconds),
        setupTimeoutMs,
      ),
    );
    if (grant.error !== "") throw new BenchError("BENCH_RPC", `LeaseGrant: ${grant.error}`);
    leaseIds.push(grant.id);
  }
  const requests = leaseIds.map((id) => encodeLeaseKeepAliveRequest(id));
  const inFlight = new Uint8Array(clients);
  const broken: (string | null)[] = new Array(clients).fill(null);
  const streams = leaseIds.map((_, client) => {
    const stream = connections[client % connections.length]!.makeBidiStreamRequest(
      methods.leaseKeepAlive,
      passThrough,
      passThrough,
    );
    stream.on("data", (response: Buffer) => {
      if (inFlight[client] === 0) return;
      inFlight[client] = 0;
      complete(client, hasTtl(response) ? null : "etcdserver: requested lease not found");
    });
    stream.on("error", (error: grpc.ServiceError) => {
      broken[client] = errorText(error);
      if (inFlight[client] === 1) {
        inFlight[client] = 0;
        complete(client, broken[client]);
      }
    });
    return stream;
  });
  return {
    issue: (client) => {
      const failure = broken[client];
      if (failure !== null && failure !== undefined) {
        process.nextTick(complete, client, failure);
        return;
      }
      inFlight[client] = 1;
      streams[client]!.write(requests[client]!);
    },
    close: async () => {
      for (const stream of streams) stream.end();
      for (const [client, id] of leaseIds.entries()) {
        // Best effort: an unrevoked lease expires on its own after its TTL.
        await unaryCall(
          connections[client % connections.length]!,
          methods.leaseRevoke,
          encodeLeaseRevokeRequest(id),
          setupTimeoutMs,
        ).catch(() => {});
      }
    },
  };
}

/** Puts the watch-latency run may issue: it keeps one start time per put. */
export const watchLatencyPutsMax = 10_000_000;
/** How long to wait for events still missing after the last put's response. */
export const watchDrainTimeoutMs = 10_000;

export interface WatchLatencyOptions {
  putConnection: grpc.Client;
  watchConnections: readonly grpc.Client[];
  streams: number;
  watchersPerStream: number;
  key: Buffer;
  value: Buffer;
  totalPuts: number | null;
  durationSeconds: number | null;
  putsPerSecond: number;
  /** Put-to-event latency, one sample per (put, watcher). */
  eventRecorder: LatencyRecorder;
  putRecorder: LatencyRecorder;
  startMs: number;
}

export interface WatchLatencyResult {
  puts: number;
  eventsExpected: number;
  eventsReceived: number;
  statsSeconds: number;
}

function sleepUntilMs(targetMs: number): Promise<void> {
  const delayMs = targetMs - performance.now();
  return delayMs <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, Math.ceil(delayMs)));
}

/**
 * etcd tools/benchmark `watch-latency`: `streams` watch streams with `watchersPerStream` watchers
 * each, all on one key; one client puts that key at `putsPerSecond`, one put at a time; each event's
 * latency is from the put's start to the event's arrival at each watcher. (etcd measures from the
 * put's response; the event can beat the response, so the start is the honest origin.)
 */
export async function runWatchLatency(options: WatchLatencyOptions): Promise<WatchLatencyResult> {
  const watchers = options.streams * options.watchersPerStream;
  const putsPlanned =
    options.totalPuts ?? Math.ceil((options.durationSeconds ?? 0) * options.putsPerSecond) + 1;
  const putsMax = Math.min(putsPlanned, watchLatencyPutsMax);
  const putStartMs = new Float64Array(putsMax);
  const eventsSeen = new Int32Array(watchers);
  let eventsReceived = 0;
  let created = 0;
  let onCreated: (() => void) | null = null;
  /** The first watch stream failure before every watcher exists (e.g. a server without Watch). */
  let onSetupFailed: ((text: string) => void) | null = null;
  let onAllEvents: (() => void) | null = null;
  let puts = 0;
  let lastEventMs = options.startMs;

  const createRequest = encodeWatchCreateRequest(options.key, false);
  const streams: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  for (let streamIndex = 0; streamIndex < options.streams; streamIndex++) {
    const stream = options.watchConnections[
      streamIndex % options.watchConnections.length
    ]!.makeBidiStreamRequest(methods.watch, passThrough, passThrough);
    // Watch ids are per stream; etcd hands them out in creation order from 0.
    const watcherOfId = new Map<number, number>();
    stream.on("data", (response: Buffer) => {
      const nowMs = performance.now();
      const summary = readWatchResponse(response);
      if (summary.created) {
        watcherOfId.set(summary.watchId, streamIndex * options.watchersPerStream + watcherOfId.size);
        created++;
        if (created === watchers) onCreated?.();
        return;
      }
      const watcher = watcherOfId.get(summary.watchId);
      if (watcher === undefined) return;
      for (let event = 0; event < summary.eventCount; event++) {
        const putIndex = eventsSeen[watcher]!++;
        if (putIndex >= puts) continue;
        options.eventRecorder.recordSuccess(putStartMs[putIndex]!, nowMs);
        eventsReceived++;
        lastEventMs = nowMs;
      }
      if (eventsReceived === puts * watchers) onAllEvents?.();
    });
    stream.on("error", (error: grpc.ServiceError) => onSetupFailed?.(errorText(error)));
    for (let watcher = 0; watcher < options.watchersPerStream; watcher++) stream.write(createRequest);
    streams.push(stream);
  }
  await new Promise<void>((resolve, reject) => {
    if (created === watchers) return resolve();
    const timer = setTimeout(
      () => reject(new BenchError("BENCH_RPC", `only ${created} of ${watchers} watchers were created`)),
      setupTimeoutMs,
    );
    onCreated = () => {
      clearTimeout(timer);
      resolve();
    };
    onSetupFailed = (text) => {
      onSetupFailed = null; // the cancels below fail the other streams too
      clearTimeout(timer);
      for (const stream of streams) stream.cancel();
      reject(new BenchError("BENCH_RPC", `a Watch stream failed before its watchers were created: ${text}`));
    };
  });
  onSetupFailed = null;

  const limiter = new TokenBucket(options.putsPerSecond, 1);
  const request = encodePutRequest(options.key, options.value);
  const deadlineNs =
    options.durationSeconds === null
      ? Number.POSITIVE_INFINITY
      : Math.round((options.startMs + options.durationSeconds * 1000) * 1_000_000);
  let askNs = Math.round(performance.now() * 1_000_000);
  while (puts < putsMax) {
    const permitNs = limiter.reserve(askNs, deadlineNs);
    if (permitNs < 0) break;
    await sleepUntilMs(permitNs / 1_000_000);
    askNs = permitNs;
    const index = puts++;
    putStartMs[index] = performance.now();
    try {
      await unaryCall(options.putConnection, methods.put, request, setupTimeoutMs);
      options.putRecorder.recordSuccess(putStartMs[index]!, performance.now());
    } catch (error) {
      options.putRecorder.recordFailure(error instanceof Error ? error.message : String(error));
    }
  }
  const eventsExpected = puts * watchers;
  if (eventsReceived < eventsExpected) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, watchDrainTimeoutMs);
      onAllEvents = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  for (let missing = eventsReceived; missing < eventsExpected; missing++) {
    options.eventRecorder.recordFailure(`watch event not received within ${watchDrainTimeoutMs} ms`);
  }
  for (const stream of streams) stream.cancel();
  assert(eventsReceived <= eventsExpected, "watch-latency: more events than puts × watchers");
  return { puts, eventsExpected, eventsReceived, statsSeconds: (lastEventMs - options.startMs) / 1000 };
}
