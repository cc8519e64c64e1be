import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { Etcd3 } from "etcd3";
import { startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";

/**
 * --auto-compaction-mode=periodic with a 1 s retention (spec §14.4): after one retention period the
 * member compacts to the revision it sampled a retention period earlier, and keeps doing so; reads below
 * the compaction then fail with etcd's error.
 */

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

it("compacts periodically to the revision sampled one retention period earlier", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-compaction-"));
  dirs.push(dataDir);
  const lines: Array<{ msg: string; revision?: number }> = [];
  const member = await startMember({
    name: "c1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "c1=http://127.0.0.1:2380",
    autoCompactionMode: "periodic",
    autoCompactionRetention: "1s",
    log: createLogger({
      level: "info",
      destination: { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) },
    }),
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
  });
  const etcd = new Etcd3({ hosts: member.clientUrls[0]!.replace("http://", "") });
  try {
    const first = Number((await etcd.put("k").value("0").exec()).header.revision);
    const compactedAbove = (): { revision?: number } | undefined =>
      lines.find((l) => l.msg === "completed auto revision compaction" && (l.revision ?? 0) > first);
    const deadline = Date.now() + 8000;
    let i = 1;
    while (Date.now() < deadline && compactedAbove() === undefined) {
      await etcd.put("k").value(String(i++)).exec();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const done = compactedAbove();
    assert.ok(done !== undefined, "an auto compaction past the first write completed within a few periods");
    const compactRevision = done.revision ?? 0;
    const current = Number((await etcd.get("k").exec()).header.revision);
    assert.ok(
      compactRevision < current - 5,
      "it compacted to a revision sampled earlier, not to the current one",
    );
    await assert.rejects(
      etcd
        .get("k")
        .revision(String(compactRevision - 1))
        .exec(),
      /required revision has been compacted/,
    );
    const kept = await etcd.get("k").revision(String(compactRevision)).exec();
    assert.equal(kept.kvs.length, 1, "the compaction revision itself stays readable");
  } finally {
    etcd.close();
    await member.close();
  }
});
