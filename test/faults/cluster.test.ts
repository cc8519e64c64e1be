import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type ClusterKind, type ClusterTarget, startCluster } from "../support/cluster.js";
import { etcdctlHashKV, waitConverged, waitForLeader } from "./observe.js";

/**
 * The fault layer against a 3-member cluster (real etcd 3.4, and etcd-ts; FAULT_TARGETS narrows) whose peer traffic runs through the proxies:
 * the proxies see and identify every peer link, isolating the leader elects another, healing converges
 * to equal HashKV on all members; a paused member and a kill -9 + restart catch up too.
 */

const ELECTION_WAIT_MS = 15_000;
const CONVERGE_WAIT_MS = 20_000;

const execFileAsync = promisify(execFile);

/** etcdctl, asynchronously: the proxies run in this process, so blocking its event loop would cut every link. */
async function etcdctl(endpoints: readonly string[], ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    "etcdctl",
    [`--endpoints=${endpoints.join(",")}`, "--command-timeout=5s", ...args],
    { env: { ...process.env, ETCDCTL_API: "3" }, encoding: "utf8" },
  );
  return stdout;
}

async function assertSameHashKV(cluster: ClusterTarget): Promise<void> {
  const revision = await waitConverged(cluster, CONVERGE_WAIT_MS);
  const hashes = await etcdctlHashKV(cluster, revision);
  assert.equal(hashes.length, 3);
  assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, JSON.stringify(hashes));
  assert.equal(new Set(hashes.map((h) => h.revision)).size, 1, JSON.stringify(hashes));
}

const ALL_TARGETS: readonly { kind: ClusterKind; label: string }[] = [
  { kind: "etcd", label: "real etcd 3.4.23" },
  { kind: "etcd-ts", label: "etcd-ts" },
];
const TARGETS = ALL_TARGETS.filter((t) =>
  (process.env.FAULT_TARGETS ?? "etcd,etcd-ts").split(",").includes(t.kind),
);

for (const target of TARGETS)
  describe(`fault layer on a ${target.label} cluster`, { timeout: 120_000 }, () => {
    let cluster: ClusterTarget;
    const endpointOf = (name: string): string => cluster.members.find((m) => m.name === name)?.endpoint ?? "";

    before(async () => {
      cluster = await startCluster(target.kind, { size: 3, seed: 11 });
    });

    after(async () => {
      await cluster?.stop();
    });

    it("advertises the proxies, and the proxies identify every peer link", async () => {
      const list = JSON.parse(await etcdctl([endpointOf("m1")], "member", "list", "-w", "json")) as {
        members: { ID: number | string; name: string; peerURLs: string[] }[];
      };
      // etcdctl's JSON prints ids as numbers beyond 2^53: compare through the text.
      const raw = await etcdctl([endpointOf("m1")], "member", "list", "-w", "json");
      for (const member of cluster.members) {
        assert.ok(
          raw.includes(`"ID":${member.id.toString()}`),
          `member ${member.name}'s id follows etcd's rule`,
        );
        const listed = list.members.find((m) => m.name === member.name);
        assert.deepEqual(listed?.peerURLs, [member.peerUrl]);
      }
      await etcdctl([endpointOf("m1")], "put", "warm", "up");
      const links = cluster.network.directionStats().filter((s) => s.bytesForwarded > 0);
      const named = links.filter((s) => s.from !== "?" && s.to !== "?");
      // Three members stream to each other: all six directions carry bytes, under member names.
      assert.equal(new Set(named.map((s) => `${s.from}->${s.to}`)).size, 6, JSON.stringify(links));
    });

    it("isolating the leader elects another among the rest; healing converges to one HashKV", async () => {
      const leader = await waitForLeader(cluster, { timeoutMs: ELECTION_WAIT_MS });
      const others = cluster.members.map((m) => m.name).filter((name) => name !== leader);
      cluster.network.isolate(leader);
      const next = await waitForLeader(cluster, {
        among: others,
        excluding: leader,
        timeoutMs: ELECTION_WAIT_MS,
      });
      assert.notEqual(next, leader);
      await etcdctl([endpointOf(others[0] as string)], "put", "during-isolation", "yes");
      const dropped = cluster.network
        .directionStats()
        .filter((s) => s.from === leader || s.to === leader)
        .reduce((sum, s) => sum + s.connectionsDropped, 0);
      assert.ok(dropped > 0, "the isolated leader's links were cut by the proxies");
      cluster.network.heal();
      await assertSameHashKV(cluster);
      const value = (
        await etcdctl([endpointOf(leader)], "get", "during-isolation", "--print-value-only")
      ).trim();
      assert.equal(value, "yes", "the old leader caught up with the write it missed");
    });

    it("a paused member and a killed one catch up after SIGCONT and restart", async () => {
      const leader = await waitForLeader(cluster, { timeoutMs: ELECTION_WAIT_MS });
      const follower = cluster.members.map((m) => m.name).find((name) => name !== leader) as string;
      cluster.pause(follower);
      assert.equal(cluster.state(follower), "paused");
      await etcdctl([endpointOf(leader)], "put", "while-paused", "1");
      cluster.resume(follower);
      await assertSameHashKV(cluster);
      await cluster.kill9(follower);
      assert.equal(cluster.state(follower), "exited");
      await etcdctl([endpointOf(leader)], "put", "while-dead", "2");
      await cluster.restart(follower);
      await assertSameHashKV(cluster);
      assert.equal(
        (await etcdctl([endpointOf(follower)], "get", "while-dead", "--print-value-only")).trim(),
        "2",
      );
    });
  });
