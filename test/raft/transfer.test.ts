import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import { MessageType, StateRole } from "../../src/raft/types.js";
import { enc, ids, Network, storageWith } from "./harness.js";

describe("raft leadership transfer", () => {
  it("hands leadership to an up-to-date follower with TimeoutNow", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    net.node(1n).rn.transferLeader(2n);
    net.stabilize();
    assert.equal(net.node(2n).raft.state, StateRole.Leader);
    assert.equal(net.node(1n).raft.state, StateRole.Follower);
    assert.ok(net.delivered.some((m) => m.type === MessageType.TimeoutNow && m.to === 2n));
    net.propose(2n, "b");
    for (const id of ids(1, 2, 3)) assert.deepEqual(net.node(id).appliedData(), ["a", "b"]);
  });

  it("catches a slow follower up first, then transfers", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    for (let i = 0; i < 5; i++) net.propose(1n, `p${i}`);
    net.recover();
    net.node(1n).rn.transferLeader(3n);
    net.stabilize();
    assert.equal(net.node(3n).raft.state, StateRole.Leader);
    assert.equal(net.node(3n).appliedData().length, 5);
  });

  it("refuses proposals while a transfer is in progress, and accepts them again after it times out", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    const leader = net.node(1n);
    leader.rn.transferLeader(3n);
    assert.equal(leader.raft.leadTransferee, 3n);
    assert.throws(
      () => leader.rn.propose(enc("x")),
      (err: unknown) => isRaftError(err, RaftErrorCode.ProposalDropped),
    );
    for (let i = 0; i < leader.raft.electionTimeout; i++) {
      net.tick(1n);
      net.stabilize();
    }
    assert.equal(leader.raft.leadTransferee, 0n, "aborted after an election timeout");
    assert.equal(leader.raft.state, StateRole.Leader);
    leader.rn.propose(enc("x"));
  });

  it("ignores transfers to itself, to learners and to non-members", () => {
    const net = new Network([]);
    for (const id of ids(1, 2, 3)) net.add(id, storageWith({ voters: ids(1, 2), learners: ids(3) }));
    net.campaign(1n);
    const leader = net.node(1n);
    for (const target of [1n, 3n, 9n]) {
      leader.rn.transferLeader(target);
      net.stabilize();
      assert.equal(leader.raft.state, StateRole.Leader);
      assert.equal(leader.raft.leadTransferee, 0n);
    }
  });

  it("a follower forwards a transfer request to the leader", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.node(3n).rn.transferLeader(3n);
    net.stabilize();
    assert.equal(net.node(3n).raft.state, StateRole.Leader);
  });

  it("with CheckQuorum the transferee's vote request overrides the followers' leader lease", () => {
    const net = new Network(ids(1, 2, 3), { checkQuorum: true, preVote: true });
    net.campaign(1n);
    net.propose(1n, "a");
    net.node(1n).rn.transferLeader(2n);
    net.stabilize();
    assert.equal(net.node(2n).raft.state, StateRole.Leader);
    assert.equal(net.node(2n).raft.term, 2, "a transfer skips pre-vote and moves one term");
  });

  it("a second request to the same node is ignored; to another node it restarts the transfer", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(2n);
    net.isolate(3n);
    const leader = net.node(1n);
    leader.rn.transferLeader(2n);
    leader.rn.transferLeader(2n);
    assert.equal(leader.raft.leadTransferee, 2n);
    leader.rn.transferLeader(3n);
    assert.equal(leader.raft.leadTransferee, 3n);
  });
});
