import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Etcd3 } from "etcd3";
import { startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";
import type { Member, StartMemberOptions } from "../../src/server/member.js";

/**
 * Leases through a real member (issue 9's lease half): the `etcd3` npm client grants, attaches, keeps
 * alive, lists and revokes; a lease expires on its own; and across a restart a live lease keeps its keys
 * while an expired one loses them.
 */

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function options(dataDir: string): StartMemberOptions {
  return {
    name: "lease1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "lease1=http://127.0.0.1:2380",
    log: createLogger({ level: "error", destination: { write() {} } }),
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
  };
}

function client(member: Member): Etcd3 {
  return new Etcd3({ hosts: member.clientUrls[0]!.replace("http://", "") });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("leases on a member", () => {
  it("grants, attaches keys, keeps alive, lists, and revokes all attached keys in one revision", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-lease-"));
    dirs.push(dataDir);
    const member = await startMember(options(dataDir));
    const etcd = client(member);
    try {
      const lease = etcd.lease(100, { autoKeepAlive: false });
      const id = await lease.grant();
      await lease.put("a").value("1");
      await lease.put("b").value("2");
      const listed = await etcd.leaseClient.leaseLeases({});
      assert.deepEqual(
        listed.leases.map((l) => l.ID),
        [id],
      );
      const before = await etcd.get("a").exec();
      assert.equal(before.kvs[0]?.lease, id);
      const kept = await lease.keepaliveOnce();
      assert.equal(kept.TTL, "100");
      const revisionBefore = Number((await etcd.get("zz").exec()).header.revision);
      await lease.revoke();
      const after = await etcd.getAll().prefix("").keys();
      assert.deepEqual(after, []);
      const revisionAfter = Number((await etcd.get("zz").exec()).header.revision);
      assert.equal(revisionAfter, revisionBefore + 1, "both keys go in one revision");
      await assert.rejects(etcd.put("c").value("3").lease(id).exec(), /requested lease not found/);
    } finally {
      etcd.close();
      await member.close();
    }
  });

  it("expires a lease nobody keeps alive, and across a restart keeps a live lease's keys", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-lease-"));
    dirs.push(dataDir);
    let member = await startMember(options(dataDir));
    let etcd = client(member);
    const live = etcd.lease(60, { autoKeepAlive: false });
    await live.put("live").value("1");
    const dying = etcd.lease(2, { autoKeepAlive: false });
    await dying.put("dying").value("1");
    await sleep(3500);
    assert.deepEqual(
      await etcd.getAll().prefix("").keys(),
      ["live"],
      "the 2 s lease expired and took its key",
    );
    const short = etcd.lease(2, { autoKeepAlive: false });
    await short.put("short").value("1");
    etcd.close();
    await member.close();

    member = await startMember(options(dataDir));
    etcd = client(member);
    try {
      assert.deepEqual((await etcd.getAll().prefix("").keys()).sort(), ["live", "short"]);
      // A restarted leader extends every lease by its TTL plus an election timeout, then expiry resumes.
      await sleep(4500);
      assert.deepEqual(await etcd.getAll().prefix("").keys(), ["live"]);
    } finally {
      etcd.close();
      await member.close();
    }
  });
});
