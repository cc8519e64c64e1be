import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, type ConfigErrorCode } from "../../src/config/errors.js";
import { parseConfig } from "../../src/config/parse.js";
import type { ConfigNote, MemberConfig } from "../../src/config/types.js";
import { urlText } from "../../src/config/urls.js";

const dir = mkdtempSync(join(tmpdir(), "etcd-ts-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;

function writeConfig(yaml: string): string {
  fileCount += 1;
  const path = join(dir, `c${fileCount}.yml`);
  writeFileSync(path, yaml);
  return path;
}

function load(yaml: string, extraArgv: readonly string[] = [], env: Record<string, string> = {}) {
  const result = parseConfig(["--config-file", writeConfig(yaml), ...extraArgv], env);
  assert.ok(result.kind === "run");
  return result;
}

function refused(yaml: string): ConfigError {
  try {
    parseConfig([`--config-file=${writeConfig(yaml)}`], {});
  } catch (error: unknown) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("expected the config file to be refused");
}

const unbuiltWarning = (notes: readonly ConfigNote[], flag: string) =>
  notes.some(
    (n) => n.msg === "ignoring a flag that etcd-ts does not implement yet" && n.fields["flag"] === flag,
  );

/** The keys and values of etcd 3.4.23's etcd.conf.yml.sample (comments dropped). */
const ETCD_SAMPLE = `
name: 'default'
data-dir:
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://localhost:2380
listen-client-urls: http://localhost:2379
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://localhost:2380
advertise-client-urls: http://localhost:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster:
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
debug: false
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
`;

describe("--config-file", () => {
  it("starts from etcd's own sample file, warning about the features not built", () => {
    const { config, notes } = load(ETCD_SAMPLE);
    assert.equal(config.snapshotCount, 10000);
    assert.equal(config.dataDir, "default.etcd");
    assert.equal(config.initialCluster, "default=http://localhost:2380");
    assert.equal(config.logger, "zap");
    assert.deepEqual(config.logOutputs, ["stderr"]);
    assert.deepEqual(config.autoCompaction, { mode: "periodic", retentionMs: 3_600_000 });
    assert.equal(config.strictReconfigCheck, false);
    for (const flag of ["--enable-v2", "--enable-pprof", "--strict-reconfig-check"]) {
      assert.ok(unbuiltWarning(notes, flag), `${flag} not warned about`);
    }
    assert.equal(
      notes[0]?.msg,
      "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
    );
    assert.ok(config.configFile.endsWith(".yml"));
  });

  it("makes other flags and ETCD_* variables ignored, even conflicting ones", () => {
    const { config, notes } = load("name: from-file\nsnapshot-count: 5\n", ["--name=from-flag"], {
      ETCD_NAME: "from-env",
      ETCD_SNAPSHOT_COUNT: "7",
      ETCD_BOGUS: "1",
    });
    assert.equal(config.name, "from-file");
    assert.equal(config.snapshotCount, 5);
    assert.ok(!notes.some((n) => n.msg === "unrecognized environment variable"));
  });

  it("can come from ETCD_CONFIG_FILE", () => {
    const result = parseConfig([], { ETCD_CONFIG_FILE: writeConfig("name: via-env\n") });
    assert.ok(result.kind === "run");
    assert.equal(result.config.name, "via-env");
  });

  it("does not excuse a malformed command line", () => {
    assert.throws(
      () => parseConfig(["--config-file", writeConfig("name: x\n"), "--bogus"], {}),
      (e: unknown) => e instanceof ConfigError && e.code === "CONFIG_UNKNOWN_FLAG",
    );
  });

  const accepted: ReadonlyArray<readonly [string, string, (c: MemberConfig) => void]> = [
    ["an empty file means etcd's defaults", "", (c) => assert.equal(c.name, "default")],
    ["null keeps a default", "snapshot-count: ~\n", (c) => assert.equal(c.snapshotCount, 100000)],
    ["YAML 1.1 hex integers", "quota-backend-bytes: 0x10\n", (c) => assert.equal(c.quotaBackendBytes, 16)],
    ["an integral float", "snapshot-count: 1e3\n", (c) => assert.equal(c.snapshotCount, 1000)],
    ["YAML 1.1 yes is true", "enable-v2: yes\n", (c) => assert.equal(c.enableV2, true)],
    [
      "durations are nanoseconds",
      "backend-batch-interval: 10000000\n",
      (c) => assert.equal(c.backendBatchIntervalMs, 10),
    ],
    ["keys match case-insensitively", "Snapshot-Count: 9\n", (c) => assert.equal(c.snapshotCount, 9)],
    ["unknown keys are ignored", "no-such-key: 1\nname: k\n", (c) => assert.equal(c.name, "k")],
    [
      "--name alone sets the data dir and the initial cluster",
      "name: m1\n",
      (c) => assert.deepEqual([c.dataDir, c.initialCluster], ["m1.etcd", "m1=http://localhost:2380"]),
    ],
    [
      "listen URLs without advertise URLs keep the advertise default (unlike flags)",
      "listen-client-urls: http://127.0.0.1:1\n",
      (c) => assert.deepEqual(c.advertiseClientUrls.map(urlText), ["http://localhost:2379"]),
    ],
    [
      "URL lists are comma-separated strings",
      "listen-client-urls: http://127.0.0.1:2,http://127.0.0.1:1\nadvertise-client-urls: http://127.0.0.1:1\n",
      (c) => assert.deepEqual(c.listenClientUrls.map(urlText), ["http://127.0.0.1:1", "http://127.0.0.1:2"]),
    ],
    [
      "empty TLS sections are fine",
      "client-transport-security:\n  cert-file: ''\n",
      (c) => assert.equal(c.certFile, ""),
    ],
  ];
  for (const [name, yaml, check] of accepted) {
    it(name, () => check(load(yaml).config));
  }

  const typeError = (detail: string) => `error unmarshaling JSON: while decoding JSON: json: ${detail}`;
  const refusedCases: ReadonlyArray<readonly [string, ConfigErrorCode, string]> = [
    [
      "snapshot-count: abc\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal string into Go struct field configYAML.snapshot-count of type uint64"),
    ],
    [
      "snapshot-count: '100'\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal string into Go struct field configYAML.snapshot-count of type uint64"),
    ],
    [
      "name: 123\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal number into Go struct field configYAML.name of type string"),
    ],
    [
      "name: off\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal bool into Go struct field configYAML.name of type string"),
    ],
    [
      "heartbeat-interval: 1.5\n",
      "CONFIG_FILE",
      typeError(
        "cannot unmarshal number 1.5 into Go struct field configYAML.heartbeat-interval of type uint",
      ),
    ],
    [
      "snapshot-count: -5\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal number -5 into Go struct field configYAML.snapshot-count of type uint64"),
    ],
    [
      "backend-batch-interval: 10ms\n",
      "CONFIG_FILE",
      typeError(
        "cannot unmarshal string into Go struct field configYAML.backend-batch-interval of type time.Duration",
      ),
    ],
    [
      "enable-v2: 'true'\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal string into Go struct field configYAML.enable-v2 of type bool"),
    ],
    [
      "log-outputs: stderr\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal string into Go struct field configYAML.log-outputs of type []string"),
    ],
    [
      "cors: [a]\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal array into Go struct field configYAML.cors of type string"),
    ],
    [
      "client-transport-security:\n  cert-file: 5\n",
      "CONFIG_FILE",
      typeError(
        "cannot unmarshal number into Go struct field securityConfig.client-transport-security.cert-file of type string",
      ),
    ],
    ["---\n- a\n", "CONFIG_FILE", typeError("cannot unmarshal array into Go value of type embed.configYAML")],
    [
      "listen-client-urls: notaurl\n",
      "CONFIG_FILE",
      "unexpected error setting up listen-client-urls: URL scheme must be http, https, unix, or unixs: notaurl",
    ],
    [
      "Election-Timeout: 1\n",
      "CONFIG_INVALID",
      "--election-timeout[1ms] should be at least as 5 times as --heartbeat-interval[100ms]",
    ],
    ["initial-cluster-state: bogus\n", "CONFIG_INVALID", 'unexpected clusterState "bogus"'],
    ["proxy: bogus\n", "CONFIG_FILE", "unexpected error setting up proxyFlag: invalid value"],
    [
      "proxy: off\n",
      "CONFIG_FILE",
      typeError("cannot unmarshal bool into Go struct field configProxy.proxy of type string"),
    ],
    [
      "discovery-fallback: maybe\n",
      "CONFIG_FILE",
      "unexpected error setting up discovery-fallback flag: invalid value",
    ],
  ];
  for (const [yaml, code, message] of refusedCases) {
    it(`refuses ${JSON.stringify(yaml)} with etcd's message`, () => {
      const error = refused(yaml);
      assert.equal(error.message, message);
      assert.equal(error.code, code);
      assert.equal(error.exitCode, 1);
      assert.equal(error.notes[0]?.msg.startsWith("loaded server configuration"), true);
    });
  }

  it("reports a YAML syntax error", () => {
    const error = refused("a: [1\n");
    assert.equal(error.code, "CONFIG_FILE");
    assert.match(error.message, /^error converting YAML to JSON: yaml: /);
  });
  it("reports a missing file as Go's os error", () => {
    const path = join(dir, "missing.yml");
    assert.throws(
      () => parseConfig([`--config-file=${path}`], {}),
      (e: unknown) => e instanceof ConfigError && e.message === `open ${path}: no such file or directory`,
    );
  });
  it("refuses TLS settings from the file", () => {
    assert.equal(
      refused("client-transport-security:\n  cert-file: /c.pem\n").code,
      "CONFIG_SECURITY_UNBUILT",
    );
    assert.equal(refused("peer-transport-security:\n  auto-tls: true\n").code, "CONFIG_SECURITY_UNBUILT");
    assert.equal(refused("ClientTLSInfo:\n  CertFile: /c.pem\n").code, "CONFIG_SECURITY_UNBUILT");
  });
  it("refuses modes that are not built", () => {
    assert.equal(refused("proxy: 'on'\n").code, "CONFIG_UNSUPPORTED");
    assert.equal(refused("discovery: https://discovery.etcd.io/x\n").code, "CONFIG_UNSUPPORTED");
  });
});
