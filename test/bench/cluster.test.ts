import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  clusterMemberFlags,
  clusterTargetName,
  type MemberPlan,
  memberNames,
  type NamedStatus,
  pickLeader,
} from "../../bench/cluster/cluster.js";
import { parseConfig } from "../../bench/load/config.js";
import { BenchError } from "../../bench/load/errors.js";
import { clusterCpuSeconds, clusterSummary, targetsFor } from "../../bench/load/run.js";
import type { RunningCluster } from "../../bench/load/targets.js";
import { renderHtml } from "../../bench/report/html.js";
import type { BenchSummary, ClusterSummary, TargetSummary } from "../../bench/report/summary.js";
import { clusterLines, comparisonTable, targetLines } from "../../bench/report/text.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const mib = 1_048_576;

function badArgs(argv: string[], message: RegExp): void {
  assert.throws(
    () => parseConfig(argv),
    (error: unknown) =>
      error instanceof BenchError && error.code === "BENCH_BAD_ARGS" && message.test(error.message),
  );
}

describe("--cluster configuration", () => {
  it("is off by default and sizes the started servers when given", () => {
    assert.equal(parseConfig(["--compare-etcd"]).clusterSize, null);
    const config = parseConfig(["--cluster", "3", "--compare-etcd", "--compare-etcd-ts", "--load", "m"]);
    assert.equal(config.clusterSize, 3);
    assert.equal(config.clients, 200, "the load level is check perf's, unchanged by --cluster");
    assert.deepEqual(
      targetsFor(config).map((target) => [target.name, target.kind]),
      [
        ["etcd x3", "etcd"],
        ["etcd-ts x3", "etcd-ts"],
      ],
    );
    assert.deepEqual(
      targetsFor(parseConfig(["--compare-etcd"])).map((target) => target.name),
      ["etcd"],
      "without --cluster the single-member targets run as before",
    );
  });

  it("takes 1 to 7 members and only for the servers the bench starts", () => {
    assert.equal(parseConfig(["--cluster", "1", "--compare-etcd"]).clusterSize, 1);
    assert.equal(parseConfig(["--cluster", "7", "--compare-etcd-ts"]).clusterSize, 7);
    badArgs(["--cluster", "0", "--compare-etcd"], /--cluster must be an integer from 1 to 7, got "0"/);
    badArgs(["--cluster", "8", "--compare-etcd"], /--cluster must be an integer from 1 to 7/);
    badArgs(["--cluster", "three", "--compare-etcd"], /--cluster must be an integer/);
    badArgs(["--cluster", "3"], /add --compare-etcd or --compare-etcd-ts/);
    badArgs(["--cluster", "3", "--endpoints", "127.0.0.1:2379"], /add --compare-etcd or --compare-etcd-ts/);
    badArgs(["--cluster", "3", "--compare-etcd", "--compare-null"], /does not apply to --compare-null/);
  });
});

describe("cluster bootstrap flags", () => {
  it("names members infra1..N and bounds the size", () => {
    assert.deepEqual(memberNames(3), ["infra1", "infra2", "infra3"]);
    assert.throws(() => memberNames(0));
    assert.throws(() => memberNames(8));
    assert.equal(clusterTargetName("etcd-ts", 3), "etcd-ts x3");
  });

  it("gives every member the same initial cluster and token, and its own name, URLs and data dir", () => {
    const plans: MemberPlan[] = memberNames(3).map((name, index) => ({
      name,
      clientUrl: `http://127.0.0.1:${2379 + index * 10}`,
      peerUrl: `http://127.0.0.1:${2380 + index * 10}`,
      endpoint: `127.0.0.1:${2379 + index * 10}`,
      dataDir: `/tmp/${name}`,
    }));
    const flags = clusterMemberFlags(plans, "tok");
    assert.equal(flags.length, 3);
    const initialCluster =
      "--initial-cluster=infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:2390,infra3=http://127.0.0.1:2400";
    for (const [index, memberFlags] of flags.entries()) {
      const plan = plans[index]!;
      assert.ok(memberFlags.includes(initialCluster), memberFlags.join(" "));
      assert.ok(memberFlags.includes("--initial-cluster-token=tok"));
      assert.ok(memberFlags.includes("--initial-cluster-state=new"));
      assert.ok(memberFlags.includes(`--name=${plan.name}`));
      assert.ok(memberFlags.includes(`--data-dir=${plan.dataDir}`));
      assert.ok(memberFlags.includes(`--listen-client-urls=${plan.clientUrl}`));
      assert.ok(memberFlags.includes(`--advertise-client-urls=${plan.clientUrl}`));
      assert.ok(memberFlags.includes(`--listen-peer-urls=${plan.peerUrl}`));
      assert.ok(memberFlags.includes(`--initial-advertise-peer-urls=${plan.peerUrl}`));
      // Loopback only, and no proxy between the peers: every URL is the member's own port.
      for (const flag of memberFlags.filter((entry) => entry.includes("http://"))) {
        assert.match(flag, /http:\/\/127\.0\.0\.1:\d+/);
      }
    }
  });
});

describe("finding the leader from Status answers", () => {
  const status = (memberId: bigint, leaderId: bigint) => ({
    memberId,
    leaderId,
    raftTerm: 2,
    isLearner: false,
  });

  it("names the member all agree on", () => {
    const statuses: NamedStatus[] = [
      { name: "infra1", status: status(1n, 2n) },
      { name: "infra2", status: status(2n, 2n) },
      { name: "infra3", status: status(3n, 2n) },
    ];
    assert.equal(pickLeader(statuses), "infra2");
  });

  it("finds none while an election runs, a member is silent, or they disagree", () => {
    assert.equal(
      pickLeader([
        { name: "infra1", status: status(1n, 0n) },
        { name: "infra2", status: status(2n, 0n) },
      ]),
      null,
      "no leader yet",
    );
    assert.equal(
      pickLeader([
        { name: "infra1", status: status(1n, 1n) },
        { name: "infra2", status: null },
      ]),
      null,
      "a member did not answer",
    );
    assert.equal(
      pickLeader([
        { name: "infra1", status: status(1n, 1n) },
        { name: "infra2", status: status(2n, 2n) },
      ]),
      null,
      "two members name different leaders (one is behind a new term)",
    );
    assert.equal(
      pickLeader([
        { name: "infra1", status: status(1n, 9n) },
        { name: "infra2", status: status(2n, 9n) },
      ]),
      null,
      "the named leader is none of the members asked",
    );
  });
});

const cluster: RunningCluster = {
  members: [
    { name: "infra1", idHex: "a1", endpoint: "127.0.0.1:1", pid: 11, leader: false },
    { name: "infra2", idHex: "b2", endpoint: "127.0.0.1:2", pid: 12, leader: true },
    { name: "infra3", idHex: "c3", endpoint: "127.0.0.1:3", pid: 13, leader: false },
  ],
  currentLeader: async () => "infra2",
};

function clusterOf(leaderAfter: string | null): ClusterSummary {
  const summary = clusterSummary(
    cluster,
    {
      acknowledged: 1000,
      leaderAfter,
      members: [
        { pid: 11, cpuSeconds: 0.1, peakRssBytes: 80 * mib },
        { pid: 12, cpuSeconds: 0.3, peakRssBytes: 100 * mib },
        { pid: 13, cpuSeconds: 0.12, peakRssBytes: 81 * mib },
      ],
    },
    [82 * mib, 120 * mib, 83 * mib],
  );
  assert.ok(summary !== null);
  return summary;
}

describe("a cluster's summary", () => {
  it("lists the leader first with each member's CPU per acknowledged request and peak RSS", () => {
    const summary = clusterOf("infra2");
    assert.equal(summary.size, 3);
    assert.equal(summary.leader, "infra2");
    assert.deepEqual(
      summary.members.map((member) => [member.name, member.leader, member.pid]),
      [
        ["infra2", true, 12],
        ["infra1", false, 11],
        ["infra3", false, 13],
      ],
    );
    const leader = summary.members[0]!;
    assert.ok(Math.abs(leader.cpuMicrosPerRequest! - 300) < 1e-9, "0.3 s over 1,000 writes is 300 µs each");
    assert.equal(leader.peakRssBytes, 100 * mib);
    assert.equal(leader.peakRssAfterCleanupBytes, 120 * mib);
    assert.equal(summary.members[1]!.peakRssAfterCleanupBytes, 82 * mib, "readings stay with their member");
    assert.equal(clusterSummary(null, { acknowledged: 1, leaderAfter: null, members: null }, []), null);
  });

  it("sums CPU over every member, and gives none when a member's reading is missing", () => {
    assert.ok(Math.abs(clusterCpuSeconds([{ cpuSeconds: 0.1 }, { cpuSeconds: 0.3 }])! - 0.4) < 1e-12);
    assert.equal(clusterCpuSeconds([{ cpuSeconds: 0.1 }, { cpuSeconds: null }]), null);
  });
});

function clusterTarget(name: string, kind: string, summary: ClusterSummary): TargetSummary {
  return {
    name,
    kind,
    endpoints: ["127.0.0.1:2"],
    skipped: null,
    series: [
      {
        label: "put",
        sent: 1000,
        succeeded: 1000,
        failed: 0,
        errors: {},
        statsSeconds: 1,
        requestsPerSecond: 1000,
        latencyMs: { min: 1, mean: 2, stddev: 1, p50: 2, p90: 3, p99: 5, p999: 6, p9999: 6, max: 7 },
        percentileCurve: [[50, 2]],
        throughputPerSecond: [1000],
        hgrmFile: null,
        histogramBase64: "",
      },
    ],
    verdict: null,
    server: {
      pid: 12,
      cpuSeconds: 0.52,
      cpuMicrosPerRequest: 520,
      peakRssBytes: 100 * mib,
      peakRssAfterCleanupBytes: 120 * mib,
      memory: null,
    },
    generator: { cpuMicrosPerRequest: 50, blocked: false },
    keyspace: { revisionBefore: "1", deleteRevision: "1002", deleted: "1000" },
    profile: null,
    cluster: summary,
  };
}

describe("cluster lines in the reports", () => {
  it("say where the load went and whether the leader kept the lead", () => {
    const kept = clusterLines(clusterOf("infra2"));
    assert.match(
      kept[0]!,
      /^cluster of 3 members; load sent to the leader infra2 \(127\.0\.0\.1:2\); it was still the leader/,
    );
    assert.match(kept[1]!, /^member\s+id\s+role\s+pid\s+CPU s\s+µs\/req\s+peak RSS MiB\s+after cleanup MiB$/);
    assert.match(kept[2]!, /^infra2\s+b2\s+leader\s+12\s+0\.30\s+300\.0\s+100\.0\s+120\.0$/);
    assert.match(kept[3]!, /^infra1\s+a1\s+follower\s+11\s+0\.10\s+100\.0\s+80\.0\s+82\.0$/);
    assert.match(
      clusterLines(clusterOf("infra3"))[0]!,
      /WARNING: the leader changed to infra3 during the timed phase/,
    );
    assert.match(clusterLines(clusterOf(null))[0]!, /WARNING: the members did not agree on a leader/);
  });

  it("state that the CPU is all members' and the RSS the leader's, in the text, table and HTML", () => {
    const etcd = clusterTarget("etcd x3", "etcd", clusterOf("infra2"));
    const lines = targetLines(etcd);
    assert.ok(
      lines.includes(
        "server CPU 520.0 µs per acknowledged request (all 3 members' processes, all threads), leader's peak RSS 100.0 MiB; generator CPU 50.0 µs per request",
      ),
      lines.join("\n"),
    );
    assert.ok(lines.some((line) => /^infra3\s+c3\s+follower/.test(line)));
    const summary: BenchSummary = {
      tool: "etcd-ts bench",
      formatVersion: 1,
      startedAt: "2026-01-01T00:00:00.000Z",
      host: { cpus: 2, node: "v20", platform: "linux-x64" },
      workload: {
        name: "check-perf",
        load: "m",
        clients: 200,
        connections: 200,
        permitsPerSecond: 1000,
        durationSeconds: 1,
        totalRequests: null,
        keySizeBytes: 256,
        valueSizeBytes: 1024,
        prefix: "/p/",
        transport: "http2",
        streams: null,
        watchersPerStream: null,
        clusterSize: 3,
      },
      targets: [etcd, clusterTarget("etcd-ts x3", "etcd-ts", clusterOf("infra2"))],
      comparison: [],
    };
    const table = comparisonTable(summary);
    const etcdRow = table.find((line) => line.startsWith("etcd x3"));
    assert.ok(etcdRow !== undefined);
    assert.match(etcdRow, /\s520\.0\s+100\.0\/80\.0\/81\.0\s/, "per-member peak RSS, leader first");
    assert.match(table[table.length - 1]!, /^clusters: server µs\/req is every member's CPU summed/);
    const html = renderHtml(summary);
    assert.match(html, /started servers run as 3-member clusters, the load sent to each leader/);
    assert.match(html, /infra2\s+b2\s+leader/);
  });
});

/** Runs `npm run bench -- ...` as npm does, as a child process. */
function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/cli.ts", ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("npm run bench -- --cluster 3 --compare-etcd --compare-etcd-ts --profile", () => {
  let outDir: string;
  let run: { code: number | null; stdout: string; stderr: string };
  let summary: BenchSummary;

  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), "bench-cluster-"));
    run = await runBench([
      "--cluster",
      "3",
      "--compare-etcd",
      "--compare-etcd-ts",
      "--profile",
      "--load",
      "s",
      "--duration",
      "2",
      "--out",
      outDir,
    ]);
    summary = JSON.parse(readFileSync(join(outDir, "summary.json"), "utf8")) as BenchSummary;
  });
  after(() => rmSync(outDir, { recursive: true, force: true }));

  it("runs check perf against each cluster's leader, one cluster after the other, and passes", () => {
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.equal(summary.workload.clusterSize, 3);
    assert.deepEqual(
      summary.targets.map((target) => target.name),
      ["etcd x3", "etcd-ts x3"],
    );
    const lines = run.stdout.split("\n");
    assert.ok(lines.indexOf("== etcd x3 ==") < lines.indexOf("== etcd-ts x3 =="));
    assert.equal(lines.filter((line) => /^PASS: Throughput is \d+ writes\/s$/.test(line)).length, 2);
    assert.ok(lines.some((line) => line.startsWith("clusters: server µs/req is every member's CPU summed")));
    const etcdMembers = summary.targets[0]!.cluster!.members.map((member) => member.pid);
    const etcdTsMembers = summary.targets[1]!.cluster!.members.map((member) => member.pid);
    assert.equal(new Set([...etcdMembers, ...etcdTsMembers]).size, 6, "six distinct member processes");
    for (const target of summary.targets) {
      const cluster = target.cluster;
      assert.ok(cluster !== null, target.name);
      assert.equal(cluster.members.length, 3);
      assert.equal(cluster.members.filter((member) => member.leader).length, 1);
      const leader = cluster.members[0]!;
      assert.ok(leader.leader, "the leader is listed first");
      assert.equal(cluster.leader, leader.name);
      assert.equal(cluster.leaderAfter, leader.name, `${target.name}: no election during a 2 s run`);
      assert.deepEqual(target.endpoints, [leader.endpoint], "the load went to the leader only");
      assert.equal(target.server.pid, leader.pid);
      assert.equal(new Set(cluster.members.map((member) => member.idHex)).size, 3);
      assert.ok(cluster.members.every((member) => /^[0-9a-f]+$/.test(member.idHex)));
    }
  });

  it("sums every member's CPU and reads each member's peak RSS, then stops them all", () => {
    for (const target of summary.targets) {
      const cluster = target.cluster!;
      const series = target.series[0]!;
      assert.equal(series.failed, 0);
      assert.equal(
        target.keyspace.deleted,
        String(series.succeeded),
        "every acknowledged put was cleaned up",
      );
      let total = 0;
      for (const member of cluster.members) {
        const name = `${target.name} ${member.name}`;
        assert.ok(member.cpuSeconds !== null && member.cpuSeconds > 0, `${name} used CPU`);
        total += member.cpuSeconds;
        assert.ok(member.peakRssBytes !== null && member.peakRssBytes > mib, `${name} has a peak RSS`);
        assert.ok(member.peakRssAfterCleanupBytes! >= member.peakRssBytes);
        assert.ok(!alive(member.pid), `${name} (pid ${member.pid}) was stopped`);
      }
      assert.ok(Math.abs(target.server.cpuSeconds! - total) < 1e-9, "server CPU is the members' sum");
      assert.ok(
        Math.abs(target.server.cpuMicrosPerRequest! - (total * 1e6) / series.succeeded) < 1e-6,
        "per acknowledged write",
      );
      assert.ok(total > cluster.members[0]!.cpuSeconds!, "followers' CPU is counted too");
    }
  });

  it("profiles the etcd-ts leader (every member ran under --cpu-prof; the report reads the leader's)", () => {
    const etcdTs = summary.targets[1]!;
    const leaderPid = etcdTs.cluster!.members[0]!.pid;
    const profile = etcdTs.profile;
    assert.ok(profile !== null && profile.main !== null, "the leader wrote a main-thread profile");
    assert.ok(profile.files.length > 0);
    for (const file of profile.files) assert.equal(file.split(".")[3], String(leaderPid), file);
    assert.equal(summary.targets[0]!.profile, null, "etcd is not a Node server");
    assert.match(
      run.stdout,
      /note: every member ran under --cpu-prof; the profile below is the leader's \(infra\d\)/,
    );
  });
});
