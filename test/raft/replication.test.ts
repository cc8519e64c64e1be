import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import type { RaftBug } from "../../src/raft/raft.js";
import { RawNode } from "../../src/raft/rawnode.js";
import type { Entry } from "../../src/raft/types.js";
import { EntryType, MessageType, newMessage, StateRole } from "../../src/raft/types.js";
import { configFor, enc, ids, Network, storageWith } from "./harness.js";

function logTerms(entries: readonly Entry[]): number[] {
  return entries.map((e) => e.term);
}

describe("raft replication", () => {
  it("replicates and applies proposals on every node, in order", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    for (const s of ["a", "b", "c"]) net.propose(1n, s);
    for (const id of ids(1, 2, 3)) assert.deepEqual(net.node(id).appliedData(), ["a", "b", "c"]);
  });

  it("a follower forwards proposals to the leader", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(2n, "via-2");
    for (const id of ids(1, 2, 3)) assert.deepEqual(net.node(id).appliedData(), ["via-2"]);
  });

  it("refuses a forwarded proposal when forwarding is disabled", () => {
    const net = new Network(ids(1, 2, 3), { disableProposalForwarding: true });
    net.campaign(1n);
    assert.throws(
      () => net.node(2n).rn.propose(enc("x")),
      (err: unknown) => isRaftError(err, RaftErrorCode.ProposalDropped),
    );
  });

  it("batches proposals made between two Readys into one append per follower", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.propose(1n, "warm-up"); // followers are now in Replicate state
    const before = net.delivered.length;
    for (let i = 0; i < 100; i++) net.node(1n).rn.propose(enc(`p${i}`));
    net.stabilize();
    const appends = net.delivered
      .slice(before)
      .filter((m) => m.from === 1n && m.type === MessageType.App && m.entries.length > 0);
    assert.equal(appends.length, 2);
    for (const m of appends) assert.equal(m.entries.length, 100);
    assert.equal(net.node(3n).appliedData().length, 101);
  });

  /** Raft paper Figure 8; returns S1's commit index once its old-term entry "a" is on a majority. */
  function figure8(bugs?: ReadonlySet<RaftBug>): number {
    // One entry per message so that old-term entries can be delivered without the new-term entry.
    const opts = { maxSizePerMsgBytes: 1, bugs };
    const net = new Network(ids(1, 2, 3, 4, 5), opts);
    net.campaign(1n); // term 1, entry 1 committed
    // S1 replicates "a" (index 2, term 1) to S2 only.
    net.cut(1n, 3n);
    net.cut(1n, 4n);
    net.cut(1n, 5n);
    net.propose(1n, "a");
    assert.equal(net.node(2n).raft.log.lastIndex(), 2);
    assert.equal(net.node(1n).raft.log.committed, 1);
    // S1 goes away; S5 wins term 2 with S3 and S4 but its entry reaches nobody.
    net.recover();
    net.isolate(1n);
    net.filters.push((m) => m.from === 5n && m.type === MessageType.App);
    net.campaign(5n);
    assert.equal(net.node(5n).raft.state, StateRole.Leader);
    // S5 goes away; S1 comes back and wins a later term. It may replicate its old "a" to a majority, but
    // the entry of its own term is held back: "a" must stay uncommitted.
    net.recover();
    net.isolate(5n);
    net.add(1n, net.node(1n).storage, opts); // S1 restarts from its storage
    // Hold back every entry of S1's new term (> 2) from followers that would accept it (probes that will be
    // rejected still pass, so S1 can find where the logs match).
    net.filters.push(
      (m) =>
        m.type === MessageType.App &&
        m.entries.some((e) => e.term > 2) &&
        net.node(m.to).raft.log.matchTerm(m.index, m.logTerm),
    );
    for (let i = 0; i < 3 && net.node(1n).raft.state !== StateRole.Leader; i++) net.campaign(1n);
    const s1 = net.node(1n);
    assert.equal(s1.raft.state, StateRole.Leader);
    assert.ok(s1.raft.term > 2);
    for (let i = 0; i < 5; i++) {
      net.tick(1n);
      net.stabilize();
    }
    const withA = ids(1, 2, 3, 4).filter((id) => net.node(id).raft.log.matchTerm(2, 1));
    assert.ok(withA.length >= 3, `"a" is on a majority (${withA.join(",")})`);
    const committedWithOldQuorum = s1.raft.log.committed;
    if (bugs !== undefined) return committedWithOldQuorum;
    // Once the leader's own entry reaches a majority, everything up to it commits.
    net.recover();
    net.isolate(5n);
    net.tick(1n);
    net.stabilize();
    assert.equal(s1.raft.log.committed, 3);
    for (const id of ids(1, 2, 3, 4)) assert.deepEqual(net.node(id).appliedData(), ["a"]);
    return committedWithOldQuorum;
  }

  it("Figure 8: a leader never commits an entry of an earlier term by counting replicas", () => {
    assert.equal(figure8(), 1, "index 2 (term 1) must not be committed by counting");
    // The same scenario with the broken commit rule does commit it: the test discriminates.
    assert.equal(figure8(new Set(["commitByCounting"])), 2);
  });

  it("the commit rule: quorum on an old-term index is not enough, quorum on a current-term index is", () => {
    for (const bug of [false, true]) {
      const storage = storageWith({ voters: ids(1, 2, 3) });
      storage.append([
        { term: 1, index: 1, type: EntryType.Normal, data: enc("x") },
        { term: 1, index: 2, type: EntryType.Normal, data: enc("y") },
      ]);
      storage.setHardState({ term: 2, vote: 0n, commit: 0 });
      const node = new RawNode(configFor(1n, storage, bug ? { bugs: new Set(["commitByCounting"]) } : {}));
      node.campaign();
      node.step(newMessage(MessageType.VoteResp, 1n, 2n, 3));
      let rd = node.ready();
      storage.append(rd.entries);
      node.advance(rd);
      assert.equal(node.raft.state, StateRole.Leader);
      assert.equal(node.raft.term, 3);
      rd = node.ready();
      storage.append(rd.entries); // the leader's empty entry, index 3, term 3
      node.advance(rd);
      // Both followers report they hold index 2 (term 1): a quorum, but of an old term.
      for (const from of ids(2, 3)) {
        const ack = newMessage(MessageType.AppResp, 1n, from, 3);
        ack.index = 2;
        node.step(ack);
      }
      assert.equal(
        node.raft.log.committed,
        bug ? 2 : 0,
        bug ? "the broken variant commits" : "must not commit",
      );
      const ack3 = newMessage(MessageType.AppResp, 1n, 2n, 3);
      ack3.index = 3;
      node.step(ack3);
      assert.equal(node.raft.log.committed, 3);
    }
  });

  it("repairs divergent follower logs (raft paper Figure 7) with few probes", () => {
    // Leader log terms for indexes 1..10.
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: number[][] = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
      [1, 1, 1, 4], // (b) missing many
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra uncommitted
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra entries of a later term
      [1, 1, 1, 4, 4, 4, 4], // (e) divergent term-4 tail
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) long divergent tail of terms 2 and 3
    ];
    const build = (terms: number[]) =>
      terms.map((term, i) => ({ term, index: i + 1, type: EntryType.Normal, data: enc(`${term}/${i + 1}`) }));
    for (const [k, followerTerms] of followers.entries()) {
      const net = new Network([]);
      const ls = storageWith({ voters: ids(1, 2, 3) });
      ls.append(build(leaderTerms));
      ls.setHardState({ term: 8, vote: 0n, commit: 0 });
      const fs = storageWith({ voters: ids(1, 2, 3) });
      fs.append(build(followerTerms));
      fs.setHardState({ term: followerTerms[followerTerms.length - 1]!, vote: 0n, commit: 0 });
      net.add(1n, ls);
      net.add(2n, fs);
      net.add(3n, storageWith({ voters: ids(1, 2, 3) }));
      net.isolate(3n);
      // Make 1 leader of term 9 directly (its log is the most up to date of a quorum in the paper's figure).
      net.node(1n).raft.becomeCandidate();
      net.node(1n).raft.becomeLeader();
      net.stabilize();
      const leaderLog = net.node(1n).raft.log.allEntries();
      const followerLog = net.node(2n).raft.log.allEntries();
      assert.deepEqual(logTerms(followerLog), logTerms(leaderLog), `follower (${"abcdef"[k]})`);
      assert.equal(net.node(2n).raft.log.committed, 11);
      const rejects = net.delivered.filter((m) => m.type === MessageType.AppResp && m.reject).length;
      // Fast backtracking: at most one probe per distinct term, far fewer than one per entry.
      assert.ok(rejects <= 3, `follower (${"abcdef"[k]}) needed ${rejects} rejected probes`);
    }
  });

  it("carries the commit index on heartbeats (never beyond the follower's match)", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    // Node 3 gets the entry but not the commit-only append that follows.
    net.filters.push((m) => m.to === 3n && m.type === MessageType.App && m.entries.length === 0);
    net.propose(1n, "a");
    assert.equal(net.node(3n).raft.log.lastIndex(), 2);
    assert.equal(net.node(3n).raft.log.committed, 1);
    net.recover();
    net.tick(1n); // heartbeat
    net.stabilize();
    assert.equal(net.node(3n).raft.log.committed, 2);
    assert.deepEqual(net.node(3n).appliedData(), ["a"]);
    const hb = net.delivered.filter((m) => m.type === MessageType.Heartbeat && m.to === 3n);
    for (const m of hb) assert.ok(m.commit <= 2);
  });

  it("flow control: at most maxInflightMessages appends in flight to a follower", () => {
    const net = new Network(ids(1, 2), { maxInflightMessages: 3, maxSizePerMsgBytes: 1 });
    net.campaign(1n);
    net.propose(1n, "warm-up");
    net.ignore(MessageType.AppResp);
    net.ignore(MessageType.HeartbeatResp);
    const before = net.delivered.length;
    for (let i = 0; i < 10; i++) net.propose(1n, `p${i}`);
    const sent = net.delivered
      .slice(before)
      .filter((m) => m.type === MessageType.App && m.entries.length > 0);
    assert.equal(sent.length, 3);
    net.recover();
    for (let i = 0; i < 3; i++) {
      net.tick(1n);
      net.stabilize();
    }
    assert.equal(net.node(2n).appliedData().length, 11);
  });

  it("limits the uncommitted tail and refuses proposals beyond it", () => {
    const net = new Network(ids(1, 2, 3), { maxUncommittedEntriesSizeBytes: 1000 });
    net.campaign(1n);
    net.isolate(1n);
    const leader = net.node(1n).rn;
    const data = new Uint8Array(100);
    for (let i = 0; i < 10; i++) leader.propose(data);
    assert.throws(
      () => leader.propose(data),
      (err: unknown) => isRaftError(err, RaftErrorCode.ProposalDropped),
    );
    // Empty proposals are never refused.
    leader.propose(new Uint8Array(0));
  });

  it("a probing follower gets one append per heartbeat until it answers", () => {
    const net = new Network(ids(1, 2, 3));
    net.campaign(1n);
    net.isolate(3n);
    for (let i = 0; i < 5; i++) net.propose(1n, `p${i}`);
    net.node(1n).rn.reportUnreachable(3n); // drops 3 to Probe
    const before = net.delivered.length;
    net.propose(1n, "more");
    net.recover();
    net.isolate(3n);
    net.tick(1n);
    net.stabilize();
    const appendsTo3 = net.delivered.slice(before).filter((m) => m.to === 3n && m.type === MessageType.App);
    assert.equal(appendsTo3.length, 0, "3 is cut off");
    net.recover();
    net.tick(1n);
    net.stabilize();
    assert.equal(net.node(3n).appliedData().length, 6);
  });

  it("learners receive the log but do not count toward the quorum", () => {
    const net = new Network([]);
    for (const id of ids(1, 2, 3)) net.add(id, storageWith({ voters: ids(1, 2), learners: ids(3) }));
    net.campaign(1n);
    net.propose(1n, "a");
    assert.deepEqual(net.node(3n).appliedData(), ["a"]);
    // With voter 2 gone, learner 3's acks do not make a quorum.
    net.isolate(2n);
    net.propose(1n, "b");
    assert.equal(net.node(3n).raft.log.lastIndex(), 3);
    assert.equal(net.node(1n).raft.log.committed, 2);
    assert.deepEqual(net.node(1n).appliedData(), ["a"]);
  });
});
