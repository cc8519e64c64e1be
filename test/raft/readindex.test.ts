import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import { MessageType, StateRole } from "../../src/raft/types.js";
import { dec, enc, ids, Network, storageWith } from "./harness.js";

describe("raft ReadIndex", () => {
  it("answers a leader's read after one heartbeat round, at the commit index", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    const leader = net.node(1n);
    leader.rn.readIndex(enc("r1"));
    assert.equal(leader.readStates.length, 0, "not before a quorum confirms the leadership");
    net.stabilize();
    assert.equal(leader.readStates.length, 1);
    assert.equal(leader.readStates[0]!.index, leader.raft.log.committed);
    assert.equal(dec(leader.readStates[0]!.requestContext), "r1");
  });

  it("many concurrent reads share one heartbeat round", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    const before = net.delivered.length;
    for (let i = 0; i < 50; i++) net.node(1n).rn.readIndex(enc(`r${i}`));
    net.stabilize();
    const heartbeats = net.delivered.slice(before).filter((m) => m.type === MessageType.Heartbeat);
    assert.equal(heartbeats.length, 2, "one heartbeat per follower");
    assert.deepEqual(
      net.node(1n).readStates.map((r) => dec(r.requestContext)),
      Array.from({ length: 50 }, (_, i) => `r${i}`),
    );
  });

  it("a follower forwards its read to the leader and gets the leader's index", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    net.node(2n).rn.readIndex(enc("f"));
    net.stabilize();
    const rs = net.node(2n).readStates;
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.index, net.node(1n).raft.log.committed);
  });

  it("a new leader answers only after committing an entry of its own term", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    // Node 2 becomes leader, but its empty entry does not reach anyone yet.
    net.filters.push((m) => m.from === 2n && m.type === MessageType.App);
    net.campaign(2n);
    const leader = net.node(2n);
    assert.equal(leader.raft.state, StateRole.Leader);
    leader.rn.readIndex(enc("r"));
    for (let i = 0; i < 3; i++) {
      net.tick(2n);
      net.stabilize();
    }
    assert.equal(leader.readStates.length, 0, "held until the term's first commit");
    net.recover();
    net.tick(2n);
    net.stabilize();
    assert.equal(leader.readStates.length, 1);
    const termStart = leader.raft.log.lastIndex();
    assert.ok(leader.readStates[0]!.index >= termStart, "the read index covers the new term's entry");
  });

  it("a deposed leader cut off from the majority never answers, so it cannot serve a stale read", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    net.isolate(1n);
    net.campaign(2n);
    net.propose(2n, "b");
    assert.deepEqual(net.node(3n).appliedData(), ["a", "b"]);
    const old = net.node(1n);
    assert.equal(old.raft.state, StateRole.Leader, "still believes it leads");
    old.rn.readIndex(enc("stale?"));
    for (let i = 0; i < 5; i++) {
      net.tick(1n);
      net.stabilize();
    }
    assert.equal(old.readStates.length, 0);
    // The same bug the simulator catches: answering without the heartbeat round returns a stale index.
    const buggy = new Network(ids(1, 2, 3), { bugs: new Set(["readIndexWithoutHeartbeat"]) });
    buggy.campaign(1n);
    buggy.propose(1n, "a");
    buggy.isolate(1n);
    buggy.campaign(2n);
    buggy.propose(2n, "b");
    buggy.node(1n).rn.readIndex(enc("stale"));
    buggy.stabilize();
    assert.equal(buggy.node(1n).readStates.length, 1);
    assert.ok(buggy.node(1n).readStates[0]!.index < buggy.node(2n).raft.log.committed);
  });

  it("reads without a known leader fail with NoLeader", () => {
    const net = new Network(ids(1, 2, 3));
    assert.throws(
      () => net.node(1n).rn.readIndex(enc("x")),
      (err: unknown) => isRaftError(err, RaftErrorCode.NoLeader),
    );
  });

  it("a single voter answers at once", () => {
    const net = new Network(ids(1));
    net.campaign(1n);
    net.propose(1n, "a");
    net.node(1n).rn.readIndex(enc("x"));
    net.stabilize();
    assert.equal(net.node(1n).readStates.length, 1);
    assert.equal(net.node(1n).readStates[0]!.index, net.node(1n).raft.log.committed);
  });

  it("learners' heartbeat answers do not confirm a read", () => {
    const net = new Network([]);
    for (const id of ids(1, 2, 3)) net.add(id, storageWith({ voters: ids(1, 2), learners: ids(3) }));
    net.campaign(1n);
    net.propose(1n, "a");
    net.isolate(2n);
    net.node(1n).rn.readIndex(enc("x"));
    net.stabilize();
    assert.equal(net.node(1n).readStates.length, 0, "only the learner answered");
    net.recover();
    net.tick(1n);
    net.stabilize();
    assert.equal(net.node(1n).readStates.length, 1);
  });
});
