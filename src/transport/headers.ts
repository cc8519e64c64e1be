import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { ETCD_SERVER_VERSION } from "../config/version.js";
import { formatId } from "../log/format.js";
import type { Logger } from "../log/logger.js";
import { EtcdPeerText } from "./errors.js";

/**
 * The identity every peer request carries, in etcd's rafthttp headers, plus the etcd-ts peer protocol:
 *
 *   X-Server-From          the sender's member id (hex, as etcd prints ids)
 *   X-Server-Version       the etcd version implemented (3.4.23)
 *   X-Min-Cluster-Version  the lowest cluster version this member can join (etcd 3.4: 3.0.0)
 *   X-Etcd-Cluster-ID      the cluster id (hex)
 *   X-Raft-To              the member the sender means to reach (hex; streams and snapshots)
 *   X-PeerURLs             the sender's advertised peer URLs, so a receiver that does not know it yet
 *                          can answer (etcd's "remote")
 *   X-Etcd-Ts-Peer-Protocol  the etcd-ts framing version on /raft/stream/etcdts and /raft/snapshot
 *
 * The checks run in etcd's order (versions, then cluster id) and refuse with etcd's 412 texts, so a real
 * etcd that dials this port by mistake logs what it would log against another etcd.
 */

/** Version of the framing (frame.ts) and the handshake. A change that an older member cannot read bumps it. */
export const PEER_PROTOCOL_VERSION = "1";
/** The HTTP Upgrade token of a stream. */
export const STREAM_UPGRADE_TOKEN = "etcd-ts-raft";
/** Streams live under etcd's /raft/stream prefix, on a path etcd does not serve (a real etcd answers 404). */
export const STREAM_PATH_PREFIX = "/raft/stream/etcdts/";
export const SNAPSHOT_PATH = "/raft/snapshot";
export const PROBING_PATH = "/raft/probing";
/** etcd 3.4's version.MinClusterVersion. */
export const MIN_CLUSTER_VERSION = "3.0.0";

export const Header = {
  from: "x-server-from",
  serverVersion: "x-server-version",
  minClusterVersion: "x-min-cluster-version",
  clusterId: "x-etcd-cluster-id",
  raftTo: "x-raft-to",
  peerUrls: "x-peerurls",
  protocol: "x-etcd-ts-peer-protocol",
} as const;

/** Response header names as Go's net/http canonicalises them (byte-identical answers to etcd's). */
export const CLUSTER_ID_RESPONSE_HEADER = "X-Etcd-Cluster-Id";
export const SERVER_VERSION_RESPONSE_HEADER = "X-Server-Version";

export interface LocalIdentity {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** The URLs put in X-PeerURLs. */
  readonly advertiseUrls: readonly string[];
}

/** Headers of a stream handshake or a snapshot POST from `local` to `to`. */
export function peerRequestHeaders(local: LocalIdentity, to: bigint): OutgoingHttpHeaders {
  return {
    "X-Server-From": formatId(local.memberId),
    "X-Server-Version": ETCD_SERVER_VERSION,
    "X-Min-Cluster-Version": MIN_CLUSTER_VERSION,
    "X-Etcd-Cluster-ID": formatId(local.clusterId),
    "X-Raft-To": formatId(to),
    "X-PeerURLs": local.advertiseUrls.join(","),
    "X-Etcd-Ts-Peer-Protocol": PEER_PROTOCOL_VERSION,
  };
}

interface MajorMinor {
  readonly major: number;
  readonly minor: number;
}

/** "3.4.23" -> {3, 4}; a missing header means etcd 2.0.0, as etcd assumes; garbage -> null. */
function majorMinor(text: string | undefined): MajorMinor | null {
  const match = /^(\d{1,9})\.(\d{1,9})\.\d{1,9}/.exec(text ?? "2.0.0");
  if (match === null) return null;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

function compare(a: MajorMinor, b: MajorMinor): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

const LOCAL_SERVER = majorMinor(ETCD_SERVER_VERSION)!;
const LOCAL_MIN_CLUSTER = majorMinor(MIN_CLUSTER_VERSION)!;

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export type CompatibilityProblem =
  | { readonly kind: "version"; readonly reason: string }
  | { readonly kind: "clusterId"; readonly remoteClusterId: string };

/**
 * etcd's checkClusterCompatibilityFromHeader: the remote server version must not be below our minimum
 * cluster version, its minimum cluster version not above our server version (major.minor), and the
 * cluster ids must be equal. null when compatible.
 */
export function checkCompatibility(
  headers: IncomingHttpHeaders,
  clusterId: bigint,
): CompatibilityProblem | null {
  const name = headerValue(headers, Header.from) ?? "";
  const serverText = headerValue(headers, Header.serverVersion);
  const server = majorMinor(serverText);
  const minCluster = majorMinor(headerValue(headers, Header.minClusterVersion));
  if (server === null || minCluster === null) {
    return { kind: "version", reason: `unparsable version header from remote[${name}]` };
  }
  if (compare(server, LOCAL_MIN_CLUSTER) < 0) {
    return {
      kind: "version",
      reason: `remote version is too low: remote[${name}]=${serverText ?? "2.0.0"}, local=${ETCD_SERVER_VERSION}`,
    };
  }
  if (compare(minCluster, LOCAL_SERVER) > 0) {
    return {
      kind: "version",
      reason: `local version is too low: remote[${name}]=${serverText ?? "2.0.0"}, local=${ETCD_SERVER_VERSION}`,
    };
  }
  const remoteClusterId = headerValue(headers, Header.clusterId) ?? "";
  if (remoteClusterId !== formatId(clusterId)) return { kind: "clusterId", remoteClusterId };
  return null;
}

/** The 412 body etcd answers for a compatibility problem. */
export function compatibilityText(problem: CompatibilityProblem): string {
  return problem.kind === "version" ? EtcdPeerText.incompatibleVersion : EtcdPeerText.clusterIdMismatch;
}

const HEX_ID = /^[0-9a-fA-F]{1,16}$/;

/** A member id as etcd writes it in paths and headers (hex, 1-16 digits); null if it is not one. */
export function parseId(text: string | undefined): bigint | null {
  if (text === undefined || !HEX_ID.test(text)) return null;
  return BigInt(`0x${text}`);
}

/** X-PeerURLs: comma-separated http(s) URLs; at most `max` kept; anything unparsable gives []. */
export function parsePeerUrls(text: string | undefined, max: number): string[] {
  if (text === undefined || text === "") return [];
  const urls = text.split(",").slice(0, max);
  for (const url of urls) {
    if (!URL.canParse(url)) return [];
    const protocol = new URL(url).protocol;
    if (protocol !== "http:" && protocol !== "https:") return [];
  }
  return urls;
}

/** etcd's two warnings of checkClusterCompatibilityFromHeader. */
export function logPeerCompatibility(
  log: Logger,
  local: LocalIdentity,
  headers: IncomingHttpHeaders,
  problem: CompatibilityProblem,
): void {
  const fields = {
    "local-member-id": formatId(local.memberId),
    "local-member-cluster-id": formatId(local.clusterId),
    "remote-peer-server-name": headerValue(headers, Header.from) ?? "",
    "remote-peer-server-version": headerValue(headers, Header.serverVersion) ?? "",
  };
  if (problem.kind === "version") {
    log.warn("failed to check version compatibility", { ...fields, error: problem.reason });
  } else {
    log.warn("request cluster ID mismatch", {
      ...fields,
      "remote-peer-cluster-id": problem.remoteClusterId,
    });
  }
}
