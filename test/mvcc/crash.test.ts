/**
 * Crash test (issue 7): a child process applies operations to an lmdb-backed store and is killed with
 * SIGKILL at random moments. After each kill the store reopens at its consistent index, which is at least
 * the last index the child saw durable, and its state equals the reference model replayed to that index;
 * the next round resumes from there. At the end every operation was applied exactly once.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { openLmdbBackend } from "../../src/backend/lmdb.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { crashOp } from "./crashOps.js";
import { dumpModel, dumpStore, LIVE_LEASE, normalize, TestLeases } from "./harness.js";
import { Model, ModelError } from "./model.js";

const SEED = 7;
const TOTAL_OPS = 2500;
const ROUNDS = 5;
const childPath = fileURLToPath(new URL("./crashChild.ts", import.meta.url));

interface ChildRun {
  /** Consistent index the child found at start. */
  startIndex: number;
  lastApplied: number;
  lastDurable: number;
  finished: boolean;
}

/** Runs the child for `killAfterMs` after it is ready (then SIGKILL), or to the end (null). */
function runChild(dir: string, killAfterMs: number | null): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", childPath, dir, String(SEED), String(TOTAL_OPS)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const run: ChildRun = { startIndex: -1, lastApplied: 0, lastDurable: 0, finished: false };
    let pending = "";
    child.stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const [word, number] = line.split(" ");
        if (word === "ready") {
          run.startIndex = Number(number);
          if (killAfterMs !== null) setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        } else if (word === "applied") run.lastApplied = Number(number);
        else if (word === "durable") run.lastDurable = Math.max(run.lastDurable, Number(number));
        else if (word === "done") run.finished = true;
      }
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (signal === "SIGKILL" || code === 0) resolve(run);
      else reject(new Error(`crash child exited with code ${code}`));
    });
  });
}

function applyToModel(model: Model, index: number): void {
  const op = crashOp(SEED, index);
  try {
    if (op.type === "put") model.put(op.request);
    else if (op.type === "deleteRange") model.deleteRange(op.request);
    else if (op.type === "txn") model.txn(op.request, true);
    else model.compact(op.request.revision);
  } catch (error) {
    if (!(error instanceof ModelError)) throw error;
  }
}

async function checkAgainstModel(dir: string, model: Model, atLeast: number): Promise<number> {
  const backend = await openLmdbBackend({ dir, onFatal: assert.fail });
  const leases = new TestLeases();
  const store = MvccStore.open({ backend, leases });
  const index = store.consistentIndex;
  assert.ok(index >= atLeast, `reopened at ${index}, below the durable index ${atLeast} the child saw`);
  assert.equal(store.revision, model.revision, `revision at index ${index}`);
  assert.equal(store.compactRevision, model.compactRevision, `compact revision at index ${index}`);
  const first = Math.max(model.compactRevision, 1);
  for (const rev of new Set([model.revision, first, Math.floor((first + model.revision) / 2)])) {
    assert.deepEqual(
      dumpStore(store, rev),
      dumpModel(model, rev),
      `state at revision ${rev}, index ${index}`,
    );
  }
  const attached = [...model.stateAt(model.revision).values()].filter((kv) => kv.lease === LIVE_LEASE);
  assert.deepEqual(
    [...leases.attached.keys()].sort(),
    attached.map((kv) => Buffer.from(kv.key).toString("latin1")).sort(),
  );
  assert.deepEqual(normalize(store.hashKV(0)), normalize(model.hashKV(0)), "HashKV at the current revision");
  await store.close();
  return index;
}

describe("crash test (kill -9)", () => {
  it(`recovers at its consistent index after ${ROUNDS} kills, then finishes exactly like the model`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "etcd-ts-crash-"));
    try {
      const model = new Model();
      model.leases.add(LIVE_LEASE);
      let modelIndex = 0;
      let kills = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const run = await runChild(dir, 20 + Math.floor(Math.random() * 300));
        if (run.finished) break;
        kills++;
        // Replay the model to the index the store reopens at (the check re-reads it).
        const probe = await openLmdbBackend({ dir, onFatal: assert.fail });
        const reopenedAt = probe.consistentIndex;
        await probe.close();
        assert.ok(reopenedAt >= modelIndex, "the consistent index never goes back");
        while (modelIndex < reopenedAt) applyToModel(model, ++modelIndex);
        await checkAgainstModel(dir, model, run.lastDurable);
        if (process.env.CRASH_VERBOSE)
          console.log(
            `round ${round}: applied ${run.lastApplied}, durable ${run.lastDurable}, reopened at ${reopenedAt}, revision ${model.revision}, compact ${model.compactRevision}`,
          );
      }
      assert.ok(kills >= 3, `killed the child ${kills} times`);
      const final = await runChild(dir, null);
      assert.ok(final.finished);
      while (modelIndex < TOTAL_OPS) applyToModel(model, ++modelIndex);
      assert.equal(await checkAgainstModel(dir, model, TOTAL_OPS), TOTAL_OPS);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
