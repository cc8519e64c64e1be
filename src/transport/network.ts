import {
  type ClientRequest,
  createServer,
  type RequestOptions,
  request,
  type Server,
  type ServerOptions,
} from "node:http";
import { TransportError, TransportErrorCode } from "./errors.js";

/**
 * How the transport listens and dials: the seam the TLS issue fills. The transport speaks HTTP/1.1 on
 * whatever this returns (handshakes, snapshot POSTs, the peer endpoints) and raw frames on upgraded
 * sockets, so a TLS network only has to return an https server and https requests with the peer
 * certificates (the 'upgrade' event and upgraded sockets work the same over TLS).
 */
export interface PeerNetwork {
  /** True if this network can listen on and dial URLs of this scheme ("http:" here). */
  supports(url: URL): boolean;
  /** A server for one listen URL, not yet listening. */
  createServer(url: URL, options: ServerOptions): Server;
  /** A request to a peer URL; the transport sets method, path and headers, and always agent: false. */
  request(url: URL, options: RequestOptions): ClientRequest;
}

/** Plain HTTP (--listen-peer-urls http://...). */
export const plainHttpNetwork: PeerNetwork = {
  supports(url) {
    return url.protocol === "http:";
  },
  createServer(_url, options) {
    return createServer(options);
  },
  request(url, options) {
    return request(url, options);
  },
};

export function assertSupported(network: PeerNetwork, url: URL, what: string): void {
  if (!network.supports(url)) {
    throw new TransportError(
      TransportErrorCode.BadConfig,
      `${what} ${url.href}: scheme ${url.protocol} is not supported by this peer network (TLS is not built yet)`,
    );
  }
}
