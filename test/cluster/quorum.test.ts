import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Cluster, etcdctl } from "../support/cluster.js";
import {
  assertSameHashKV,
  clusterTargets,
  ctl,
  ELECTION_WAIT_MS,
  endpoints,
  errorLine,
  leaderName,
  startTestCluster,
} from "./harness.js";

/**
 * Five members, against real etcd and etcd-ts: with two killed (the leader among them) the other three
 * elect a leader and take writes; with a third killed there is no quorum, and a write fails with etcd's
 * error once etcd's request timeout passes (never hangs until the client gives up); serializable
 * reads still answer. Restarting the killed members restores writes and one HashKV.
 */

/** etcdctl's deadline for the write that cannot commit: well past etcd's request timeout (5 s + 2 elections). */
const NO_QUORUM_COMMAND_TIMEOUT_S = 20;

/** Retries a put until acknowledged; the bound is many election timeouts. */
async function putEventually(eps: readonly string[], key: string, value: string): Promise<number> {
  const startedMs = Date.now();
  for (;;) {
    const result = await etcdctl(eps, ["--command-timeout=1s", "put", key, value]);
    if (result.code === 0) return Date.now() - startedMs;
    assert.ok(Date.now() - startedMs < ELECTION_WAIT_MS, `put ${key} not acknowledged: ${result.stderr}`);
  }
}

for (const target of clusterTargets()) {
  describe(`a 5-member ${target.label} cluster losing members`, { timeout: 240_000 }, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startTestCluster(target.kind, { size: 5 });
    });

    after(async () => {
      await cluster?.stop();
    });

    it("two killed (the leader among them): the rest elect a leader and take writes", async () => {
      const leader = await leaderName(cluster);
      const follower = cluster.members.find((m) => m.name !== leader)?.name;
      assert.ok(follower !== undefined);
      await ctl(endpoints(cluster), "put", "five", "up");
      await Promise.all([cluster.kill9(leader), cluster.kill9(follower)]);
      const alive = cluster.members
        .filter((m) => m.name !== leader && m.name !== follower)
        .map((m) => m.name);
      const tookMs = await putEventually(endpoints(cluster, alive), "three-left", "yes");
      process.stdout.write(`${target.label}: first write ${tookMs} ms after two of five were killed\n`);
      const next = await leaderName(cluster, alive);
      assert.ok(alive.includes(next));
      for (const name of alive)
        assert.equal(
          (await ctl(endpoints(cluster, [name]), "get", "three-left", "--print-value-only")).trim(),
          "yes",
        );
    });

    it("a third killed: no quorum, a write fails with etcd's error after its request timeout; serializable reads answer", async () => {
      const running = cluster.members.filter((m) => cluster.state(m.name) === "running");
      assert.equal(running.length, 3);
      const victim = running[0];
      const survivor = running[1];
      assert.ok(victim !== undefined && survivor !== undefined);
      await cluster.kill9(victim.name);
      const startedMs = Date.now();
      const write = await etcdctl(
        [survivor.endpoint],
        [`--command-timeout=${NO_QUORUM_COMMAND_TIMEOUT_S}s`, "put", "no-quorum", "x"],
      );
      const failedMs = Date.now() - startedMs;
      process.stdout.write(
        `${target.label}: write without quorum failed after ${failedMs} ms: ${errorLine(write)}\n`,
      );
      assert.notEqual(write.code, 0);
      // The server's own timeout answered, not etcdctl's deadline ("context deadline exceeded").
      assert.equal(errorLine(write), "Error: etcdserver: request timed out", write.stderr);
      const read = await etcdctl(
        [survivor.endpoint],
        ["--command-timeout=5s", "get", "five", "--print-value-only", "--consistency=s"],
      );
      assert.equal(read.code, 0, read.stderr);
      assert.equal(read.stdout.trim(), "up");
    });

    it("restarting the killed members brings writes back and one HashKV on all five", async () => {
      const down = cluster.members.filter((m) => cluster.state(m.name) === "exited").map((m) => m.name);
      assert.equal(down.length, 3);
      const first = down[0] as string;
      await cluster.restart(first);
      const alive = cluster.members.filter((m) => cluster.state(m.name) === "running").map((m) => m.name);
      await putEventually(endpoints(cluster, alive), "quorum-back", "yes");
      for (const name of down.slice(1)) await cluster.restart(name);
      await assertSameHashKV(cluster);
      for (const m of cluster.members)
        assert.equal((await ctl([m.endpoint], "get", "quorum-back", "--print-value-only")).trim(), "yes");
    });
  });
}
