import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MemoryBackend } from "../../src/backend/memory.js";
import { MvccStore } from "../../src/mvcc/store.js";
import {
  dumpModel,
  dumpStore,
  isValid,
  LIVE_LEASE,
  type Op,
  opArb,
  resolveRevisions,
  runOnModel,
  runOnStore,
  type StoreSide,
  TestLeases,
} from "./harness.js";
import { Model } from "./model.js";

/** Runs ops on both sides, comparing each outcome; returns the sides for end-of-run checks. */
async function runBoth(ops: Op[], compactionBatchLimit: number) {
  const backend = new MemoryBackend();
  const leases = new TestLeases();
  const side: StoreSide = {
    store: MvccStore.open({ backend, leases, compactionBatchLimit }),
    index: 0,
    compactions: [],
  };
  const model = new Model();
  model.leases.add(LIVE_LEASE);
  for (const [i, drawn] of ops.entries()) {
    if (!isValid(drawn)) continue;
    const op = resolveRevisions(drawn, model.revision);
    if (op.type === "yield") await new Promise((resolve) => setImmediate(resolve));
    const expected = runOnModel(model, op);
    const actual = runOnStore(side, op);
    assert.deepEqual(
      actual,
      expected,
      `op ${i}: ${JSON.stringify(op, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`,
    );
    assert.equal(side.store.revision, model.revision, `revision after op ${i}`);
    assert.equal(side.store.compactRevision, model.compactRevision, `compact revision after op ${i}`);
  }
  return { backend, leases, side, model };
}

describe("MvccStore against the reference model", () => {
  it("gives identical responses, errors and events for random puts, deletes, txns, ranges and compactions", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb(40), { minLength: 10, maxLength: 80, size: "max" }),
        fc.constantFrom(1, 2, 1000),
        async (ops, limit) => {
          const { side, model } = await runBoth(ops, limit);
          // Every revision still readable matches the model, whatever the physical compaction did so far.
          for (let rev = Math.max(model.compactRevision, 1); rev <= model.revision; rev++) {
            assert.deepEqual(dumpStore(side.store, rev), dumpModel(model, rev), `state at ${rev}`);
          }
          side.store.stop();
        },
      ),
      { numRuns: 150 },
    );
  });

  it("rebuilds the same state, revisions, leases and HashKV when reopened on its backend", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb(40), { minLength: 10, maxLength: 60, size: "max" }),
        fc.boolean(),
        async (ops, waitForCompaction) => {
          const { backend, leases, side, model } = await runBoth(ops, 2);
          if (waitForCompaction) await Promise.all(side.compactions.map((p) => p.catch(() => {})));
          side.store.stop();
          const reopenedLeases = new TestLeases();
          const reopened = MvccStore.open({ backend, leases: reopenedLeases });
          assert.equal(reopened.revision, model.revision);
          assert.equal(reopened.compactRevision, model.compactRevision);
          assert.deepEqual(reopenedLeases.attached, leases.attached);
          for (let rev = Math.max(model.compactRevision, 1); rev <= model.revision; rev++) {
            assert.deepEqual(dumpStore(reopened, rev), dumpModel(model, rev), `state at ${rev} after reopen`);
            const hashKV: Op = { type: "hashKV", revision: rev };
            const reopenedSide = { store: reopened, index: side.index, compactions: [] };
            assert.deepEqual(runOnStore(reopenedSide, hashKV), runOnModel(model, hashKV), `hashKV(${rev})`);
          }
          reopened.stop();
        },
      ),
      { numRuns: 100 },
    );
  });
});
