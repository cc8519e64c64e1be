import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { type Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";

/**
 * One client URL's listener, shared by gRPC and HTTP/1.1 as etcd shares it (spec §1): a plain TCP
 * connection whose first bytes are the HTTP/2 client preface goes to the gRPC server, anything else to
 * the HTTP/1.1 handler (health, version, metrics, and later the JSON gateway).
 *
 * grpc-js accepts foreign sockets through its connection injector, so the gRPC server never binds a
 * port of its own and both protocols see the same address.
 */

/** The HTTP/2 connection preface (RFC 9113 §3.4). HTTP/1.x requests never start with "PRI ". */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/**
 * Go's http.DefaultMaxHeaderBytes (etcd's client HTTP server keeps the default) and the 4 KiB Go reads
 * past it before answering 431: a request line plus headers up to this size is served, as by etcd
 * (Node's own default, 16 KiB, refused headers etcd accepts).
 */
const GO_MAX_HEADER_BYTES = 1 << 20;
const GO_HEADER_SLACK_BYTES = 4096;
/** A connection that sends nothing for this long before we can tell its protocol is closed. */
const SNIFF_TIMEOUT_MS = 10_000;

export type HttpHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface ClientPortOptions {
  /** host and port to listen on; port 0 picks a free port (read it back from `address()`). */
  host: string;
  port: number;
  grpcServer: GrpcServer;
  http: HttpHandler;
}

export interface ClientPort {
  /** The bound address, e.g. { host: "127.0.0.1", port: 2379 }. */
  address(): { host: string; port: number };
  /**
   * Stops accepting, closes idle HTTP connections, asks gRPC clients to go away (GOAWAY) and gives
   * in-flight calls `graceMs` to finish before the remaining connections are destroyed.
   */
  close(graceMs?: number): Promise<void>;
}

export async function listenClientPort(options: ClientPortOptions): Promise<ClientPort> {
  const injector = options.grpcServer.createConnectionInjector(ServerCredentials.createInsecure());
  const httpServer = createHttpServer(
    { keepAlive: true, maxHeaderSize: GO_MAX_HEADER_BYTES + GO_HEADER_SLACK_BYTES },
    options.http,
  );
  // Node's HTTP server starts tracking its connections (for closeIdleConnections and the request and
  // headers timeouts) on 'listening', which this server never gets: it is fed sockets, it does not bind.
  httpServer.emit("listening");
  const sockets = new Set<Socket>();

  const route = (socket: Socket, head: Buffer): void => {
    socket.unshift(head);
    if (isHttp2Preface(head)) {
      // Node's http2 session takes over the handle and first feeds it what the stream buffered.
      injector.injectConnection(socket);
      return;
    }
    // Node's HTTP/1 server normally lets its parser read the socket's handle directly, which would
    // skip the bytes we just unshifted (and reorder them against later ones). Marking the handle as
    // already consumed keeps the parser on the socket's ordinary 'data' events, buffered bytes first.
    const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
    if (handle !== undefined) handle._consumed = true;
    httpServer.emit("connection", socket);
    socket.resume();
  };

  const netServer: NetServer = createNetServer({ pauseOnConnect: false, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      // Decide as soon as the bytes seen either complete the preface or stop matching it.
      if (head.length < HTTP2_PREFACE.length && isHttp2Preface(head)) return;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.setTimeout(0);
      socket.pause();
      route(socket, head);
    };
    const onError = (): void => {
      socket.destroy();
    };
    socket.on("data", onData);
    socket.on("error", onError);
  });

  await new Promise<void>((resolve, reject) => {
    netServer.once("error", reject);
    netServer.listen({ host: options.host, port: options.port }, () => {
      netServer.off("error", reject);
      resolve();
    });
  });
  netServer.on("error", () => {
    // Accept errors (EMFILE and the like) must not take the member down; the listener stays up.
  });

  return {
    address() {
      const address = netServer.address();
      if (address === null || typeof address === "string") throw new Error("client port is not bound");
      return { host: address.address, port: address.port };
    },
    async close(graceMs = 1000) {
      const closed = new Promise<void>((resolve) => netServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      injector.drain(graceMs);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([closed, grace]);
      clearTimeout(timer);
      injector.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** True when `bytes` is the HTTP/2 preface or a prefix of it (longer input: its first 24 bytes). */
function isHttp2Preface(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, HTTP2_PREFACE.length);
  return bytes.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
}
