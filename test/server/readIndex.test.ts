import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EtcdError, isEtcdError } from "../../src/errors.js";
import { ReadIndexRounds } from "../../src/server/readIndex.js";

/** A raft stand-in: refuses with NoLeader until `leader` is set, records the contexts asked for. */
function host() {
  const state = { leader: false, applied: 0, asked: [] as Uint8Array[] };
  return {
    state,
    host: {
      requestReadIndex(context: Uint8Array) {
        if (!state.leader) throw new EtcdError("NoLeader");
        state.asked.push(context);
      },
      appliedIndex: () => state.applied,
    },
  };
}

describe("ReadIndexRounds", () => {
  it("holds a read while there is no leader and sends it when one appears", async () => {
    const { state, host: h } = host();
    const rounds = new ReadIndexRounds(h, 10, 1000);
    let done = false;
    const read = rounds.barrier().then(() => {
      done = true;
    });
    await Promise.resolve();
    assert.equal(state.asked.length, 0);
    assert.equal(done, false);
    state.leader = true;
    rounds.leaderChanged(true);
    assert.equal(state.asked.length, 1);
    rounds.onReadState(state.asked[0]!, 5);
    assert.equal(done, false, "not before applied reaches the read index");
    state.applied = 5;
    rounds.onApplied();
    await read;
    assert.equal(done, true);
  });

  it("fails a read with 'request timed out' when no leader appears within the timeout", async () => {
    const { host: h } = host();
    let now = 0;
    const rounds = new ReadIndexRounds(h, 10, 1000, () => now);
    const read = rounds.barrier();
    now = 999;
    rounds.expire();
    now = 1000;
    rounds.expire();
    await assert.rejects(read, (error) => isEtcdError(error, "Timeout"));
  });

  it("fails a sent round with 'leader changed' when the leader changes before it is answered", async () => {
    const { state, host: h } = host();
    state.leader = true;
    const rounds = new ReadIndexRounds(h, 10, 1000);
    const first = rounds.barrier();
    assert.equal(state.asked.length, 1);
    rounds.leaderChanged(true);
    await assert.rejects(first, (error) => isEtcdError(error, "LeaderChanged"));
    // A read that starts afterwards is served by a new round.
    const second = rounds.barrier();
    assert.equal(state.asked.length, 2);
    rounds.onReadState(state.asked[1]!, 0);
    await second;
  });
});
