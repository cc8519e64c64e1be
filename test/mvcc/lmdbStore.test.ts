/** MvccStore on the lmdb backend: the writer thread commits under the store while it works. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { openLmdbBackend } from "../../src/backend/lmdb.js";
import { MvccStore } from "../../src/mvcc/store.js";
import {
  b,
  dumpModel,
  dumpStore,
  isValid,
  LIVE_LEASE,
  opArb,
  resolveRevisions,
  runOnModel,
  runOnStore,
  type StoreSide,
  TestLeases,
} from "./harness.js";
import { Model } from "./model.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-mvcc-lmdb-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("MvccStore on lmdb", () => {
  it("matches the model while the writer commits every few milliseconds, and after reopening", async () => {
    await withDir(async (dir) => {
      const backend = await openLmdbBackend({ dir, batchIntervalMs: 2, onFatal: assert.fail });
      const side: StoreSide = {
        store: MvccStore.open({ backend, leases: new TestLeases(), compactionBatchLimit: 3 }),
        index: 0,
        compactions: [],
      };
      const model = new Model();
      model.leases.add(LIVE_LEASE);
      const ops = fc.sample(opArb(60), { seed: 42, numRuns: 1500 });
      for (const [i, drawn] of ops.entries()) {
        if (!isValid(drawn)) continue;
        const op = resolveRevisions(drawn, model.revision);
        if (op.type === "yield") await new Promise((resolve) => setTimeout(resolve, 1));
        assert.deepEqual(runOnStore(side, op), runOnModel(model, op), `op ${i}`);
      }
      await Promise.all(side.compactions.map((p) => p.catch(() => {})));
      await side.store.close();
      const again = MvccStore.open({ backend: await openLmdbBackend({ dir, onFatal: assert.fail }) });
      assert.equal(again.revision, model.revision);
      assert.deepEqual(dumpStore(again), dumpModel(model));
      await again.close();
    });
  });

  it("pauses a physical compaction while the backend defragments, and both finish", async () => {
    await withDir(async (dir) => {
      const backend = await openLmdbBackend({ dir, onFatal: assert.fail });
      const store = MvccStore.open({ backend, compactionBatchLimit: 10 });
      let index = 0;
      const value = new Uint8Array(2000).fill(1);
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 300; i++)
          store.apply(++index, 1, { type: "put", request: { key: b(`k${i}`), value } });
      }
      await backend.forceCommit();
      const sizeBefore = backend.sizeBytes();
      const compaction = store.apply(++index, 1, {
        type: "compaction",
        request: { revision: store.revision },
      });
      await Promise.all([compaction.physicalDone, backend.defragment()]);
      assert.equal(store.range({ key: b("k"), rangeEnd: b("l") }).count, 300);
      await backend.forceCommit();
      await backend.defragment();
      assert.ok(backend.sizeBytes() < sizeBefore, `${backend.sizeBytes()} < ${sizeBefore}`);
      await store.close();
      const again = MvccStore.open({ backend: await openLmdbBackend({ dir, onFatal: assert.fail }) });
      assert.equal(again.compactRevision, 1501);
      assert.equal(again.range({ key: b("k"), rangeEnd: b("l") }).count, 300);
      await again.close();
    });
  });
});
