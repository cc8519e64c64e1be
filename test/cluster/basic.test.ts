import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { callUnary, MaintenanceClient } from "../../src/proto/index.js";
import { type Cluster, etcdctl } from "../support/cluster.js";
import {
  assertSameHashKV,
  client,
  clusterTargets,
  ctl,
  ctlFails,
  ELECTION_MS,
  ELECTION_WAIT_MS,
  endpoints,
  hex,
  leaderName,
  parseJsonExact,
  startTestCluster,
} from "./harness.js";

/**
 * Three members, driven by etcdctl 3.4 and the etcd3 npm client, against real etcd and etcd-ts alike:
 * writes through every member are read linearizably from every member; `endpoint status` and
 * `member list` print what etcd prints (table and JSON); MoveLeader and its refusals; kill -9 of the
 * leader elects another that takes writes, and the killed member restarted catches up (one HashKV).
 */

/** How many writes each member takes in the write/read round. */
const WRITES_PER_MEMBER = 20;

/** The cells of an etcdctl `-w table` output: header row, then data rows. */
function tableRows(text: string): string[][] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
}

interface StatusJson {
  Endpoint: string;
  Status: {
    header: Record<string, string | number>;
    version: string;
    dbSize: number;
    leader: string;
    raftIndex: number;
    raftTerm: number;
    raftAppliedIndex: number;
    dbSizeInUse: number;
  };
}

interface MemberListJson {
  header: Record<string, string | number>;
  members: { ID: string; name?: string; peerURLs: string[]; clientURLs?: string[]; isLearner?: boolean }[];
}

for (const target of clusterTargets()) {
  describe(`a 3-member ${target.label} cluster`, { timeout: 180_000 }, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startTestCluster(target.kind, { size: 3 });
    });

    after(async () => {
      await cluster?.stop();
    });

    it("writes through every member are read linearizably from every member", async () => {
      const clients = cluster.members.map((m) => client(m.endpoint));
      try {
        for (const [i, member] of cluster.members.entries()) {
          await ctl([member.endpoint], "put", `ctl/${member.name}`, `via-${member.name}`);
          const etcd3 = clients[i];
          assert.ok(etcd3 !== undefined);
          await Promise.all(
            Array.from({ length: WRITES_PER_MEMBER }, (_unused, n) =>
              etcd3.put(`lib/${member.name}/${n}`).value(`${member.name}-${n}`),
            ),
          );
        }
        // Each read is linearizable (etcd's default): it sees every write acknowledged before it began.
        for (const [i, reader] of cluster.members.entries()) {
          const lines = (await ctl([reader.endpoint], "get", "ctl/", "--prefix")).trim().split("\n");
          assert.deepEqual(
            lines,
            cluster.members.flatMap((m) => [`ctl/${m.name}`, `via-${m.name}`]),
            `read on ${reader.name}`,
          );
          const etcd3 = clients[i];
          assert.ok(etcd3 !== undefined);
          const all = await etcd3.getAll().prefix("lib/").strings();
          assert.equal(Object.keys(all).length, WRITES_PER_MEMBER * cluster.members.length);
          for (const m of cluster.members) assert.equal(all[`lib/${m.name}/7`], `${m.name}-7`);
          // A write through this member is seen at once through each other member.
          await etcd3.put("last").value(reader.name);
          for (const other of clients) assert.equal(await other.get("last").string(), reader.name);
        }
      } finally {
        for (const c of clients) c.close();
      }
    });

    it("`endpoint status` prints etcd's columns and fields: one leader, one term, raft indexes", async () => {
      const leader = await leaderName(cluster);
      const leaderId = cluster.member(leader).id;
      const rows = tableRows(await ctl(endpoints(cluster), "endpoint", "status", "-w", "table"));
      assert.deepEqual(rows[0], [
        "ENDPOINT",
        "ID",
        "VERSION",
        "DB SIZE",
        "IS LEADER",
        "IS LEARNER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "ERRORS",
      ]);
      const data = rows.slice(1);
      assert.equal(data.length, 3);
      for (const [i, member] of cluster.members.entries()) {
        const row = data[i] as string[];
        assert.equal(row[0], member.endpoint);
        assert.equal(row[1], hex(member.id));
        assert.equal(row[2], "3.4.23");
        assert.match(row[3] as string, /^\d+ kB$/);
        assert.equal(row[4], member.id === leaderId ? "true" : "false");
        assert.equal(row[5], "false");
        assert.match(row[6] as string, /^\d+$/);
        assert.match(row[7] as string, /^\d+$/);
        assert.match(row[8] as string, /^\d+$/);
        assert.equal(row[9], "");
      }
      assert.equal(new Set(data.map((row) => row[6])).size, 1, "every member is in one term");

      const json = parseJsonExact(
        await ctl(endpoints(cluster), "endpoint", "status", "-w", "json"),
      ) as StatusJson[];
      assert.equal(json.length, 3);
      const clusterIds = new Set<string | number | undefined>();
      for (const [i, member] of cluster.members.entries()) {
        const entry = json[i] as StatusJson;
        assert.equal(entry.Endpoint, member.endpoint);
        assert.deepEqual(Object.keys(entry.Status).sort(), [
          "dbSize",
          "dbSizeInUse",
          "header",
          "leader",
          "raftAppliedIndex",
          "raftIndex",
          "raftTerm",
          "version",
        ]);
        assert.deepEqual(Object.keys(entry.Status.header).sort(), [
          "cluster_id",
          "member_id",
          "raft_term",
          "revision",
        ]);
        assert.equal(String(entry.Status.header.member_id), member.id.toString());
        assert.equal(String(entry.Status.leader), leaderId.toString());
        assert.equal(entry.Status.raftTerm, entry.Status.header.raft_term);
        assert.ok(entry.Status.raftAppliedIndex <= entry.Status.raftIndex);
        assert.ok(entry.Status.raftIndex > 0 && entry.Status.dbSizeInUse <= entry.Status.dbSize);
        clusterIds.add(entry.Status.header.cluster_id);
      }
      assert.equal(clusterIds.size, 1, "one cluster id");
    });

    it("`member list` prints etcd's columns and fields for every member", async () => {
      const sorted = [...cluster.members].sort((a, b) => (a.id < b.id ? -1 : 1));
      const simple = (await ctl([cluster.members[0]?.endpoint ?? ""], "member", "list")).trim().split("\n");
      assert.deepEqual(
        simple,
        sorted.map((m) => `${hex(m.id)}, started, ${m.name}, ${m.peerUrl}, ${m.clientUrl}, false`),
      );
      const rows = tableRows(
        await ctl([cluster.members[1]?.endpoint ?? ""], "member", "list", "-w", "table"),
      );
      assert.deepEqual(rows, [
        ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
        ...sorted.map((m) => [hex(m.id), "started", m.name, m.peerUrl, m.clientUrl, "false"]),
      ]);
      const member = cluster.members[2];
      assert.ok(member !== undefined);
      const json = parseJsonExact(
        await ctl([member.endpoint], "member", "list", "-w", "json"),
      ) as MemberListJson;
      assert.deepEqual(Object.keys(json.header).sort(), ["cluster_id", "member_id", "raft_term"]);
      assert.equal(String(json.header.member_id), member.id.toString());
      assert.deepEqual(
        json.members,
        sorted.map((m) => ({
          ID: m.id.toString(),
          name: m.name,
          peerURLs: [m.peerUrl],
          clientURLs: [m.clientUrl],
        })),
      );
    });

    it("move-leader hands leadership to a follower; etcd's refusals for a non-leader and a bad transferee", async () => {
      const leader = await leaderName(cluster);
      const follower = cluster.members.find((m) => m.name !== leader);
      assert.ok(follower !== undefined);
      const leaderEndpoint = cluster.member(leader).endpoint;
      // etcdctl itself refuses when no endpoint given is the leader.
      await ctlFails(
        [follower.endpoint],
        `no leader endpoint given at [${follower.endpoint}]`,
        "move-leader",
        hex(follower.id),
      );
      await ctlFails([leaderEndpoint], "etcdserver: bad leader transferee", "move-leader", "1234");
      assert.equal(
        (await ctl([leaderEndpoint], "move-leader", hex(cluster.member(leader).id))).trim(),
        `Leadership transferred from ${hex(cluster.member(leader).id)} to ${hex(cluster.member(leader).id)}`,
      );
      // The server's own refusal on a follower, through the gRPC call etcdctl would make.
      const maintenance = new MaintenanceClient(follower.endpoint, grpc.credentials.createInsecure());
      try {
        await assert.rejects(
          callUnary(maintenance, maintenance.MoveLeader, { targetID: follower.id }, new grpc.Metadata(), {
            deadline: Date.now() + 5_000,
          }),
          (error: grpc.ServiceError) => {
            assert.equal(error.code, grpc.status.FAILED_PRECONDITION);
            assert.equal(error.details, "etcdserver: not leader");
            return true;
          },
        );
      } finally {
        maintenance.close();
      }
      assert.equal(
        (await ctl([leaderEndpoint], "move-leader", hex(follower.id))).trim(),
        `Leadership transferred from ${hex(cluster.member(leader).id)} to ${hex(follower.id)}`,
      );
      assert.equal(await leaderName(cluster), follower.name);
      await ctl([leaderEndpoint], "put", "after-move", "1");
      assert.equal((await ctl([follower.endpoint], "get", "after-move", "--print-value-only")).trim(), "1");
    });

    it("kill -9 of the leader: another is elected and takes writes; the restarted member catches up", async () => {
      const leader = await leaderName(cluster);
      const others = cluster.members.filter((m) => m.name !== leader).map((m) => m.name);
      await cluster.kill9(leader);
      const startedMs = Date.now();
      let attempts = 0;
      for (;;) {
        attempts++;
        const result = await ctlResult(endpoints(cluster, others), "put", "after-kill", "yes");
        if (result) break;
        assert.ok(
          Date.now() - startedMs < ELECTION_WAIT_MS,
          `no write accepted within ${ELECTION_WAIT_MS} ms of the leader's kill -9`,
        );
      }
      const electedMs = Date.now() - startedMs;
      const next = await leaderName(cluster, others);
      assert.notEqual(next, leader);
      process.stdout.write(
        `${target.label}: first write accepted ${electedMs} ms after kill -9 of the leader (election timeout ${ELECTION_MS} ms, ${attempts} attempts)\n`,
      );
      for (let n = 0; n < 50; n++) await ctl(endpoints(cluster, others), "put", `while-down/${n}`, `${n}`);
      await cluster.restart(leader);
      const revision = await assertSameHashKV(cluster);
      assert.ok(revision > 50);
      assert.equal(
        (await ctl([cluster.member(leader).endpoint], "get", "while-down/49", "--print-value-only")).trim(),
        "49",
      );
      assert.equal(
        (
          await ctl(
            [cluster.member(leader).endpoint],
            "get",
            "after-kill",
            "--print-value-only",
            "--consistency=s",
          )
        ).trim(),
        "yes",
        "the restarted member has the entries it missed in its own store",
      );
    });
  });
}

/** One short put attempt: true when it was acknowledged. */
async function ctlResult(eps: readonly string[], ...args: string[]): Promise<boolean> {
  const result = await etcdctl(eps, ["--command-timeout=1s", ...args]);
  return result.code === 0;
}
