import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Cluster, parseMemberAdd } from "../support/cluster.js";
import {
  assertSameHashKV,
  clusterTargets,
  ctl,
  ctlFails,
  endpoints,
  errorLine,
  hex,
  leaderName,
  parseJsonExact,
  reconfigure,
  startTestCluster,
} from "./harness.js";

/**
 * Membership changes through etcdctl 3.4 against real etcd and etcd-ts: refusals with etcd's texts,
 * the strict reconfiguration check (too few started members, a member down), the learner life cycle
 * (add, refuse a second, refuse promotion while unsynced, start, catch up, refuse what a learner
 * must, promote), a voter added and started with `existing`, member update moving a peer URL, and
 * removals (of another member, and of itself) after which the removed member's process ends.
 */

/** How long a removed member may take to notice and exit. */
const REMOVED_EXIT_WAIT_MS = 20_000;
/** How long a started learner gets to be in sync enough for promotion. */
const PROMOTE_RETRY_MS = 15_000;

interface MemberListJson {
  members: { ID: string; name?: string; peerURLs: string[]; clientURLs?: string[]; isLearner?: boolean }[];
}

async function memberList(cluster: Cluster): Promise<MemberListJson["members"]> {
  return (parseJsonExact(await ctl(endpoints(cluster), "member", "list", "-w", "json")) as MemberListJson)
    .members;
}

for (const target of clusterTargets()) {
  describe(`membership changes on a ${target.label} cluster`, { timeout: 300_000 }, () => {
    let cluster: Cluster;
    const all = (): string[] => endpoints(cluster);

    before(async () => {
      cluster = await startTestCluster(target.kind, { size: 3 });
    });

    after(async () => {
      await cluster?.stop();
    });

    it("promoting a voter is refused as not a learner at once, before any health check", async () => {
      // Right after the start: etcd checks learner-ness first and has no connectivity check on promote.
      await ctlFails(
        all(),
        "etcdserver: can only promote a learner member",
        "member",
        "promote",
        hex(cluster.members[0]?.id ?? 0n),
      );
    });

    it("refusals: unknown members, a peer URL in use, a malformed URL", async () => {
      await ctlFails(all(), "etcdserver: member not found", "member", "remove", "1234");
      await ctlFails(
        all(),
        "etcdserver: member not found",
        "member",
        "update",
        "1234",
        "--peer-urls=http://127.0.0.1:1",
      );
      const inUse = await reconfigure(
        all(),
        "member",
        "add",
        "dup",
        `--peer-urls=${cluster.members[1]?.peerUrl}`,
      );
      assert.equal(errorLine(inUse), "Error: etcdserver: Peer URLs already exists", inUse.stderr);
      const promoteVoter = await reconfigure(all(), "member", "promote", hex(cluster.members[0]?.id ?? 0n));
      assert.equal(errorLine(promoteVoter), "Error: etcdserver: can only promote a learner member");
      // etcdctl refuses this one itself.
      await ctlFails(
        all(),
        "URL scheme must be http, https, unix, or unixs: foo",
        "member",
        "add",
        "bad",
        "--peer-urls=foo",
      );
      assert.equal((await memberList(cluster)).length, 3, "nothing was added");
    });

    it("a member down: removing another live voter is refused, as the change would lack an active quorum", async () => {
      const [a, b, c] = cluster.members;
      assert.ok(a !== undefined && b !== undefined && c !== undefined);
      await cluster.kill9(c.name);
      await ctlFails([a.endpoint], "etcdserver: unhealthy cluster", "member", "remove", hex(b.id));
      await cluster.restart(c.name);
      assert.equal((await memberList(cluster)).length, 3);
      await assertSameHashKV(cluster);
    });

    it("an unstarted learner: a second learner is refused, promoting it is refused as unsynced, removing it is allowed", async () => {
      // Every call goes to one member: the strict check is that member's own view of its peer links,
      // and the first add (retried through "unhealthy cluster" after the previous test's restart)
      // proves that member's links are old enough for the refusals that follow.
      const one = endpoints(cluster, ["m1"]);
      // Added but not started: its raft log is empty, so it is far from in sync.
      const first = await reconfigure(
        one,
        "member",
        "add",
        "l0",
        "--learner",
        "--peer-urls=http://127.0.0.1:4",
      );
      assert.equal(first.code, 0, first.stderr);
      const l0 = parseMemberAdd(first.stdout);
      await ctlFails(
        one,
        "etcdserver: too many learner members in cluster",
        "member",
        "add",
        "l9",
        "--learner",
        "--peer-urls=http://127.0.0.1:5",
      );
      await ctlFails(
        one,
        "etcdserver: can only promote a learner member which is in sync with leader",
        "member",
        "promote",
        hex(l0.id),
      );
      const unstartedLearner = (await memberList(cluster)).find((m) => m.ID === l0.id.toString());
      assert.deepEqual(unstartedLearner, {
        ID: l0.id.toString(),
        peerURLs: ["http://127.0.0.1:4"],
        isLearner: true,
      });
      // A learner never counts for quorum: removing it is always allowed.
      await ctl(one, "member", "remove", hex(l0.id));
      assert.equal((await memberList(cluster)).length, 3);
    });

    it("a learner started with `existing` catches up, refuses writes and linearizable reads, and is promoted", async () => {
      await ctl(all(), "put", "before-learner", "1");
      // Requests that a learner refuses ("rpc not supported for learner") go to the voters only.
      const voters = all();
      const { member: learner, output } = await cluster.addMember("l1", { learner: true, via: voters });
      assert.match(output, new RegExp(`^Member\\s+${hex(learner.id)} added to cluster\\s+[0-9a-f]+$`, "m"));
      assert.match(output, /^ETCD_INITIAL_CLUSTER_STATE="existing"$/m);
      await ctl(endpoints(cluster, ["m1"]), "put", "after-learner", "2");
      // The learner's own store catches up (serializable reads are what a learner answers; it refuses
      // HashKV): same applied index and revision as the voters, the voters' hashes agree, and the
      // learner's whole keyspace reads as a voter's does.
      await assertSameHashKV(
        cluster,
        cluster.members.filter((m) => m.name !== learner.name).map((m) => m.name),
      );
      const everything = ["get", "", "--prefix", "--consistency=s", "-w", "json"];
      const kvs = (text: string): unknown => (parseJsonExact(text) as { kvs?: unknown }).kvs;
      assert.deepEqual(
        kvs(await ctl([learner.endpoint], ...everything)),
        kvs(await ctl(endpoints(cluster, ["m1"]), ...everything)),
      );
      assert.equal(
        (
          await ctl([learner.endpoint], "get", "after-learner", "--print-value-only", "--consistency=s")
        ).trim(),
        "2",
      );
      await ctlFails([learner.endpoint], "etcdserver: rpc not supported for learner", "put", "k", "v");
      await ctlFails([learner.endpoint], "etcdserver: rpc not supported for learner", "get", "k");
      const status = await ctl([learner.endpoint], "endpoint", "status");
      assert.match(
        status,
        new RegExp(
          `^${learner.endpoint}, ${hex(learner.id)}, 3\\.4\\.23, [^,]+, false, true, \\d+, \\d+, \\d+, $`,
          "m",
        ),
      );
      assert.match(
        await ctl(voters, "member", "list"),
        new RegExp(`^${hex(learner.id)}, started, l1, ${learner.peerUrl}, ${learner.clientUrl}, true$`, "m"),
      );

      const deadline = Date.now() + PROMOTE_RETRY_MS;
      let promoted = await reconfigure(voters, "member", "promote", hex(learner.id));
      while (promoted.code !== 0 && /in sync with leader/.test(promoted.stderr) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        promoted = await reconfigure(voters, "member", "promote", hex(learner.id));
      }
      assert.equal(promoted.code, 0, promoted.stderr);
      assert.match(
        promoted.stdout,
        new RegExp(`^Member\\s+${hex(learner.id)} promoted in cluster\\s+[0-9a-f]+$`, "m"),
      );
      assert.match(
        await ctl(voters, "member", "list"),
        new RegExp(`^${hex(learner.id)}, started, l1, [^,]+, [^,]+, false$`, "m"),
      );
      await ctl([learner.endpoint], "put", "via-promoted", "3");
      assert.equal(
        (await ctl(endpoints(cluster, ["m1"]), "get", "via-promoted", "--print-value-only")).trim(),
        "3",
      );
      await assertSameHashKV(cluster);
    });

    it("a voter added with `member add` and started with `existing` catches up", async () => {
      for (let n = 0; n < 30; n++) await ctl(all(), "put", `before-v/${n}`, `${n}`);
      const { member } = await cluster.addMember("m5");
      const row = (await memberList(cluster)).find((m) => m.ID === member.id.toString());
      assert.deepEqual(row, {
        ID: member.id.toString(),
        name: "m5",
        peerURLs: [member.peerUrl],
        clientURLs: [member.clientUrl],
      });
      assert.equal((await ctl([member.endpoint], "get", "before-v/29", "--print-value-only")).trim(), "29");
      await assertSameHashKV(cluster);
    });

    it("member update moves a member's peer URL; restarted on it, the member rejoins", async () => {
      const leader = await leaderName(cluster);
      const moving = cluster.members.find((m) => m.name !== leader && m.name !== "m1");
      assert.ok(moving !== undefined);
      const newUrl = await cluster.movePeerUrl(moving.name);
      // Asked through the moving member itself: it must learn the commit of its own new URL while its
      // peers already dial that URL (where nothing listens yet) — etcd keeps the established streams.
      const updated = await reconfigure(
        [moving.endpoint],
        "member",
        "update",
        hex(moving.id),
        `--peer-urls=${newUrl}`,
      );
      assert.equal(updated.code, 0, updated.stderr);
      assert.match(
        updated.stdout,
        new RegExp(`^Member\\s+${hex(moving.id)} updated in cluster\\s+[0-9a-f]+$`, "m"),
      );
      assert.deepEqual((await memberList(cluster)).find((m) => m.ID === moving.id.toString())?.peerURLs, [
        newUrl,
      ]);
      // Until it restarts on the new URL, the member stays in the cluster over the streams it has.
      await ctl(endpoints(cluster, ["m1"]), "put", "during-move", "3");
      assert.equal((await ctl([moving.endpoint], "get", "during-move", "--print-value-only")).trim(), "3");
      await cluster.stopMember(moving.name);
      await cluster.restart(moving.name);
      assert.equal(cluster.member(moving.name).peerUrl, newUrl);
      await ctl(endpoints(cluster, ["m1"]), "put", "after-move", "4");
      assert.equal(
        (await ctl([cluster.member(moving.name).endpoint], "get", "after-move", "--print-value-only")).trim(),
        "4",
      );
      await assertSameHashKV(cluster);
    });

    it("member remove: the removed member's process ends, and so does a member that removes itself", async () => {
      const leader = await leaderName(cluster);
      const [other, self] = cluster.members.filter((m) => m.name !== leader && m.name !== "m1");
      assert.ok(other !== undefined && self !== undefined);
      const removed = await reconfigure(endpoints(cluster, ["m1"]), "member", "remove", hex(other.id));
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(
        removed.stdout,
        new RegExp(`^Member\\s+${hex(other.id)} removed from cluster\\s+[0-9a-f]+$`, "m"),
      );
      const otherExit = await cluster.waitExit(other.name, REMOVED_EXIT_WAIT_MS);
      await cluster.forget(other.name);

      // etcd 3.4 stops the member as it applies its own removal, and the answer races that stop: the
      // client gets "etcdserver: server stopped" (what etcd 3.4.23 answered here) or the success line.
      const selfRemoved = await reconfigure([self.endpoint], "member", "remove", hex(self.id));
      if (selfRemoved.code === 0)
        assert.match(selfRemoved.stdout, new RegExp(`^Member\\s+${hex(self.id)} removed from cluster`, "m"));
      else assert.equal(errorLine(selfRemoved), "Error: etcdserver: server stopped", selfRemoved.stderr);
      const selfExit = await cluster.waitExit(self.name, REMOVED_EXIT_WAIT_MS);
      await cluster.forget(self.name);
      process.stdout.write(
        `${target.label}: removed member ${otherExit}; self-removed member ${selfExit}, its etcdctl said: ${selfRemoved.code === 0 ? selfRemoved.stdout.trim() : errorLine(selfRemoved)}\n`,
      );
      assert.equal(selfExit, "exit code 0", "a member that removed itself stops cleanly");

      const left = await memberList(cluster);
      assert.deepEqual(left.map((m) => m.name).sort(), cluster.members.map((m) => m.name).sort());
      await ctl(all(), "put", "after-removal", "5");
      await assertSameHashKV(cluster);
    });

    it("too few started members: an unstarted voter blocks adding another and removing a started one", async () => {
      const [first, second, third] = cluster.members;
      assert.ok(first !== undefined && second !== undefined && third !== undefined);
      const add = await reconfigure(
        [first.endpoint],
        "member",
        "add",
        "v1",
        "--peer-urls=http://127.0.0.1:1",
      );
      assert.equal(add.code, 0, add.stderr);
      const v1 = parseMemberAdd(add.stdout);
      const unstarted = (await memberList(cluster)).find((m) => m.ID === v1.id.toString());
      assert.deepEqual(unstarted, { ID: v1.id.toString(), peerURLs: ["http://127.0.0.1:1"] });
      assert.match(
        await ctl(all(), "member", "list"),
        new RegExp(`^${hex(v1.id)}, unstarted, , http://127\\.0\\.0\\.1:1, , false$`, "m"),
      );
      // 4 voters, 3 started: removing a started one leaves 2 of 3 started, still a quorum.
      const removed = await reconfigure([first.endpoint], "member", "remove", hex(third.id));
      assert.equal(removed.code, 0, removed.stderr);
      await cluster.waitExit(third.name, REMOVED_EXIT_WAIT_MS);
      await cluster.forget(third.name);
      // Now 3 voters, 2 started: one more voter, or one started fewer, and quorum cannot be reached.
      const tooFew = "etcdserver: re-configuration failed due to not enough started members";
      await ctlFails([first.endpoint], tooFew, "member", "add", "v2", "--peer-urls=http://127.0.0.1:2");
      await ctlFails([first.endpoint], tooFew, "member", "remove", hex(second.id));
      // A voter that never started is not part of the active quorum: it can go.
      const gone = await reconfigure([first.endpoint], "member", "remove", hex(v1.id));
      assert.equal(gone.code, 0, gone.stderr);
      assert.deepEqual(
        (await memberList(cluster)).map((m) => m.name).sort(),
        [first.name, second.name].sort(),
      );
      await ctl(all(), "put", "two-left", "6");
      await assertSameHashKV(cluster);
    });
  });
}
