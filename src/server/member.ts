/**
 * One etcd-ts member, started in this process: what the `etcd-ts` bin runs, and what a Node program or a
 * test suite uses instead of a child process (as Go programs use etcd's embed package).
 *
 *   const member = await startMember({ dataDir, listenClientUrls: "http://127.0.0.1:0",
 *                                      advertiseClientUrls: "http://127.0.0.1:0" });
 *   member.clientUrls   // ["http://127.0.0.1:41234"]: the bound addresses
 *   await member.close();
 *
 * The order follows etcd's embed.StartEtcd and etcdmain, and each of etcd's milestone log lines is written
 * only once that point is really reached: "ready to serve client requests" after this member's attributes
 * were committed through raft (EtcdServer.readyNotify), not when the port opens.
 */
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { type ClientPort, listenClientPort } from "../api/clientPort.js";
import { createCoordinationServices } from "../api/coordination.js";
import { type Api, createApi } from "../api/index.js";
import { createWatchService } from "../api/watch.js";
import { formatGoDuration } from "../config/goparse.js";
import { resolveMemberConfig } from "../config/member.js";
import type { ConfigNote, MemberConfig, MemberOptions } from "../config/types.js";
import { urlHost, urlPort, urlText } from "../config/urls.js";
import { ETCD_SERVER_VERSION, ETCD_TS_VERSION, GIT_SHA_NOT_PROVIDED } from "../config/version.js";
import { formatDurationMs, humanizeBytes } from "../log/format.js";
import { createLogger, type LogFields, type Logger } from "../log/logger.js";
import { createTransport, type Transport } from "../transport/index.js";
import { Wal } from "../wal/wal.js";
import { WatchHub } from "../watch/hub.js";
import { type Bootstrapped, bootstrap, MemberError, memberPaths } from "./bootstrap.js";
import { EtcdServer } from "./etcdServer.js";
import { formatId } from "./ids.js";
import { leaderHandlers } from "./peerHandlers.js";

/** etcd's default backend quota (2 GiB) and the largest it recommends (8 GiB), for its start-up lines. */
const DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;
const MAX_QUOTA_BYTES = 8 * 1024 ** 3;
/** etcd's recommended --max-request-bytes ceiling (10 MiB); above it etcd warns. */
const RECOMMENDED_MAX_REQUEST_BYTES = 10 * 1024 * 1024;
/** etcd's SnapshotCatchUpEntries (not a flag in 3.4), printed in the start-up line. */
const SNAPSHOT_CATCH_UP_ENTRIES = 5000;
/** grpc.health.v1 NOT_SERVING. */
const HEALTH_NOT_SERVING = 2;

/** What the process does when the member cannot go on (a failed WAL or backend write, a broken invariant). */
export type FatalHandler = (error: unknown) => void;

/** startMember's options: every flag as a field (MemberOptions), plus the in-process hooks. */
export interface StartMemberOptions extends MemberOptions {
  /**
   * Called once when persistence fails or an invariant breaks; the member has stopped serving writes.
   * Default: log one fatal line and exit the process with code 1 (a member that cannot persist must stop).
   */
  readonly onFatal?: FatalHandler;
  /**
   * A logger to write to instead of one built from logLevel/logOutputs (`logger` is taken: it is etcd's
   * --logger flag).
   */
  readonly log?: Logger;
}

/** A running member. */
export interface Member {
  readonly name: string;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** One per --listen-client-urls, as bound (port 0 resolved), e.g. "http://127.0.0.1:41234". */
  readonly clientUrls: readonly string[];
  /** The client URLs this member advertises (port 0 replaced by the bound port). */
  readonly advertiseClientUrls: readonly string[];
  readonly dataDir: string;
  readonly server: EtcdServer;
  /** The member's watch hub (its stats() show watchers, queued bytes, fan-out mode). */
  readonly watchHub: WatchHub;
  /**
   * Stops accepting, lets in-flight requests finish (up to etcd's request timeout), stops raft, flushes
   * the WAL and commits the backend. Safe to call twice; resolves when everything is closed.
   */
  close(): Promise<void>;
}

/** Internals the bin and tests pass; not part of the flag surface. */
export interface MemberRuntime {
  readonly logger?: Logger;
  readonly onFatal?: FatalHandler;
  /** Lines the configuration step asked to be logged (from parseConfig or resolveMemberConfig). */
  readonly notes?: readonly ConfigNote[];
  /** Election jitter seed, for reproducible tests. */
  readonly rngSeed?: number;
  /** This member was removed from its cluster and stopped serving; the bin closes it and exits. */
  readonly onRemoved?: () => void;
  /** Raft entries kept below each snapshot (etcd's SnapshotCatchUpEntries, 5,000); tests lower it. */
  readonly snapshotCatchUpEntries?: number;
}

/** Starts a member from options named like the flags (see MemberOptions); throws ConfigError or MemberError. */
export async function startMember(options: StartMemberOptions = {}): Promise<Member> {
  const { onFatal, log, ...flags } = options;
  const { config, notes } = resolveMemberConfig(flags);
  return startMemberWithConfig(config, {
    notes,
    ...(log === undefined ? {} : { logger: log }),
    ...(onFatal === undefined ? {} : { onFatal }),
  });
}

/** Starts a member from an already resolved configuration (what `etcd-ts [flags]` does). */
export async function startMemberWithConfig(
  config: MemberConfig,
  runtime: MemberRuntime = {},
): Promise<Member> {
  const root = runtime.logger ?? createLogger({ level: config.logLevel, outputs: config.logOutputs });
  for (const note of runtime.notes ?? []) root.log(note.level, note.msg, note.fields as LogFields);
  const onFatal = runtime.onFatal ?? exitOnFatal(root);
  // "caller" names the module as etcd's file names do: embed for the start-up, etcdserver for the server.
  const logger = root.child("embed");
  const serverLogger = root.child("etcdserver");
  checkListenUrls(config);

  const paths = memberPaths(config);
  const memberInitialized = await Wal.exists(paths.walDir);
  if (memberInitialized) {
    root.info("server has been already initialized", { "data-dir": config.dataDir, "dir-type": "member" });
  }
  logger.info("configuring client listeners", {
    "listen-client-urls": config.listenClientUrls.map(urlText),
  });
  logger.info("starting an etcd server", startingFields(config, memberInitialized));

  // Fatal errors can arrive from the workers at any time once they run; route them all to one place.
  let fatalReported = false;
  let failStartup: (error: unknown) => void = () => {};
  const startupFailed = new Promise<never>((_resolve, reject) => {
    failStartup = reject;
  });
  startupFailed.catch(() => {});
  const fatal = (error: unknown): void => {
    if (fatalReported) return;
    fatalReported = true;
    failStartup(error);
    onFatal(error);
  };
  const booted = await bootstrap({
    config,
    logger: serverLogger,
    onFatal: fatal,
    ...(runtime.rngSeed === undefined ? {} : { rngSeed: runtime.rngSeed }),
  });
  let server: EtcdServer | null = null;
  let watchHub: WatchHub | null = null;
  let transport: Transport | null = null;
  const ports: ClientPort[] = [];
  try {
    // The peer port first (etcd's configurePeerListeners): raft messages that arrive before the server
    // exists are dropped, and raft retries.
    const peerTransport = await createTransport({
      clusterId: booted.clusterId,
      memberId: booted.memberId,
      listen: config.listenPeerUrls,
      advertiseUrls: config.initialAdvertisePeerUrls.map(urlText),
      logger: root,
      snapshotDir: booted.paths.snapDir,
      onMessage: (message, snapshot) => server?.step(message, snapshot),
      onUnreachable: (id) => server?.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => server?.reportSnapshot(id, ok),
      onMemberRemoved: () => server?.removedFromCluster(),
      isRemoved: (id) => server?.membership.isRemoved(id) === true,
      snapshotData: () => snapshotChunks(booted),
      members: () => server?.membership.list() ?? [],
      clusterVersion: () => {
        const version = server?.versions().etcdcluster;
        return version === undefined || version === "not_decided" ? null : version;
      },
    });
    transport = peerTransport;
    logQuota(serverLogger, config.quotaBackendBytes);
    if (config.maxRequestBytes > RECOMMENDED_MAX_REQUEST_BYTES) {
      serverLogger.warn("exceeded recommended request limit", {
        "max-request-bytes": config.maxRequestBytes,
        "max-request-size": humanizeBytes(config.maxRequestBytes),
        "recommended-request-bytes": RECOMMENDED_MAX_REQUEST_BYTES,
        "recommended-request-size": humanizeBytes(RECOMMENDED_MAX_REQUEST_BYTES),
      });
    }
    // The advertised URLs are filled in once the listeners are bound (port 0 -> the real port), before
    // the server starts and so before it publishes them through raft.
    const advertised: string[] = [];
    server = new EtcdServer({
      memberId: booted.memberId,
      clusterId: booted.clusterId,
      name: config.name,
      clientUrls: advertised,
      node: booted.node,
      storage: booted.storage,
      wal: booted.wal,
      store: booted.store,
      backend: booted.backend,
      transport: peerTransport,
      peers: peerTransport,
      strictReconfigCheck: config.strictReconfigCheck,
      unsafeLocalReads: unsafeLocalReads(serverLogger),
      installSnapshot: (path, onInstalled) => booted.store.installSnapshot(path, onInstalled),
      onRemoved: () => runtime.onRemoved?.(),
      logger: serverLogger,
      tickMs: config.heartbeatIntervalMs,
      electionTimeoutMs: config.electionTimeoutMs,
      maxTxnOps: config.maxTxnOps,
      maxRequestBytes: config.maxRequestBytes,
      // EtcdServer takes <= 0 as "no quota"; the config says Infinity for a disabled one.
      quotaBackendBytes: Number.isFinite(config.quotaBackendBytes) ? config.quotaBackendBytes : 0,
      onFatal: fatal,
      snapshots: {
        snapshotter: booted.snapshotter,
        snapshotCount: config.snapshotCount,
        ...(runtime.snapshotCatchUpEntries === undefined
          ? {}
          : { catchUpEntries: runtime.snapshotCatchUpEntries }),
      },
      autoCompaction: config.autoCompaction,
    });
    // Watch: applied events go to the hub, which matches and encodes them (on its fan-out worker once
    // watchers are many) and writes them to the Watch streams.
    const headerSource = server;
    const hub = new WatchHub({
      store: booted.store,
      header: () => headerSource.header(),
      maxRequestBytes: config.maxRequestBytes,
      progressNotifyIntervalMs: config.experimentalWatchProgressNotifyIntervalMs,
      onFatal: fatal,
    });
    watchHub = hub;
    await hub.start();
    server.setEventSink((revision, events) => hub.onApplied(revision, events));
    server.setRestoredHook(() => hub.resync());
    for (const [path, handler] of Object.entries(leaderHandlers(server))) peerTransport.handle(path, handler);
    const api = createApi(server, {
      watch: createWatchService({ hub, server, electionTimeoutMs: config.electionTimeoutMs }),
      ...createCoordinationServices({ server, hub, electionTimeoutMs: config.electionTimeoutMs }),
      maxRequestBytes: config.maxRequestBytes,
      keepaliveIntervalMs: config.grpcKeepaliveIntervalMs,
      keepaliveTimeoutMs: config.grpcKeepaliveTimeoutMs,
      http: { cors: config.cors },
    });
    for (const url of config.listenClientUrls) {
      ports.push(
        await listenClientPort({
          host: urlHost(url),
          port: urlPort(url),
          grpcServer: api.grpcServer,
          http: api.httpHandler,
        }),
      );
    }
    const clientUrls = ports.map((port, i) => boundUrl(config.listenClientUrls[i]!, port));
    advertised.push(...advertisedUrls(config, ports));

    serverLogger.info("starting etcd server", {
      "local-member-id": formatId(booted.memberId),
      "local-server-version": ETCD_SERVER_VERSION,
      "cluster-version": server.versions().etcdcluster === "not_decided" ? "to_be_decided" : "3.4",
    });
    // Dial every other member: the initial cluster's (new), the running cluster's (join), the member
    // list's (restart; the replayed log adds any it is missing as it applies).
    for (const peer of booted.initialPeers) peerTransport.addPeer(peer.id, peer.peerUrls);
    for (const m of server.membership.list()) {
      if (m.id !== booted.memberId && !server.membership.isRemoved(m.id))
        peerTransport.addPeer(m.id, m.peerUrls);
    }
    adjustTicks(serverLogger, config, booted, server, peerTransport);
    server.start();
    logger.info("now serving peer/client/metrics", {
      "local-member-id": formatId(booted.memberId),
      "initial-advertise-peer-urls": config.initialAdvertisePeerUrls.map(urlText),
      "listen-peer-urls": [...peerTransport.listenUrls],
      "advertise-client-urls": advertised,
      "listen-client-urls": clientUrls,
      "listen-metrics-urls": config.listenMetricsUrls.map(urlText),
    });

    const member = new RunningMember(
      config,
      booted,
      server,
      api,
      hub,
      peerTransport,
      ports,
      clientUrls,
      advertised,
      logger,
    );
    // A fatal error before this member is ready fails the start instead of leaving it waiting forever.
    await Promise.race([server.readyNotify(), startupFailed]);
    for (const port of ports) {
      logger.info("ready to serve client requests");
      const address = port.address();
      logger.info("serving client traffic insecurely; this is strongly discouraged!", {
        address: `${address.host}:${address.port}`,
      });
    }
    return member;
  } catch (error) {
    await Promise.allSettled(ports.map((port) => port.close(0)));
    await server?.stop().catch(() => {});
    await transport?.close().catch(() => {});
    await watchHub?.close().catch(() => {});
    await booted.close().catch(() => {});
    throw error;
  }
}

class RunningMember implements Member {
  readonly name: string;
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly dataDir: string;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly config: MemberConfig,
    private readonly booted: Bootstrapped,
    readonly server: EtcdServer,
    private readonly api: Api,
    readonly watchHub: WatchHub,
    private readonly transport: Transport,
    private readonly ports: readonly ClientPort[],
    readonly clientUrls: readonly string[],
    readonly advertiseClientUrls: readonly string[],
    private readonly logger: Logger,
  ) {
    this.name = config.name;
    this.memberId = booted.memberId;
    this.clusterId = booted.clusterId;
    this.dataDir = config.dataDir;
  }

  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    const fields = {
      name: this.config.name,
      "data-dir": this.config.dataDir,
      "advertise-peer-urls": this.config.initialAdvertisePeerUrls.map(urlText),
      "advertise-client-urls": [...this.advertiseClientUrls],
    };
    this.logger.info("closing etcd server", fields);
    const leader = this.server.leader;
    if (this.server.membership.voters().length <= 1) {
      this.logger.info("skipped leadership transfer for single voting member cluster", {
        "local-member-id": formatId(this.memberId),
        "current-leader-member-id": formatId(leader),
      });
    } else {
      await this.server.transferLeadershipOnStop();
    }
    this.api.health.set("", HEALTH_NOT_SERVING);
    // In-flight requests need raft to finish, so the ports drain first and raft stops after (etcd gives
    // them its request timeout: 5 s plus two election timeouts).
    const graceMs = 5000 + 2 * this.config.electionTimeoutMs;
    await Promise.all(this.ports.map((port) => port.close(graceMs)));
    this.api.grpcServer.forceShutdown();
    await this.server.stop();
    await this.transport.close();
    await this.watchHub.close();
    await this.booted.close();
    this.logger.info("closed etcd server", fields);
  }
}

/**
 * ETCD_TS_FAULT_UNSAFE_LOCAL_READS=1 breaks linearizable reads on purpose (answered locally, no
 * ReadIndex) so that the fault runs can show the linearizability checker catches such a server.
 */
function unsafeLocalReads(logger: Logger): boolean {
  if (process.env.ETCD_TS_FAULT_UNSAFE_LOCAL_READS !== "1") return false;
  logger.warn("FAULT INJECTION: linearizable reads are served locally without ReadIndex (tests only)", {
    env: "ETCD_TS_FAULT_UNSAFE_LOCAL_READS",
  });
  return true;
}

/** Chunks of a received snapshot's database, as the peer transport sends them to a lagging member. */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** The backend image a MsgSnap carries: a consistent copy taken when the send starts. */
async function* snapshotChunks(booted: Bootstrapped): AsyncIterable<Uint8Array> {
  const snapshot = await booted.backend.snapshot();
  try {
    yield* snapshot.chunks(SNAPSHOT_CHUNK_BYTES);
  } finally {
    await snapshot.close();
  }
}

/** https and unix sockets need TLS and socket support that are not built; refuse rather than misserve. */
function checkListenUrls(config: MemberConfig): void {
  for (const url of config.listenClientUrls) {
    if (url.protocol !== "http:") {
      throw new MemberError(
        "MEMBER_LISTEN_UNSUPPORTED",
        `etcd-ts serves only http:// client URLs for now (TLS and unix sockets are not built); refusing --listen-client-urls=${urlText(url)}`,
      );
    }
  }
}

function boundUrl(url: URL, port: ClientPort): string {
  const address = port.address();
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${url.protocol}//${host}:${address.port}`;
}

/**
 * The advertised client URLs with port 0 replaced by the port actually bound for a listener on the same
 * host (or, failing that, the first listener asked for port 0), so that a member started on port 0
 * publishes an address clients can use.
 */
function advertisedUrls(config: MemberConfig, ports: readonly ClientPort[]): string[] {
  return config.advertiseClientUrls.map((url) => {
    if (url.port !== "0") return urlText(url);
    const candidates = config.listenClientUrls
      .map((listen, i) => ({ listen, port: ports[i]! }))
      .filter(({ listen }) => listen.port === "0");
    const match = candidates.find(({ listen }) => listen.hostname === url.hostname) ?? candidates[0];
    if (match === undefined) return urlText(url);
    const copy = new URL(url.href);
    copy.port = String(match.port.address().port);
    return urlText(copy);
  });
}

/**
 * etcd's adjustTicks: a member that is alone in its cluster need not wait a whole election timeout before
 * campaigning, so all but one election tick are spent at once.
 */
function adjustTicks(
  logger: Logger,
  config: MemberConfig,
  booted: Bootstrapped,
  server: EtcdServer,
  transport: Transport,
): void {
  const members = booted.restarted ? server.membership.list().length : booted.initialMemberCount;
  if (members === 1) {
    const ticks = config.electionTicks - 1;
    logger.info("started as single-node; fast-forwarding election ticks", {
      "local-member-id": formatId(booted.memberId),
      "forward-ticks": ticks,
      "forward-duration": formatDurationMs(ticks * config.heartbeatIntervalMs),
      "election-ticks": config.electionTicks,
      "election-timeout": formatDurationMs(config.electionTicks * config.heartbeatIntervalMs),
    });
    for (let i = 0; i < ticks; i++) booted.node.tick();
    return;
  }
  if (!config.initialElectionTickAdvance) {
    logger.info("skipping initial election tick advance", { "election-ticks": config.electionTicks });
  }
  if (!config.initialElectionTickAdvance) return;
  // With peers, etcd waits (up to rafthttp's 5 s read timeout) until peer connections report in, then
  // spends all but two election ticks, so that the first election does not wait a whole timeout.
  let polls = 0;
  const timer = setInterval(() => {
    polls++;
    if (transport.activePeers() > 1) {
      clearInterval(timer);
      const ticks = config.electionTicks - 2;
      logger.info("initialized peer connections; fast-forwarding election ticks", {
        "local-member-id": formatId(booted.memberId),
        "forward-ticks": ticks,
        "forward-duration": formatDurationMs(ticks * config.heartbeatIntervalMs),
        "election-ticks": config.electionTicks,
        "election-timeout": formatDurationMs(config.electionTicks * config.heartbeatIntervalMs),
        "active-remote-members": transport.activePeers(),
      });
      server.advanceTicks(ticks);
    } else if (polls >= PEER_WAIT_POLLS_MAX) {
      clearInterval(timer);
    }
  }, PEER_WAIT_POLL_MS);
  timer.unref();
}

/** adjustTicks polls the peer connections every 50 ms for up to 5 s (etcd's ConnReadTimeout). */
const PEER_WAIT_POLL_MS = 50;
const PEER_WAIT_POLLS_MAX = 100;

function logQuota(logger: Logger, quotaBytes: number): void {
  const name = "v3-applier";
  if (!Number.isFinite(quotaBytes)) {
    logger.info("disabled backend quota", { "quota-name": name, "quota-size-bytes": -1 });
    return;
  }
  if (quotaBytes === DEFAULT_QUOTA_BYTES) {
    logger.info("enabled backend quota with default value", {
      "quota-name": name,
      "quota-size-bytes": quotaBytes,
      "quota-size": humanizeBytes(quotaBytes),
    });
    return;
  }
  if (quotaBytes > MAX_QUOTA_BYTES) {
    logger.warn("quota exceeds the maximum value", {
      "quota-name": name,
      "quota-size-bytes": quotaBytes,
      "quota-size": humanizeBytes(quotaBytes),
      "quota-maximum-size-bytes": MAX_QUOTA_BYTES,
      "quota-maximum-size": humanizeBytes(MAX_QUOTA_BYTES),
    });
  }
  logger.info("enabled backend quota", {
    "quota-name": name,
    "quota-size-bytes": quotaBytes,
    "quota-size": humanizeBytes(quotaBytes),
  });
}

/** The fields of etcd's "starting an etcd server" line, in etcd's order (Node's facts where etcd has Go's). */
function startingFields(config: MemberConfig, memberInitialized: boolean): LogFields {
  const retention =
    config.autoCompaction.mode === "periodic"
      ? formatDurationMs(config.autoCompaction.retentionMs)
      : // etcd holds a revision count in a time.Duration and prints it as one (1000 -> "1µs").
        formatGoDuration(BigInt(config.autoCompaction.retentionRevisions));
  return {
    "etcd-version": ETCD_SERVER_VERSION,
    "etcd-ts-version": ETCD_TS_VERSION,
    "git-sha": process.env.ETCD_TS_GIT_SHA ?? GIT_SHA_NOT_PROVIDED,
    "node-version": process.version,
    "node-os": process.platform,
    "node-arch": process.arch,
    "max-cpu-set": availableParallelism(),
    "max-cpu-available": cpus().length,
    "member-initialized": memberInitialized,
    name: config.name,
    "data-dir": config.dataDir,
    "wal-dir": config.walDir,
    "wal-dir-dedicated": config.walDir,
    "member-dir": join(config.dataDir, "member"),
    "force-new-cluster": config.forceNewCluster,
    "heartbeat-interval": formatDurationMs(config.heartbeatIntervalMs),
    "election-timeout": formatDurationMs(config.electionTicks * config.heartbeatIntervalMs),
    "initial-election-tick-advance": config.initialElectionTickAdvance,
    "snapshot-count": config.snapshotCount,
    "max-wals": config.maxWals,
    "max-snapshots": config.maxSnapshots,
    "snapshot-catchup-entries": SNAPSHOT_CATCH_UP_ENTRIES,
    "initial-advertise-peer-urls": config.initialAdvertisePeerUrls.map(urlText),
    "listen-peer-urls": config.listenPeerUrls.map(urlText),
    "advertise-client-urls": config.advertiseClientUrls.map(urlText),
    "listen-client-urls": config.listenClientUrls.map(urlText),
    "listen-metrics-urls": config.listenMetricsUrls.map(urlText),
    cors: [...config.cors],
    "host-whitelist": [...config.hostWhitelist],
    // A restarting member ignores the initial-cluster flags; etcd prints them empty then.
    "initial-cluster": memberInitialized ? "" : initialClusterText(config),
    "initial-cluster-state": config.initialClusterState,
    "initial-cluster-token": memberInitialized ? "" : config.initialClusterToken,
    "quota-backend-bytes": Number.isFinite(config.quotaBackendBytes) ? config.quotaBackendBytes : -1,
    "max-request-bytes": config.maxRequestBytes,
    "max-concurrent-streams": config.maxConcurrentStreams,
    "pre-vote": config.preVote,
    "initial-corrupt-check": config.experimentalInitialCorruptCheck,
    "corrupt-check-time-interval": formatDurationMs(config.experimentalCorruptCheckTimeMs),
    "auto-compaction-mode": config.autoCompaction.mode,
    "auto-compaction-retention": retention,
    "auto-compaction-interval": retention,
    "discovery-url": config.discovery,
    "discovery-proxy": config.discoveryProxy,
  };
}

/** types.URLsMap.String(): `name=url` pairs, sorted, comma-separated. */
function initialClusterText(config: MemberConfig): string {
  const pairs: string[] = [];
  for (const [name, urls] of config.initialClusterMembers)
    for (const url of urls) pairs.push(`${name}=${urlText(url)}`);
  return pairs.sort().join(",");
}

/**
 * The default fatal handler: one line, then the process ends at once. etcd exits 1 here (lg.Fatal), but
 * process.exit() can wait forever when the backend writer is inside a batch transaction (worker
 * termination and lmdb's exit cleanup block on it), and a member that cannot persist must stop, never
 * hang. So the process kills itself (status 137) after saying so; the WAL and lmdb are crash-safe.
 */
function exitOnFatal(logger: Logger): FatalHandler {
  return (error) => {
    logger.fatal("etcd-ts member stopped on a fatal error; exiting", {
      error: error instanceof Error ? error.message : String(error),
    });
    process.kill(process.pid, "SIGKILL");
  };
}
