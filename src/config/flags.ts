/**
 * The one table of every flag etcd 3.4.23 accepts (etcdmain/config.go, including the hidden ones
 * `etcd --help` does not list and the legacy names etcd ignores), with what etcd-ts does about each.
 * Parsing, ETCD_* variables, the YAML config file, library options, --help and the warnings and
 * refusals for unbuilt features are all driven from here: to build a feature, flip its status.
 */
import type { MemberSettings } from "./types.js";

/** How etcd parses the flag's text (its Go flag.Value type). */
export type FlagKind =
  | "string"
  | "bool"
  /** Go uint (64-bit on the platforms etcd supports) */
  | "uint"
  | "uint64"
  /** Go int (64-bit) */
  | "int"
  | "int64"
  /** etcd's flags.uint32Value, whose errors keep strconv's own text */
  | "uint32"
  /** time.Duration via time.ParseDuration */
  | "duration"
  /** flags.UniqueURLs: comma-separated URLs, sorted, de-duplicated */
  | "urls"
  /** flags.UniqueURLs that also allows "*" (only --cors) */
  | "corsUrls"
  /** flags.UniqueStringsValue: comma-separated, sorted, de-duplicated */
  | "uniqueStrings"
  /** flags.StringsValue: comma-separated, order kept */
  | "strings"
  /** flags.SelectiveStringValue: one of `choices`, else "invalid value" */
  | "select"
  /** flags.IgnoredFlag: accepted like a bool, logs that it is no longer supported */
  | "ignored";

/**
 * - supported: etcd-ts honours it.
 * - unbuilt: accepted; a non-default value logs a warning naming the flag (feature not built yet).
 * - security: TLS, certificates, auth tokens, host checks: a non-default value refuses to start,
 *   because running without the protection the operator asked for would be worse than not running.
 * - unsupported: a mode that changes what the process is (v2 proxy, discovery bootstrap,
 *   force-new-cluster): a non-default value refuses to start instead of silently doing something else.
 * - ignored: a legacy flag etcd itself accepts and ignores with a warning.
 */
export type FlagStatus = "supported" | "unbuilt" | "security" | "unsupported" | "ignored";

export type FlagGroup =
  | "member"
  | "clustering"
  | "security"
  | "auth"
  | "profiling"
  | "logging"
  | "proxy"
  | "experimental"
  | "unsafe"
  | "command"
  | "ignored";

/** Which Go struct reads the key in etcd's config file (named in etcd's type-error messages). */
export type YamlStruct = "configYAML" | "configProxy" | "securityConfig";

/** The JSON type etcd's config file expects for a key (the YAML is converted to JSON first). */
export type YamlType = "string" | "bool" | "integer" | "duration" | "stringList";

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  /** The text etcd initialises the flag from (its effective default). */
  readonly defaultText: string;
  /** What `etcd --help` prints as the default, when that differs from defaultText. */
  readonly helpDefault: string;
  readonly choices: readonly string[];
  /** ETCD_ + upper case + dashes to underscores (etcd's flags.FlagToEnv). */
  readonly env: string;
  /** Key path in the config file, or null when etcd's config file cannot set it. */
  readonly yamlKey: readonly string[] | null;
  readonly yamlStruct: YamlStruct;
  readonly yamlType: YamlType;
  /** The MemberSettings field it fills, or null (config-file, version, log-output, ignored flags). */
  readonly field: keyof MemberSettings | null;
  readonly status: FlagStatus;
  readonly group: FlagGroup;
  readonly usage: string;
  /** Not listed by `etcd --help` (etcd still accepts it). */
  readonly hidden: boolean;
  /**
   * The value (in the setting's unit: bytes, ms, count) etcd uses when the flag is 0, so that
   * MemberConfig holds what the member will really use; null when 0 means 0.
   */
  readonly zeroMeans: number | null;
}

interface SpecInput {
  kind: FlagKind;
  def: string;
  field: keyof MemberSettings | null;
  status: FlagStatus;
  usage: string;
  helpDefault?: string;
  choices?: readonly string[];
  yaml?: readonly string[] | null;
  yamlStruct?: YamlStruct;
  yamlType?: YamlType;
  hidden?: boolean;
  zeroMeans?: number;
}

function yamlTypeOf(kind: FlagKind): YamlType {
  switch (kind) {
    case "bool":
    case "ignored":
      return "bool";
    case "uint":
    case "uint64":
    case "int":
    case "int64":
    case "uint32":
      return "integer";
    case "duration":
      return "duration";
    case "strings":
      return "stringList";
    case "string":
    case "urls":
    case "corsUrls":
    case "uniqueStrings":
    case "select":
      return "string";
  }
}

export function flagToEnv(name: string): string {
  return `ETCD_${name.replaceAll("-", "_").toUpperCase()}`;
}

function define(group: FlagGroup, name: string, input: SpecInput): FlagSpec {
  return Object.freeze({
    name,
    kind: input.kind,
    defaultText: input.def,
    helpDefault: input.helpDefault ?? input.def,
    choices: Object.freeze([...(input.choices ?? [])]),
    env: flagToEnv(name),
    yamlKey: input.yaml === undefined ? [name] : input.yaml,
    yamlStruct: input.yamlStruct ?? "configYAML",
    yamlType: input.yamlType ?? yamlTypeOf(input.kind),
    field: input.field,
    status: input.status,
    group,
    usage: input.usage,
    hidden: input.hidden ?? false,
    zeroMeans: input.zeroMeans ?? null,
  });
}

const member = (name: string, input: SpecInput) => define("member", name, input);
const clustering = (name: string, input: SpecInput) => define("clustering", name, input);
const security = (name: string, input: SpecInput) => define("security", name, input);

/** etcd's ignored legacy flags (etcdmain/config.go `ignored`): accepted, warned about, no effect. */
const IGNORED_FLAGS = [
  "cluster-active-size",
  "cluster-remove-delay",
  "cluster-sync-interval",
  "config",
  "force",
  "max-result-buffer",
  "max-retry-attempts",
  "peer-heartbeat-interval",
  "peer-election-timeout",
  "retry-interval",
  "snapshot",
  "v",
  "vv",
  "test.coverprofile",
  "test.outputdir",
] as const;

const TLS_SECTION_CLIENT = "client-transport-security";
const TLS_SECTION_PEER = "peer-transport-security";

export const FLAGS: readonly FlagSpec[] = Object.freeze([
  define("command", "config-file", {
    kind: "string",
    def: "",
    field: null,
    status: "supported",
    yaml: null,
    usage:
      "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.",
  }),
  define("command", "version", {
    kind: "bool",
    def: "false",
    field: null,
    status: "supported",
    yaml: null,
    usage: "Print the version and exit.",
  }),

  member("name", {
    kind: "string",
    def: "default",
    field: "name",
    status: "supported",
    usage: "Human-readable name for this member.",
  }),
  member("data-dir", {
    kind: "string",
    def: "",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: etcd's help prints this literally.
    helpDefault: "${name}.etcd",
    field: "dataDir",
    status: "supported",
    usage: "Path to the data directory.",
  }),
  member("wal-dir", {
    kind: "string",
    def: "",
    field: "walDir",
    status: "supported",
    usage: "Path to the dedicated wal directory.",
  }),
  member("snapshot-count", {
    kind: "uint64",
    def: "100000",
    field: "snapshotCount",
    status: "supported",
    usage: "Number of committed transactions to trigger a snapshot to disk.",
  }),
  member("heartbeat-interval", {
    kind: "uint",
    def: "100",
    field: "heartbeatIntervalMs",
    status: "supported",
    usage: "Time (in milliseconds) of a heartbeat interval.",
  }),
  member("election-timeout", {
    kind: "uint",
    def: "1000",
    field: "electionTimeoutMs",
    status: "supported",
    usage: "Time (in milliseconds) for an election to timeout. See tuning documentation for details.",
  }),
  member("initial-election-tick-advance", {
    kind: "bool",
    def: "true",
    field: "initialElectionTickAdvance",
    status: "unbuilt",
    usage: "Whether to fast-forward initial election ticks on boot for faster election.",
  }),
  member("listen-peer-urls", {
    kind: "urls",
    def: "http://localhost:2380",
    field: "listenPeerUrls",
    status: "supported",
    usage: "List of URLs to listen on for peer traffic.",
  }),
  member("listen-client-urls", {
    kind: "urls",
    def: "http://localhost:2379",
    field: "listenClientUrls",
    status: "supported",
    usage: "List of URLs to listen on for client traffic.",
  }),
  member("max-snapshots", {
    kind: "uint",
    def: "5",
    field: "maxSnapshots",
    status: "supported",
    yaml: ["max-snapshots"],
    usage: "Maximum number of snapshot files to retain (0 is unlimited).",
  }),
  member("max-wals", {
    kind: "uint",
    def: "5",
    field: "maxWals",
    status: "supported",
    usage: "Maximum number of wal files to retain (0 is unlimited).",
  }),
  member("quota-backend-bytes", {
    kind: "int64",
    def: "0",
    // etcdserver.DefaultQuotaBytes
    zeroMeans: 2 * 1024 * 1024 * 1024,
    field: "quotaBackendBytes",
    status: "supported",
    usage: "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
  }),
  member("backend-batch-interval", {
    kind: "duration",
    def: "0s",
    helpDefault: "",
    // mvcc/backend defaultBatchInterval
    zeroMeans: 100,
    field: "backendBatchIntervalMs",
    status: "unbuilt",
    usage: "BackendBatchInterval is the maximum time before commit the backend transaction.",
  }),
  member("backend-batch-limit", {
    kind: "int",
    def: "0",
    // mvcc/backend defaultBatchLimit
    zeroMeans: 10_000,
    field: "backendBatchLimit",
    status: "unbuilt",
    usage: "BackendBatchLimit is the maximum operations before commit the backend transaction.",
  }),
  member("max-txn-ops", {
    kind: "uint",
    def: "128",
    field: "maxTxnOps",
    status: "supported",
    usage: "Maximum number of operations permitted in a transaction.",
  }),
  member("max-request-bytes", {
    kind: "uint",
    def: "1572864",
    field: "maxRequestBytes",
    status: "supported",
    usage: "Maximum client request size in bytes the server will accept.",
  }),
  member("max-concurrent-streams", {
    kind: "uint32",
    def: "4294967295",
    helpDefault: "math.MaxUint32",
    field: "maxConcurrentStreams",
    status: "unbuilt",
    usage: "Maximum concurrent streams that each client can open at a time.",
  }),
  member("grpc-keepalive-min-time", {
    kind: "duration",
    def: "5s",
    field: "grpcKeepaliveMinTimeMs",
    status: "unbuilt",
    usage: "Minimum duration interval that a client should wait before pinging server.",
  }),
  member("grpc-keepalive-interval", {
    kind: "duration",
    def: "2h",
    field: "grpcKeepaliveIntervalMs",
    status: "unbuilt",
    usage: "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
  }),
  member("grpc-keepalive-timeout", {
    kind: "duration",
    def: "20s",
    field: "grpcKeepaliveTimeoutMs",
    status: "unbuilt",
    usage: "Additional duration of wait before closing a non-responsive connection (0 to disable).",
  }),

  clustering("initial-advertise-peer-urls", {
    kind: "urls",
    def: "http://localhost:2380",
    field: "initialAdvertisePeerUrls",
    status: "supported",
    usage: "List of this member's peer URLs to advertise to the rest of the cluster.",
  }),
  clustering("initial-cluster", {
    kind: "string",
    def: "default=http://localhost:2380",
    field: "initialCluster",
    status: "supported",
    usage: "Initial cluster configuration for bootstrapping.",
  }),
  clustering("initial-cluster-state", {
    kind: "select",
    def: "new",
    choices: ["new", "existing"],
    field: "initialClusterState",
    status: "supported",
    usage: "Initial cluster state ('new' or 'existing').",
  }),
  clustering("initial-cluster-token", {
    kind: "string",
    def: "etcd-cluster",
    field: "initialClusterToken",
    status: "supported",
    usage: "Initial cluster token for the etcd cluster during bootstrap.",
  }),
  clustering("advertise-client-urls", {
    kind: "urls",
    def: "http://localhost:2379",
    field: "advertiseClientUrls",
    status: "supported",
    usage: "List of this member's client URLs to advertise to the public.",
  }),
  clustering("discovery", {
    kind: "string",
    def: "",
    field: "discovery",
    status: "unsupported",
    usage: "Discovery URL used to bootstrap the cluster.",
  }),
  clustering("discovery-fallback", {
    kind: "select",
    def: "proxy",
    choices: ["proxy", "exit"],
    field: "discoveryFallback",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Expected behavior ('exit' or 'proxy') when discovery services fails.",
  }),
  clustering("discovery-proxy", {
    kind: "string",
    def: "",
    field: "discoveryProxy",
    status: "unbuilt",
    usage: "HTTP proxy to use for traffic to discovery service.",
  }),
  clustering("discovery-srv", {
    kind: "string",
    def: "",
    field: "discoverySrv",
    status: "unsupported",
    usage: "DNS srv domain used to bootstrap the cluster.",
  }),
  clustering("discovery-srv-name", {
    kind: "string",
    def: "",
    field: "discoverySrvName",
    status: "unsupported",
    usage: "Suffix to the dns srv name queried when bootstrapping.",
  }),
  clustering("strict-reconfig-check", {
    kind: "bool",
    def: "true",
    field: "strictReconfigCheck",
    status: "unbuilt",
    usage: "Reject reconfiguration requests that would cause quorum loss.",
  }),
  clustering("pre-vote", {
    kind: "bool",
    def: "false",
    field: "preVote",
    status: "unbuilt",
    usage: "Enable to run an additional Raft election phase.",
  }),
  clustering("auto-compaction-retention", {
    kind: "string",
    def: "0",
    field: "autoCompactionRetention",
    status: "supported",
    usage: "Auto compaction retention length. 0 means disable auto compaction.",
  }),
  clustering("auto-compaction-mode", {
    kind: "string",
    def: "periodic",
    field: "autoCompactionMode",
    status: "supported",
    usage:
      "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
  }),
  clustering("enable-v2", {
    kind: "bool",
    def: "false",
    field: "enableV2",
    status: "unbuilt",
    usage: "Accept etcd V2 client requests.",
  }),

  security("cert-file", {
    kind: "string",
    def: "",
    field: "certFile",
    status: "security",
    yaml: [TLS_SECTION_CLIENT, "cert-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the client server TLS cert file.",
  }),
  security("key-file", {
    kind: "string",
    def: "",
    field: "keyFile",
    status: "security",
    yaml: [TLS_SECTION_CLIENT, "key-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the client server TLS key file.",
  }),
  security("client-cert-auth", {
    kind: "bool",
    def: "false",
    field: "clientCertAuth",
    status: "security",
    yaml: [TLS_SECTION_CLIENT, "client-cert-auth"],
    yamlStruct: "securityConfig",
    usage: "Enable client cert authentication.",
  }),
  security("client-crl-file", {
    kind: "string",
    def: "",
    field: "clientCrlFile",
    status: "security",
    yaml: null,
    usage: "Path to the client certificate revocation list file.",
  }),
  security("client-cert-allowed-hostname", {
    kind: "string",
    def: "",
    field: "clientCertAllowedHostname",
    status: "security",
    yaml: null,
    usage: "Allowed TLS hostname for client cert authentication.",
  }),
  security("trusted-ca-file", {
    kind: "string",
    def: "",
    field: "trustedCaFile",
    status: "security",
    yaml: [TLS_SECTION_CLIENT, "trusted-ca-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the client server TLS trusted CA cert file.",
  }),
  security("auto-tls", {
    kind: "bool",
    def: "false",
    field: "autoTls",
    status: "security",
    yaml: [TLS_SECTION_CLIENT, "auto-tls"],
    yamlStruct: "securityConfig",
    usage: "Client TLS using generated certificates.",
  }),
  security("peer-cert-file", {
    kind: "string",
    def: "",
    field: "peerCertFile",
    status: "security",
    yaml: [TLS_SECTION_PEER, "cert-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the peer server TLS cert file.",
  }),
  security("peer-key-file", {
    kind: "string",
    def: "",
    field: "peerKeyFile",
    status: "security",
    yaml: [TLS_SECTION_PEER, "key-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the peer server TLS key file.",
  }),
  security("peer-client-cert-auth", {
    kind: "bool",
    def: "false",
    field: "peerClientCertAuth",
    status: "security",
    yaml: [TLS_SECTION_PEER, "client-cert-auth"],
    yamlStruct: "securityConfig",
    usage: "Enable peer client cert authentication.",
  }),
  security("peer-trusted-ca-file", {
    kind: "string",
    def: "",
    field: "peerTrustedCaFile",
    status: "security",
    yaml: [TLS_SECTION_PEER, "trusted-ca-file"],
    yamlStruct: "securityConfig",
    usage: "Path to the peer server TLS trusted CA file.",
  }),
  security("peer-cert-allowed-cn", {
    kind: "string",
    def: "",
    field: "peerCertAllowedCn",
    status: "security",
    yaml: null,
    usage: "Required CN for client certs connecting to the peer endpoint.",
  }),
  security("peer-cert-allowed-hostname", {
    kind: "string",
    def: "",
    field: "peerCertAllowedHostname",
    status: "security",
    yaml: null,
    usage: "Allowed TLS hostname for inter peer authentication.",
  }),
  security("peer-auto-tls", {
    kind: "bool",
    def: "false",
    field: "peerAutoTls",
    status: "security",
    yaml: [TLS_SECTION_PEER, "auto-tls"],
    yamlStruct: "securityConfig",
    usage:
      "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.",
  }),
  security("peer-crl-file", {
    kind: "string",
    def: "",
    field: "peerCrlFile",
    status: "security",
    yaml: null,
    usage: "Path to the peer certificate revocation list file.",
  }),
  security("cipher-suites", {
    kind: "strings",
    def: "",
    field: "cipherSuites",
    status: "security",
    usage:
      "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).",
  }),
  security("cors", {
    kind: "corsUrls",
    def: "*",
    field: "cors",
    status: "supported",
    usage:
      "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).",
  }),
  security("host-whitelist", {
    kind: "uniqueStrings",
    def: "*",
    field: "hostWhitelist",
    status: "security",
    usage:
      "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).",
  }),
  security("experimental-peer-skip-client-san-verification", {
    kind: "bool",
    def: "false",
    field: "experimentalPeerSkipClientSanVerification",
    status: "security",
    yaml: null,
    usage: "Skip verification of SAN field in client certificate for peer connections.",
  }),

  define("auth", "auth-token", {
    kind: "string",
    def: "simple",
    field: "authToken",
    status: "security",
    usage: "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
  }),
  define("auth", "bcrypt-cost", {
    kind: "uint",
    def: "10",
    field: "bcryptCost",
    status: "unbuilt",
    usage:
      "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.",
  }),
  define("auth", "auth-token-ttl", {
    kind: "uint",
    def: "300",
    field: "authTokenTtlSeconds",
    status: "unbuilt",
    usage: "Time (in seconds) of the auth-token-ttl.",
  }),

  define("profiling", "enable-pprof", {
    kind: "bool",
    def: "false",
    field: "enablePprof",
    status: "unbuilt",
    usage: 'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"',
  }),
  define("profiling", "metrics", {
    kind: "string",
    def: "basic",
    field: "metrics",
    status: "unbuilt",
    usage: "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.",
  }),
  define("profiling", "listen-metrics-urls", {
    kind: "urls",
    def: "",
    field: "listenMetricsUrls",
    status: "unbuilt",
    usage: "List of URLs to listen on for the metrics and health endpoints.",
  }),
  define("profiling", "enable-grpc-gateway", {
    kind: "bool",
    def: "true",
    field: "enableGrpcGateway",
    status: "unbuilt",
    hidden: true,
    usage: "Enable GRPC gateway.",
  }),

  define("logging", "logger", {
    kind: "string",
    def: "capnslog",
    field: "logger",
    status: "supported",
    usage:
      "Specify 'zap' for structured logging or 'capnslog'. etcd-ts always writes zap's JSON lines; both values are accepted.",
  }),
  define("logging", "log-outputs", {
    kind: "uniqueStrings",
    def: "default",
    field: "logOutputs",
    status: "supported",
    yamlType: "stringList",
    usage:
      "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.",
  }),
  define("logging", "log-output", {
    kind: "uniqueStrings",
    def: "default",
    field: null,
    status: "supported",
    yamlType: "stringList",
    hidden: true,
    usage: "[TO BE DEPRECATED IN v3.5] use '--log-outputs'.",
  }),
  define("logging", "log-level", {
    kind: "string",
    def: "info",
    field: "logLevel",
    status: "supported",
    usage: "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
  }),
  define("logging", "debug", {
    kind: "bool",
    def: "false",
    field: "debug",
    status: "supported",
    usage:
      "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use '--log-level=debug' instead.",
  }),
  define("logging", "log-package-levels", {
    kind: "string",
    def: "",
    field: "logPackageLevels",
    status: "unbuilt",
    usage: "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
  }),

  define("proxy", "proxy", {
    kind: "select",
    def: "off",
    choices: ["off", "readonly", "on"],
    field: "proxy",
    status: "unsupported",
    yamlStruct: "configProxy",
    usage: "Proxy mode setting ('off', 'readonly' or 'on').",
  }),
  define("proxy", "proxy-failure-wait", {
    kind: "uint",
    def: "5000",
    field: "proxyFailureWaitMs",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Time (in milliseconds) an endpoint will be held in a failed state.",
  }),
  define("proxy", "proxy-refresh-interval", {
    kind: "uint",
    def: "30000",
    field: "proxyRefreshIntervalMs",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Time (in milliseconds) of the endpoints refresh interval.",
  }),
  define("proxy", "proxy-dial-timeout", {
    kind: "uint",
    def: "1000",
    field: "proxyDialTimeoutMs",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Time (in milliseconds) for a dial to timeout.",
  }),
  define("proxy", "proxy-write-timeout", {
    kind: "uint",
    def: "5000",
    field: "proxyWriteTimeoutMs",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Time (in milliseconds) for a write to timeout.",
  }),
  define("proxy", "proxy-read-timeout", {
    kind: "uint",
    def: "0",
    field: "proxyReadTimeoutMs",
    status: "unbuilt",
    yamlStruct: "configProxy",
    usage: "Time (in milliseconds) for a read to timeout.",
  }),

  define("experimental", "experimental-initial-corrupt-check", {
    kind: "bool",
    def: "false",
    field: "experimentalInitialCorruptCheck",
    status: "unbuilt",
    usage: "Enable to check data corruption before serving any client/peer traffic.",
  }),
  define("experimental", "experimental-corrupt-check-time", {
    kind: "duration",
    def: "0s",
    field: "experimentalCorruptCheckTimeMs",
    status: "unbuilt",
    usage: "Duration of time between cluster corruption check passes.",
  }),
  define("experimental", "experimental-enable-v2v3", {
    kind: "string",
    def: "",
    field: "experimentalEnableV2v3",
    status: "unbuilt",
    usage: "Serve v2 requests through the v3 backend under a given prefix.",
  }),
  define("experimental", "experimental-backend-bbolt-freelist-type", {
    kind: "string",
    def: "",
    helpDefault: "array",
    field: "experimentalBackendBboltFreelistType",
    status: "unbuilt",
    usage:
      "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).",
  }),
  define("experimental", "experimental-enable-lease-checkpoint", {
    kind: "bool",
    def: "false",
    field: "experimentalEnableLeaseCheckpoint",
    status: "unbuilt",
    usage:
      "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases.",
  }),
  define("experimental", "experimental-enable-lease-checkpoint-persist", {
    kind: "bool",
    def: "false",
    field: "experimentalEnableLeaseCheckpointPersist",
    status: "unbuilt",
    hidden: true,
    usage:
      "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases. Requires experimental-enable-lease-checkpoint to be enabled.",
  }),
  define("experimental", "experimental-compaction-batch-limit", {
    kind: "int",
    def: "0",
    helpDefault: "1000",
    // mvcc defaultCompactBatchLimit
    zeroMeans: 1_000,
    field: "experimentalCompactionBatchLimit",
    status: "unbuilt",
    usage: "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
  }),
  define("experimental", "experimental-watch-progress-notify-interval", {
    kind: "duration",
    def: "0s",
    helpDefault: "10m",
    // v3rpc progressReportInterval
    zeroMeans: 10 * 60 * 1000,
    field: "experimentalWatchProgressNotifyIntervalMs",
    status: "unbuilt",
    usage: "Duration of periodical watch progress notification.",
  }),
  define("experimental", "experimental-warning-apply-duration", {
    kind: "duration",
    def: "100ms",
    field: "experimentalWarningApplyDurationMs",
    status: "unbuilt",
    usage: "Warning is generated if requests take more than this duration.",
  }),

  define("unsafe", "unsafe-no-fsync", {
    kind: "bool",
    def: "false",
    field: "unsafeNoFsync",
    status: "unbuilt",
    hidden: true,
    usage: "Disables fsync, unsafe, will cause data loss.",
  }),
  define("unsafe", "force-new-cluster", {
    kind: "bool",
    def: "false",
    field: "forceNewCluster",
    status: "unsupported",
    usage: "Force to create a new one-member cluster.",
  }),

  ...IGNORED_FLAGS.map((name) =>
    define("ignored", name, {
      kind: "ignored",
      def: "",
      field: null,
      status: "ignored",
      yaml: null,
      hidden: true,
      usage: "No longer supported; ignored.",
    }),
  ),
]);

const BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((spec) => [spec.name, spec]));

export function lookupFlag(name: string): FlagSpec | undefined {
  return BY_NAME.get(name);
}

/** The flag whose MemberSettings field this is. */
export function flagForField(field: keyof MemberSettings): FlagSpec | undefined {
  return FIELD_TO_FLAG.get(field);
}

const FIELD_TO_FLAG: ReadonlyMap<keyof MemberSettings, FlagSpec> = new Map(
  FLAGS.filter((spec) => spec.field !== null).map((spec) => [spec.field!, spec]),
);
