/**
 * From parsed flag values to a validated, frozen MemberConfig: etcd 3.4.23's setupLogging,
 * embed.Config.Validate, the command-line-only adjustments of etcdmain, the start-time defaults
 * (`${name}.etcd`, initial cluster from --name), and etcd-ts's own rule for flags whose feature is
 * not built yet. Every source (flags + env, config file, library options) ends here.
 */
import { isIP } from "node:net";
import { assert } from "../assert.js";
import { ConfigError } from "./errors.js";
import { FLAGS, type FlagSpec, lookupFlag } from "./flags.js";
import { FlagSet, newUrls, type UrlListValue } from "./flagset.js";
import { type GoUrl, goQuote, parseGoDuration, splitHostPort } from "./goparse.js";
import type {
  AutoCompaction,
  AutoCompactionMode,
  ClusterState,
  ConfigNote,
  DiscoveryFallback,
  LoggerKind,
  MemberConfig,
  MemberOptions,
  MemberSettings,
  ProxyMode,
  ZapLevel,
} from "./types.js";
import { urlText } from "./urls.js";

/** Where the values came from; etcd applies some rules only on the command line. */
export type ConfigSource = "flags" | "file" | "options";

export interface ResolvedConfig {
  readonly config: MemberConfig;
  /** Lines to log once the logger exists (unbuilt flags, env variables used, defaults applied). */
  readonly notes: readonly ConfigNote[];
}

const DEFAULT_NAME = "default";
/** etcd computes this from the default name and the default advertise peer URL at start. */
const DEFAULT_INITIAL_CLUSTER = "default=http://localhost:2380";
const DEFAULT_LOG_OUTPUT = "default";
const JOURNAL_LOG_OUTPUT = "systemd/journal";
/** embed.maxElectionMs */
const MAX_ELECTION_MS = 50_000n;
const ZAP_LEVELS: readonly ZapLevel[] = ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];
const NANOSECONDS_PER_MS = 1_000_000;
const HOUR_NS = 3_600_000_000_000n;

const invalid = (message: string, notes: readonly ConfigNote[]) =>
  new ConfigError("CONFIG_INVALID", message, notes);

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteList(items: readonly string[]): string {
  return `[${items.map(goQuote).join(" ")}]`;
}

/**
 * The whole tail of etcd's start-up checks. `afterValidate` runs where etcd reads the config file's
 * proxy section (after Validate), so its errors come in etcd's order.
 */
export function finishConfig(
  fs: FlagSet,
  source: ConfigSource,
  configFile: string,
  afterValidate?: () => void,
): ResolvedConfig {
  const notes = fs.notes;
  const logging = setupLogging(fs, notes);
  let advertiseClientUnset = false;
  if (source !== "file") {
    // etcdmain: listening on chosen client URLs without saying which to advertise is an error,
    // unless this process may become a v2 proxy (which we refuse further down anyway).
    const missingAdvertise = fs.isSet("listen-client-urls") && !fs.isSet("advertise-client-urls");
    if (!mayBeProxy(fs) && missingAdvertise) advertiseClientUnset = true;
    const discovering = fs.string("discovery") !== "" || fs.string("discovery-srv") !== "";
    if ((discovering || fs.string("discovery-srv-name") !== "") && !fs.isSet("initial-cluster")) {
      fs.setTyped(lookupFlag("initial-cluster")!, "");
    }
  } else if (
    (fs.string("discovery") !== "" || fs.string("discovery-srv") !== "") &&
    fs.string("initial-cluster") === DEFAULT_INITIAL_CLUSTER
  ) {
    fs.setTyped(lookupFlag("initial-cluster")!, "");
  }
  validate(fs, advertiseClientUnset, notes);
  afterValidate?.();
  checkStatuses(fs, notes);
  return buildConfig(fs, logging, advertiseClientUnset, configFile, notes);
}

function mayBeProxy(fs: FlagSet): boolean {
  const mayFallBackToProxy = fs.string("discovery") !== "" && fs.string("discovery-fallback") === "proxy";
  return fs.string("proxy") !== "off" || mayFallBackToProxy;
}

interface Logging {
  readonly logger: LoggerKind;
  readonly outputs: readonly string[];
  readonly level: ZapLevel;
}

/** embed.Config.setupLogging: the --log-output/--log-outputs merge, logger and level checks. */
function setupLogging(fs: FlagSet, notes: ConfigNote[]): Logging {
  let deprecated = fs.strings("log-output");
  let outputs = fs.strings("log-outputs");
  if (deprecated.length !== outputs.length) {
    if (deprecated.length > outputs.length) {
      notes.push({
        level: "warn",
        msg: "'--log-output' flag has been deprecated! Please use '--log-outputs'!",
        fields: {},
      });
      outputs = deprecated;
    } else {
      deprecated = [];
    }
  } else {
    if (deprecated.length > 1) {
      throw invalid("both '--log-output' and '--log-outputs' are set; only set '--log-outputs'", notes);
    }
    if (deprecated.length < 1)
      throw invalid("either '--log-output' or '--log-outputs' flag must be set", notes);
    const same = deprecated.join("\u0000") === outputs.join("\u0000");
    if (same && deprecated[0] !== DEFAULT_LOG_OUTPUT) {
      throw invalid(
        `'--log-output=${goQuoteList(deprecated)}' and '--log-outputs=${goQuoteList(outputs)}' are incompatible; only set --log-outputs`,
        notes,
      );
    }
    if (deprecated.length !== 1 || deprecated[0] !== DEFAULT_LOG_OUTPUT) {
      notes.push({
        level: "warn",
        msg: "deprecated '--log-output' flag is set; use '--log-outputs'",
        fields: { "log-output": deprecated },
      });
    }
  }
  const logger = fs.string("logger");
  const levelText = fs.string("log-level");
  if (!(ZAP_LEVELS as readonly string[]).includes(levelText)) {
    // etcd 3.4.23 panics here (exit 2); a clear error is kinder and still refuses to start.
    throw invalid(
      `unknown level ${goQuote(levelText)} (--log-level supports debug, info, warn, error, panic, or fatal)`,
      notes,
    );
  }
  let level = levelText as ZapLevel;
  if (logger === "capnslog") {
    if (outputs.length !== 1) {
      throw invalid(
        `--logger=capnslog supports only 1 value in '--log-outputs', got ${goQuoteList(outputs)}`,
        notes,
      );
    }
    const output = outputs[0]!;
    if (output !== DEFAULT_LOG_OUTPUT && output !== "stderr" && output !== "stdout") {
      throw invalid(
        `unknown log-output ${goQuote(output)} (only supports "default", "stderr", "stdout")`,
        notes,
      );
    }
    // capnslog's --debug raises the level; zap ignores --debug (etcd keeps it for gRPC tracing).
    if (fs.bool("debug")) level = "debug";
    return { logger, outputs, level };
  }
  if (logger === "zap") {
    if (outputs.length === 0) outputs = [DEFAULT_LOG_OUTPUT];
    if (outputs.length > 1 && outputs.includes(DEFAULT_LOG_OUTPUT)) {
      throw invalid(`multi logoutput for ${goQuote(DEFAULT_LOG_OUTPUT)} is not supported yet`, notes);
    }
    if (outputs.includes(JOURNAL_LOG_OUTPUT) && outputs.length > 1) {
      throw invalid(
        `running with systemd/journal but other '--log-outputs' values (${goQuoteList(outputs)}) are configured with 'default'; override 'default' value with something else`,
        notes,
      );
    }
    return { logger, outputs, level };
  }
  throw invalid(`unknown logger option ${goQuote(logger)}`, notes);
}

/** etcd's checkBindURLs: listeners must be IPs or "localhost" (unix sockets excepted). */
function checkBindUrls(urls: readonly GoUrl[]): string | undefined {
  for (const url of urls) {
    if (url.scheme === "unix" || url.scheme === "unixs") continue;
    const split = splitHostPort(url.host);
    if ("error" in split) return split.error;
    if (split.host === "localhost") continue;
    if (isIP(split.host) === 0) return `expected IP in URL for binding (${url.text})`;
  }
  return undefined;
}

/** etcd's checkHostURLs: advertised URLs need a host. */
function checkHostUrls(urls: readonly GoUrl[]): string | undefined {
  for (const url of urls) {
    const split = splitHostPort(url.host);
    if ("error" in split) return split.error;
    if (split.host === "") return `unexpected empty host (${url.text})`;
  }
  return undefined;
}

/** embed.Config.Validate, in etcd's order (the first failing rule is the one reported). */
function validate(fs: FlagSet, advertiseClientUnset: boolean, notes: ConfigNote[]): void {
  for (const name of ["listen-peer-urls", "listen-client-urls", "listen-metrics-urls"]) {
    const error = checkBindUrls(fs.urlList(name).urls);
    if (error !== undefined) throw invalid(error, notes);
  }
  for (const name of ["initial-advertise-peer-urls", "advertise-client-urls"]) {
    const urls = name === "advertise-client-urls" && advertiseClientUnset ? [] : fs.urlList(name).urls;
    const error = checkHostUrls(urls);
    if (error !== undefined) {
      const joined = urls.map((u) => u.text).join(",");
      throw invalid(`--${name} ${goQuote(joined)} must be "host:port" (${error})`, notes);
    }
  }
  const bootstrapFlags = [fs.string("discovery"), fs.string("initial-cluster"), fs.string("discovery-srv")];
  const clusterState = fs.string("initial-cluster-state");
  if (clusterState !== "new" && clusterState !== "existing") {
    throw invalid(`unexpected clusterState ${goQuote(clusterState)}`, notes);
  }
  if (bootstrapFlags.filter((value) => value !== "").length > 1) {
    throw invalid(
      'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"',
      notes,
    );
  }
  const tickMs = fs.integer("heartbeat-interval");
  const electionMs = fs.integer("election-timeout");
  if (tickMs <= 0n) throw invalid(`--heartbeat-interval must be >0 (set to ${tickMs}ms)`, notes);
  if (electionMs <= 0n) throw invalid(`--election-timeout must be >0 (set to ${electionMs}ms)`, notes);
  if (5n * tickMs > electionMs) {
    throw invalid(
      `--election-timeout[${electionMs}ms] should be at least as 5 times as --heartbeat-interval[${tickMs}ms]`,
      notes,
    );
  }
  if (electionMs > MAX_ELECTION_MS) {
    throw invalid(
      `--election-timeout[${electionMs}ms] is too long, and should be set less than ${MAX_ELECTION_MS}ms`,
      notes,
    );
  }
  if (advertiseClientUnset) {
    throw invalid("--advertise-client-urls is required when --listen-client-urls is set explicitly", notes);
  }
  const mode = fs.string("auto-compaction-mode");
  if (mode !== "" && mode !== "periodic" && mode !== "revision") {
    throw invalid(`unknown auto-compaction-mode ${goQuote(mode)}`, notes);
  }
  const checkpoint = fs.bool("experimental-enable-lease-checkpoint");
  const persist = fs.bool("experimental-enable-lease-checkpoint-persist");
  if (!persist && checkpoint) {
    notes.push({
      level: "warn",
      msg: "Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist",
      fields: {},
    });
  }
  if (persist && !checkpoint) {
    throw invalid(
      "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint",
      notes,
    );
  }
}

let defaultSettingsCache: MemberSettings | undefined;

/** The settings etcd-ts starts with when given nothing (computed once through the same path). */
function defaultSettings(): MemberSettings {
  if (defaultSettingsCache === undefined) {
    const fs = new FlagSet();
    const logging = setupLogging(fs, []);
    defaultSettingsCache = buildConfig(fs, logging, false, "", []).config;
  }
  return defaultSettingsCache;
}

/** A comparable text for a settings value (URLs by etcd's text, lists in order). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return value.map(canonical).join(",");
  if (value instanceof URL) return urlText(value);
  return String(value);
}

/**
 * etcd-ts's rule for features not built yet: a flag left at its default is fine; otherwise
 * unbuilt -> a warning naming it, security/unsupported -> refuse to start naming every such flag.
 */
function checkStatuses(fs: FlagSet, notes: ConfigNote[]): void {
  const defaults = defaultSettings();
  const current = buildSettingsForComparison(fs);
  const refusedSecurity: string[] = [];
  const refusedUnsupported: string[] = [];
  for (const spec of FLAGS) {
    if (spec.field === null || spec.status === "supported" || spec.status === "ignored") continue;
    const value = current[spec.field];
    if (canonical(value) === canonical(defaults[spec.field])) continue;
    const shown = `--${spec.name}=${canonical(value)}`;
    switch (spec.status) {
      case "unbuilt":
        notes.push({
          level: "warn",
          msg: "ignoring a flag that etcd-ts does not implement yet",
          fields: { flag: `--${spec.name}`, value: canonical(value) },
        });
        break;
      case "security":
        refusedSecurity.push(shown);
        break;
      case "unsupported":
        refusedUnsupported.push(shown);
        break;
    }
  }
  if (refusedSecurity.length > 0) {
    throw new ConfigError(
      "CONFIG_SECURITY_UNBUILT",
      `etcd-ts does not implement TLS, client certificates, auth tokens or host checks yet; refusing to start rather than run without the protection asked for by ${refusedSecurity.join(" ")}`,
      notes,
    );
  }
  if (refusedUnsupported.length > 0) {
    throw new ConfigError(
      "CONFIG_UNSUPPORTED",
      `etcd-ts does not implement ${refusedUnsupported.join(" ")} (v2 proxy, discovery bootstrap and force-new-cluster are not built); refusing to start rather than run as a plain member`,
      notes,
    );
  }
}

/** Settings with the status-relevant fields only; building them cannot fail. */
function buildSettingsForComparison(fs: FlagSet): Readonly<Record<keyof MemberSettings, unknown>> {
  const out: Partial<Record<keyof MemberSettings, unknown>> = {};
  for (const spec of FLAGS) {
    if (spec.field === null || spec.status === "supported" || spec.status === "ignored") continue;
    out[spec.field] = settingValue(fs, spec, []);
  }
  return out as Readonly<Record<keyof MemberSettings, unknown>>;
}

/** Converts a number etcd holds in 64 bits; values past 2^53 saturate, with a note (never silently). */
function toSafeNumber(value: bigint, spec: FlagSpec, notes: ConfigNote[]): number {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  const min = -max;
  if (value > max || value < min) {
    const clamped = value > max ? Number.MAX_SAFE_INTEGER : -Number.MAX_SAFE_INTEGER;
    notes.push({
      level: "warn",
      msg: "flag value exceeds 2^53-1; using the largest exact value",
      fields: { flag: `--${spec.name}`, value: value.toString(), used: clamped },
    });
    return clamped;
  }
  return Number(value);
}

/** One setting in natural units; defaults that etcd fills in at start are applied here. */
function settingValue(fs: FlagSet, spec: FlagSpec, notes: ConfigNote[]): unknown {
  const name = spec.name;
  switch (spec.kind) {
    case "string":
    case "select":
      return stringSetting(fs, spec);
    case "bool":
      return fs.bool(name);
    case "uint":
    case "uint64":
    case "int":
    case "int64":
    case "uint32":
      return integerSetting(fs.integer(name), spec, notes);
    case "duration":
      return durationSettingMs(fs.integer(name), spec);
    case "urls":
      return Object.freeze(fs.urlList(name).urls.map((u) => toWhatwgUrl(u, name)));
    case "corsUrls":
      return Object.freeze([...fs.urlList(name).texts].sort());
    case "uniqueStrings":
    case "strings":
      return stringListSetting(fs, spec);
    case "ignored":
      assert(false, `ignored flag --${name} has no setting`);
  }
}

function stringSetting(fs: FlagSet, spec: FlagSpec): string {
  const value = fs.string(spec.name);
  if (spec.name === "experimental-backend-bbolt-freelist-type") return value === "map" ? "map" : "array";
  if (spec.name === "auto-compaction-mode" && value === "") return "periodic";
  return value;
}

function integerSetting(value: bigint, spec: FlagSpec, notes: ConfigNote[]): number {
  if (value === 0n && spec.zeroMeans !== null) return spec.zeroMeans;
  // etcdserver: a negative backend quota disables the quota.
  if (value < 0n && spec.name === "quota-backend-bytes") return Number.POSITIVE_INFINITY;
  return toSafeNumber(value, spec, notes);
}

function durationSettingMs(nanoseconds: bigint, spec: FlagSpec): number {
  if (nanoseconds === 0n && spec.zeroMeans !== null) return spec.zeroMeans;
  return Number(nanoseconds) / NANOSECONDS_PER_MS;
}

function stringListSetting(fs: FlagSet, spec: FlagSpec): readonly string[] {
  const values = fs.strings(spec.name);
  if (spec.name === "host-whitelist") {
    // etcd: "empty or * means allow all".
    const hosts = values.filter((host) => host !== "");
    return Object.freeze(hosts.length === 0 ? ["*"] : hosts);
  }
  if (spec.name === "cipher-suites") return Object.freeze(values.filter((suite) => suite !== ""));
  return Object.freeze([...values]);
}

function toWhatwgUrl(url: GoUrl, flag: string): URL {
  try {
    return new URL(url.text);
  } catch {
    throw new ConfigError(
      "CONFIG_INVALID",
      `--${flag}: ${url.text} is not a URL etcd-ts can listen on or dial`,
    );
  }
}

/** types.NewURLsMap over --initial-cluster: name=url pairs, a name may repeat for several URLs. */
function parseInitialCluster(text: string, notes: ConfigNote[]): ReadonlyMap<string, readonly URL[]> {
  const grouped = new Map<string, string[]>();
  for (const pair of text.split(",")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const name = equals >= 0 ? pair.slice(0, equals) : pair;
    const url = equals >= 0 ? pair.slice(equals + 1) : "";
    const list = grouped.get(name) ?? [];
    list.push(url);
    grouped.set(name, list);
  }
  const members = new Map<string, readonly URL[]>();
  for (const [name, texts] of grouped) {
    const urls = newUrls(texts);
    if ("error" in urls) throw invalid(`--initial-cluster: ${urls.error}`, notes);
    members.set(name, Object.freeze(urls.map((u) => toWhatwgUrl(u, "initial-cluster"))));
  }
  return members;
}

/** embed's parseCompactionRetention: a bare integer is hours (periodic) or revisions; else a duration. */
function parseAutoCompaction(
  mode: AutoCompactionMode,
  retentionText: string,
  notes: ConfigNote[],
): AutoCompaction {
  const retention = retentionText === "" ? "0" : retentionText;
  let nanoseconds: bigint;
  if (/^[+-]?[0-9]+$/.test(retention) && BigInt(retention) >= 0n && BigInt(retention) < 1n << 63n) {
    const count = BigInt(retention);
    if (mode === "revision") return { mode, retentionRevisions: Number(count) };
    nanoseconds = count * HOUR_NS;
  } else {
    const parsed = parseGoDuration(retention);
    if (typeof parsed !== "bigint")
      throw invalid(`error parsing CompactionRetention: ${parsed.error}`, notes);
    // etcd reads a duration as a revision count in revision mode (5m -> 300000000000 revisions).
    if (mode === "revision") return { mode, retentionRevisions: Number(parsed) };
    nanoseconds = parsed;
  }
  return { mode, retentionMs: Number(nanoseconds) / NANOSECONDS_PER_MS };
}

function buildConfig(
  fs: FlagSet,
  logging: Logging,
  advertiseClientUnset: boolean,
  configFile: string,
  notes: ConfigNote[],
): ResolvedConfig {
  const settings: Partial<Record<keyof MemberSettings, unknown>> = {};
  for (const spec of FLAGS) {
    if (spec.field === null) continue;
    settings[spec.field] = settingValue(fs, spec, notes);
  }
  settings.logger = logging.logger;
  settings.logOutputs = Object.freeze([...logging.outputs]);
  settings.logLevel = logging.level;
  if (advertiseClientUnset) settings.advertiseClientUrls = Object.freeze([]);
  const name = fs.string("name");
  // etcd's UpdateDefaultClusterFromName: `--name x` alone bootstraps x at its advertised peer URLs.
  let initialCluster = fs.string("initial-cluster");
  if (name !== DEFAULT_NAME && initialCluster === DEFAULT_INITIAL_CLUSTER) {
    initialCluster = fs
      .urlList("initial-advertise-peer-urls")
      .urls.map((u) => `${name}=${u.text}`)
      .join(",");
  }
  settings.initialCluster = initialCluster;
  if (fs.string("data-dir") === "") {
    settings.dataDir = `${name}.etcd`;
    notes.push({
      level: "warn",
      msg: "'data-dir' was empty; using default",
      fields: { "data-dir": `${name}.etcd` },
    });
  }
  const typed = settings as unknown as MemberSettings;
  const config: MemberConfig = {
    ...typed,
    initialClusterState: typed.initialClusterState as ClusterState,
    autoCompactionMode: typed.autoCompactionMode as AutoCompactionMode,
    proxy: typed.proxy as ProxyMode,
    discoveryFallback: typed.discoveryFallback as DiscoveryFallback,
    electionTicks: Math.floor(typed.electionTimeoutMs / typed.heartbeatIntervalMs),
    initialClusterMembers: parseInitialCluster(initialCluster, notes),
    autoCompaction: parseAutoCompaction(typed.autoCompactionMode, typed.autoCompactionRetention, notes),
    configFile,
  };
  return { config: Object.freeze(config), notes: Object.freeze([...notes]) };
}

/** The configuration etcd-ts runs with when given no flags at all (etcd's defaults). */
export function defaultMemberConfig(): MemberConfig {
  return resolveMemberConfig({}).config;
}

function optionText(spec: FlagSpec, key: string, value: unknown): string {
  const wrong = (what: string) => invalid(`option ${key} must be ${what}`, []);
  const list = (items: unknown): string => {
    const array: readonly unknown[] = Array.isArray(items) ? items : [items];
    return array
      .map((item) => {
        if (item instanceof URL) return urlText(item);
        if (typeof item === "string") return item;
        throw wrong("a string, a URL, or a list of them");
      })
      .join(",");
  };
  switch (spec.kind) {
    case "string":
    case "select":
      if (typeof value !== "string") throw wrong("a string");
      return value;
    case "bool":
      if (typeof value !== "boolean") throw wrong("a boolean");
      return String(value);
    case "uint":
    case "uint64":
    case "int":
    case "int64":
    case "uint32":
      if (typeof value === "bigint") return value.toString();
      if (typeof value !== "number") throw wrong("an integer");
      if (value === Number.POSITIVE_INFINITY && spec.name === "quota-backend-bytes") return "-1";
      if (!Number.isSafeInteger(value)) throw wrong("an integer");
      return String(value);
    case "duration":
      if (typeof value !== "number" || !Number.isFinite(value)) throw wrong("a number of milliseconds");
      return `${value}ms`;
    case "urls":
    case "corsUrls":
    case "uniqueStrings":
    case "strings":
      return list(value);
    case "ignored":
      throw wrong("unset (etcd ignores this flag)");
  }
}

/**
 * The configuration for `startMember(options)`: the options are applied as if they were the
 * matching flags on the command line (same parsing, same validation, same refusals), so a library
 * user and an operator get the same member. Throws ConfigError.
 */
export function resolveMemberConfig(options: MemberOptions): ResolvedConfig {
  const fs = new FlagSet();
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const spec = FLAGS.find((candidate) => candidate.field === key);
    if (spec === undefined) throw invalid(`unknown option ${goQuote(key)}`, []);
    const text = optionText(spec, key, value);
    const outcome = fs.set(spec, text);
    if (!outcome.ok)
      throw invalid(`invalid value ${goQuote(text)} for option ${key}: ${outcome.error}`, fs.notes);
  }
  return finishConfig(fs, "options", "");
}

/** Used by the config-file reader to put URL lists in (etcd's configFromFile does the same split). */
export function urlListValue(urls: readonly GoUrl[]): UrlListValue {
  return { texts: new Set(urls.map((u) => u.text)), urls };
}
