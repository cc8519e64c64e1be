import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, type ConfigErrorCode } from "../../src/config/errors.js";
import { FLAGS, type FlagSpec } from "../../src/config/flags.js";
import { type Environment, type ParseResult, parseConfig } from "../../src/config/parse.js";
import type { ConfigNote, MemberConfig } from "../../src/config/types.js";
import { urlText } from "../../src/config/urls.js";

function run(
  argv: readonly string[],
  env: Environment = {},
): { config: MemberConfig; notes: readonly ConfigNote[] } {
  const result: ParseResult = parseConfig(argv, env);
  assert.equal(result.kind, "run");
  assert.ok(result.kind === "run");
  return { config: result.config, notes: result.notes };
}

function failure(argv: readonly string[], env: Environment = {}): ConfigError {
  try {
    parseConfig(argv, env);
  } catch (error: unknown) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(argv)} to be refused`);
}

const texts = (urls: readonly URL[]) => urls.map(urlText);
const hasNote = (notes: readonly ConfigNote[], msg: string, fields: Record<string, unknown> = {}) =>
  notes.some((note) => note.msg === msg && Object.entries(fields).every(([k, v]) => note.fields[k] === v));

describe("etcd-ts [flags]: accepted command lines", () => {
  it("defaults to etcd's defaults", () => {
    const { config, notes } = run([]);
    assert.equal(config.name, "default");
    assert.equal(config.dataDir, "default.etcd");
    assert.deepEqual(texts(config.listenClientUrls), ["http://localhost:2379"]);
    assert.deepEqual(texts(config.advertiseClientUrls), ["http://localhost:2379"]);
    assert.deepEqual(texts(config.listenPeerUrls), ["http://localhost:2380"]);
    assert.deepEqual(texts(config.initialAdvertisePeerUrls), ["http://localhost:2380"]);
    assert.equal(config.initialCluster, "default=http://localhost:2380");
    assert.equal(config.initialClusterState, "new");
    assert.equal(config.initialClusterToken, "etcd-cluster");
    assert.equal(config.heartbeatIntervalMs, 100);
    assert.equal(config.electionTimeoutMs, 1000);
    assert.equal(config.electionTicks, 10);
    assert.equal(config.snapshotCount, 100000);
    assert.equal(config.maxSnapshots, 5);
    assert.equal(config.maxWals, 5);
    assert.equal(config.quotaBackendBytes, 2 * 1024 * 1024 * 1024);
    assert.equal(config.maxRequestBytes, 1.5 * 1024 * 1024);
    assert.equal(config.maxTxnOps, 128);
    assert.equal(config.logLevel, "info");
    assert.deepEqual(config.autoCompaction, { mode: "periodic", retentionMs: 0 });
    assert.ok(hasNote(notes, "'data-dir' was empty; using default", { "data-dir": "default.etcd" }));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.listenClientUrls));
  });

  const cases: ReadonlyArray<readonly [string, readonly string[], (config: MemberConfig) => void]> = [
    [
      "--name names the data dir and the default initial cluster",
      ["--name", "n1"],
      (c) => {
        assert.equal(c.name, "n1");
        assert.equal(c.dataDir, "n1.etcd");
        assert.equal(c.initialCluster, "n1=http://localhost:2380");
        assert.deepEqual([...c.initialClusterMembers.keys()], ["n1"]);
      },
    ],
    [
      "one dash and = work",
      ["-name=n2", "-data-dir=/d"],
      (c) => assert.deepEqual([c.name, c.dataDir], ["n2", "/d"]),
    ],
    ["the last occurrence wins", ["--name=a", "--name=b"], (c) => assert.equal(c.name, "b")],
    [
      "--flag value takes the next word",
      ["--heartbeat-interval", "50", "--election-timeout", "500"],
      (c) => assert.deepEqual([c.heartbeatIntervalMs, c.electionTimeoutMs, c.electionTicks], [50, 500, 10]),
    ],
    [
      "a value may start with a dash",
      ["--initial-cluster-token", "-tok"],
      (c) => assert.equal(c.initialClusterToken, "-tok"),
    ],
    [
      "URL lists are sorted; duplicates stay, as in etcd",
      [
        "--listen-client-urls=http://127.0.0.1:2,http://127.0.0.1:1,http://127.0.0.1:2",
        "--advertise-client-urls=http://127.0.0.1:1",
      ],
      (c) =>
        assert.deepEqual(texts(c.listenClientUrls), [
          "http://127.0.0.1:1",
          "http://127.0.0.1:2",
          "http://127.0.0.1:2",
        ]),
    ],
    [
      "advertised peer URLs feed the default initial cluster",
      ["--name=m", "--initial-advertise-peer-urls=http://127.0.0.1:7,http://127.0.0.1:8"],
      (c) => assert.equal(c.initialCluster, "m=http://127.0.0.1:7,m=http://127.0.0.1:8"),
    ],
    [
      "--initial-cluster groups URLs by name",
      ["--initial-cluster=a=http://127.0.0.1:1,a=http://127.0.0.1:2,b=http://127.0.0.1:3", "--name=a"],
      (c) => {
        assert.deepEqual(texts(c.initialClusterMembers.get("a")!), [
          "http://127.0.0.1:1",
          "http://127.0.0.1:2",
        ]);
        assert.deepEqual(texts(c.initialClusterMembers.get("b")!), ["http://127.0.0.1:3"]);
      },
    ],
    [
      "integers take Go's prefixes",
      ["--quota-backend-bytes=0x10"],
      (c) => assert.equal(c.quotaBackendBytes, 16),
    ],
    ["integers take underscores", ["--snapshot-count=1_000"], (c) => assert.equal(c.snapshotCount, 1000)],
    [
      "a negative quota disables it",
      ["--quota-backend-bytes=-1"],
      (c) => assert.equal(c.quotaBackendBytes, Number.POSITIVE_INFINITY),
    ],
    [
      "--initial-cluster-state existing",
      ["--initial-cluster-state=existing"],
      (c) => assert.equal(c.initialClusterState, "existing"),
    ],
    ["--log-level", ["--log-level=debug"], (c) => assert.equal(c.logLevel, "debug")],
    ["--debug raises capnslog's level", ["--debug"], (c) => assert.equal(c.logLevel, "debug")],
    [
      "--debug does not change zap's level",
      ["--logger=zap", "--debug"],
      (c) => assert.equal(c.logLevel, "info"),
    ],
    [
      "zap takes several outputs",
      ["--logger=zap", "--log-outputs=stderr,/tmp/etcd.log"],
      (c) => assert.deepEqual(c.logOutputs, ["/tmp/etcd.log", "stderr"]),
    ],
    [
      "a bare retention is hours",
      ["--auto-compaction-retention=1"],
      (c) => assert.deepEqual(c.autoCompaction, { mode: "periodic", retentionMs: 3_600_000 }),
    ],
    [
      "a retention with a unit is a duration",
      ["--auto-compaction-retention=5m"],
      (c) => assert.deepEqual(c.autoCompaction, { mode: "periodic", retentionMs: 300_000 }),
    ],
    [
      "revision mode counts revisions",
      ["--auto-compaction-mode=revision", "--auto-compaction-retention=1000"],
      (c) => assert.deepEqual(c.autoCompaction, { mode: "revision", retentionRevisions: 1000 }),
    ],
    ["-- ends the flags", ["--name=x", "--"], (c) => assert.equal(c.name, "x")],
    [
      "--version=false does not print the version",
      ["--version=false"],
      (c) => assert.equal(c.name, "default"),
    ],
    [
      "an explicitly default security flag is fine",
      ["--client-cert-auth=false", "--cert-file=", "--auth-token=simple", "--host-whitelist=*"],
      (c) => assert.equal(c.certFile, ""),
    ],
    [
      "an empty host whitelist means all",
      ["--host-whitelist="],
      (c) => assert.deepEqual(c.hostWhitelist, ["*"]),
    ],
  ];
  for (const [name, argv, check] of cases) {
    it(name, () => check(run(argv).config));
  }
});

describe("etcd-ts [flags]: refused command lines, with etcd's messages and exit codes", () => {
  const cases: ReadonlyArray<readonly [readonly string[], ConfigErrorCode, 1 | 2, string]> = [
    [["--bogus"], "CONFIG_UNKNOWN_FLAG", 2, "flag provided but not defined: -bogus"],
    [["-x=1"], "CONFIG_UNKNOWN_FLAG", 2, "flag provided but not defined: -x"],
    [["---name=x"], "CONFIG_BAD_FLAG_SYNTAX", 2, "bad flag syntax: ---name=x"],
    [["-=x"], "CONFIG_BAD_FLAG_SYNTAX", 2, "bad flag syntax: -=x"],
    [["--name"], "CONFIG_FLAG_NEEDS_ARGUMENT", 2, "flag needs an argument: -name"],
    [
      ["--snapshot-count=abc"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "abc" for flag -snapshot-count: parse error',
    ],
    [
      ["--snapshot-count=-1"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "-1" for flag -snapshot-count: parse error',
    ],
    [
      ["--snapshot-count=99999999999999999999"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "99999999999999999999" for flag -snapshot-count: value out of range',
    ],
    [
      ["--max-concurrent-streams=abc"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "abc" for flag -max-concurrent-streams: strconv.ParseUint: parsing "abc": invalid syntax',
    ],
    [
      ["--backend-batch-interval=5"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "5" for flag -backend-batch-interval: parse error',
    ],
    [
      ["--enable-v2=maybe"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid boolean value "maybe" for -enable-v2: parse error',
    ],
    [
      ["--initial-cluster-state=bogus"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "bogus" for flag -initial-cluster-state: invalid value',
    ],
    [
      ["--listen-client-urls=notaurl"],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "notaurl" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: notaurl',
    ],
    [
      ["--cors="],
      "CONFIG_INVALID_FLAG_VALUE",
      2,
      'invalid value "" for flag -cors: URL scheme must be http, https, unix, or unixs: ',
    ],
    [["--enable-v2", "false"], "CONFIG_NOT_A_FLAG", 1, "'false' is not a valid flag"],
    [["foo"], "CONFIG_NOT_A_FLAG", 1, "'foo' is not a valid flag"],
    [["-"], "CONFIG_NOT_A_FLAG", 1, "'-' is not a valid flag"],
    [["--", "--name=x"], "CONFIG_NOT_A_FLAG", 1, "'--name=x' is not a valid flag"],
    [["--version", "--bogus"], "CONFIG_UNKNOWN_FLAG", 2, "flag provided but not defined: -bogus"],
    [["gateway", "start"], "CONFIG_UNSUPPORTED_COMMAND", 2, "etcd-ts does not implement 'etcd gateway'"],
    [
      ["--listen-client-urls=http://127.0.0.1:1"],
      "CONFIG_INVALID",
      1,
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
    ],
    [
      ["--election-timeout=100"],
      "CONFIG_INVALID",
      1,
      "--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]",
    ],
    [["--heartbeat-interval=0"], "CONFIG_INVALID", 1, "--heartbeat-interval must be >0 (set to 0ms)"],
    [["--election-timeout=0"], "CONFIG_INVALID", 1, "--election-timeout must be >0 (set to 0ms)"],
    [
      ["--election-timeout=60000"],
      "CONFIG_INVALID",
      1,
      "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
    ],
    [["--auto-compaction-mode=bogus"], "CONFIG_INVALID", 1, 'unknown auto-compaction-mode "bogus"'],
    [
      ["--auto-compaction-retention=abc"],
      "CONFIG_INVALID",
      1,
      'error parsing CompactionRetention: time: invalid duration "abc"',
    ],
    [["--logger=bogus"], "CONFIG_INVALID", 1, 'unknown logger option "bogus"'],
    [
      ["--log-level=bogus"],
      "CONFIG_INVALID",
      1,
      'unknown level "bogus" (--log-level supports debug, info, warn, error, panic, or fatal)',
    ],
    [
      ["--log-outputs=stderr,stdout"],
      "CONFIG_INVALID",
      1,
      `--logger=capnslog supports only 1 value in '--log-outputs', got ["stderr" "stdout"]`,
    ],
    [
      ["--log-outputs=/tmp/x.log"],
      "CONFIG_INVALID",
      1,
      'unknown log-output "/tmp/x.log" (only supports "default", "stderr", "stdout")',
    ],
    [
      ["--logger=zap", "--log-outputs=default,stderr"],
      "CONFIG_INVALID",
      1,
      'multi logoutput for "default" is not supported yet',
    ],
    [
      ["--log-output=stderr", "--log-outputs=stderr"],
      "CONFIG_INVALID",
      1,
      `'--log-output=["stderr"]' and '--log-outputs=["stderr"]' are incompatible; only set --log-outputs`,
    ],
    [
      ["--listen-peer-urls=http://example.com:2380"],
      "CONFIG_INVALID",
      1,
      "expected IP in URL for binding (http://example.com:2380)",
    ],
    [
      ["--initial-advertise-peer-urls=http://:2380"],
      "CONFIG_INVALID",
      1,
      '--initial-advertise-peer-urls "http://:2380" must be "host:port" (unexpected empty host (http://:2380))',
    ],
    [
      ["--discovery-srv=example.com", "--initial-cluster=a=http://127.0.0.1:1"],
      "CONFIG_INVALID",
      1,
      'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"',
    ],
    [
      ["--experimental-enable-lease-checkpoint-persist"],
      "CONFIG_INVALID",
      1,
      "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint",
    ],
    [
      ["--initial-cluster=a=http://127.0.0.1:1/x"],
      "CONFIG_INVALID",
      1,
      "--initial-cluster: URL must not contain a path: http://127.0.0.1:1/x",
    ],
  ];
  for (const [argv, code, exitCode, message] of cases) {
    it(`${argv.join(" ")} -> ${code}`, () => {
      const error = failure(argv);
      assert.equal(error.message, message);
      assert.equal(error.code, code);
      assert.equal(error.exitCode, exitCode);
      assert.equal(error.printUsage, exitCode === 2 && code !== "CONFIG_UNSUPPORTED_COMMAND");
    });
  }
});

/** A value different from the flag's default that passes etcd's own checks. */
function nonDefaultValue(spec: FlagSpec): string {
  const special: Readonly<Record<string, string>> = {
    "discovery-fallback": "exit",
    proxy: "on",
    cors: "http://127.0.0.1:1",
    "listen-metrics-urls": "http://127.0.0.1:9",
    "host-whitelist": "example.com",
    "cipher-suites": "TLS_RSA_WITH_AES_128_CBC_SHA",
    "auth-token": "jwt,pub-key=a.pub,priv-key=a,sign-method=RS256",
    metrics: "extensive",
    "experimental-backend-bbolt-freelist-type": "map",
  };
  if (special[spec.name] !== undefined) return special[spec.name]!;
  switch (spec.kind) {
    case "bool":
      return spec.defaultText === "true" ? "false" : "true";
    case "duration":
      return "7s";
    case "uint":
    case "uint64":
    case "int":
    case "int64":
    case "uint32":
      return "7";
    default:
      return "x";
  }
}

describe("flags whose feature is not built", () => {
  for (const spec of FLAGS.filter((s) => s.status === "unbuilt")) {
    it(`--${spec.name} set -> a warning that names it`, () => {
      const argv = [`--${spec.name}=${nonDefaultValue(spec)}`];
      // The two lease checkpoint flags must be set together.
      if (spec.name === "experimental-enable-lease-checkpoint")
        argv.push("--experimental-enable-lease-checkpoint-persist");
      if (spec.name === "experimental-enable-lease-checkpoint-persist")
        argv.push("--experimental-enable-lease-checkpoint");
      const { notes } = run(argv);
      assert.ok(
        hasNote(notes, "ignoring a flag that etcd-ts does not implement yet", { flag: `--${spec.name}` }),
        JSON.stringify(notes),
      );
    });
    it(`--${spec.name} at its default -> no warning`, () => {
      if (spec.defaultText === "" && spec.kind === "urls") return; // "" leaves a URL list as it is: nothing to set
      const { notes } = run([`--${spec.name}=${spec.defaultText}`]);
      assert.ok(
        !hasNote(notes, "ignoring a flag that etcd-ts does not implement yet", { flag: `--${spec.name}` }),
      );
    });
  }
  for (const spec of FLAGS.filter((s) => s.status === "security")) {
    it(`--${spec.name} set -> refuses to start, naming it`, () => {
      const error = failure([`--${spec.name}=${nonDefaultValue(spec)}`]);
      assert.equal(error.code, "CONFIG_SECURITY_UNBUILT");
      assert.equal(error.exitCode, 1);
      assert.match(error.message, new RegExp(`--${spec.name}=`));
    });
  }
  for (const spec of FLAGS.filter((s) => s.status === "unsupported")) {
    it(`--${spec.name} set -> refuses to start, naming it`, () => {
      const value = spec.name === "discovery" ? "https://discovery.etcd.io/x" : nonDefaultValue(spec);
      const error = failure([`--${spec.name}=${value}`]);
      assert.equal(error.code, "CONFIG_UNSUPPORTED");
      assert.match(error.message, new RegExp(`--${spec.name}=`));
    });
  }
  it("names every refused security flag at once", () => {
    const error = failure(["--cert-file=c", "--key-file=k"]);
    assert.match(error.message, /--cert-file=c --key-file=k/);
  });
  it("etcd's own ignored legacy flags warn and do nothing", () => {
    const { notes } = run(["--v", "-vv", "--force", "--config=x"]);
    for (const name of ["v", "vv", "force", "config"]) {
      assert.ok(hasNote(notes, "flag is no longer supported - ignoring", { "flag-name": name }));
    }
  });
});

describe("ETCD_* environment variables", () => {
  it("set flags not given on the command line, and are reported", () => {
    const { config, notes } = run(["--name=n"], { ETCD_SNAPSHOT_COUNT: "12", ETCD_DATA_DIR: "/data" });
    assert.equal(config.snapshotCount, 12);
    assert.equal(config.dataDir, "/data");
    assert.ok(
      hasNote(notes, "recognized and used environment variable", {
        "variable-name": "ETCD_SNAPSHOT_COUNT",
        "variable-value": "12",
      }),
    );
  });
  it("count as set (a listen URL from env needs an advertise URL too)", () => {
    const error = failure([], { ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:1" });
    assert.equal(
      error.message,
      "--advertise-client-urls is required when --listen-client-urls is set explicitly",
    );
  });
  it("shadowed by a flag refuse to start, as in etcd 3.4", () => {
    for (const value of ["e", ""]) {
      const error = failure(["--name=f"], { ETCD_NAME: value });
      assert.equal(error.code, "CONFIG_ENV_SHADOWED");
      assert.equal(error.exitCode, 1);
      assert.equal(
        error.message,
        'conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)',
      );
    }
  });
  it("unknown ETCD_* and empty ones are warned about; others are not", () => {
    const { notes } = run([], { ETCD_BOGUS: "1", ETCD_NAME: "", ETCDCTL_API: "3", PATH: "/bin" });
    assert.ok(
      hasNote(notes, "unrecognized environment variable", { "environment-variable": "ETCD_BOGUS=1" }),
    );
    assert.ok(hasNote(notes, "unrecognized environment variable", { "environment-variable": "ETCD_NAME=" }));
    assert.equal(notes.filter((note) => note.msg === "unrecognized environment variable").length, 2);
  });
  it("with a bad value refuse to start with etcd's message", () => {
    const error = failure([], { ETCD_SNAPSHOT_COUNT: "abc" });
    assert.equal(error.code, "CONFIG_INVALID_ENV_VALUE");
    assert.equal(error.exitCode, 1);
    assert.equal(error.message, 'invalid value "abc" for ETCD_SNAPSHOT_COUNT: parse error');
  });
  it("ETCD_VERSION holding a version string is an error, as in etcd", () => {
    assert.equal(
      failure([], { ETCD_VERSION: "3.4.23" }).message,
      'invalid value "3.4.23" for ETCD_VERSION: parse error',
    );
  });
  it("go through the same status rules", () => {
    assert.ok(
      hasNote(
        run([], { ETCD_ENABLE_V2: "true" }).notes,
        "ignoring a flag that etcd-ts does not implement yet",
        {
          flag: "--enable-v2",
        },
      ),
    );
    assert.equal(failure([], { ETCD_CERT_FILE: "/c.pem" }).code, "CONFIG_SECURITY_UNBUILT");
  });
});

describe("--help and --version", () => {
  for (const flag of ["-h", "--help", "-help"]) {
    it(`${flag} prints the help generated from the flag table`, () => {
      const result = parseConfig([flag], {});
      assert.equal(result.kind, "help");
      assert.ok(result.kind === "help");
      assert.match(result.usage, /etcd-ts \[flags\]/);
      for (const spec of FLAGS.filter((s) => !s.hidden && s.group !== "command" && s.group !== "ignored")) {
        assert.ok(result.text.includes(`--${spec.name} '`), `--${spec.name} missing from help`);
      }
    });
  }
  it("--version prints etcd's shape, adapted", () => {
    const result = parseConfig(["--version"], {});
    assert.ok(result.kind === "version");
    const lines = result.text.trimEnd().split("\n");
    assert.deepEqual(
      lines.map((line) => line.split(":")[0]),
      ["etcd-ts Version", "etcd Version", "etcd API Version", "Git SHA", "Node Version", "Node OS/Arch"],
    );
    assert.equal(lines[1], "etcd Version: 3.4.23");
  });
});
