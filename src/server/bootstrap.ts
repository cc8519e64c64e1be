/**
 * Opens or creates a member's data directory the way etcd 3.4 lays it out and starts its raft node from
 * it (etcd's NewServer + startNode/restartNode):
 *
 *   <data-dir>/member/wal       the write-ahead log (--wal-dir moves it)
 *   <data-dir>/member/snap      raft snapshot files (%016x-%016x.snap)
 *   <data-dir>/member/snap/db   the backend (an lmdb environment directory where etcd has a bbolt file)
 *
 * A directory without a WAL is a new member: ids come from --initial-cluster and --initial-cluster-token,
 * the WAL is created with them, and the raft log is seeded with one AddNode entry per initial member.
 * A directory with a WAL is a restart: the initial-cluster flags are ignored (the WAL's metadata says who
 * we are), the newest snapshot the WAL vouches for is loaded, and the log after it replayed into raft's
 * storage. Committed entries above the snapshot are handed out again; EtcdServer skips those the backend
 * already holds (at or below its consistent index).
 */
import { randomInt } from "node:crypto";
import { lookup } from "node:dns/promises";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { assert } from "../assert.js";
import type { LmdbBackend } from "../backend/lmdb.js";
import { lmdbBackendExists, openLmdbBackend } from "../backend/lmdb.js";
import { goQuote, splitHostPort } from "../config/goparse.js";
import type { MemberConfig } from "../config/types.js";
import { urlText } from "../config/urls.js";
import { formatDurationMs } from "../log/format.js";
import type { LogFields, Logger, LogValue } from "../log/logger.js";
import { MvccStore } from "../mvcc/store.js";
import {
  decodeConfState,
  type Entry,
  EntryType,
  MemoryStorage,
  type Peer,
  RawNode,
  type Snapshot,
  Xoshiro128,
} from "../raft/index.js";
import { snapshotFileName } from "../transport/index.js";
import type { WalLogger } from "../wal/log.js";
import { Snapshotter } from "../wal/snap.js";
import type { WalEntry } from "../wal/types.js";
import { Wal, type WalOptions } from "../wal/wal.js";
import { clusterIdFor, formatId, memberIdFor } from "./ids.js";
import { encodeMemberContext } from "./membership.js";

/** etcd's raft settings (etcdserver/raft.go): 1 MiB per append message, 512 appends in flight. */
const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
const MAX_INFLIGHT_MESSAGES = 512;
/** How long etcd's advertiseMatchesCluster may spend resolving host names (its context timeout). */
const RESOLVE_TIMEOUT_MS = 30_000;
/** Bound of the random election-jitter seed (crypto.randomInt takes ranges up to 2^48). */
const RNG_SEED_MAX = 2 ** 48 - 1;

export type MemberErrorCode =
  /** The initial-cluster flags do not describe this member (etcd's VerifyBootstrap errors). */
  | "MEMBER_BOOTSTRAP_INVALID"
  /** --initial-cluster-state=existing: the running cluster could not be reached or does not list us. */
  | "MEMBER_JOIN_FAILED"
  /** The data dir cannot be created or written. */
  | "MEMBER_DATA_DIR"
  /** The WAL exists but the backend it was applied to is gone or older than the snapshot. */
  | "MEMBER_BACKEND_MISSING"
  /** A listen URL etcd-ts cannot serve yet (https, unix sockets). */
  | "MEMBER_LISTEN_UNSUPPORTED";

/** A start-up failure a user can fix (bad flags against the data dir, an unsupported URL). */
export class MemberError extends Error {
  override readonly name = "MemberError";
  constructor(
    readonly code: MemberErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface MemberPaths {
  readonly dataDir: string;
  readonly memberDir: string;
  readonly walDir: string;
  readonly snapDir: string;
  readonly backendPath: string;
  /** True when --wal-dir put the WAL outside the member dir. */
  readonly walDirDedicated: boolean;
}

export function memberPaths(config: MemberConfig): MemberPaths {
  const dataDir = resolve(config.dataDir);
  const memberDir = join(dataDir, "member");
  const snapDir = join(memberDir, "snap");
  return {
    dataDir,
    memberDir,
    walDir: config.walDir === "" ? join(memberDir, "wal") : resolve(config.walDir),
    snapDir,
    backendPath: join(snapDir, "db"),
    walDirDedicated: config.walDir !== "",
  };
}

export interface BootstrapOptions {
  readonly config: MemberConfig;
  readonly logger: Logger;
  /** A WAL or backend writer failure: the member must stop. */
  readonly onFatal: (error: unknown) => void;
  /** Election jitter seed; random unless a test pins it. */
  readonly rngSeed?: number;
  /** Test hook for the WAL (segment size, preallocation); the member uses the defaults. */
  readonly walOptions?: Omit<WalOptions, "logger" | "onFatal" | "maxWals">;
}

export interface Bootstrapped {
  readonly paths: MemberPaths;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** True when the data dir held a WAL already (etcd's "member-initialized"). */
  readonly restarted: boolean;
  /** Members of a new cluster (0 on restart or join: they come from the backend and the replayed log). */
  readonly initialMemberCount: number;
  /**
   * The other members to dial at start: a new cluster's initial members, or the running cluster's
   * members when joining; empty on restart (the member list in the backend has them).
   */
  readonly initialPeers: ReadonlyArray<{ readonly id: bigint; readonly peerUrls: readonly string[] }>;
  readonly node: RawNode;
  readonly storage: MemoryStorage;
  readonly wal: Wal;
  readonly backend: LmdbBackend;
  readonly store: MvccStore;
  readonly snapshotter: Snapshotter;
  /** The snapshot the member restarted from, if any. */
  readonly snapshot: Snapshot | null;
  /** Closes the WAL and the store (and with it the backend), committing what was written. */
  close(): Promise<void>;
}

/** Opens (or creates) the member's data dir and builds its raft node. */
export async function bootstrap(options: BootstrapOptions): Promise<Bootstrapped> {
  const { config, logger } = options;
  const paths = memberPaths(config);
  try {
    await mkdir(paths.dataDir, { recursive: true, mode: 0o700 });
    await mkdir(paths.snapDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new MemberError("MEMBER_DATA_DIR", `cannot access data directory: ${errorText(error)}`);
  }
  const haveWal = await Wal.exists(paths.walDir);
  // A member joining a running cluster (after `member add`) learns its id and the cluster's from the
  // members already there; a new cluster derives them from the flags; a restart reads them from the WAL.
  const joined =
    !haveWal && config.initialClusterState === "existing" ? await joinExisting(config, logger) : null;
  const newCluster = haveWal || joined !== null ? null : await verifyBootstrap(config);

  const backendExisted = lmdbBackendExists(paths.backendPath);
  const openedAtMs = performance.now();
  const backend = await openLmdbBackend({
    dir: paths.backendPath,
    batchIntervalMs: config.backendBatchIntervalMs,
    batchLimitOps: config.backendBatchLimit,
    onFatal: (message) => options.onFatal(new Error(message)),
  });
  logger.info("opened backend db", {
    path: paths.backendPath,
    took: formatDurationMs(performance.now() - openedAtMs),
  });
  let wal: Wal | null = null;
  try {
    const walOptions: WalOptions = {
      ...options.walOptions,
      maxWals: config.maxWals,
      logger: walLogger(logger.child("wal")),
      onFatal: (error) => options.onFatal(error),
    };
    const snapshotter = new Snapshotter(paths.snapDir, {
      maxSnapshots: config.maxSnapshots,
      logger: walLogger(logger.child("snap")),
    });
    const rng = new Xoshiro128(options.rngSeed ?? randomInt(RNG_SEED_MAX));
    const raftSettings = {
      electionTick: config.electionTicks,
      heartbeatTick: 1,
      rng,
      maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
      maxInflightMessages: MAX_INFLIGHT_MESSAGES,
      checkQuorum: true,
      preVote: config.preVote,
    };
    const storage = new MemoryStorage();
    let memberId: bigint;
    let clusterId: bigint;
    let node: RawNode;
    let snapshot: Snapshot | null = null;
    if (joined !== null) {
      memberId = joined.memberId;
      clusterId = joined.clusterId;
      wal = await Wal.create(paths.walDir, { memberId, clusterId }, walOptions);
      logger.info("starting local member", {
        "local-member-id": formatId(memberId),
        "cluster-id": formatId(clusterId),
      });
      // No bootstrap entries: the leader's log (or a snapshot) brings the configuration.
      node = new RawNode({ ...raftSettings, id: memberId, storage });
    } else if (newCluster !== null) {
      memberId = newCluster.memberId;
      clusterId = newCluster.clusterId;
      wal = await Wal.create(paths.walDir, { memberId, clusterId }, walOptions);
      logger.info("starting local member", {
        "local-member-id": formatId(memberId),
        "cluster-id": formatId(clusterId),
      });
      node = new RawNode({ ...raftSettings, id: memberId, storage });
      node.bootstrap(newCluster.peers);
    } else {
      const markers = await Wal.readSnapshotMarkers(paths.walDir);
      const file = await snapshotter.loadNewestAvailable(markers);
      if (file !== null) {
        snapshot = {
          data: file.data,
          metadata: { index: file.index, term: file.term, confState: decodeConfState(file.confState) },
        };
        // A snapshot received from the leader is saved (file, WAL marker) before its database replaces
        // the backend; a crash in between leaves the database beside it, to install now (etcd's
        // recoverSnapshotBackend).
        const received = join(paths.snapDir, snapshotFileName(file.index));
        if (backend.consistentIndex < file.index && existsSync(received)) {
          logger.info("installing the database of a received snapshot", {
            path: received,
            "snapshot-index": file.index,
          });
          await backend.installSnapshot(received);
        }
        checkBackendCoversSnapshot(paths, backendExisted, backend.consistentIndex, file.index);
      }
      const opened = await Wal.open(
        paths.walDir,
        snapshot === null
          ? {}
          : { fromSnapshot: { index: snapshot.metadata.index, term: snapshot.metadata.term } },
        walOptions,
      );
      wal = opened.wal;
      memberId = opened.metadata.memberId;
      clusterId = opened.metadata.clusterId;
      logger.info("restarting local member", {
        "cluster-id": formatId(clusterId),
        "local-member-id": formatId(memberId),
        "commit-index": opened.hardState.commit,
      });
      if (snapshot !== null) storage.applySnapshot(snapshot);
      storage.setHardState(opened.hardState);
      storage.append(opened.entries.map(toRaftEntry));
      node = new RawNode({
        ...raftSettings,
        id: memberId,
        storage,
        applied: snapshot === null ? 0 : snapshot.metadata.index,
      });
    }
    const store = MvccStore.open({
      backend,
      compactionBatchLimit: config.experimentalCompactionBatchLimit,
      // Writes do not read each key's previous value for watch events: the watch hub looks prev_kv up
      // itself, only while a watcher asked for it (test/watch/prevKvLookup.test.ts).
      eventsWithPrevKv: false,
    });
    const openWal = wal;
    return {
      paths,
      memberId,
      clusterId,
      restarted: haveWal,
      initialMemberCount: newCluster === null ? 0 : newCluster.peers.length,
      initialPeers: (joined?.members ?? newCluster?.members ?? []).filter((m) => m.id !== memberId),
      node,
      storage,
      wal: openWal,
      backend,
      store,
      snapshotter,
      snapshot,
      async close() {
        // The WAL first: everything raft was told is durable stays so; then the backend commits.
        await openWal.close();
        await store.close();
      },
    };
  } catch (error) {
    await wal?.close().catch(() => {});
    await backend.close().catch(() => {});
    throw error;
  }
}

/**
 * The backend must hold at least what the snapshot covers: the WAL before the snapshot may be gone, so
 * a backend that is missing or older cannot be rebuilt (etcd: "database file ... of the backend is
 * missing"). Without a snapshot a fresh backend is fine: the whole log is replayed into it.
 */
function checkBackendCoversSnapshot(
  paths: MemberPaths,
  backendExisted: boolean,
  consistentIndex: number,
  snapshotIndex: number,
): void {
  if (!backendExisted) {
    throw new MemberError(
      "MEMBER_BACKEND_MISSING",
      `database file (${paths.backendPath}) of the backend is missing`,
    );
  }
  if (consistentIndex < snapshotIndex) {
    throw new MemberError(
      "MEMBER_BACKEND_MISSING",
      `the backend (${paths.backendPath}) is at index ${consistentIndex}, below the snapshot at index ${snapshotIndex}; the entries between are no longer in the WAL`,
    );
  }
}

interface NewCluster {
  memberId: bigint;
  clusterId: bigint;
  /** One per initial member, ordered by id (etcd's cl.MemberIDs()). */
  peers: Peer[];
  members: Array<{ id: bigint; peerUrls: string[] }>;
}

/**
 * etcd's VerifyBootstrap (this member is in --initial-cluster, its advertised peer URLs match its entry
 * there, no URL is listed twice), then the ids: each member's from its peer URLs and the cluster token,
 * the cluster's from all member ids.
 */
async function verifyBootstrap(config: MemberConfig): Promise<NewCluster> {
  const cluster = config.initialClusterMembers;
  const own = cluster.get(config.name);
  if (own === undefined) {
    throw new MemberError(
      "MEMBER_BOOTSTRAP_INVALID",
      `couldn't find local name ${goQuote(config.name)} in the initial cluster configuration`,
    );
  }
  await checkAdvertiseMatchesCluster(
    config.name,
    own.map(urlText),
    config.initialAdvertisePeerUrls.map(urlText),
  );
  const pairs = urlsMapPairs(cluster);
  const seen = new Set<string>();
  for (const urls of cluster.values()) {
    for (const url of urls) {
      const text = urlText(url);
      if (seen.has(text)) {
        throw new MemberError(
          "MEMBER_BOOTSTRAP_INVALID",
          `initial cluster ${pairs.join(",")} has duplicate url`,
        );
      }
      seen.add(text);
    }
  }
  if (pairs.length === 0) {
    throw new MemberError("MEMBER_BOOTSTRAP_INVALID", "initial cluster unset and no discovery URL found");
  }
  const members = [...cluster].map(([name, urls]) => {
    const peerUrls = urls.map(urlText).sort();
    return { id: memberIdFor(peerUrls, config.initialClusterToken), name, peerUrls };
  });
  members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const memberId = members.find((m) => m.name === config.name)?.id;
  assert(memberId !== undefined, "the local member is in the initial cluster");
  return {
    memberId,
    clusterId: clusterIdFor(members.map((m) => m.id)),
    members: members.map((m) => ({ id: m.id, peerUrls: m.peerUrls })),
    peers: members.map((m) => ({
      id: m.id,
      context: encodeMemberContext({
        id: m.id,
        name: m.name,
        peerUrls: m.peerUrls,
        clientUrls: [],
        isLearner: false,
      }),
    })),
  };
}

/** How long one peer may take to answer GET /members when joining (etcd's 1 s per URL, a little more). */
const REMOTE_MEMBERS_TIMEOUT_MS = 2000;

interface JoinedCluster {
  memberId: bigint;
  clusterId: bigint;
  members: Array<{ id: bigint; peerUrls: string[] }>;
}

/**
 * etcd's join (GetClusterFromRemotePeers + ValidateClusterAndAssignIDs): ask the members listed in
 * --initial-cluster for the running cluster's member list, check that --initial-cluster describes it (the
 * same number of members, each one's peer URLs matching one there), and take this member's id from the
 * entry with its peer URLs (`member add` created it) and the cluster id from the answer's header.
 */
async function joinExisting(config: MemberConfig, logger: Logger): Promise<JoinedCluster> {
  const own = new Set(config.initialAdvertisePeerUrls.map(urlText));
  const urls: string[] = [];
  for (const list of config.initialClusterMembers.values()) {
    for (const url of list) if (!own.has(urlText(url))) urls.push(urlText(url));
  }
  let remote: { clusterId: bigint; members: Array<{ id: bigint; peerUrls: string[] }> } | null = null;
  for (const url of urls) {
    try {
      const response = await fetch(`${url}/members`, {
        signal: AbortSignal.timeout(REMOTE_MEMBERS_TIMEOUT_MS),
      });
      const header = response.headers.get("X-Etcd-Cluster-ID");
      if (!response.ok || header === null || !/^[0-9a-f]{1,16}$/i.test(header)) {
        throw new Error(`unexpected answer ${response.status}`);
      }
      // Member ids are uint64 JSON numbers: quote them before parsing so none loses precision.
      const text = (await response.text()).replace(/"id":(\d+)/g, '"id":"$1"');
      const list = JSON.parse(text) as Array<{ id: string; peerURLs?: string[] }>;
      remote = {
        clusterId: BigInt(`0x${header}`),
        members: list.map((m) => ({ id: BigInt(m.id), peerUrls: [...(m.peerURLs ?? [])].sort() })),
      };
      break;
    } catch (error) {
      logger.warn("failed to get cluster response", { address: `${url}/members`, error: errorText(error) });
    }
  }
  if (remote === null) {
    throw new MemberError(
      "MEMBER_JOIN_FAILED",
      "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs",
    );
  }
  const local = [...config.initialClusterMembers].map(([name, list]) => ({
    name,
    peerUrls: list.map(urlText).sort(),
  }));
  const prefix = `error validating peerURLs ${JSON.stringify(remote.members.map((m) => ({ id: formatId(m.id), peerURLs: m.peerUrls })))}`;
  if (local.length !== remote.members.length) {
    throw new MemberError("MEMBER_JOIN_FAILED", `${prefix}: member count is unequal`);
  }
  let memberId: bigint | null = null;
  for (const member of local) {
    const match = remote.members.find((m) => m.peerUrls.join(",") === member.peerUrls.join(","));
    if (match === undefined) {
      throw new MemberError(
        "MEMBER_JOIN_FAILED",
        `${prefix}: unmatched member while checking PeerURLs (${JSON.stringify(member.peerUrls)})`,
      );
    }
    if (member.name === config.name) memberId = match.id;
  }
  if (memberId === null) {
    throw new MemberError(
      "MEMBER_BOOTSTRAP_INVALID",
      `couldn't find local name ${goQuote(config.name)} in the initial cluster configuration`,
    );
  }
  return { memberId, clusterId: remote.clusterId, members: remote.members };
}

/** types.URLsMap.String()'s pairs: `name=url`, sorted. */
function urlsMapPairs(cluster: ReadonlyMap<string, readonly URL[]>): string[] {
  const pairs: string[] = [];
  for (const [name, urls] of cluster) for (const url of urls) pairs.push(`${name}=${urlText(url)}`);
  return pairs.sort();
}

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteList(items: readonly string[]): string {
  return `[${items.map(goQuote).join(" ")}]`;
}

/**
 * etcd's advertiseMatchesCluster: the member's --initial-cluster URLs and its
 * --initial-advertise-peer-urls must be the same set, after resolving DNS names (not IP literals, not
 * "localhost") when the texts differ. Errors carry etcd's wording.
 */
async function checkAdvertiseMatchesCluster(
  name: string,
  clusterUrls: readonly string[],
  advertisedUrls: readonly string[],
): Promise<void> {
  const fromCluster = [...clusterUrls].sort();
  const advertised = [...advertisedUrls].sort();
  const reason = await urlStringsEqual(advertised, fromCluster);
  if (reason === null) return;
  const missingFromAdvertised = [...new Set(fromCluster)].filter((u) => !advertised.includes(u));
  if (missingFromAdvertised.length > 0) {
    throw new MemberError(
      "MEMBER_BOOTSTRAP_INVALID",
      `--initial-cluster has ${missingFromAdvertised.map((u) => `${name}=${u}`).join(",")} but missing from --initial-advertise-peer-urls=${advertised.join(",")} (${reason})`,
    );
  }
  const own = advertised.map((u) => `${name}=${u}`).join(",");
  const missingFromCluster = [...new Set(advertised)].filter((u) => !fromCluster.includes(u));
  if (missingFromCluster.length > 0) {
    throw new MemberError(
      "MEMBER_BOOTSTRAP_INVALID",
      `--initial-advertise-peer-urls has ${missingFromCluster.join(",")} but missing from --initial-cluster=${own}`,
    );
  }
  throw new MemberError(
    "MEMBER_BOOTSTRAP_INVALID",
    `failed to resolve ${advertised.join(",")} to match --initial-cluster=${own} (${reason})`,
  );
}

/** netutil.URLStringsEqual: null when equal, else etcd's reason. Both lists sorted. */
async function urlStringsEqual(a: readonly string[], b: readonly string[]): Promise<string | null> {
  if (a.length !== b.length) return `len(${goQuoteList(a)}) != len(${goQuoteList(b)})`;
  if (a.every((url, i) => url === b[i])) return null;
  const deadlineMs = Date.now() + RESOLVE_TIMEOUT_MS;
  let resolvedA: string[];
  let resolvedB: string[];
  try {
    resolvedA = (await Promise.all(a.map((u) => resolveUrl(u, deadlineMs)))).sort();
    resolvedB = (await Promise.all(b.map((u) => resolveUrl(u, deadlineMs)))).sort();
  } catch (error) {
    return errorText(error);
  }
  for (let i = 0; i < resolvedA.length; i++) {
    if (resolvedA[i] !== resolvedB[i]) {
      return `resolved urls: ${goQuote(resolvedA[i]!)} != ${goQuote(resolvedB[i]!)}`;
    }
  }
  return null;
}

/** The URL with a DNS host name replaced by its first address (etcd's resolveURL); others unchanged. */
async function resolveUrl(text: string, deadlineMs: number): Promise<string> {
  const url = new URL(text);
  const split = splitHostPort(url.host);
  if ("error" in split) throw new Error(`failed to resolve ${goQuote(text)} (${split.error})`);
  if (split.host === "localhost" || isIP(split.host) !== 0) return text;
  let timer: NodeJS.Timeout | undefined;
  try {
    const address = await Promise.race([
      lookup(split.host),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error("context deadline exceeded")), deadlineMs - Date.now());
      }),
    ]);
    const host = address.family === 6 ? `[${address.address}]` : address.address;
    return `${url.protocol}//${host}:${split.port}${url.pathname === "/" ? "" : url.pathname}`;
  } catch (error) {
    throw new Error(`failed to resolve ${goQuote(text)} (${errorText(error)})`);
  } finally {
    clearTimeout(timer);
  }
}

/** The WAL stores entry types as plain numbers; raft's are the three it knows. */
function toRaftEntry(entry: WalEntry): Entry {
  const type = entry.type;
  if (type !== EntryType.Normal && type !== EntryType.ConfChange && type !== EntryType.ConfChangeV2) {
    throw new Error(`wal: entry ${entry.index} has unknown type ${type}`);
  }
  return { term: entry.term, index: entry.index, type, data: entry.data };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The WAL and snapshotter log pino-style (fields first); this puts their lines in the member's log. */
export function walLogger(logger: Logger): WalLogger {
  const fieldsOf = (fields: Record<string, unknown>): LogFields => {
    const out: Record<string, LogValue> = {};
    for (const [key, value] of Object.entries(fields)) out[key] = toLogValue(value);
    return out;
  };
  return {
    info: (fields, msg) => logger.info(msg, () => fieldsOf(fields)),
    warn: (fields, msg) => logger.warn(msg, () => fieldsOf(fields)),
    error: (fields, msg) => logger.error(msg, () => fieldsOf(fields)),
  };
}

function toLogValue(value: unknown): LogValue {
  if (
    value === null ||
    typeof value === "string" ||
    typeof value === "number" ||
    typeof value === "boolean" ||
    typeof value === "bigint" ||
    value instanceof Error
  ) {
    return value;
  }
  if (Array.isArray(value)) return value.map(toLogValue);
  return String(value);
}
