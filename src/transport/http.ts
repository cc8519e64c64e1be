import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { ETCD_CLUSTER_VERSION_NOT_DECIDED, ETCD_SERVER_VERSION } from "../config/version.js";
import type { Logger } from "../log/logger.js";
import { EtcdPeerText, reasonOf, TransportError, TransportErrorCode } from "./errors.js";
import { sendError, sendRawError } from "./httpReply.js";
import { assertSupported, type PeerNetwork } from "./network.js";

/**
 * The peer port's HTTP surface (etcd's peer handler mux): the raft paths the transport serves, /members
 * and /version from the server's callbacks, /raft/probing, and a seam where the server registers the rest
 * (/leases, /leases/internal, /members/promote/, /members/hashkv). Patterns follow Go's ServeMux: a
 * pattern ending in "/" matches its subtree (longest wins), any other matches exactly; the rest is 404.
 */

/** A handler for a path on the peer port. A throw or a rejected promise answers 500 (and is logged). */
export type PeerHttpHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/** A member as GET /members lists it (etcd's membership.Member JSON). */
export interface PeerMember {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

/** Node's default is 300 s for a whole request; a snapshot upload may take longer (stalls are checked). */
const REQUEST_TIMEOUT_MS = 0;
const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const MAX_HEADER_BYTES = 16 * 1024;

export class PeerRouter {
  private readonly exact = new Map<string, PeerHttpHandler>();
  /** Subtree patterns, longest first. */
  private readonly subtrees: [string, PeerHttpHandler][] = [];

  handle(pattern: string, handler: PeerHttpHandler): void {
    if (!pattern.startsWith("/")) {
      throw new TransportError(
        TransportErrorCode.BadConfig,
        `peer handler pattern ${pattern} must start with /`,
      );
    }
    if (this.exact.has(pattern) || this.subtrees.some(([p]) => p === pattern)) {
      throw new TransportError(
        TransportErrorCode.BadConfig,
        `a peer handler for ${pattern} is already registered`,
      );
    }
    if (pattern.endsWith("/")) {
      this.subtrees.push([pattern, handler]);
      this.subtrees.sort((a, b) => b[0].length - a[0].length);
    } else {
      this.exact.set(pattern, handler);
    }
  }

  find(path: string): PeerHttpHandler | null {
    const exact = this.exact.get(path);
    if (exact !== undefined) return exact;
    for (const [prefix, handler] of this.subtrees) if (path.startsWith(prefix)) return handler;
    return null;
  }
}

/** Runs a handler; a throw or rejection becomes a logged 500 (or a dropped connection once answering). */
export function runHandler(
  log: Logger,
  handler: PeerHttpHandler,
  request: IncomingMessage,
  response: ServerResponse,
): void {
  const fail = (error: unknown): void => {
    log.warn("peer HTTP handler failed", { path: request.url ?? "", error: reasonOf(error) });
    if (!response.headersSent) sendError(response, 500, "internal server error", { Connection: "close" });
    else response.destroy();
  };
  try {
    const result = handler(request, response);
    if (result instanceof Promise) result.catch(fail);
  } catch (error) {
    fail(error);
  }
}

export function notFound(_request: IncomingMessage, response: ServerResponse): void {
  sendError(response, 404, EtcdPeerText.notFound);
}

/** Go's json escapes <, > and & (and U+2028/9) in strings; so does this, for byte-identical answers. */
function goJsonString(text: string): string {
  return JSON.stringify(text).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function goJsonStrings(list: readonly string[]): string {
  return `[${list.map(goJsonString).join(",")}]`;
}

/** etcd's JSON for one member: id as a decimal uint64, omitempty on isLearner, name and clientURLs. */
export function memberJson(member: PeerMember): string {
  let json = `{"id":${member.id.toString()},"peerURLs":${goJsonStrings(member.peerUrls)}`;
  if (member.isLearner) json += `,"isLearner":true`;
  if (member.name !== "") json += `,"name":${goJsonString(member.name)}`;
  if (member.clientUrls.length > 0) json += `,"clientURLs":${goJsonStrings(member.clientUrls)}`;
  return `${json}}`;
}

export function membersHandler(clusterIdText: string, members: () => readonly PeerMember[]): PeerHttpHandler {
  return (request, response) => {
    if (request.method !== "GET") {
      sendError(response, 405, EtcdPeerText.methodNotAllowed, { Allow: "GET" });
      return;
    }
    const sorted = [...members()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const body = `[${sorted.map(memberJson).join(",")}]\n`;
    response.writeHead(200, {
      "Content-Type": "application/json",
      "X-Etcd-Cluster-Id": clusterIdText,
      "Content-Length": Buffer.byteLength(body),
    });
    response.end(body);
  };
}

export function versionHandler(clusterVersion: () => string | null): PeerHttpHandler {
  return (request, response) => {
    if (request.method !== "GET") {
      sendError(response, 405, EtcdPeerText.methodNotAllowed, { Allow: "GET" });
      return;
    }
    const cluster = clusterVersion() ?? ETCD_CLUSTER_VERSION_NOT_DECIDED;
    const body = `{"etcdserver":${goJsonString(ETCD_SERVER_VERSION)},"etcdcluster":${goJsonString(cluster)}}`;
    response.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    });
    response.end(body);
  };
}

/** github.com/xiang90/probing's handler, which etcd serves on /raft/probing for its RTT prober. */
export function probingHandler(_request: IncomingMessage, response: ServerResponse): void {
  const body = `{"OK":true,"Now":"${new Date().toISOString()}"}\n`;
  response.writeHead(200, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}

export interface PeerServerHandlers {
  /** Every request; `expectsContinue` for one that sent Expect: 100-continue (not yet answered). */
  request(request: IncomingMessage, response: ServerResponse, expectsContinue: boolean): void;
  upgrade(request: IncomingMessage, socket: Socket, head: Buffer): void;
}

/** Binds one server per listen URL; resolves with the servers and their bound URLs (port 0 resolved). */
export async function listenPeerUrls(
  network: PeerNetwork,
  urls: readonly URL[],
  handlers: PeerServerHandlers,
  connectionsMax: number,
): Promise<{ servers: Server[]; boundUrls: string[] }> {
  const servers: Server[] = [];
  const boundUrls: string[] = [];
  try {
    for (const url of urls) {
      assertSupported(network, url, "listen peer URL");
      const server = network.createServer(url, {
        requestTimeout: REQUEST_TIMEOUT_MS,
        headersTimeout: HEADERS_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        maxHeaderSize: MAX_HEADER_BYTES,
      });
      server.maxConnections = connectionsMax;
      server.on("request", (request: IncomingMessage, response: ServerResponse) =>
        handlers.request(request, response, false),
      );
      server.on("checkContinue", (request: IncomingMessage, response: ServerResponse) =>
        handlers.request(request, response, true),
      );
      server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) =>
        handlers.upgrade(request, socket, head),
      );
      server.on("clientError", (_error: Error, socket: Socket) => {
        if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        else socket.destroy();
      });
      servers.push(server);
      boundUrls.push(await listenOne(server, url));
    }
  } catch (error) {
    await closeServers(servers);
    throw error;
  }
  return { servers, boundUrls };
}

function listenOne(server: Server, url: URL): Promise<string> {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (url.port === "") {
    return Promise.reject(
      new TransportError(TransportErrorCode.BadConfig, `listen peer URL ${url.href} has no port`),
    );
  }
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void =>
      reject(
        new TransportError(TransportErrorCode.ListenFailed, `listen tcp ${url.host}: ${error.message}`, {
          cause: error,
        }),
      );
    server.once("error", onError);
    server.listen({ host, port: Number(url.port) }, () => {
      server.off("error", onError);
      const address = server.address() as AddressInfo;
      const hostText = address.family === "IPv6" ? `[${address.address}]` : address.address;
      resolve(`${url.protocol}//${hostText}:${address.port}`);
    });
  });
}

export async function closeServers(servers: readonly Server[]): Promise<void> {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          if (!server.listening) {
            resolve();
            return;
          }
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  );
}

/** An Upgrade request on a path that has no stream: answered as Go's mux would (404). */
export function refuseUpgrade(socket: Socket): void {
  socket.on("error", () => {});
  sendRawError(socket, 404, EtcdPeerText.notFound);
}
