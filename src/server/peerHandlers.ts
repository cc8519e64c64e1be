import type { IncomingMessage, ServerResponse } from "node:http";
import { type ErrorCode, Errors, EtcdError, isEtcdError } from "../errors.js";
import { etcdserverpb } from "../proto/index.js";
import type { PeerHttpHandler } from "../transport/index.js";
import { decodeMemberContext, encodeMemberContext, type Member } from "./membership.js";

/**
 * The member's own endpoints on the peer port, for requests that only the leader can answer (etcd's
 * peer handlers in etcdserver/api/etcdhttp and leasehttp):
 *
 *   POST /leases              LeaseKeepAliveRequest -> LeaseKeepAliveResponse (protobuf), a follower's
 *                             keepalive renewed on the leader's lessor
 *   POST /leases/internal     LeaseTimeToLiveRequest -> LeaseTimeToLiveResponse (protobuf); etcd wraps
 *                             these in LeaseInternalRequest, etcd-ts members send them bare (members of
 *                             one cluster all run etcd-ts)
 *   POST /members/promote/<id> -> the member list (JSON), a follower's MemberPromote run on the leader
 *
 * Errors travel as the EtcdError code in the body with status 412 (etcd's text is restored on the
 * follower from the code), so the client sees the same error whichever member it asked.
 */

/** Request bodies are a few bytes; anything larger is refused unread. */
const BODY_BYTES_MAX = 64 * 1024;
/** A forwarded request gives up after this long (etcd bounds them by the client's request timeout). */
export const FORWARD_TIMEOUT_MS_DEFAULT = 5000;

export interface LeaderOps {
  leaseRenew(id: bigint): Promise<etcdserverpb.LeaseKeepAliveResponseInit>;
  leaseTimeToLive(
    request: etcdserverpb.LeaseTimeToLiveRequest,
  ): Promise<etcdserverpb.LeaseTimeToLiveResponseInit>;
  promoteOnLeader(id: bigint): Promise<Member[]>;
  header(): { clusterId: bigint; memberId: bigint; raftTerm: number };
}

export function leaderHandlers(ops: LeaderOps): Record<string, PeerHttpHandler> {
  const withHeader = <T extends { header?: etcdserverpb.ResponseHeaderInit | null }>(response: T): T => ({
    ...response,
    header: { ...ops.header(), ...response.header },
  });
  return {
    "/leases": (request, response) =>
      serve(request, response, async (body) => {
        const keepAlive = etcdserverpb.LeaseKeepAliveRequest.decode(body);
        const answer = withHeader(await ops.leaseRenew(keepAlive.ID));
        return etcdserverpb.LeaseKeepAliveResponse.encode(answer);
      }),
    "/leases/internal": (request, response) =>
      serve(request, response, async (body) => {
        const ttl = etcdserverpb.LeaseTimeToLiveRequest.decode(body);
        const answer = withHeader(await ops.leaseTimeToLive(ttl));
        return etcdserverpb.LeaseTimeToLiveResponse.encode(answer);
      }),
    "/members/promote/": (request, response) =>
      serve(request, response, async () => {
        const idText = (request.url ?? "").split("?")[0]!.slice("/members/promote/".length);
        if (!/^[0-9]{1,20}$/.test(idText)) throw new EtcdError("MemberNotFound");
        const members = await ops.promoteOnLeader(BigInt(idText));
        const parts = members.map((m) => new TextDecoder().decode(encodeMemberContext(m)));
        return new TextEncoder().encode(`[${parts.join(",")}]`);
      }),
  };
}

async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  answer: (body: Uint8Array) => Promise<Uint8Array>,
): Promise<void> {
  if (request.method !== "POST") {
    response.writeHead(405, { Allow: "POST" }).end("Method Not Allowed");
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_BYTES_MAX) {
      response.writeHead(413).end("request body too large");
      return;
    }
    chunks.push(chunk);
  }
  try {
    const body = await answer(Buffer.concat(chunks));
    response.writeHead(200, { "Content-Type": "application/protobuf", "Content-Length": body.length });
    response.end(body);
  } catch (error) {
    if (!isEtcdError(error)) throw error;
    const text = error.code;
    response.writeHead(412, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(text) });
    response.end(text);
  }
}

/** Posts `body` to `path` on the first of the leader's peer URLs that answers. */
async function forward(
  urls: readonly string[],
  path: string,
  body: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  let lastError: unknown = new EtcdError("NoLeader");
  for (const url of urls) {
    let response: Response;
    try {
      response = await fetch(`${url}${path}`, {
        method: "POST",
        body,
        headers: { "Content-Type": "application/protobuf" },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      lastError = (error as Error).name === "TimeoutError" ? new EtcdError("Timeout") : error;
      continue;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (response.status === 200) return bytes;
    if (response.status === 412) {
      const code = new TextDecoder().decode(bytes);
      throw Object.hasOwn(Errors, code)
        ? new EtcdError(code as ErrorCode)
        : new Error(`leader answered ${code}`);
    }
    lastError = new Error(`leader answered HTTP ${response.status}`);
  }
  throw lastError instanceof EtcdError ? lastError : new EtcdError("NoLeader");
}

export const forwardToLeader = {
  async keepAlive(
    urls: readonly string[],
    id: bigint,
    timeoutMs: number,
  ): Promise<etcdserverpb.LeaseKeepAliveResponse> {
    const body = etcdserverpb.LeaseKeepAliveRequest.encode({ ID: id });
    return etcdserverpb.LeaseKeepAliveResponse.decode(await forward(urls, "/leases", body, timeoutMs));
  },
  async timeToLive(
    urls: readonly string[],
    request: etcdserverpb.LeaseTimeToLiveRequest,
    timeoutMs: number,
  ): Promise<etcdserverpb.LeaseTimeToLiveResponse> {
    const body = etcdserverpb.LeaseTimeToLiveRequest.encode(request);
    return etcdserverpb.LeaseTimeToLiveResponse.decode(
      await forward(urls, "/leases/internal", body, timeoutMs),
    );
  },
  async promote(urls: readonly string[], id: bigint, timeoutMs: number): Promise<Member[]> {
    const bytes = await forward(urls, `/members/promote/${id}`, new Uint8Array(0), timeoutMs);
    const list = JSON.parse(new TextDecoder().decode(bytes)) as unknown[];
    return list.map((m) => decodeMemberContext(new TextEncoder().encode(JSON.stringify(m))));
  },
};
