/**
 * The member configuration every entry point produces: `etcd-ts [flags]`, ETCD_* variables,
 * `--config-file`, and `startMember(options)` all end in one frozen MemberConfig. Field names are
 * etcd's flag names in camelCase with the unit last (`--heartbeat-interval` -> heartbeatIntervalMs);
 * values are in natural units (milliseconds, bytes, URL objects), already defaulted the way etcd
 * defaults them at start (data dir `${name}.etcd`, quota 0 -> 2 GiB, ...).
 */

export type ClusterState = "new" | "existing";
export type AutoCompactionMode = "periodic" | "revision";
export type ZapLevel = "debug" | "info" | "warn" | "error" | "dpanic" | "panic" | "fatal";
export type LoggerKind = "zap" | "capnslog";
export type ProxyMode = "off" | "readonly" | "on";
export type DiscoveryFallback = "proxy" | "exit";

/** One field per etcd 3.4.23 flag (except --config-file, --version and the flags etcd itself ignores). */
export interface MemberSettings {
  // --- member
  readonly name: string;
  /** `${name}.etcd` when not given, as etcd does. */
  readonly dataDir: string;
  /** "" means `${dataDir}/member/wal`. */
  readonly walDir: string;
  readonly snapshotCount: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly initialElectionTickAdvance: boolean;
  /** Sorted, as etcd's types.NewURLs does (a repeated URL stays repeated, as in etcd). */
  readonly listenPeerUrls: readonly URL[];
  readonly listenClientUrls: readonly URL[];
  /** 0 = unlimited. */
  readonly maxSnapshots: number;
  /** 0 = unlimited. */
  readonly maxWals: number;
  /** The effective quota: 0 on the command line means etcd's default of 2 GiB; a negative value disables it (Infinity). */
  readonly quotaBackendBytes: number;
  /** 0 on the command line means the backend default of 100 ms. */
  readonly backendBatchIntervalMs: number;
  /** 0 on the command line means the backend default of 10,000 operations. */
  readonly backendBatchLimit: number;
  readonly maxTxnOps: number;
  readonly maxRequestBytes: number;
  readonly maxConcurrentStreams: number;
  readonly grpcKeepaliveMinTimeMs: number;
  readonly grpcKeepaliveIntervalMs: number;
  readonly grpcKeepaliveTimeoutMs: number;
  // --- clustering
  readonly initialAdvertisePeerUrls: readonly URL[];
  /** etcd's text form, `name=url,name=url`; after `--name` defaulting. Parsed in MemberConfig.initialClusterMembers. */
  readonly initialCluster: string;
  readonly initialClusterState: ClusterState;
  readonly initialClusterToken: string;
  readonly advertiseClientUrls: readonly URL[];
  readonly discovery: string;
  readonly discoveryFallback: DiscoveryFallback;
  readonly discoveryProxy: string;
  readonly discoverySrv: string;
  readonly discoverySrvName: string;
  readonly strictReconfigCheck: boolean;
  readonly preVote: boolean;
  /** As given; see MemberConfig.autoCompaction for the interpreted value. */
  readonly autoCompactionRetention: string;
  readonly autoCompactionMode: AutoCompactionMode;
  readonly enableV2: boolean;
  // --- security
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCertAuth: boolean;
  readonly clientCrlFile: string;
  readonly clientCertAllowedHostname: string;
  readonly trustedCaFile: string;
  readonly autoTls: boolean;
  readonly peerCertFile: string;
  readonly peerKeyFile: string;
  readonly peerClientCertAuth: boolean;
  readonly peerTrustedCaFile: string;
  readonly peerCertAllowedCn: string;
  readonly peerCertAllowedHostname: string;
  readonly peerAutoTls: boolean;
  readonly peerCrlFile: string;
  readonly cipherSuites: readonly string[];
  readonly experimentalPeerSkipClientSanVerification: boolean;
  /** Allowed CORS origins, sorted; ["*"] allows all. */
  readonly cors: readonly string[];
  /** Allowed Host header values for insecure HTTP, sorted; ["*"] allows all. */
  readonly hostWhitelist: readonly string[];
  // --- auth
  readonly authToken: string;
  readonly bcryptCost: number;
  readonly authTokenTtlSeconds: number;
  // --- profiling and monitoring
  readonly enablePprof: boolean;
  readonly metrics: string;
  readonly listenMetricsUrls: readonly URL[];
  // --- logging
  readonly logger: LoggerKind;
  /** After etcd's merge of the deprecated --log-output; "default" means stderr. */
  readonly logOutputs: readonly string[];
  readonly logLevel: ZapLevel;
  readonly debug: boolean;
  readonly logPackageLevels: string;
  // --- v2 proxy
  readonly proxy: ProxyMode;
  readonly proxyFailureWaitMs: number;
  readonly proxyRefreshIntervalMs: number;
  readonly proxyDialTimeoutMs: number;
  readonly proxyWriteTimeoutMs: number;
  readonly proxyReadTimeoutMs: number;
  // --- experimental and unsafe
  readonly experimentalInitialCorruptCheck: boolean;
  readonly experimentalCorruptCheckTimeMs: number;
  readonly experimentalEnableV2v3: string;
  /** bbolt's freelist type; anything but "map" means "array", as in etcd. */
  readonly experimentalBackendBboltFreelistType: "array" | "map";
  readonly experimentalEnableLeaseCheckpoint: boolean;
  readonly experimentalEnableLeaseCheckpointPersist: boolean;
  /** 0 on the command line means mvcc's default of 1,000. */
  readonly experimentalCompactionBatchLimit: number;
  /** 0 on the command line means the watch default of 10 minutes. */
  readonly experimentalWatchProgressNotifyIntervalMs: number;
  readonly experimentalWarningApplyDurationMs: number;
  readonly enableGrpcGateway: boolean;
  readonly unsafeNoFsync: boolean;
  readonly forceNewCluster: boolean;
}

export type AutoCompaction =
  | { readonly mode: "periodic" /** 0 = disabled */; readonly retentionMs: number }
  | { readonly mode: "revision" /** 0 = disabled */; readonly retentionRevisions: number };

/** What the server layers consume: every setting plus the values etcd derives from them at start. */
export interface MemberConfig extends MemberSettings {
  /** floor(electionTimeoutMs / heartbeatIntervalMs), etcd's ElectionTicks. */
  readonly electionTicks: number;
  /** --initial-cluster parsed (etcd's types.NewURLsMap); empty when the string is empty. */
  readonly initialClusterMembers: ReadonlyMap<string, readonly URL[]>;
  readonly autoCompaction: AutoCompaction;
  /** The file the settings came from ("" when from flags/env/options). */
  readonly configFile: string;
}

type UrlInput = string | URL;

/** What startMember(options) accepts: any subset of the settings, in the same units. */
export type MemberOptions = {
  readonly [K in keyof MemberSettings]?: MemberSettings[K] extends readonly URL[]
    ? UrlInput | readonly UrlInput[]
    : MemberSettings[K] extends readonly string[]
      ? string | readonly string[]
      : MemberSettings[K] extends number
        ? number | bigint
        : MemberSettings[K] extends string
          ? string
          : MemberSettings[K];
};

/** A line the caller must log once the logger is configured (the config layer does not log). */
export interface ConfigNote {
  readonly level: "info" | "warn";
  readonly msg: string;
  readonly fields: Readonly<Record<string, string | number | boolean | readonly string[]>>;
}
