import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors.js";
import { FLAGS, flagToEnv } from "../../src/config/flags.js";
import { defaultMemberConfig, resolveMemberConfig } from "../../src/config/member.js";
import { parseConfig } from "../../src/config/parse.js";
import type { MemberConfig, MemberOptions, MemberSettings } from "../../src/config/types.js";
import { urlAddress, urlHost, urlPort, urlText } from "../../src/config/urls.js";
import { ETCD_SERVER_VERSION, ETCD_TS_VERSION, versionText } from "../../src/config/version.js";

/** A comparable plain form (URLs as etcd prints them, maps as entries). */
function plain(value: unknown): unknown {
  if (value instanceof URL) return urlText(value);
  if (value instanceof Map) return [...value.entries()].map(([k, v]) => [k, plain(v)]);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const DERIVED = new Set(["electionTicks", "initialClusterMembers", "autoCompaction", "configFile"]);

function settingsOf(config: MemberConfig): MemberOptions {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) if (!DERIVED.has(key)) out[key] = value;
  return out as MemberOptions;
}

function refusedOptions(options: MemberOptions): ConfigError {
  try {
    resolveMemberConfig(options);
  } catch (error: unknown) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("expected the options to be refused");
}

describe("the flag table", () => {
  it("has unique names, fields and etcd's env rule", () => {
    assert.equal(new Set(FLAGS.map((s) => s.name)).size, FLAGS.length);
    const fields = FLAGS.flatMap((s) => (s.field === null ? [] : [s.field]));
    assert.equal(new Set(fields).size, fields.length);
    for (const spec of FLAGS) assert.equal(spec.env, `ETCD_${spec.name.toUpperCase().replaceAll("-", "_")}`);
    assert.equal(flagToEnv("initial-cluster-token"), "ETCD_INITIAL_CLUSTER_TOKEN");
  });
  it("maps every MemberSettings field to exactly one flag", () => {
    const fields = new Set(FLAGS.flatMap((s) => (s.field === null ? [] : [s.field as string])));
    const configKeys = Object.keys(defaultMemberConfig()).filter((k) => !DERIVED.has(k));
    assert.deepEqual([...configKeys].sort(), [...fields].sort());
  });
  it("classifies every flag the brief names as supported", () => {
    const required = [
      "name",
      "data-dir",
      "wal-dir",
      "listen-client-urls",
      "advertise-client-urls",
      "listen-peer-urls",
      "initial-advertise-peer-urls",
      "initial-cluster",
      "initial-cluster-state",
      "initial-cluster-token",
      "heartbeat-interval",
      "election-timeout",
      "snapshot-count",
      "max-snapshots",
      "max-wals",
      "quota-backend-bytes",
      "max-request-bytes",
      "max-txn-ops",
      "auto-compaction-mode",
      "auto-compaction-retention",
      "log-level",
      "config-file",
      "version",
    ];
    for (const name of required) assert.equal(FLAGS.find((s) => s.name === name)?.status, "supported", name);
    for (const spec of FLAGS) {
      if (/cert|tls|crl|trusted-ca|cipher|auth-token$|san-verification/.test(spec.name)) {
        assert.equal(spec.status, "security", spec.name);
      }
    }
  });
});

describe("defaultMemberConfig and resolveMemberConfig", () => {
  it("defaults equal `etcd-ts` with no flags", () => {
    const result = parseConfig([], {});
    assert.ok(result.kind === "run");
    assert.deepEqual(plain(defaultMemberConfig()), plain(result.config));
  });

  it("takes options in natural units and types", () => {
    const { config, notes } = resolveMemberConfig({
      name: "lib",
      dataDir: "/tmp/lib",
      listenClientUrls: [new URL("http://127.0.0.1:4001")],
      advertiseClientUrls: "http://127.0.0.1:4001",
      listenPeerUrls: ["http://127.0.0.1:4002"],
      initialAdvertisePeerUrls: ["http://127.0.0.1:4002"],
      heartbeatIntervalMs: 50,
      electionTimeoutMs: 500,
      quotaBackendBytes: 1024n,
      grpcKeepaliveMinTimeMs: 1500,
      maxRequestBytes: 3 * 1024 * 1024,
    });
    assert.equal(config.name, "lib");
    assert.deepEqual(config.listenClientUrls.map(urlText), ["http://127.0.0.1:4001"]);
    assert.equal(config.initialCluster, "lib=http://127.0.0.1:4002");
    assert.deepEqual(
      [config.heartbeatIntervalMs, config.electionTimeoutMs, config.electionTicks],
      [50, 500, 10],
    );
    assert.equal(config.quotaBackendBytes, 1024);
    assert.equal(config.grpcKeepaliveMinTimeMs, 1500);
    assert.equal(config.maxRequestBytes, 3 * 1024 * 1024);
    assert.ok(notes.some((n) => n.fields["flag"] === "--grpc-keepalive-min-time"));
  });

  it("is idempotent: resolving a resolved config changes nothing", () => {
    const base = resolveMemberConfig({
      name: "x",
      listenClientUrls: "http://127.0.0.1:1",
      advertiseClientUrls: "http://127.0.0.1:1",
      quotaBackendBytes: -1,
      autoCompactionRetention: "2h",
    }).config;
    for (const config of [defaultMemberConfig(), base]) {
      assert.deepEqual(plain(resolveMemberConfig(settingsOf(config)).config), plain(config));
    }
  });

  it("applies the same validation as the flags", () => {
    assert.equal(
      refusedOptions({ listenClientUrls: ["http://127.0.0.1:1"] }).message,
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
    );
    assert.equal(
      refusedOptions({ electionTimeoutMs: 100 }).message,
      "--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]",
    );
    assert.equal(refusedOptions({ certFile: "/c.pem" }).code, "CONFIG_SECURITY_UNBUILT");
    assert.equal(refusedOptions({ forceNewCluster: true }).code, "CONFIG_UNSUPPORTED");
    assert.match(
      refusedOptions({ listenPeerUrls: "notaurl" }).message,
      /URL scheme must be http, https, unix, or unixs/,
    );
  });

  it("refuses unknown options and wrong types by name", () => {
    assert.equal(refusedOptions({ bogus: 1 } as unknown as MemberOptions).message, 'unknown option "bogus"');
    assert.equal(
      refusedOptions({ heartbeatIntervalMs: "50" } as unknown as MemberOptions).message,
      "option heartbeatIntervalMs must be an integer",
    );
    assert.equal(
      refusedOptions({ heartbeatIntervalMs: 1.5 }).message,
      "option heartbeatIntervalMs must be an integer",
    );
    assert.equal(
      refusedOptions({ preVote: "yes" } as unknown as MemberOptions).message,
      "option preVote must be a boolean",
    );
  });

  it("saturates 64-bit values past 2^53 with a note instead of losing them silently", () => {
    const { config, notes } = resolveMemberConfig({ snapshotCount: 18446744073709551615n });
    assert.equal(config.snapshotCount, Number.MAX_SAFE_INTEGER);
    assert.ok(notes.some((n) => n.msg === "flag value exceeds 2^53-1; using the largest exact value"));
  });

  it("exposes every setting of the table with its type", () => {
    const config: MemberSettings = defaultMemberConfig();
    assert.equal(typeof config.preVote, "boolean");
    assert.equal(config.experimentalCompactionBatchLimit, 1000);
    assert.equal(config.experimentalWatchProgressNotifyIntervalMs, 600_000);
    assert.equal(config.backendBatchIntervalMs, 100);
    assert.equal(config.backendBatchLimit, 10_000);
    assert.equal(config.experimentalBackendBboltFreelistType, "array");
  });
});

describe("URL helpers", () => {
  it("give back what etcd listens on and prints", () => {
    const url = new URL("http://127.0.0.1:80");
    assert.equal(urlPort(url), 80);
    assert.equal(urlText(new URL("http://127.0.0.1:2379")), "http://127.0.0.1:2379");
    assert.equal(urlHost(new URL("http://[::1]:2379")), "::1");
    assert.equal(urlAddress(new URL("https://10.0.0.1")), "10.0.0.1:443");
  });
});

describe("versions", () => {
  it("etcd-ts's version is package.json's", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    assert.equal(ETCD_TS_VERSION, pkg.version);
  });
  it("reports the etcd API level it implements", () => {
    assert.equal(ETCD_SERVER_VERSION, "3.4.23");
    assert.match(
      versionText("abc123"),
      /^etcd-ts Version: \S+\netcd Version: 3\.4\.23\netcd API Version: 3\.4\nGit SHA: abc123\n/,
    );
  });
});
