import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { Etcd3 } from "etcd3";
import { startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";

/**
 * Watch wired into a member (issue 9's watch half end to end): the `etcd3` client's watcher sees puts,
 * deletes with prev values, and the DELETE a lease expiry makes, in revision order; a watcher started at
 * a past revision replays history first.
 */

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

it("delivers puts, deletes and lease-expiry deletes to watchers of a member, and replays history", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-watch-"));
  dirs.push(dataDir);
  const member = await startMember({
    name: "w1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "w1=http://127.0.0.1:2380",
    log: createLogger({ level: "error", destination: { write() {} } }),
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
  });
  const etcd = new Etcd3({ hosts: member.clientUrls[0]!.replace("http://", "") });
  try {
    const seen: string[] = [];
    const watcher = await etcd.watch().prefix("job/").withPreviousKV().create();
    watcher.on("put", (kv, prev) =>
      seen.push(`put ${kv.key} ${kv.value} ${prev?.value ?? "-"} ${kv.mod_revision}`),
    );
    watcher.on("delete", (kv, prev) =>
      seen.push(`delete ${kv.key} ${prev?.value ?? "-"} ${kv.mod_revision}`),
    );
    const first = await etcd.put("job/a").value("1").exec();
    const startRevision = Number(first.header.revision);
    await etcd.put("job/a").value("2").exec();
    await etcd.put("other").value("x").exec();
    await etcd.delete().key("job/a").exec();
    const lease = etcd.lease(2, { autoKeepAlive: false });
    await lease.put("job/leased").value("L");
    const deadline = Date.now() + 8000;
    while (seen.length < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const r = startRevision;
    assert.deepEqual(seen, [
      `put job/a 1 - ${r}`,
      `put job/a 2 1 ${r + 1}`,
      `delete job/a 2 ${r + 3}`,
      `put job/leased L - ${r + 4}`,
      `delete job/leased L ${r + 5}`,
    ]);
    await watcher.cancel();

    const replayed: string[] = [];
    const history = await etcd.watch().key("job/a").startRevision(String(r)).create();
    history.on("data", (response) => {
      for (const event of response.events) replayed.push(`${event.type} ${event.kv.mod_revision}`);
    });
    while (replayed.length < 3 && Date.now() < deadline + 4000)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(replayed, [`Put ${r}`, `Put ${r + 1}`, `Delete ${r + 3}`]);
    await history.cancel();
  } finally {
    etcd.close();
    await member.close();
  }
});
