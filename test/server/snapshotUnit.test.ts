import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../src/log/logger.js";
import { type ConfState, EntryType, MemoryStorage } from "../../src/raft/index.js";
import {
  DEFAULT_SNAPSHOT_COUNT,
  decodeSnapshotData,
  RaftSnapshots,
  type SnapshotStep,
} from "../../src/server/snapshot.js";

/**
 * RaftSnapshots against in-memory doubles whose promises the test settles by hand: the rules that the
 * end-to-end test (snapshot.test.ts) cannot pin down by timing. One snapshot at a time; the order of the
 * persistence steps; a newer snapshot installed meanwhile wins; a failed step is fatal and ends snapshots.
 */

interface Gate {
  promise: Promise<void>;
  open(): void;
  fail(error: Error): void;
}

function gate(): Gate {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const CONF: ConfState = {
  voters: [1n],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};
const MEMBER = { id: 1n, name: "m1", peerUrls: ["http://127.0.0.1:2380"], clientUrls: [], isLearner: false };

function harness(options: { snapshotCount: number; catchUpEntries: number; entries: number }) {
  const storage = new MemoryStorage();
  const entries = [];
  for (let i = 1; i <= options.entries; i++)
    entries.push({ term: 2, index: i, type: EntryType.Normal, data: new Uint8Array(0) });
  storage.append(entries);
  const events: string[] = [];
  const gates: Gate[] = [];
  const fatal: unknown[] = [];
  let durable = 0;
  let sealed = 0;
  const lines: Array<{ msg: string; [field: string]: unknown }> = [];
  const logger = createLogger({
    destination: { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
  });
  /** Every async step waits for the test to open its gate. */
  const step = (name: string): Promise<void> => {
    events.push(name);
    const g = gate();
    gates.push(g);
    return g.promise;
  };
  const snapshots = new RaftSnapshots({
    memberId: 1n,
    snapshotCount: options.snapshotCount,
    catchUpEntries: options.catchUpEntries,
    storage,
    logger,
    onFatal: (error) => fatal.push(error),
    backend: {
      forceCommit: async () => {
        await step("forceCommit");
        durable = sealed;
      },
      durableIndex: () => durable,
    },
    snapshotter: {
      save: async (snapshot) => {
        await step(`save ${snapshot.index}/${snapshot.term}`);
        return "name";
      },
    },
    wal: {
      saveSnapshotMarker: (marker) => step(`marker ${marker.index}/${marker.term}`),
      releaseTo: async (index) => {
        await step(`release ${index}`);
        return 0;
      },
    },
    afterStep: (name: SnapshotStep, index: number) => events.push(`${name}@${index}`),
  });
  const trigger = (applied: number): void => {
    sealed = applied;
    snapshots.maybeTrigger(applied, () => ({ index: applied, confState: CONF, members: [MEMBER] }));
  };
  /** Opens gates one by one until the running snapshot is done. */
  const finish = async (): Promise<void> => {
    for (let opened = 0; snapshots.running; opened++) {
      assert.ok(opened < 20, "a snapshot has fewer than 20 steps");
      await new Promise((resolve) => setImmediate(resolve));
      gates.shift()?.open();
    }
  };
  return { storage, events, gates, fatal, lines, snapshots, trigger, finish };
}

describe("RaftSnapshots", () => {
  it("persists in order: backend, raft storage, file, WAL marker, WAL release, compaction", async () => {
    const h = harness({ snapshotCount: 10, catchUpEntries: 4, entries: 30 });
    h.trigger(10);
    assert.equal(h.snapshots.running, false, "not due at exactly snapshotCount");
    h.trigger(11);
    assert.equal(h.snapshots.running, true);
    await h.finish();
    assert.deepEqual(h.events, [
      "forceCommit",
      "backendCommitted@11",
      "created@11",
      "save 11/2",
      "fileSaved@11",
      "marker 11/2",
      "markerSaved@11",
      "release 11",
      "walReleased@11",
      "compacted@11",
    ]);
    assert.equal(h.storage.snapshot().metadata.index, 11);
    assert.deepEqual(h.storage.snapshot().metadata.confState, CONF);
    assert.deepEqual(decodeSnapshotData(h.storage.snapshot().data), [MEMBER]);
    assert.equal(h.storage.firstIndex(), 11 - 4 + 1);
    assert.deepEqual(
      h.lines.map((line) => line.msg),
      ["triggering snapshot", "saved snapshot", "compacted Raft logs"],
    );
    assert.equal(h.lines[0]?.["local-member-applied-index"], 11);
    assert.equal(h.lines[2]?.["compact-index"], 7);
    assert.deepEqual(h.fatal, []);
  });

  it("runs one snapshot at a time; a due one waits for the next trigger after it", async () => {
    const h = harness({ snapshotCount: 5, catchUpEntries: 100, entries: 30 });
    h.trigger(6);
    h.trigger(20);
    h.trigger(25);
    assert.equal(h.events.filter((e) => e === "forceCommit").length, 1, "no second snapshot while one runs");
    await h.finish();
    assert.equal(h.snapshots.snapshotIndex, 6);
    // catchUpEntries above the index: compact(1) on a log whose first entry is 1 drops only entry 1.
    assert.equal(h.storage.firstIndex(), 2);
    h.trigger(26);
    assert.equal(h.snapshots.running, true);
    await h.finish();
    assert.equal(h.snapshots.snapshotIndex, 26);
    assert.equal(h.storage.snapshot().metadata.index, 26);
  });

  it("skips a snapshot when raft installed a newer one meanwhile", async () => {
    const h = harness({ snapshotCount: 5, catchUpEntries: 2, entries: 30 });
    h.trigger(10);
    // While the backend commits, a snapshot from the leader at 20 replaces the log.
    h.storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 20, term: 3, confState: CONF } });
    await h.finish();
    assert.deepEqual(h.events, ["forceCommit", "backendCommitted@10"]);
    assert.equal(h.storage.snapshot().metadata.index, 20);
    assert.deepEqual(h.fatal, []);
  });

  it("a failed step is fatal, and no snapshot starts after it", async () => {
    const h = harness({ snapshotCount: 5, catchUpEntries: 2, entries: 30 });
    h.trigger(10);
    await new Promise((resolve) => setImmediate(resolve));
    h.gates.shift()?.open(); // forceCommit
    await new Promise((resolve) => setImmediate(resolve));
    h.gates.shift()?.fail(new Error("disk full")); // the snapshot file
    await h.snapshots.idle();
    assert.equal(h.fatal.length, 1);
    assert.match(String(h.fatal[0]), /disk full/);
    assert.ok(!h.events.some((e) => e.startsWith("marker")), "no WAL marker for a file that was not saved");
    h.trigger(30);
    assert.equal(h.snapshots.running, false);
  });

  it("snapshot-count 0 means etcd's default", () => {
    const h = harness({ snapshotCount: 0, catchUpEntries: 2, entries: 30 });
    assert.equal(h.lines[0]?.msg, "updating snapshot-count to default");
    assert.equal(h.lines[0]?.["updated-snapshot-count"], DEFAULT_SNAPSHOT_COUNT);
    h.trigger(30);
    assert.equal(h.snapshots.running, false);
  });
});
