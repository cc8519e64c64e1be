import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeConfChangeEntry } from "../../src/raft/codec.js";
import { Changer, restoreConfig } from "../../src/raft/confchange.js";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import { RawNode } from "../../src/raft/rawnode.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { ProgressTracker } from "../../src/raft/tracker.js";
import type { ConfChangeSingle, ConfState } from "../../src/raft/types.js";
import {
  ConfChangeTransition,
  ConfChangeType,
  EMPTY_BYTES,
  EntryType,
  MessageType,
  newMessage,
  StateRole,
} from "../../src/raft/types.js";
import { configFor, enc, ids, Network, type Network as NetworkT, storageWith } from "./harness.js";

const add = (nodeId: bigint): ConfChangeSingle => ({ type: ConfChangeType.AddNode, nodeId });
const addLearner = (nodeId: bigint): ConfChangeSingle => ({ type: ConfChangeType.AddLearnerNode, nodeId });
const remove = (nodeId: bigint): ConfChangeSingle => ({ type: ConfChangeType.RemoveNode, nodeId });

function v1(net: NetworkT, leader: bigint, change: ConfChangeSingle): void {
  net
    .node(leader)
    .rn.proposeConfChange({ id: 7n, type: change.type, nodeId: change.nodeId, context: EMPTY_BYTES });
  net.stabilize();
}

function v2(
  net: NetworkT,
  leader: bigint,
  changes: ConfChangeSingle[],
  transition: ConfChangeTransition,
): void {
  net.node(leader).rn.proposeConfChange({ transition, changes, context: EMPTY_BYTES });
  net.stabilize();
}

function config(net: NetworkT, id: bigint): ConfState {
  return net.node(id).rn.status().config;
}

const dropped = (err: unknown) => isRaftError(err, RaftErrorCode.ProposalDropped);

describe("raft membership", () => {
  it("adds a voter (v1): the new node catches up from an empty log and the quorum grows", () => {
    const net = Network.bootstrapped(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    net.add(4n, new MemoryStorage());
    v1(net, 1n, add(4n));
    net.propose(1n, "b");
    for (const id of ids(1, 2, 3, 4)) assert.deepEqual(config(net, id).voters, ids(1, 2, 3, 4));
    assert.deepEqual(net.node(4n).appliedData(), ["a", "b"]);
    // Four voters need three: with 3 and 4 gone nothing commits.
    net.isolate(3n);
    net.isolate(4n);
    const commit = net.node(1n).raft.log.committed;
    net.propose(1n, "c");
    assert.equal(net.node(1n).raft.log.committed, commit);
  });

  it("removes a voter: the rest commit without it", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    v1(net, 1n, remove(3n));
    assert.deepEqual(config(net, 1n).voters, ids(1, 2));
    net.isolate(3n);
    net.propose(1n, "a");
    assert.deepEqual(net.node(2n).appliedData(), ["a"]);
  });

  it("promotes a learner: it starts counting toward the quorum", () => {
    const net = new Network([]);
    for (const id of ids(1, 2, 3)) net.add(id, storageWith({ voters: ids(1, 2), learners: ids(3) }));
    net.campaign(1n);
    net.isolate(2n);
    const commit = net.node(1n).raft.log.committed;
    net.propose(1n, "a");
    assert.equal(net.node(1n).raft.log.committed, commit, "learner 3 does not count");
    net.recover();
    net.stabilize();
    v1(net, 1n, add(3n));
    assert.deepEqual(config(net, 1n).voters, ids(1, 2, 3));
    assert.deepEqual(config(net, 1n).learners, []);
    net.isolate(2n);
    net.propose(1n, "b");
    assert.deepEqual(net.node(3n).appliedData(), ["a", "b"], "1 and 3 are a quorum now");
  });

  it("a learner grants votes when asked (it may have been promoted without knowing)", () => {
    const rn = new RawNode(configFor(3n, storageWith({ voters: ids(1, 2), learners: ids(3) })));
    const m = newMessage(MessageType.Vote, 3n, 2n, 1);
    rn.step(m);
    const resp = rn.ready().messagesAfterPersist.find((x) => x.type === MessageType.VoteResp);
    assert.equal(resp?.reject, false);
  });

  it("removes the leader itself: it steps down and the others carry on", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "a");
    v1(net, 1n, remove(1n));
    assert.equal(net.node(1n).raft.state, StateRole.Follower);
    assert.deepEqual(config(net, 2n).voters, ids(2, 3));
    net.isolate(1n);
    for (let i = 0; i < 30 && net.leader() === undefined; i++) {
      net.tick(2n);
      net.tick(3n);
      net.stabilize();
    }
    const leader = net.leader();
    assert.ok(leader !== undefined && leader.id !== 1n);
    net.propose(leader.id, "b");
    assert.deepEqual(net.node(3n).appliedData(), ["a", "b"]);
  });

  it("without stepDownOnRemoval a removed leader keeps leading the remaining voters", () => {
    const net = new Network(ids(1, 2, 3), { stepDownOnRemoval: false });
    net.campaign(1n);
    v1(net, 1n, remove(1n));
    const leader = net.node(1n);
    assert.equal(leader.raft.state, StateRole.Leader);
    // It refuses new proposals (it is no longer a member) ...
    assert.throws(() => leader.rn.propose(enc("x")), dropped);
    // ... but it did commit the removal with the new quorum {2, 3}.
    assert.deepEqual(config(net, 3n).voters, ids(2, 3));
  });

  it("joint consensus (v2): replaces a voter through C_old,new and leaves automatically", () => {
    const net = Network.bootstrapped(ids(1, 2, 3));
    net.add(4n, new MemoryStorage());
    net.campaign(1n);
    v2(net, 1n, [remove(3n), add(4n)], ConfChangeTransition.Auto);
    const cs = config(net, 1n);
    assert.deepEqual(cs.voters, ids(1, 2, 4));
    assert.deepEqual(cs.votersOutgoing, [], "the joint configuration was left automatically");
    const joint = net.node(1n).applied.filter((e) => e.type === EntryType.ConfChangeV2);
    assert.equal(joint.length, 2, "enter-joint and the automatic leave-joint entry");
    net.isolate(3n);
    net.propose(1n, "a");
    assert.deepEqual(net.node(4n).appliedData(), ["a"]);
  });

  it("joint consensus needs a majority of both configurations", () => {
    const jointCluster = (): NetworkT => {
      const net = Network.bootstrapped(ids(1, 2, 3));
      net.add(4n, new MemoryStorage());
      net.campaign(1n);
      v2(net, 1n, [remove(3n), add(4n)], ConfChangeTransition.JointExplicit);
      return net;
    };
    const cs = config(jointCluster(), 1n);
    assert.deepEqual(cs.voters, ids(1, 2, 4));
    assert.deepEqual(cs.votersOutgoing, ids(1, 2, 3));
    assert.equal(cs.autoLeave, false);
    // {1, 3} is a majority of the old config only, {1, 4} of the new only: neither commits. {1, 2} is a
    // majority of both.
    const cases: Array<[bigint[], boolean]> = [
      [ids(2, 4), false],
      [ids(2, 3), false],
      [ids(3, 4), true],
    ];
    for (const [cut, commits] of cases) {
      const net = jointCluster();
      for (const id of cut) net.isolate(id);
      const commit = net.node(1n).raft.log.committed;
      net.propose(1n, "x");
      assert.equal(net.node(1n).raft.log.committed > commit, commits, `isolating ${cut.join(",")}`);
    }
    // Explicit leave.
    const net = jointCluster();
    v2(net, 1n, [], ConfChangeTransition.Auto);
    assert.deepEqual(config(net, 1n).votersOutgoing, []);
    assert.deepEqual(config(net, 1n).voters, ids(1, 2, 4));
  });

  it("refuses a second conf change while one is pending, and invalid joint transitions", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    const leader = net.node(1n).rn;
    leader.proposeConfChange({
      id: 1n,
      type: ConfChangeType.AddLearnerNode,
      nodeId: 4n,
      context: EMPTY_BYTES,
    });
    assert.throws(
      () =>
        leader.proposeConfChange({
          id: 2n,
          type: ConfChangeType.AddLearnerNode,
          nodeId: 5n,
          context: EMPTY_BYTES,
        }),
      dropped,
    );
    net.stabilize();
    // Leaving a joint configuration that does not exist.
    assert.throws(
      () =>
        leader.proposeConfChange({
          transition: ConfChangeTransition.Auto,
          changes: [],
          context: EMPTY_BYTES,
        }),
      dropped,
    );
    v2(net, 1n, [addLearner(5n), addLearner(6n)], ConfChangeTransition.JointExplicit);
    assert.deepEqual(config(net, 1n).votersOutgoing, ids(1, 2, 3));
    // Anything but leaving is refused while joint.
    assert.throws(
      () =>
        leader.proposeConfChange({
          id: 3n,
          type: ConfChangeType.RemoveNode,
          nodeId: 5n,
          context: EMPTY_BYTES,
        }),
      dropped,
    );
  });

  it("demoting a voter while joint stages it in learnersNext until the joint config is left", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    v2(net, 1n, [addLearner(3n)], ConfChangeTransition.JointExplicit);
    let cs = config(net, 1n);
    assert.deepEqual(cs.voters, ids(1, 2));
    assert.deepEqual(cs.votersOutgoing, ids(1, 2, 3));
    assert.deepEqual(cs.learnersNext, ids(3));
    assert.deepEqual(cs.learners, []);
    v2(net, 1n, [], ConfChangeTransition.Auto);
    cs = config(net, 1n);
    assert.deepEqual(cs.learners, ids(3));
    assert.deepEqual(cs.learnersNext, []);
  });

  it("a node with a committed but unapplied conf change does not campaign", () => {
    const storage = storageWith({ voters: ids(1, 2, 3) });
    const rn = new RawNode(configFor(1n, storage));
    const app = newMessage(MessageType.App, 1n, 2n, 1);
    app.entries = [
      {
        term: 1,
        index: 1,
        type: EntryType.ConfChangeV2,
        data: new Uint8Array([1, 0, 1, 3, 9, 0]), // version 1, Auto, one change: AddLearner 9, no context
      },
    ];
    app.commit = 1;
    rn.step(app);
    const rd = rn.ready();
    assert.equal(rd.committedEntries.length, 1);
    rn.campaign();
    assert.equal(rn.raft.state, StateRole.Follower, "refuses to campaign with the stale configuration");
    storage.append(rd.entries);
    rn.applyConfChange({ transition: 0, changes: [addLearner(9n)], context: EMPTY_BYTES });
    rn.advance(rd);
    rn.campaign();
    assert.equal(rn.raft.state, StateRole.Candidate);
  });

  it("bootstrap: a new cluster's first Ready persists and applies the initial members", () => {
    const storage = new MemoryStorage();
    const rn = new RawNode(configFor(1n, storage));
    rn.bootstrap(ids(1, 2, 3).map((id) => ({ id })));
    const rd = rn.ready();
    assert.deepEqual(
      rd.entries.map((e) => [e.index, e.term, e.type]),
      [
        [1, 1, EntryType.ConfChange],
        [2, 1, EntryType.ConfChange],
        [3, 1, EntryType.ConfChange],
      ],
    );
    assert.deepEqual(rd.hardState, { term: 1, vote: 0n, commit: 3 });
    assert.equal(rd.committedEntries.length, 3);
    assert.deepEqual(rn.status().config.voters, ids(1, 2, 3));
    storage.append(rd.entries);
    storage.setHardState(rd.hardState!);
    for (const e of rd.committedEntries) rn.applyConfChange(decodeConfChangeEntry(e));
    rn.advance(rd);
    assert.deepEqual(rn.status().config.voters, ids(1, 2, 3));
    rn.campaign();
    assert.equal(rn.raft.state, StateRole.Candidate);
    // A restarted member must not bootstrap again.
    assert.throws(
      () => new RawNode(configFor(1n, storage)).bootstrap([{ id: 1n }]),
      (e: unknown) => isRaftError(e, RaftErrorCode.InvalidConfig),
    );
  });
});

describe("conf changer", () => {
  function trackerFor(cs: ConfState): ProgressTracker {
    const t = new ProgressTracker(16, Number.MAX_SAFE_INTEGER);
    const r = restoreConfig(t, 10, cs);
    t.install(r.config, r.progress);
    return t;
  }
  const cs = (voters: number[], extra: Partial<ConfState> = {}): ConfState => ({
    voters: ids(...voters),
    learners: [],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
    ...extra,
  });
  const invalid = (e: unknown) => isRaftError(e, RaftErrorCode.InvalidConfChange);

  it("simple changes may alter at most one voter", () => {
    const t = trackerFor(cs([1, 2, 3]));
    assert.throws(() => new Changer(t, 10).simple([add(4n), add(5n)]), invalid);
    assert.throws(() => new Changer(t, 10).simple([remove(1n), add(4n)]), invalid);
    const ok = new Changer(t, 10).simple([add(4n), addLearner(5n), addLearner(6n)]);
    assert.deepEqual(ok.config.toConfState().voters, ids(1, 2, 3, 4));
    assert.deepEqual(ok.config.toConfState().learners, ids(5, 6));
  });

  it("refuses to remove every voter, to nest joint configs, and to leave a non-joint one", () => {
    const t = trackerFor(cs([1]));
    assert.throws(() => new Changer(t, 10).simple([remove(1n)]), invalid);
    assert.throws(() => new Changer(t, 10).leaveJoint(), invalid);
    const j = trackerFor(cs([1, 2], { votersOutgoing: ids(1, 2, 3), autoLeave: true }));
    assert.throws(() => new Changer(j, 10).enterJoint(false, [add(4n)]), invalid);
    assert.throws(() => new Changer(j, 10).simple([add(4n)]), invalid);
  });

  it("zeroed node ids are no-ops (the application's way to reject a change)", () => {
    const t = trackerFor(cs([1, 2, 3]));
    const r = new Changer(t, 10).simple([{ type: ConfChangeType.RemoveNode, nodeId: 0n }]);
    assert.deepEqual(r.config.toConfState().voters, ids(1, 2, 3));
  });

  it("restores any valid ConfState exactly", () => {
    const states: ConfState[] = [
      cs([1]),
      cs([1, 2, 3], { learners: ids(4, 5) }),
      cs([1, 2, 3], { votersOutgoing: ids(1, 2, 4), autoLeave: true }),
      cs([1, 2], { votersOutgoing: ids(1, 2, 3), learnersNext: ids(3), learners: ids(7) }),
      cs([4, 5, 6], { votersOutgoing: ids(1, 2, 3) }),
    ];
    for (const want of states) {
      const got = trackerFor(want).config.toConfState();
      assert.deepEqual(got, want);
    }
  });
});
