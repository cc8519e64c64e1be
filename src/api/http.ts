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
 */

export interface HttpApiOptions {
  /** Serves /metrics (any method, as etcd's promhttp handler). */
  metrics?: HttpHandler;
  /** Serves the JSON gateway: /v3/... and /v3beta/... (etcd rewrites v3beta to v3). */
  gateway?: HttpHandler;
  /** The linearizable-read part of /health waits this long (etcd: a v2 QGET with a 1 s timeout). */
  healthTimeoutMs?: number;
}

/** etcd's health probe gives its quorum read one second. */
const HEALTH_TIMEOUT_MS_DEFAULT = 1000;

const TEXT_PLAIN = "text/plain; charset=utf-8";

/** Go's http.Error: the text plus a newline, as text/plain, with nosniff. */
function goHttpError(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    "Content-Type": TEXT_PLAIN,
    "X-Content-Type-Options": "nosniff",
  });
  response.end(`${text}\n`);
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
          response.writeHead(200, { "Content-Type": TEXT_PLAIN });
          response.end('{"health":"true"}');
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
    response.writeHead(200, { "Content-Type": "application/json" });
    response.end(JSON.stringify({ etcdserver: versions.etcdserver, etcdcluster: versions.etcdcluster }));
  };

  return (request, response) => {
    const url = request.url ?? "/";
    const queryAt = url.indexOf("?");
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    try {
      if (path === "/health") {
        serveHealth(request, response, new URLSearchParams(queryAt === -1 ? "" : url.slice(queryAt + 1)));
      } else if (path === "/version") {
        serveVersion(request, response);
      } else if (path === "/metrics" && options.metrics !== undefined) {
        options.metrics(request, response);
      } else if ((path.startsWith("/v3/") || path.startsWith("/v3beta/")) && options.gateway !== undefined) {
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
