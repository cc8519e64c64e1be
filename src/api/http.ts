import type { IncomingMessage, ServerResponse } from "node:http";
import { etcdserverpb } from "../proto/index.js";
import type { EtcdServerApi } from "../server/api.js";
import type { HttpHandler } from "./clientPort.js";

/**
 * The HTTP/1.1 side of the client port (spec §16), answering byte for byte as etcd 3.4's Go handlers do:
 * - GET /health: `{"health":"true"}` 200, or `{"health":"false"}` 503 (written by Go's http.Error, so with a
 *   newline and `X-Content-Type-Options: nosniff`); `?exclude=NOSPACE&exclude=CORRUPT` ignores those alarms;
 *   any other method 405 with `Allow: GET`.
 * - GET /version: `{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}` as application/json; 405 otherwise.
 * - /metrics and /v3/... (JSON gateway): handed to the handlers given in the options (later issues);
 *   404 until then.
 * - anything else: Go's `404 page not found`.
 * - every answer first passes etcd's accessController (embed/serve.go): CORS headers on every response
 *   when --cors allows the origin (etcd's default `*` allows all), and OPTIONS answered 200 with an empty
 *   body on any path; /v3beta/ is rewritten to /v3/ for the gateway. (Its Host whitelist check is not
 *   built: etcd's default whitelist `*` lets every host through.)
 * - bodies go out with Content-Length, as Go's server sends a short body, not chunked.
 */

export interface HttpApiOptions {
  /** Serves /metrics (any method, as etcd's promhttp handler). */
  metrics?: HttpHandler;
  /** Serves the JSON gateway: /v3/... (a /v3beta/ request arrives rewritten to /v3/, as etcd does). */
  gateway?: HttpHandler;
  /** The linearizable-read part of /health waits this long (etcd: a v2 QGET with a 1 s timeout). */
  healthTimeoutMs?: number;
  /**
   * etcd's --cors: origins allowed to read the answers. `*` (etcd's default) or an empty list allows all
   * and answers `Access-Control-Allow-Origin: *`; otherwise a request whose Origin header is listed
   * gets that origin back, others get no CORS headers.
   */
  cors?: readonly string[];
}

/** etcd's health probe gives its quorum read one second. */
const HEALTH_TIMEOUT_MS_DEFAULT = 1000;

const TEXT_PLAIN = "text/plain; charset=utf-8";

/** Go's http.Error: the text plus a newline, as text/plain, with nosniff. */
function goHttpError(response: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  response.writeHead(status, {
    "Content-Length": Buffer.byteLength(body),
    "Content-Type": TEXT_PLAIN,
    "X-Content-Type-Options": "nosniff",
  });
  response.end(body);
}

/** A short body as Go sends it: with its length (Node would chunk it once headers are written). */
function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { "Content-Length": Buffer.byteLength(body), "Content-Type": contentType });
  response.end(body);
}

/** etcd's addCORSHeader, in Go's header order (sorted). */
function addCorsHeaders(response: ServerResponse, origin: string): void {
  response.setHeader("Access-Control-Allow-Headers", "accept, content-type, authorization");
  response.setHeader("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
  response.setHeader("Access-Control-Allow-Origin", origin);
}

function methodNotAllowed(response: ServerResponse, allow: string): void {
  response.setHeader("Allow", allow);
  goHttpError(response, 405, "Method Not Allowed");
}

/** `exclude` query values that name alarm types (NOSPACE, CORRUPT); others are ignored as in etcd. */
function excludedAlarms(query: URLSearchParams): number[] {
  const types: number[] = [];
  for (const name of query.getAll("exclude")) {
    const type = (etcdserverpb.AlarmType as Record<string, number>)[name];
    if (type !== undefined && !types.includes(type)) types.push(type);
  }
  return types;
}

export function createHttpHandler(server: EtcdServerApi, options: HttpApiOptions = {}): HttpHandler {
  const healthTimeoutMs = options.healthTimeoutMs ?? HEALTH_TIMEOUT_MS_DEFAULT;

  const serveHealth = (request: IncomingMessage, response: ServerResponse, query: URLSearchParams): void => {
    if (request.method !== "GET") {
      methodNotAllowed(response, "GET");
      return;
    }
    server.health({ excludeAlarms: excludedAlarms(query), timeoutMs: healthTimeoutMs }).then(
      (result) => {
        if (result.health) {
          // Go sniffs the body's type when none is set: text/plain for this JSON.
          send(response, 200, TEXT_PLAIN, '{"health":"true"}');
        } else {
          goHttpError(response, 503, '{"health":"false"}');
        }
      },
      () => goHttpError(response, 503, '{"health":"false"}'),
    );
  };

  const serveVersion = (request: IncomingMessage, response: ServerResponse): void => {
    if (request.method !== "GET") {
      methodNotAllowed(response, "GET");
      return;
    }
    const versions = server.versions();
    const body = JSON.stringify({ etcdserver: versions.etcdserver, etcdcluster: versions.etcdcluster });
    send(response, 200, "application/json", body);
  };

  const cors = options.cors ?? ["*"];
  const allOrigins = cors.length === 0 || cors.includes("*");

  return (request, response) => {
    let url = request.url ?? "/";
    if (url.startsWith("/v3beta/")) {
      url = `/v3/${url.slice("/v3beta/".length)}`;
      request.url = url;
    }
    const queryAt = url.indexOf("?");
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    try {
      if (allOrigins) addCorsHeaders(response, "*");
      else {
        const origin = request.headers.origin;
        if (origin !== undefined && cors.includes(origin)) addCorsHeaders(response, origin);
      }
      if (request.method === "OPTIONS") {
        response.writeHead(200, { "Content-Length": 0 });
        response.end();
      } else if (path === "/health") {
        serveHealth(request, response, new URLSearchParams(queryAt === -1 ? "" : url.slice(queryAt + 1)));
      } else if (path === "/version") {
        serveVersion(request, response);
      } else if (path === "/metrics" && options.metrics !== undefined) {
        options.metrics(request, response);
      } else if (path.startsWith("/v3/") && options.gateway !== undefined) {
        options.gateway(request, response);
      } else {
        goHttpError(response, 404, "404 page not found");
      }
    } catch {
      // A handler bug must not take the port down: answer 500 if nothing was sent yet.
      if (!response.headersSent) goHttpError(response, 500, "Internal Server Error");
      else response.destroy();
    }
  };
}
