import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { resolveMemberConfig } from "../../src/config/member.js";
import { startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";
import { callUnary } from "../../src/proto/grpc.js";
import { ClusterClient, KVClient, MaintenanceClient } from "../../src/proto/index.js";
import { type Member, type StartMemberOptions, startMemberWithConfig } from "../../src/server/member.js";
import { freePort } from "../support/ports.js";

/**
 * Members of one cluster in this process (each with its own data dir and ports on 127.0.0.1), talking
 * over the real peer transport: bootstrap of several members, writes and linearizable reads through
 * followers, and the learner life cycle (add, join with `existing`, catch up, refusals, promote).
 * The etcdctl-driven end-to-end runs against the bin live in test/cluster/.
 */

const dirs: string[] = [];
const running: Member[] = [];
after(async () => {
  await Promise.allSettled(running.map((m) => m.close()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const quiet = createLogger({ level: "error", destination: { write() {} } });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Plan {
  name: string;
  clientPort: number;
  peerUrl: string;
}

async function plan(names: readonly string[]): Promise<Plan[]> {
  const out: Plan[] = [];
  for (const name of names) {
    out.push({ name, clientPort: await freePort(), peerUrl: `http://127.0.0.1:${await freePort()}` });
  }
  return out;
}

function options(p: Plan, initialCluster: string, extra: StartMemberOptions = {}): StartMemberOptions {
  const dataDir = mkdtempSync(join(tmpdir(), `etcd-ts-cluster-${p.name}-`));
  dirs.push(dataDir);
  return {
    name: p.name,
    dataDir,
    listenClientUrls: `http://127.0.0.1:${p.clientPort}`,
    advertiseClientUrls: `http://127.0.0.1:${p.clientPort}`,
    listenPeerUrls: p.peerUrl,
    initialAdvertisePeerUrls: p.peerUrl,
    initialCluster,
    initialClusterToken: "cluster-test",
    heartbeatIntervalMs: 50,
    electionTimeoutMs: 500,
    log: quiet,
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
    ...extra,
  };
}

async function start(o: StartMemberOptions): Promise<Member> {
  const member = await startMember(o);
  running.push(member);
  return member;
}

function clientsOf(member: Member) {
  const address = member.clientUrls[0]!.replace("http://", "");
  const credentials = grpc.credentials.createInsecure();
  return {
    kv: new KVClient(address, credentials),
    maintenance: new MaintenanceClient(address, credentials),
    cluster: new ClusterClient(address, credentials),
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("a cluster of etcd-ts members", () => {
  it("three members bootstrap, agree on a leader, and serve writes and linearizable reads from any member", async () => {
    const plans = await plan(["a1", "a2", "a3"]);
    const initialCluster = plans.map((p) => `${p.name}=${p.peerUrl}`).join(",");
    const members = await Promise.all(plans.map((p) => start(options(p, initialCluster))));
    const clients = members.map(clientsOf);
    const statuses = await Promise.all(
      clients.map((c) => callUnary(c.maintenance, c.maintenance.Status, {})),
    );
    const leaders = new Set(statuses.map((s) => s.leader));
    assert.equal(leaders.size, 1, "one leader for all");
    const leader = [...leaders][0]!;
    assert.ok(members.some((m) => m.memberId === leader));
    assert.ok(new Set(members.map((m) => m.clusterId)).size === 1, "one cluster id");

    // Each member takes a write (followers forward it); every member then reads every write.
    for (const [i, c] of clients.entries()) {
      await callUnary(c.kv, c.kv.Put, { key: encoder.encode(`k${i}`), value: encoder.encode(`v${i}`) });
    }
    for (const c of clients) {
      const range = await callUnary(c.kv, c.kv.Range, {
        key: encoder.encode("k"),
        rangeEnd: encoder.encode("l"),
      });
      assert.deepEqual(
        range.kvs.map((kv) => `${decoder.decode(kv.key)}=${decoder.decode(kv.value)}`),
        ["k0=v0", "k1=v1", "k2=v2"],
      );
    }
    const list = await callUnary(clients[0]!.cluster, clients[0]!.cluster.MemberList, {});
    assert.deepEqual(list.members.map((m) => m.name).sort(), ["a1", "a2", "a3"]);
    for (const m of list.members) assert.equal(m.clientURLs.length, 1);

    // MoveLeader: refused on a follower, done on the leader.
    const leaderIndex = members.findIndex((m) => m.memberId === leader);
    const follower = (leaderIndex + 1) % 3;
    const target = members[follower]!.memberId;
    await assert.rejects(
      callUnary(clients[follower]!.maintenance, clients[follower]!.maintenance.MoveLeader, {
        targetID: target,
      }),
      /etcdserver: not leader/,
    );
    await assert.rejects(
      callUnary(clients[leaderIndex]!.maintenance, clients[leaderIndex]!.maintenance.MoveLeader, {
        targetID: 12345n,
      }),
      /etcdserver: bad leader transferee/,
    );
    await callUnary(clients[leaderIndex]!.maintenance, clients[leaderIndex]!.maintenance.MoveLeader, {
      targetID: target,
    });
    const after = await callUnary(clients[follower]!.maintenance, clients[follower]!.maintenance.Status, {});
    assert.equal(after.leader, target);

    await Promise.all(members.map((m) => m.close()));
  });

  it("a learner joins with `existing`, catches up, refuses what a learner must, and is promoted", async () => {
    const [p1, p2] = await plan(["b1", "b2"]);
    const first = await start(options(p1!, `b1=${p1!.peerUrl}`));
    const c1 = clientsOf(first);
    for (let i = 0; i < 20; i++) {
      await callUnary(c1.kv, c1.kv.Put, { key: encoder.encode(`key${i}`), value: encoder.encode(`${i}`) });
    }
    const added = await callUnary(c1.cluster, c1.cluster.MemberAdd, {
      peerURLs: [p2!.peerUrl],
      isLearner: true,
    });
    assert.equal(added.member?.isLearner, true);
    assert.equal(added.members.length, 2);
    await assert.rejects(
      callUnary(c1.cluster, c1.cluster.MemberAdd, { peerURLs: ["http://127.0.0.1:1"], isLearner: true }),
      /etcdserver: too many learner members in cluster/,
    );
    await assert.rejects(
      callUnary(c1.cluster, c1.cluster.MemberAdd, { peerURLs: [p1!.peerUrl], isLearner: false }),
      /etcdserver: Peer URLs already exists/,
    );
    await assert.rejects(
      callUnary(c1.cluster, c1.cluster.MemberAdd, { peerURLs: ["127.0.0.1:2380"], isLearner: false }),
      /etcdserver: given member URLs are invalid/,
    );
    await assert.rejects(
      callUnary(c1.cluster, c1.cluster.MemberPromote, { ID: first.memberId }),
      /etcdserver: can only promote a learner member/,
    );

    const learner = await start(
      options(p2!, `b1=${p1!.peerUrl},b2=${p2!.peerUrl}`, { initialClusterState: "existing" }),
    );
    assert.equal(learner.memberId, added.member?.ID);
    assert.equal(learner.clusterId, first.clusterId);
    const c2 = clientsOf(learner);
    const status = await callUnary(c2.maintenance, c2.maintenance.Status, {});
    assert.equal(status.isLearner, true);
    await assert.rejects(
      callUnary(c2.kv, c2.kv.Range, { key: encoder.encode("key1") }),
      /etcdserver: rpc not supported for learner/,
    );
    await assert.rejects(
      callUnary(c2.kv, c2.kv.Put, { key: encoder.encode("x"), value: encoder.encode("y") }),
      /etcdserver: rpc not supported for learner/,
    );
    const caughtUp = await waitFor("the learner to apply every write", async () => {
      const range = await callUnary(c2.kv, c2.kv.Range, {
        key: encoder.encode("key"),
        rangeEnd: encoder.encode("kez"),
        serializable: true,
      });
      return range.count === 20 ? range : undefined;
    });
    assert.equal(caughtUp.count, 20);

    // A learner cannot ask for its own promotion (etcd refuses every Cluster call on a learner).
    await assert.rejects(
      callUnary(c2.cluster, c2.cluster.MemberPromote, { ID: learner.memberId }),
      /etcdserver: rpc not supported for learner/,
    );
    const promoted = await callUnary(c1.cluster, c1.cluster.MemberPromote, { ID: learner.memberId });
    assert.equal(promoted.members.find((m) => m.ID === learner.memberId)?.isLearner, false);
    await waitFor("the promotion to apply on the former learner", async () => {
      const s = await callUnary(c2.maintenance, c2.maintenance.Status, {});
      return s.isLearner ? undefined : s;
    });
    const range = await callUnary(c2.kv, c2.kv.Range, { key: encoder.encode("key1") });
    assert.equal(decoder.decode(range.kvs[0]!.value), "1");

    // Remove the second member: it stops serving on its own (its onRemoved), the first goes on alone.
    // etcd's strict reconfiguration check: a voter connected for less than 5 s counts as not active, so
    // removing one while the other is that fresh is refused as "unhealthy cluster" until then.
    const refusals = new Set<string>();
    const removed = await waitFor("the removal to be allowed", async () => {
      try {
        return await callUnary(c1.cluster, c1.cluster.MemberRemove, { ID: learner.memberId });
      } catch (error) {
        refusals.add((error as Error).message);
        throw error;
      }
    });
    for (const refusal of refusals) assert.match(refusal, /etcdserver: unhealthy cluster/);
    assert.deepEqual(
      removed.members.map((m) => m.ID),
      [first.memberId],
    );
    await assert.rejects(
      callUnary(c1.cluster, c1.cluster.MemberRemove, { ID: learner.memberId }),
      /etcdserver: member not found/,
    );
    await callUnary(c1.kv, c1.kv.Put, { key: encoder.encode("after"), value: encoder.encode("removal") });
    await Promise.all([first.close(), learner.close()]);
  });

  it("a member that fell behind the leader's log catches up from a snapshot and ends with the same state", async () => {
    const plans = await plan(["c1", "c2", "c3"]);
    const initialCluster = plans.map((p) => `${p.name}=${p.peerUrl}`).join(",");
    // Snapshots every 50 entries, keeping 20 below each: a member away for 300 writes needs a snapshot.
    const startSmall = async (o: StartMemberOptions): Promise<Member> => {
      const { log, onFatal, ...flags } = o;
      const { config } = resolveMemberConfig({ ...flags, snapshotCount: 50 });
      const member = await startMemberWithConfig(config, {
        ...(log === undefined ? {} : { logger: log }),
        ...(onFatal === undefined ? {} : { onFatal }),
        snapshotCatchUpEntries: 20,
      });
      running.push(member);
      return member;
    };
    const opts = plans.map((p) => options(p, initialCluster));
    const members = await Promise.all(opts.map(startSmall));
    const c1 = clientsOf(members[0]!);
    await callUnary(c1.kv, c1.kv.Put, { key: encoder.encode("before"), value: encoder.encode("0") });
    await members[2]!.close();
    for (let i = 0; i < 300; i++) {
      await callUnary(c1.kv, c1.kv.Put, { key: encoder.encode(`k${i % 40}`), value: encoder.encode(`${i}`) });
    }
    await callUnary(c1.kv, c1.kv.DeleteRange, { key: encoder.encode("k1") });
    const compactTo =
      (await callUnary(c1.kv, c1.kv.Range, { key: encoder.encode("before") })).header!.revision - 5;
    await callUnary(c1.kv, c1.kv.Compact, { revision: compactTo, physical: true });

    const lines: string[] = [];
    const capture = createLogger({
      level: "info",
      destination: { write: (line: string) => void lines.push(line) },
    });
    const back = await startSmall({ ...opts[2]!, log: capture });
    const c3 = clientsOf(back);
    const leaderHash = await callUnary(c1.maintenance, c1.maintenance.HashKV, { revision: 0 });
    const caughtUp = await waitFor("the restarted member to reach the leader's revision", async () => {
      const status = await callUnary(c3.maintenance, c3.maintenance.Status, {});
      return status.header!.revision >= leaderHash.header!.revision ? status : undefined;
    });
    assert.ok(caughtUp);
    const hash = await callUnary(c3.maintenance, c3.maintenance.HashKV, { revision: 0 });
    assert.equal(hash.hash, leaderHash.hash, "same HashKV as the leader");
    assert.ok(
      lines.some((line) => (JSON.parse(line) as { msg: string }).msg === "applied snapshot"),
      "the member caught up through a snapshot, not the log",
    );
    assert.equal(hash.compactRevision, leaderHash.compactRevision);
    const range = await callUnary(c3.kv, c3.kv.Range, {
      key: encoder.encode("k"),
      rangeEnd: encoder.encode("l"),
    });
    assert.equal(range.count, 39);
    // It takes part in the cluster again: a write through it is read back everywhere.
    await callUnary(c3.kv, c3.kv.Put, { key: encoder.encode("after"), value: encoder.encode("snapshot") });
    const read = await callUnary(c1.kv, c1.kv.Range, { key: encoder.encode("after") });
    assert.equal(decoder.decode(read.kvs[0]!.value), "snapshot");

    // A member that joins now starts empty, and the leader's log no longer reaches back to the start: it
    // gets a snapshot stamped as of the leader's applied state (its ConfState lists the joiner).
    const [p4] = await plan(["c4"]);
    // (The restarted member reconnected moments ago: until it has been up 5 s the add is "unhealthy".)
    const added = await waitFor("the add to be allowed", () =>
      callUnary(c1.cluster, c1.cluster.MemberAdd, { peerURLs: [p4!.peerUrl], isLearner: true }),
    );
    const joinCluster = [...plans, p4!].map((p) => `${p.name}=${p.peerUrl}`).join(",");
    const joinerLines: string[] = [];
    const joinerLog = createLogger({
      level: "info",
      destination: { write: (line: string) => void joinerLines.push(line) },
    });
    const joiner = await startSmall(
      options(p4!, joinCluster, { initialClusterState: "existing", log: joinerLog }),
    );
    assert.equal(joiner.memberId, added.member?.ID);
    const c4 = clientsOf(joiner);
    const leaderNow = await callUnary(c1.maintenance, c1.maintenance.Status, {});
    await waitFor("the joiner to reach the leader's revision", async () => {
      const status = await callUnary(c4.maintenance, c4.maintenance.Status, {});
      return status.header!.revision >= leaderNow.header!.revision ? status : undefined;
    });
    // A learner answers only Status and serializable ranges: compare every key and its revisions.
    const everything = { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), serializable: true };
    const onJoiner = await callUnary(c4.kv, c4.kv.Range, everything);
    const onLeader = await callUnary(c1.kv, c1.kv.Range, everything);
    assert.ok(onJoiner.count > 30);
    assert.deepEqual(onJoiner.kvs, onLeader.kvs, "the joiner holds the leader's keys, values and revisions");
    assert.ok(joinerLines.some((line) => (JSON.parse(line) as { msg: string }).msg === "applied snapshot"));
    await Promise.all([...members.slice(0, 2), back, joiner].map((m) => m.close()));
  });
});
