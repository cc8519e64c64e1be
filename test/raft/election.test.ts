import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/rawnode.js";
import { MessageType, NONE, newMessage, StateRole } from "../../src/raft/types.js";
import { configFor, ids, Network, storageWith } from "./harness.js";

describe("raft elections", () => {
  it("elects the campaigning node in a healthy 3-node cluster", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
    assert.equal(net.node(1n).raft.term, 1);
    for (const id of ids(2, 3)) {
      assert.equal(net.node(id).raft.state, StateRole.Follower);
      assert.equal(net.node(id).raft.lead, 1n);
      assert.equal(net.node(id).raft.term, 1);
    }
  });

  it("elects with one of three nodes down, not with two", () => {
    const net = new Network(ids(1, 2, 3));
    net.isolate(3n);
    net.campaign(1n);
    assert.equal(net.node(1n).raft.state, StateRole.Leader);

    const net2 = new Network(ids(1, 2, 3));
    net2.isolate(2n);
    net2.isolate(3n);
    net2.campaign(1n);
    assert.equal(net2.node(1n).raft.state, StateRole.Candidate);
  });

  it("a single voter becomes leader once its vote is persisted", () => {
    const net = new Network(ids(1));
    net.node(1n).rn.campaign();
    // Before the Ready is persisted and advanced, the self-vote does not count.
    assert.equal(net.node(1n).raft.state, StateRole.Candidate);
    net.stabilize();
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
  });

  it("a single voter with PreVote becomes leader", () => {
    const net = new Network(ids(1), { preVote: true });
    net.campaign(1n);
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
    assert.equal(net.node(1n).raft.term, 1);
  });

  it("votes at most once per term and only for an up-to-date log", () => {
    // Table: (our last term, our last index, their last term, their last index, our vote) -> granted?
    const cases: Array<[number, number, number, number, bigint, boolean]> = [
      [1, 2, 1, 2, NONE, true], // same log
      [1, 2, 1, 3, NONE, true], // longer, same term
      [1, 2, 1, 1, NONE, false], // shorter, same term
      [2, 2, 1, 5, NONE, false], // older last term, even if longer
      [1, 5, 2, 1, NONE, true], // newer last term, even if shorter
      [1, 2, 1, 2, 2n, true], // repeat of the vote we cast
      [1, 2, 1, 2, 3n, false], // already voted for someone else
    ];
    for (const [ourTerm, ourIndex, theirTerm, theirIndex, vote, want] of cases) {
      const storage = storageWith({ voters: ids(1, 2, 3) });
      const entries = [];
      for (let i = 1; i <= ourIndex; i++)
        entries.push({
          term: i === ourIndex ? ourTerm : 1,
          index: i,
          type: 0 as const,
          data: new Uint8Array(),
        });
      storage.append(entries);
      storage.setHardState({ term: 5, vote, commit: 0 });
      const rn = new RawNode(configFor(1n, storage));
      const m = newMessage(MessageType.Vote, 1n, 2n, 5);
      m.index = theirIndex;
      m.logTerm = theirTerm;
      rn.step(m);
      const rd = rn.ready();
      const resp = rd.messagesAfterPersist.find((x) => x.type === MessageType.VoteResp);
      assert.ok(resp, "a vote answer is produced");
      assert.equal(!resp.reject, want, `case ${[ourTerm, ourIndex, theirTerm, theirIndex, vote].join(",")}`);
      // Vote answers wait for persistence; nothing vote-related goes out early.
      assert.equal(rd.messages.filter((x) => x.type === MessageType.VoteResp).length, 0);
      if (want) assert.equal(rn.raft.vote, 2n);
    }
  });

  it("dueling candidates: the one with the shorter log cannot win", () => {
    const net = new Network(ids(1, 2, 3));
    net.cut(1n, 3n);
    net.campaign(1n);
    net.campaign(3n);
    // 1 won with 2's vote; 3 got rejected by 2 (voted), and cannot reach 1.
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
    assert.equal(net.node(3n).raft.state, StateRole.Candidate);
    net.recover();
    // 3's higher term disrupts the leader (no PreVote/CheckQuorum here), but with a shorter log 3 cannot win.
    net.campaign(3n);
    assert.notEqual(net.node(3n).raft.state, StateRole.Leader);
    assert.equal(net.node(1n).raft.log.lastIndex(), net.node(2n).raft.log.lastIndex());
  });

  it("PreVote: a partitioned node that rejoins does not disrupt a stable leader", () => {
    const net = new Network(ids(1, 2, 3), { preVote: true });
    net.campaign(1n);
    net.propose(1n, "a");
    const term = net.node(1n).raft.term;
    net.isolate(3n);
    for (let i = 0; i < 100; i++) {
      net.tick(3n);
      net.stabilize();
    }
    // Its pre-votes failed, so its term never moved.
    assert.equal(net.node(3n).raft.term, term);
    assert.equal(net.node(3n).raft.state, StateRole.PreCandidate);
    net.recover();
    net.propose(1n, "b");
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
    assert.equal(net.node(1n).raft.term, term);
    assert.deepEqual(net.node(3n).appliedData(), ["a", "b"]);
  });

  it("without PreVote the same rejoin does disrupt (contrast)", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    const term = net.node(1n).raft.term;
    net.isolate(3n);
    for (let i = 0; i < 100; i++) {
      net.tick(3n);
      net.stabilize();
    }
    assert.ok(net.node(3n).raft.term > term);
    net.recover();
    net.campaign(3n);
    assert.ok(net.node(1n).raft.term > term, "the leader was forced into a new term");
  });

  it("CheckQuorum: a leader that hears from no quorum within an election timeout steps down", () => {
    const net = new Network(ids(1, 2, 3), { checkQuorum: true });
    net.campaign(1n);
    net.isolate(1n);
    const leader = net.node(1n);
    for (let i = 0; i < 10; i++) leader.rn.tick();
    // First check: the followers were active in the last interval (they acked the election).
    assert.equal(leader.raft.state, StateRole.Leader);
    for (let i = 0; i < 10; i++) leader.rn.tick();
    assert.equal(leader.raft.state, StateRole.Follower);
  });

  it("CheckQuorum: a leader with an active quorum stays", () => {
    const net = new Network(ids(1, 2, 3), { checkQuorum: true });
    net.campaign(1n);
    net.isolate(3n);
    for (let i = 0; i < 50; i++) {
      net.tick(1n);
      net.stabilize();
    }
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
  });

  it("CheckQuorum: followers ignore vote requests while the leader lease holds", () => {
    const net = new Network(ids(1, 2, 3), { checkQuorum: true });
    net.campaign(1n);
    // Node 3 campaigns without hearing of any problem; 2 still hears from 1, so it ignores the request.
    net.campaign(3n);
    assert.equal(net.node(1n).raft.state, StateRole.Leader);
    assert.equal(net.node(2n).raft.term, 1);
  });

  it("randomized election timeouts lie in [electionTick, 2 * electionTick)", () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const rn = new RawNode(
        configFor(1n, storageWith({ voters: ids(1, 2, 3) }), { seed, electionTick: 10 }),
      );
      const t = rn.raft.randomizedElectionTimeout;
      assert.ok(t >= 10 && t < 20, `timeout ${t}`);
      seen.add(t);
    }
    assert.ok(seen.size > 5, "timeouts are spread");
  });

  it("a follower campaigns after its randomized election timeout, not before", () => {
    const net = new Network(ids(1, 2, 3));
    const node = net.node(1n);
    const timeout = node.raft.randomizedElectionTimeout;
    for (let i = 0; i < timeout - 1; i++) node.rn.tick();
    assert.equal(node.raft.state, StateRole.Follower);
    node.rn.tick();
    assert.equal(node.raft.state, StateRole.Candidate);
  });

  it("a learner never campaigns", () => {
    const storage = storageWith({ voters: ids(1, 2), learners: ids(3) });
    const rn = new RawNode(configFor(3n, storage));
    for (let i = 0; i < 100; i++) rn.tick();
    assert.equal(rn.raft.state, StateRole.Follower);
    rn.campaign();
    assert.equal(rn.raft.state, StateRole.Follower);
  });

  it("proposals without a leader fail with a typed NoLeader error", () => {
    const net = new Network(ids(1, 2, 3));
    assert.throws(
      () => net.node(1n).rn.propose(new Uint8Array([1])),
      (err: unknown) => isRaftError(err, RaftErrorCode.NoLeader),
    );
    net.isolate(1n);
    net.node(1n).rn.campaign();
    assert.equal(net.node(1n).raft.state, StateRole.Candidate);
    assert.throws(
      () => net.node(1n).rn.propose(new Uint8Array([1])),
      (err: unknown) => isRaftError(err, RaftErrorCode.NoLeader),
    );
  });

  it("rejects local message types and unknown responders arriving from the network", () => {
    const rn = new RawNode(configFor(1n, storageWith({ voters: ids(1, 2, 3) })));
    assert.throws(
      () => rn.step(newMessage(MessageType.Hup, 1n, 2n, 0)),
      (err: unknown) => isRaftError(err, RaftErrorCode.StepLocalMessage),
    );
    assert.throws(
      () => rn.step(newMessage(MessageType.AppResp, 1n, 9n, 1)),
      (err: unknown) => isRaftError(err, RaftErrorCode.StepPeerNotFound),
    );
    const bad = newMessage(MessageType.App, 1n, 2n, 1);
    bad.index = -1;
    assert.throws(
      () => rn.step(bad),
      (err: unknown) => isRaftError(err, RaftErrorCode.InvalidMessage),
    );
  });
});
