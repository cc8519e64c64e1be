import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/rawnode.js";
import { MemoryStorage, NO_LIMIT } from "../../src/raft/storage.js";
import { ProgressState } from "../../src/raft/tracker.js";
import type { Snapshot } from "../../src/raft/types.js";
import { EntryType, MessageType, newMessage, SnapshotStatus, StateRole } from "../../src/raft/types.js";
import { configFor, enc, ids, Network, storageWith } from "./harness.js";

function snapshotOf(index: number, term: number, voters: bigint[]): Snapshot {
  return {
    data: enc(`state@${index}`),
    metadata: {
      index,
      term,
      confState: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    },
  };
}

describe("raft snapshots", () => {
  it("sends a snapshot to a follower that needs compacted entries; the follower restores and catches up", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    for (let i = 0; i < 10; i++) net.propose(1n, `p${i}`);
    const leader = net.node(1n);
    const applied = leader.raft.log.applied;
    leader.storage.createSnapshot(
      applied,
      leader.lastConfState ?? leader.raft.tracker.config.toConfState(),
      enc("S"),
    );
    leader.storage.compact(applied);
    net.recover();
    net.propose(1n, "after");
    const follower = net.node(3n);
    assert.equal(follower.storage.snapshot().metadata.index, applied);
    assert.equal(follower.raft.log.committed, leader.raft.log.committed);
    assert.ok(net.delivered.some((m) => m.type === MessageType.Snap && m.to === 3n));
    // After the snapshot it received the rest of the log normally.
    assert.deepEqual(follower.appliedData(), ["after"]);
    assert.equal(leader.raft.status().progress?.get(3n)?.state, ProgressState.Replicate);
  });

  it("reports: a failed snapshot puts the follower back to probing; it is retried", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    for (let i = 0; i < 5; i++) net.propose(1n, `p${i}`);
    const leader = net.node(1n);
    const applied = leader.raft.log.applied;
    leader.storage.createSnapshot(applied, null, enc("S"));
    leader.storage.compact(applied);
    net.recover();
    net.ignore(MessageType.Snap);
    net.tick(1n);
    net.stabilize();
    const pr = () => leader.raft.status().progress!.get(3n)!;
    assert.equal(pr().state, ProgressState.Snapshot);
    assert.equal(pr().pendingSnapshot, applied);
    leader.rn.reportSnapshot(3n, SnapshotStatus.Failure);
    assert.equal(pr().state, ProgressState.Probe);
    assert.equal(pr().pendingSnapshot, 0);
    net.recover();
    for (let i = 0; i < 3; i++) {
      net.tick(1n);
      net.stabilize();
    }
    assert.equal(net.node(3n).raft.log.committed, leader.raft.log.committed);
  });

  it("ignores a snapshot older than its commit index", () => {
    const storage = storageWith({ voters: ids(1, 2) });
    storage.append([
      { term: 1, index: 1, type: EntryType.Normal, data: enc("a") },
      { term: 1, index: 2, type: EntryType.Normal, data: enc("b") },
    ]);
    storage.setHardState({ term: 1, vote: 0n, commit: 2 });
    const rn = new RawNode(configFor(2n, storage));
    const m = newMessage(MessageType.Snap, 2n, 1n, 1);
    m.snapshot = snapshotOf(1, 1, ids(1, 2));
    rn.step(m);
    const rd = rn.ready();
    assert.equal(rd.snapshot, null);
    const resp = rd.messagesAfterPersist.find((x) => x.type === MessageType.AppResp);
    assert.equal(resp?.index, 2, "answers with its commit index");
  });

  it("only fast-forwards its commit when it already holds the snapshot's last entry", () => {
    const storage = storageWith({ voters: ids(1, 2) });
    storage.append([
      { term: 1, index: 1, type: EntryType.Normal, data: enc("a") },
      { term: 1, index: 2, type: EntryType.Normal, data: enc("b") },
    ]);
    const rn = new RawNode(configFor(2n, storage));
    const m = newMessage(MessageType.Snap, 2n, 1n, 1);
    m.snapshot = snapshotOf(2, 1, ids(1, 2));
    rn.step(m);
    assert.equal(rn.raft.log.committed, 2);
    assert.equal(rn.ready().snapshot, null);
  });

  it("ignores a snapshot whose configuration does not name it", () => {
    const rn = new RawNode(configFor(2n, storageWith({ voters: ids(1, 2) })));
    const m = newMessage(MessageType.Snap, 2n, 1n, 1);
    m.snapshot = snapshotOf(10, 1, ids(1, 3));
    rn.step(m);
    assert.equal(rn.raft.log.committed, 0);
    assert.equal(rn.ready().snapshot, null);
  });

  it("declines a snapshot while committed entries handed out are not yet applied", () => {
    const storage = storageWith({ voters: ids(1, 2) });
    const rn = new RawNode(configFor(2n, storage));
    const app = newMessage(MessageType.App, 2n, 1n, 1);
    app.entries = [{ term: 1, index: 1, type: EntryType.Normal, data: enc("a") }];
    app.commit = 1;
    rn.step(app);
    const rd = rn.ready();
    assert.equal(rd.committedEntries.length, 1);
    // A snapshot arrives before advance(): raft must not replace the configuration under the application.
    const snap = newMessage(MessageType.Snap, 2n, 1n, 1);
    snap.snapshot = snapshotOf(5, 1, ids(1, 2));
    rn.step(snap);
    storage.append(rd.entries);
    rn.advance(rd);
    const rd2 = rn.ready();
    assert.equal(rd2.snapshot, null);
    rn.advance(rd2);
    // Once applied, the same snapshot is installed.
    rn.step(snap);
    const rd3 = rn.ready();
    assert.equal(rd3.snapshot?.metadata.index, 5);
    storage.applySnapshot(rd3.snapshot!);
    rn.advance(rd3);
    assert.equal(rn.raft.log.applied, 5);
    assert.equal(rn.raft.log.committed, 5);
  });

  it("restarts from storage holding a snapshot and entries", () => {
    const storage = new MemoryStorage();
    storage.applySnapshot(snapshotOf(10, 3, ids(1, 2, 3)));
    storage.append([
      { term: 3, index: 11, type: EntryType.Normal, data: enc("x") },
      { term: 4, index: 12, type: EntryType.Normal, data: enc("y") },
    ]);
    storage.setHardState({ term: 4, vote: 2n, commit: 12 });
    const rn = new RawNode({ ...configFor(1n, storage), applied: 10 });
    assert.equal(rn.raft.term, 4);
    assert.equal(rn.raft.vote, 2n);
    assert.deepEqual(rn.status().config.voters, ids(1, 2, 3));
    const rd = rn.ready();
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [11, 12],
      "entries above the applied snapshot are handed out again",
    );
    assert.equal(rd.entries.length, 0);
    assert.equal(rd.hardState, null, "nothing new to persist");
  });

  it("a snapshot makes the node unpromotable until it is persisted", () => {
    const storage = storageWith({ voters: ids(1, 2) });
    const rn = new RawNode(configFor(2n, storage));
    const m = newMessage(MessageType.Snap, 2n, 1n, 1);
    m.snapshot = snapshotOf(5, 1, ids(1, 2));
    rn.step(m);
    assert.equal(rn.raft.promotable(), false);
    for (let i = 0; i < 50; i++) rn.tick();
    assert.equal(rn.raft.state, StateRole.Follower);
    const rd = rn.ready();
    storage.applySnapshot(rd.snapshot!);
    rn.advance(rd);
    assert.equal(rn.raft.promotable(), true);
  });
});

describe("MemoryStorage", () => {
  const entries = (from: number, to: number, term: number) =>
    Array.from({ length: to - from + 1 }, (_, k) => ({
      term,
      index: from + k,
      type: EntryType.Normal,
      data: new Uint8Array(100),
    }));

  it("appends, truncates a conflicting suffix, and skips entries below the first index", () => {
    const s = new MemoryStorage();
    s.append(entries(1, 5, 1));
    s.append(entries(4, 6, 2));
    assert.equal(s.lastIndex(), 6);
    assert.equal(s.term(3), 1);
    assert.equal(s.term(4), 2);
    s.createSnapshot(3, null, enc("s"));
    s.compact(3);
    assert.equal(s.firstIndex(), 4);
    s.append(entries(2, 7, 2));
    assert.equal(s.term(3), 1, "the compaction point is kept");
    assert.equal(s.lastIndex(), 7);
    assert.throws(() => s.append(entries(9, 9, 2)), /gap/);
  });

  it("limits entries by bytes but always returns at least one", () => {
    const s = new MemoryStorage();
    s.append(entries(1, 10, 1));
    assert.equal(s.entries(1, 11, NO_LIMIT).length, 10);
    assert.equal(s.entries(1, 11, 1).length, 1);
    assert.equal(s.entries(1, 11, 2 * 116).length, 2);
    assert.equal(s.entries(3, 5, NO_LIMIT)[0]!.index, 3);
  });

  it("reports compacted and unavailable indexes with typed errors", () => {
    const s = new MemoryStorage();
    s.append(entries(1, 5, 1));
    s.createSnapshot(3, null, enc("s"));
    s.compact(3);
    assert.throws(
      () => s.term(2),
      (e: unknown) => isRaftError(e, RaftErrorCode.Compacted),
    );
    assert.throws(
      () => s.term(6),
      (e: unknown) => isRaftError(e, RaftErrorCode.Unavailable),
    );
    assert.throws(
      () => s.entries(3, 5, NO_LIMIT),
      (e: unknown) => isRaftError(e, RaftErrorCode.Compacted),
    );
    assert.throws(
      () => s.compact(2),
      (e: unknown) => isRaftError(e, RaftErrorCode.Compacted),
    );
    assert.throws(
      () => s.createSnapshot(2, null, enc("old")),
      (e: unknown) => isRaftError(e, RaftErrorCode.SnapshotOutOfDate),
    );
    assert.throws(
      () => s.applySnapshot(snapshotOf(2, 1, ids(1))),
      (e: unknown) => isRaftError(e, RaftErrorCode.SnapshotOutOfDate),
    );
    assert.equal(s.term(3), 1);
  });
});
