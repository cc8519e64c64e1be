import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Cluster } from "../support/cluster.js";
import {
  assertSameHashKV,
  client,
  clusterTargets,
  ctl,
  endpoints,
  leaderName,
  startTestCluster,
} from "./harness.js";

/**
 * A member added to a cluster whose raft log no longer reaches back to the start must catch up from a
 * snapshot of the leader's database. With --snapshot-count=100 the members snapshot every 100 applied
 * entries and keep etcd's 5,000 catch-up entries behind each snapshot, so after 6,000 writes the
 * leader's log starts far past index 1: the new member gets the database whole, then the tail of the
 * log, and ends with the same HashKV as the others.
 */

const SNAPSHOT_COUNT = 100;
/** More entries than etcd's SnapshotCatchUpEntries (5,000) plus one snapshot interval. */
const WRITES = 6_000;
/** Puts in flight at once while loading. */
const WRITERS = 32;
/** What both etcd 3.4 and etcd-ts log (at info) once a database snapshot from the leader is on disk. */
const SNAPSHOT_RECEIVED_LOG = '"msg":"received and saved database snapshot"';

for (const target of clusterTargets()) {
  describe(`a new member of a ${target.label} cluster that needs a snapshot`, { timeout: 240_000 }, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startTestCluster(target.kind, {
        size: 3,
        flags: [`--snapshot-count=${SNAPSHOT_COUNT}`],
      });
    });

    after(async () => {
      await cluster?.stop();
    });

    it(`catches up from the leader's snapshot after ${WRITES} writes (one HashKV)`, async () => {
      const leader = await leaderName(cluster);
      const etcd3 = client(cluster.member(leader).endpoint);
      try {
        let next = 0;
        await Promise.all(
          Array.from({ length: WRITERS }, async () => {
            for (let n = next++; n < WRITES; n = next++) await etcd3.put(`snap/${n}`).value(`value-${n}`);
          }),
        );
      } finally {
        etcd3.close();
      }
      const { member } = await cluster.addMember("m4", { flags: ["--log-level=info"] });
      await assertSameHashKV(cluster);
      assert.ok(
        cluster.stderr(member.name).includes(SNAPSHOT_RECEIVED_LOG),
        "the new member received a database snapshot",
      );
      assert.equal((await ctl([member.endpoint], "get", "snap/0", "--print-value-only")).trim(), "value-0");
      const reader = client(member.endpoint);
      try {
        assert.equal(await reader.getAll().prefix("snap/").count(), WRITES);
      } finally {
        reader.close();
      }
      // It goes on replicating after the snapshot.
      await ctl(endpoints(cluster, [leader]), "put", "after-snapshot", "1");
      assert.equal((await ctl([member.endpoint], "get", "after-snapshot", "--print-value-only")).trim(), "1");
      await assertSameHashKV(cluster);
    });
  });
}
