import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RawNode } from "../../src/raft/rawnode.js";
import type { Message } from "../../src/raft/types.js";
import { EntryType, MessageType, newMessage, StateRole } from "../../src/raft/types.js";
import { configFor, enc, ids, Network, storageWith } from "./harness.js";

describe("the Ready contract", () => {
  it("a leader's appends may go out before its own fsync; acks and votes only after persisting", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    const leader = net.node(1n).rn;
    leader.propose(enc("a"));
    const rd = leader.ready();
    assert.equal(rd.entries.length, 1);
    assert.ok(rd.mustSync);
    assert.ok(rd.messages.every((m) => m.type === MessageType.App));
    assert.equal(rd.messages.length, 2);
    assert.equal(rd.messagesAfterPersist.length, 0, "its own ack is stepped on advance(), never sent");
    // A follower's answer is an acknowledgement: it waits for persistence.
    const follower = net.node(2n).rn;
    follower.step(rd.messages.find((m) => m.to === 2n)!);
    const frd = follower.ready();
    assert.equal(frd.messages.length, 0);
    assert.deepEqual(
      frd.messagesAfterPersist.map((m) => m.type),
      [MessageType.AppResp],
    );
    leader.advance(rd);
    follower.advance(frd);
  });

  it("a leader counts its own entries only once they are persisted (thesis §10.2.1)", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    const leader = net.node(1n);
    const commit = leader.raft.log.committed;
    leader.rn.propose(enc("a"));
    const rd = leader.rn.ready(); // taken, not yet persisted
    const toTwo = rd.messages.find((m) => m.to === 2n)!;
    net.node(2n).rn.step(toTwo);
    const ack = net
      .node(2n)
      .handleReady()
      .find((m) => m.type === MessageType.AppResp)!;
    leader.rn.step(ack);
    assert.equal(leader.raft.log.committed, commit, "follower 2 alone is not a quorum of 3");
    leader.storage.append(rd.entries);
    leader.rn.advance(rd);
    assert.equal(leader.raft.log.committed, commit + 1, "now the leader's own copy counts");
  });

  it("a candidate's self-vote counts only once persisted, and a stale one is ignored", () => {
    const storage = storageWith({ voters: ids(1, 2, 3) });
    const rn = new RawNode(configFor(1n, storage));
    rn.campaign();
    const rd = rn.ready();
    assert.ok(rd.hardState !== null && rd.hardState.vote === 1n && rd.mustSync);
    // Another node's grant arrives before our own vote is persisted: one vote of three.
    rn.step(newMessage(MessageType.VoteResp, 1n, 2n, 1));
    assert.equal(rn.raft.state, StateRole.Candidate);
    storage.setHardState(rd.hardState!);
    rn.advance(rd);
    assert.equal(rn.raft.state, StateRole.Leader);
  });

  it("answers a vote request from an older term with a rejection carrying its term", () => {
    const storage = storageWith({ voters: ids(1, 2, 3) });
    storage.setHardState({ term: 5, vote: 0n, commit: 0 });
    const rn = new RawNode(configFor(1n, storage));
    rn.step(newMessage(MessageType.Vote, 1n, 2n, 3));
    const resp = rn.ready().messagesAfterPersist.find((m) => m.type === MessageType.VoteResp);
    assert.ok(resp?.reject);
    assert.equal(resp?.term, 5);
    // The stale candidate adopts the term and steps down.
    const cand = new RawNode(configFor(2n, storageWith({ voters: ids(1, 2, 3) })));
    cand.campaign();
    cand.advance(cand.ready());
    const stale: Message = { ...resp!, to: 2n };
    cand.step(stale);
    assert.equal(cand.raft.term, 5);
    assert.equal(cand.raft.state, StateRole.Follower);
  });

  it("steps between ready() and advance(): entries replaced meanwhile are not marked stable", () => {
    const storage = storageWith({ voters: ids(1, 2) });
    const rn = new RawNode(configFor(2n, storage));
    const app = newMessage(MessageType.App, 2n, 1n, 1);
    app.entries = [
      { term: 1, index: 1, type: EntryType.Normal, data: enc("a") },
      { term: 1, index: 2, type: EntryType.Normal, data: enc("b") },
    ];
    rn.step(app);
    const rd = rn.ready();
    // A new leader (term 2) overwrites index 2 before the first write finished.
    const app2 = newMessage(MessageType.App, 2n, 3n, 2);
    app2.index = 1;
    app2.logTerm = 1;
    app2.entries = [{ term: 2, index: 2, type: EntryType.Normal, data: enc("B") }];
    rn.step(app2);
    storage.append(rd.entries);
    rn.advance(rd);
    const rd2 = rn.ready();
    assert.deepEqual(
      rd2.entries.map((e) => [e.index, e.term]),
      [[2, 2]],
      "the replacement is handed out to be persisted",
    );
    storage.append(rd2.entries);
    rn.advance(rd2);
    assert.equal(rn.raft.log.unstable.entries.length, 0);
    assert.equal(storage.term(2), 2);
  });

  it("ready() twice without advance() is a programming error", () => {
    const rn = new RawNode(configFor(1n, storageWith({ voters: ids(1) })));
    rn.campaign();
    rn.ready();
    assert.throws(() => rn.ready(), /before advance/);
  });

  it("hasReady is false when there is nothing to do, and mustSync is false for commit-only changes", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    const follower = net.node(2n).rn;
    assert.equal(follower.hasReady(), false);
    const hb = newMessage(MessageType.Heartbeat, 2n, 1n, 1);
    hb.commit = net.node(1n).raft.log.committed;
    follower.step(hb);
    const rd = follower.ready();
    assert.equal(rd.mustSync, false);
    follower.advance(rd);
  });
});

describe("the Ready contract: a leader's term is durable before it speaks as leader", () => {
  it("holds a new leader's appends until the term that elected it is persisted", () => {
    // Node 2 campaigns for term 2 and its vote requests go out before term 2 is on disk; it crashes.
    const voters = ids(1, 2, 3, 4, 5);
    const storage = storageWith({ voters });
    storage.setHardState({ term: 1, vote: 0n, commit: 0 });
    const first = new RawNode(configFor(2n, storage));
    first.campaign();
    const lost = first.ready();
    assert.equal(lost.hardState?.term, 2);
    assert.ok(lost.messages.every((m) => m.type === MessageType.Vote && m.term === 2));
    // Restarted from disk (term 1), it campaigns for term 2 again; the grants for its first campaign
    // arrive before it takes its next Ready, and make it leader.
    const second = new RawNode(configFor(2n, storage));
    second.campaign();
    for (const from of ids(3, 4, 5)) second.step(newMessage(MessageType.VoteResp, 2n, from, 2));
    assert.equal(second.raft.state, StateRole.Leader);
    second.propose(enc("w"));
    const rd = second.ready();
    assert.equal(rd.hardState?.term, 2);
    // Had the appends left now, a crash would bring it back at term 1, free to lead term 2 once more with
    // different entries under the same (index, term). They wait for term 2 to be durable.
    for (const m of rd.messages) {
      assert.ok(
        m.type === MessageType.Vote,
        `only vote requests may precede the term's fsync, got ${m.type}`,
      );
    }
    assert.ok(rd.messagesAfterPersist.some((m) => m.type === MessageType.App));
  });
});
