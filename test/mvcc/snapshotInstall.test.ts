/**
 * Issue 10: a backend image received from the leader replaces a lagging member's state exactly. A store A
 * with history and compactions streams `backend.snapshot()` into a file; a store B holding other data
 * installs it (`MvccStore.installSnapshot`): afterwards B answers like A (ranges, revisions, compact
 * revision, HashKV, the whole-backend hash, consistent index), continues A's revisions, and reopens to the
 * same state. Run on the lmdb backend and on the memory backend.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type Backend, InvalidSnapshotFileError } from "../../src/backend/backend.js";
import { openLmdbBackend } from "../../src/backend/lmdb.js";
import { MemoryBackend } from "../../src/backend/memory.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { b, LIVE_LEASE, normalize, TestLeases } from "./harness.js";
import { applyOps, observe, writeImage } from "./snapshotSupport.js";

interface Kind {
  name: string;
  /** Opens backend `name` under `root` (a fresh one, or the one there before when it persists). */
  open(root: string, name: string): Promise<Backend>;
  persists: boolean;
}

/** Backends opened by the running test, closed by `withRoot` if the test failed before closing them. */
const opened: Backend[] = [];
const track = (backend: Backend): Backend => {
  opened.push(backend);
  return backend;
};

const KINDS: Kind[] = [
  {
    name: "lmdb",
    open: async (root, name) =>
      track(await openLmdbBackend({ dir: join(root, name), batchIntervalMs: 2, onFatal: assert.fail })),
    persists: true,
  },
  { name: "memory", open: async () => new MemoryBackend(), persists: false },
];

/** Waits (bounded) until the store's scheduled compaction is finished on disk. */
async function compactionFinished(store: MvccStore): Promise<void> {
  const meta = (name: string) => Buffer.from(store.backend.get("meta", b(name)) ?? []).toString("hex");
  for (let waitedMs = 0; meta("finishedCompactRev") !== meta("scheduledCompactRev"); waitedMs += 10) {
    assert.ok(waitedMs < COMPACTION_WAIT_MS_MAX, "the compaction finishes");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await store.backend.forceCommit();
}

const COMPACTION_WAIT_MS_MAX = 10_000;

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "etcd-ts-snapinstall-"));
  try {
    await fn(root);
  } finally {
    // A failed test left its writer threads running: without this the process would never exit.
    for (const backend of opened.splice(0)) await backend.close().catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

/** A's store: history with compactions (awaited), leased keys, and rows in other tables. */
async function buildLeader(kind: Kind, root: string): Promise<MvccStore> {
  const store = MvccStore.open({
    backend: await kind.open(root, "a"),
    leases: new TestLeases(),
    compactionBatchLimit: 7,
  });
  await Promise.allSettled(applyOps(store, 11, 0, 400));
  store.apply(401, 3, { type: "put", request: { key: b("leased"), value: b("v"), lease: LIVE_LEASE } });
  store.backend.put("lease", b("lease-7"), b("granted"));
  store.backend.put("members", b("member-a"), b("{}"));
  store.backend.seal(402, 3);
  await store.backend.forceCommit();
  return store;
}

/** B's store: another history, at a lower index, with rows A does not have. */
async function buildFollower(kind: Kind, root: string): Promise<{ store: MvccStore; leases: TestLeases }> {
  const leases = new TestLeases();
  const store = MvccStore.open({ backend: await kind.open(root, "b"), leases, compactionBatchLimit: 7 });
  await Promise.allSettled(applyOps(store, 23, 0, 150));
  store.backend.put("members", b("member-b"), b("{}"));
  store.backend.put("alarm", b("alarm-b"), b("NOSPACE"));
  store.backend.seal(151, 1);
  return { store, leases };
}

for (const kind of KINDS) {
  describe(`installing a backend snapshot (${kind.name})`, () => {
    it("replaces the follower's state with the leader's exactly, continues its revisions, and reopens the same", async () => {
      await withRoot(async (root) => {
        const a = await buildLeader(kind, root);
        const { store: follower, leases } = await buildFollower(kind, root);
        mkdirSync(join(root, "snap"));
        const path = join(root, "snap", `${(402).toString(16).padStart(16, "0")}.snap.db`);
        await writeImage(a.backend, path);
        assert.notDeepEqual(observe(follower), observe(a));

        let observedInside: unknown = null;
        await follower.installSnapshot(path, () => {
          observedInside = observe(follower);
        });
        const expected = observe(a);
        assert.deepEqual(observedInside, expected, "the state seen inside onRestored");
        assert.deepEqual(observe(follower), expected);
        assert.equal(follower.consistentIndex, 402);
        assert.equal(follower.backend.term, 3);
        assert.equal(existsSync(path), false, "the received file is consumed");
        assert.equal(follower.backend.defragmenting, false);
        // Tables other than the key table came along (and B's own rows are gone).
        assert.equal(Buffer.from(follower.backend.get("lease", b("lease-7")) ?? []).toString(), "granted");
        assert.equal(follower.backend.get("members", b("member-b")), undefined);
        assert.equal(follower.backend.get("alarm", b("alarm-b")), undefined);
        // Keys are attached to leases by setLeases, after the caller reloaded its lessor.
        const reloaded = new TestLeases();
        follower.setLeases(reloaded);
        const live = (a.range({ key: b("\0"), rangeEnd: b("\0") }).kvs ?? []).filter(
          (kv) => kv.lease === LIVE_LEASE,
        );
        assert.deepEqual(
          [...reloaded.attached.keys()].sort(),
          live.map((kv) => Buffer.from(kv.key).toString("latin1")).sort(),
        );
        assert.ok(live.length > 0, "the history has leased keys");
        assert.ok(leases.attached.size > 0, "B had leased keys of its own before");

        // Further writes continue A's revisions, and both stay identical.
        const revisionBefore = a.revision;
        await Promise.allSettled([...applyOps(a, 31, 402, 460), ...applyOps(follower, 31, 402, 460)]);
        assert.ok(a.revision > revisionBefore);
        assert.deepEqual(observe(follower), observe(a));

        if (kind.persists) {
          await follower.close();
          const reopened = MvccStore.open({ backend: await kind.open(root, "b"), leases: new TestLeases() });
          assert.deepEqual(observe(reopened), observe(a));
          await reopened.close();
        } else {
          await follower.close();
        }
        await a.close();
      });
    });

    it("resumes a compaction the image holds as scheduled but unfinished", async () => {
      await withRoot(async (root) => {
        const a = await buildLeader(kind, root);
        // A compaction of many revisions stopped after its first slices: the image holds it as scheduled.
        const target = a.revision - 2;
        assert.ok(target > a.compactRevision);
        const compaction = a.apply(403, 3, { type: "compaction", request: { revision: target } });
        assert.equal(compaction.type, "compaction");
        a.stop();
        await assert.rejects(compaction.type === "compaction" ? compaction.physicalDone : Promise.resolve());
        await a.backend.forceCommit();
        const leaderBackend = a.backend;
        const { store: follower } = await buildFollower(kind, root);
        const path = join(root, "image.snap.db");
        await writeImage(leaderBackend, path);
        await follower.installSnapshot(path);
        // The leader reopened on its own backend resumes the same compaction: both must agree.
        const leader = MvccStore.open({ backend: leaderBackend, leases: new TestLeases() });
        assert.equal(follower.compactRevision, leader.compactRevision);
        assert.equal(follower.compactRevision, target);
        assert.deepEqual(observe(follower, false), observe(leader, false));
        // Once both finished compacting, they still agree, now physically too.
        await Promise.all([compactionFinished(follower), compactionFinished(leader)]);
        assert.deepEqual(observe(follower), observe(leader));
        await follower.close();
        await leader.close();
      });
    });

    it("rejects a file that is not a backend image and changes nothing", async () => {
      await withRoot(async (root) => {
        const { store: follower } = await buildFollower(kind, root);
        const before = observe(follower);
        const path = join(root, "garbage.snap.db");
        writeFileSync(path, Buffer.alloc(3 * 4096, 0x5a));
        await assert.rejects(follower.installSnapshot(path), InvalidSnapshotFileError);
        assert.ok(existsSync(path));
        assert.deepEqual(observe(follower), before);
        // The follower still takes writes.
        follower.apply(152, 1, { type: "put", request: { key: b("after"), value: b("x") } });
        assert.equal(follower.revision, (before as { revision: number }).revision + 1);
        await follower.close();
      });
    });
  });
}

describe("installing a backend snapshot (lmdb, concurrency)", () => {
  const lmdb = KINDS[0] as Kind;

  it("serves reads throughout: each sees the old state or the new one, whole", async () => {
    await withRoot(async (root) => {
      const a = await buildLeader(lmdb, root);
      const { store: follower } = await buildFollower(lmdb, root);
      const path = join(root, "image.snap.db");
      await writeImage(a.backend, path);
      const oldState = normalize(follower.range({ key: b("\0"), rangeEnd: b("\0") }));
      const newState = normalize(a.range({ key: b("\0"), rangeEnd: b("\0") }));
      let reads = 0;
      let sawOld = 0;
      let sawNew = 0;
      let done = false;
      const reader = (async () => {
        while (!done) {
          const state = normalize(follower.range({ key: b("\0"), rangeEnd: b("\0") }));
          if (JSON.stringify(state) === JSON.stringify(oldState)) sawOld++;
          else {
            assert.deepEqual(state, newState, `read ${reads}`);
            sawNew++;
          }
          reads++;
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await follower.installSnapshot(path);
      done = true;
      await reader;
      assert.ok(sawOld > 0 && sawNew > 0, `reads before and after the swap (${sawOld} old, ${sawNew} new)`);
      await follower.close();
      await a.close();
    });
  });

  it("drops a compaction the follower was running, which must not touch the installed image", async () => {
    await withRoot(async (root) => {
      const a = await buildLeader(lmdb, root);
      const { store: follower } = await buildFollower(lmdb, root);
      const path = join(root, "image.snap.db");
      await writeImage(a.backend, path);
      const running = follower.apply(152, 1, {
        type: "compaction",
        request: { revision: follower.revision - 1 },
      });
      assert.equal(running.type, "compaction");
      const physicalDone = running.type === "compaction" ? running.physicalDone : Promise.resolve();
      await follower.installSnapshot(path);
      await assert.rejects(physicalDone, /restored from a snapshot/);
      // Give a stray slice of the dropped compaction time to run (it must not).
      await new Promise((resolve) => setTimeout(resolve, 50));
      await follower.backend.forceCommit();
      assert.deepEqual(observe(follower), observe(a));
      await follower.close();
      await a.close();
    });
  });
});
