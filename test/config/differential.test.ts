/**
 * The real etcd 3.4.23 and our parser must agree on which configurations are accepted. etcd is
 * stopped right after its flag checks by a data dir that is a regular file: reaching the
 * "list data directory" failure means etcd accepted the configuration (it never listens).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, type ConfigErrorCode } from "../../src/config/errors.js";
import { FLAGS } from "../../src/config/flags.js";
import { parseConfig } from "../../src/config/parse.js";
import { etcdBinary } from "../support/realEtcd.js";

const dir = mkdtempSync(join(tmpdir(), "etcd-ts-diff-"));
after(() => rmSync(dir, { recursive: true, force: true }));
/** A file where etcd expects a directory: etcd exits 1 right after accepting its configuration. */
const NOT_A_DIR = join(dir, "data-dir-is-a-file");
writeFileSync(NOT_A_DIR, "");
const ACCEPTED_MARKERS = ["error listing data dir", "failed to list data directory"];
/** etcd never gets further than the data-dir check, so it should exit at once; this only guards a hang. */
const ETCD_EXIT_TIMEOUT_MS = 10_000;

interface EtcdOutcome {
  readonly accepted: boolean;
  readonly exitCode: number | null;
  readonly stderr: string;
}

async function runEtcd(argv: readonly string[], env: Record<string, string>): Promise<EtcdOutcome> {
  const child = spawn(etcdBinary(), [...argv], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), ETCD_EXIT_TIMEOUT_MS);
  const exitCode = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  clearTimeout(timer);
  return { accepted: ACCEPTED_MARKERS.some((marker) => stderr.includes(marker)), exitCode, stderr };
}

function ours(
  argv: readonly string[],
  env: Record<string, string>,
): { accepted: boolean; code?: ConfigErrorCode } {
  try {
    parseConfig(argv, env);
    return { accepted: true };
  } catch (error: unknown) {
    if (error instanceof ConfigError) return { accepted: false, code: error.code };
    throw error;
  }
}

interface Case {
  readonly argv?: readonly string[];
  readonly env?: Record<string, string>;
  /** A config file body; the data-dir line is added. */
  readonly yaml?: string;
  /** etcd accepts, etcd-ts refuses on purpose with this code. */
  readonly divergence?: ConfigErrorCode;
}

const CASES: readonly Case[] = [
  { argv: [] },
  { argv: ["--name=a", "--initial-cluster-token=t"] },
  { argv: ["-name", "x", "--snapshot-count", "7"] },
  { argv: ["--bogus"] },
  { argv: ["---name=x"] },
  { argv: ["-=x"] },
  { argv: ["--name"] },
  { argv: ["--", "x"] },
  { argv: ["foo"] },
  { argv: ["--snapshot-count=abc"] },
  { argv: ["--snapshot-count=0x10"] },
  { argv: ["--snapshot-count=1_000"] },
  { argv: ["--snapshot-count=-1"] },
  { argv: ["--quota-backend-bytes=-1"] },
  { argv: ["--max-concurrent-streams=4294967296"] },
  { argv: ["--backend-batch-interval=5"] },
  { argv: ["--backend-batch-interval=5ms"] },
  { argv: ["--enable-v2"] },
  { argv: ["--enable-v2=maybe"] },
  { argv: ["--enable-v2", "false"] },
  { argv: ["--initial-cluster-state=existing"] },
  { argv: ["--initial-cluster-state=bogus"] },
  { argv: ["--listen-client-urls=http://127.0.0.1:1"] },
  { argv: ["--listen-client-urls=http://127.0.0.1:1", "--advertise-client-urls=http://127.0.0.1:1"] },
  { argv: ["--listen-client-urls=notaurl"] },
  { argv: ["--listen-client-urls=http://127.0.0.1:1/p", "--advertise-client-urls=http://127.0.0.1:1"] },
  { argv: ["--listen-peer-urls=http://example.com:1"] },
  { argv: ["--initial-advertise-peer-urls=http://:2380"] },
  { argv: ["--election-timeout=100"] },
  { argv: ["--election-timeout=500"] },
  { argv: ["--heartbeat-interval=0"] },
  { argv: ["--election-timeout=50000"] },
  { argv: ["--election-timeout=50001"] },
  { argv: ["--auto-compaction-mode=revision", "--auto-compaction-retention=100"] },
  { argv: ["--auto-compaction-mode=bogus"] },
  { argv: ["--log-level=debug"] },
  { argv: ["--log-level=bogus"] },
  { argv: ["--logger=zap"] },
  { argv: ["--logger=bogus"] },
  { argv: ["--log-outputs=stderr,stdout"] },
  { argv: ["--logger=zap", "--log-outputs=stderr,stdout"] },
  { argv: ["--logger=zap", "--log-outputs=default,stderr"] },
  { argv: ["--v", "--force", "--config=x"] },
  { argv: ["--experimental-enable-lease-checkpoint-persist"] },
  // With the default capnslog logger etcd 3.4.23 crashes on a nil logger here; with zap it warns, as we do.
  { argv: ["--logger=zap", "--experimental-enable-lease-checkpoint"] },
  { argv: ["--discovery-srv=example.com", "--initial-cluster=a=http://127.0.0.1:1"] },
  { argv: ["--name=y"], env: { ETCD_NAME: "x" } },
  { env: { ETCD_SNAPSHOT_COUNT: "abc" } },
  { env: { ETCD_SNAPSHOT_COUNT: "12", ETCD_BOGUS: "1" } },
  { env: { ETCD_VERSION: "3.4.23" } },
  { env: { ETCD_LISTEN_CLIENT_URLS: "http://127.0.0.1:1" } },
  { yaml: "name: m\nsnapshot-count: 10\n" },
  { yaml: "snapshot-count: abc\n" },
  { yaml: "Election-Timeout: 1\n" },
  { yaml: "enable-v2: yes\n" },
  { yaml: "listen-client-urls: http://127.0.0.1:1\n" },
  { yaml: "proxy: bogus\n" },
  { yaml: "name: true\n" },
  { argv: ["--cert-file=/c.pem", "--key-file=/k.pem"], divergence: "CONFIG_SECURITY_UNBUILT" },
  { argv: ["--auth-token=jwt,sign-method=RS256"], divergence: "CONFIG_SECURITY_UNBUILT" },
  { argv: ["--force-new-cluster"], divergence: "CONFIG_UNSUPPORTED" },
];

function describeCase(c: Case): string {
  const parts = [...(c.argv ?? [])];
  for (const [key, value] of Object.entries(c.env ?? {})) parts.unshift(`${key}=${value}`);
  if (c.yaml !== undefined) parts.push(`config ${JSON.stringify(c.yaml)}`);
  return parts.join(" ") || "(no flags)";
}

describe("differential: etcd 3.4.23 and etcd-ts accept and refuse the same configurations", () => {
  let fileCount = 0;
  for (const c of CASES) {
    it(describeCase(c), async () => {
      let argv = [`--data-dir=${NOT_A_DIR}`, ...(c.argv ?? [])];
      if (c.yaml !== undefined) {
        fileCount += 1;
        const path = join(dir, `c${fileCount}.yml`);
        writeFileSync(path, `data-dir: ${NOT_A_DIR}\n${c.yaml}`);
        argv = [`--config-file=${path}`];
      }
      const env = c.env ?? {};
      const etcd = await runEtcd(argv, env);
      const mine = ours(argv, env);
      if (c.divergence !== undefined) {
        assert.equal(etcd.accepted, true, `etcd should accept:\n${etcd.stderr}`);
        assert.deepEqual(mine, { accepted: false, code: c.divergence });
        return;
      }
      assert.equal(
        mine.accepted,
        etcd.accepted,
        `etcd ${etcd.accepted ? "accepts" : "refuses"} (exit ${etcd.exitCode}):\n${etcd.stderr.slice(0, 2000)}\nours: ${JSON.stringify(mine)}`,
      );
      if (!etcd.accepted) assert.notEqual(etcd.exitCode, 0);
    });
  }
});

describe("the flag table against etcd's own", () => {
  it("etcd accepts every flag in the table (all at their defaults, then --version)", () => {
    const argv = FLAGS.filter((spec) => spec.name !== "version").map((spec) =>
      spec.kind === "ignored" ? `--${spec.name}` : `--${spec.name}=${spec.defaultText}`,
    );
    argv.push("--version");
    const etcd = spawnSync(etcdBinary(), argv, { env: { PATH: process.env.PATH ?? "" }, encoding: "utf8" });
    assert.equal(etcd.status, 0, etcd.stderr);
    assert.match(etcd.stdout, /^etcd Version: 3\.4\.23/);
    assert.equal(parseConfig(argv, {}).kind, "version");
  });

  it("every flag `etcd --help` lists is in the table, with the same default shown", () => {
    const help = spawnSync(etcdBinary(), ["--help"], {
      env: { PATH: process.env.PATH ?? "" },
      encoding: "utf8",
    });
    assert.equal(help.status, 0);
    const listed = [...help.stdout.matchAll(/^ {2}--([a-z0-9.-]+) '?([^'\n]*)'?$/gm)].map(
      (m) => [m[1]!, m[2]!] as const,
    );
    assert.ok(listed.length >= 75, `only ${listed.length} flags parsed from etcd --help`);
    for (const [name, shownDefault] of listed) {
      const spec = FLAGS.find((s) => s.name === name);
      assert.ok(spec !== undefined, `--${name} is missing from the table`);
      assert.equal(spec.helpDefault, shownDefault, `--${name}'s default`);
      assert.equal(spec.hidden, false, `--${name} is listed by etcd`);
    }
    const listedNames = new Set(listed.map(([name]) => name));
    for (const spec of FLAGS) {
      if (spec.hidden || spec.group === "command") continue;
      assert.ok(
        listedNames.has(spec.name),
        `--${spec.name} is not listed by etcd --help but not marked hidden`,
      );
    }
  });
});
