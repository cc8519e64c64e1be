import http2 from "node:http2";
import type * as grpc from "@grpc/grpc-js";
import { errorText, passThrough } from "./connections.js";
import { BenchError } from "./errors.js";
import type { FramedMessage } from "./wire.js";

/**
 * How the timed phase sends its unary requests. Both send bytes encoded once per client.
 *
 * - `grpc-js` (the default): @grpc/grpc-js channels, one per connection.
 * - `http2`: the same gRPC wire protocol written directly on node:http2 sessions, skipping grpc-js's
 *   per-call machinery (interceptors, call objects, metadata maps). On this 2-core VM it cost about
 *   half the generator CPU per request of grpc-js (84 µs against 183 µs with 50 connections), which
 *   leaves more of the machine to the server under test at loads l and xl.
 *
 * Setup and cleanup calls (pre-check, DeleteRange, Compact, Defragment) always use grpc-js.
 */
export const transportKinds = ["grpc-js", "http2"] as const;
export type TransportKind = (typeof transportKinds)[number];

/** The engine's completion callback, called once per issued request (errorText null on success). */
export type CompleteRequest = (client: number, errorText: string | null) => void;

export interface UnarySender {
  /** Starts one call for `client` (one in flight per client); `complete` follows exactly once. */
  send(client: number, method: string, request: FramedMessage): void;
  close(): void;
}

/**
 * grpc-js: one completion closure per client, built once, so the hot path allocates no closure.
 * grpc-js builds `new Error()` per call to keep the caller's stack for a later failure; capturing that
 * stack was ~20% of the generator's CPU per request, and the bench reports only the status text, so
 * stacks are off for the synchronous start of each call.
 */
export function grpcJsSender(
  connections: readonly grpc.Client[],
  clients: number,
  complete: CompleteRequest,
): UnarySender {
  const callbacks: Array<(error: grpc.ServiceError | null) => void> = [];
  for (let client = 0; client < clients; client++) {
    callbacks.push((error) => complete(client, error === null ? null : errorText(error)));
  }
  return {
    send(client, method, request) {
      const stackTraceLimit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        connections[client % connections.length]!.makeUnaryRequest(
          method,
          passThrough,
          passThrough,
          request.message,
          callbacks[client]!,
        );
      } finally {
        Error.stackTraceLimit = stackTraceLimit;
      }
    },
    close() {},
  };
}

/** grpc-message is percent-encoded on the wire (gRPC over HTTP/2 spec). */
function decodeGrpcMessage(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Opens `count` HTTP/2 sessions (each its own TCP connection), round-robin over the endpoints. */
async function openSessions(
  endpoints: readonly string[],
  count: number,
  dialTimeoutMs: number,
): Promise<http2.ClientHttp2Session[]> {
  const sessions: http2.ClientHttp2Session[] = [];
  const connected: Array<Promise<string | null>> = [];
  for (let index = 0; index < count; index++) {
    const endpoint = endpoints[index % endpoints.length]!;
    const session = http2.connect(`http://${endpoint}`, { settings: { enablePush: false } });
    session.on("error", () => {}); // surfaces on the streams as errors, counted there
    sessions.push(session);
    connected.push(
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(endpoint), dialTimeoutMs);
        session.once("connect", () => {
          clearTimeout(timer);
          resolve(null);
        });
        session.once("close", () => {
          clearTimeout(timer);
          resolve(endpoint);
        });
      }),
    );
  }
  const failed = (await Promise.all(connected)).find((endpoint) => endpoint !== null);
  if (failed !== undefined && failed !== null) {
    for (const session of sessions) session.destroy();
    throw new BenchError(
      "BENCH_CONNECT",
      `cannot connect to ${failed} within ${dialTimeoutMs} ms (is an etcd server listening there?)`,
    );
  }
  return sessions;
}

/**
 * gRPC unary calls written on raw HTTP/2 streams: HEADERS (POST, path, content-type application/grpc,
 * te trailers), one DATA frame with the pre-framed message, then the status from the trailers (or
 * from the headers of a trailers-only answer). Per client: one state slot and four listener functions,
 * built once.
 */
export async function http2Sender(
  endpoints: readonly string[],
  connections: number,
  clients: number,
  dialTimeoutMs: number,
  complete: CompleteRequest,
): Promise<UnarySender> {
  const sessions = await openSessions(endpoints, connections, dialTimeoutMs);
  const headersOf = new Map<string, http2.OutgoingHttpHeaders>();
  const grpcStatus = new Int32Array(clients).fill(-1);
  const grpcMessage: string[] = new Array(clients).fill("");
  const streamError: (string | null)[] = new Array(clients).fill(null);
  const onHeaders: Array<(headers: http2.IncomingHttpHeaders) => void> = [];
  const onError: Array<(error: Error) => void> = [];
  const onClose: Array<() => void> = [];
  for (let client = 0; client < clients; client++) {
    onHeaders.push((headers) => {
      const status = headerText(headers["grpc-status"]);
      if (status !== undefined) {
        grpcStatus[client] = Number(status);
        grpcMessage[client] = headerText(headers["grpc-message"]) ?? "";
      } else if (headers[":status"] !== undefined && Number(headers[":status"]) !== 200) {
        streamError[client] = `HTTP status ${headers[":status"]}`;
      }
    });
    onError.push((error) => {
      streamError[client] = error.message;
    });
    onClose.push(() => {
      const status = grpcStatus[client]!;
      const text =
        status === 0
          ? null
          : status > 0
            ? decodeGrpcMessage(grpcMessage[client]!) || `grpc status ${status}`
            : (streamError[client] ?? "stream closed without a gRPC status");
      grpcStatus[client] = -1;
      grpcMessage[client] = "";
      streamError[client] = null;
      complete(client, text);
    });
  }
  return {
    send(client, method, request) {
      let headers = headersOf.get(method);
      if (headers === undefined) {
        headers = { ":method": "POST", ":path": method, "content-type": "application/grpc", te: "trailers" };
        headersOf.set(method, headers);
      }
      const stream = sessions[client % sessions.length]!.request(headers);
      stream.on("response", onHeaders[client]!);
      stream.on("trailers", onHeaders[client]!);
      stream.on("error", onError[client]!);
      stream.on("close", onClose[client]!);
      stream.resume();
      stream.end(request.framed);
    },
    close() {
      for (const session of sessions) session.close();
    },
  };
}
