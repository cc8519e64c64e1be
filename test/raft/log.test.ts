import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RaftLog, TERM_COMPACTED, TERM_UNAVAILABLE } from "../../src/raft/log.js";
import {
  jointIndexOf,
  jointVoteResult,
  majorityIndex,
  majorityIndexOf,
  majorityVoteResult,
  VoteResult,
} from "../../src/raft/quorum.js";
import { MemoryStorage, NO_LIMIT } from "../../src/raft/storage.js";
import { Inflights } from "../../src/raft/tracker.js";
import type { Entry } from "../../src/raft/types.js";
import { EntryType } from "../../src/raft/types.js";

const e = (index: number, term: number, size = 0): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new Uint8Array(size),
});
const terms = (es: readonly Entry[]) => es.map((x) => x.term);

function logWith(stored: number[], unstable: number[] = []): RaftLog {
  const s = new MemoryStorage();
  s.append(stored.map((t, i) => e(i + 1, t)));
  const log = new RaftLog(s, NO_LIMIT);
  if (unstable.length > 0) log.append(unstable.map((t, i) => e(stored.length + i + 1, t)));
  return log;
}

describe("raft log", () => {
  it("maybeAppend: checks the previous entry, skips what is present, truncates a conflicting tail", () => {
    // Table: (prevIndex, prevTerm, entries' terms) -> expected result and log terms.
    const cases: Array<[number, number, number[], number, number[]]> = [
      [3, 3, [4], 4, [1, 2, 3, 4]], // plain append
      [3, 2, [4], -1, [1, 2, 3]], // previous term mismatch: rejected
      [4, 3, [4], -1, [1, 2, 3]], // previous entry missing: rejected
      [1, 1, [2, 3], 3, [1, 2, 3]], // all present: nothing changes
      [1, 1, [2], 2, [1, 2, 3]], // a prefix is present: the rest is kept
      [1, 1, [4, 4], 3, [1, 4, 4]], // conflict at 2: the tail is replaced
      [0, 0, [1, 2, 3, 5], 4, [1, 2, 3, 5]],
    ];
    for (const [prevIndex, prevTerm, ts, want, wantTerms] of cases) {
      const log = logWith([1, 2, 3]);
      const got = log.maybeAppend(
        prevIndex,
        prevTerm,
        0,
        ts.map((t, i) => e(prevIndex + 1 + i, t)),
      );
      assert.equal(got, want, `case ${prevIndex}/${prevTerm}/${ts}`);
      assert.deepEqual(terms(log.allEntries()), wantTerms, `case ${prevIndex}/${prevTerm}/${ts}`);
    }
  });

  it("never truncates committed entries", () => {
    const log = logWith([1, 2, 3]);
    log.commitTo(2);
    assert.throws(() => log.maybeAppend(1, 1, 3, [e(2, 4)]), /conflicts with committed/);
  });

  it("commits only up to the last entry the leader's message vouches for", () => {
    const log = logWith([1, 1, 1, 1, 1]);
    // The leader says commit 5 but sent (and so vouches for) only up to index 2.
    assert.equal(log.maybeAppend(1, 1, 5, [e(2, 1)]), 2);
    assert.equal(log.committed, 2);
  });

  it("findConflictByTerm finds the largest index with a term at or below the given one", () => {
    const log = logWith([1, 1, 2, 2, 5, 5, 5]);
    assert.deepEqual(log.findConflictByTerm(7, 4), [4, 2]);
    assert.deepEqual(log.findConflictByTerm(7, 5), [7, 5]);
    assert.deepEqual(log.findConflictByTerm(3, 1), [2, 1]);
    assert.deepEqual(log.findConflictByTerm(7, 0), [0, 0]);
  });

  it("term() answers across the snapshot boundary, storage and the unstable tail", () => {
    const s = new MemoryStorage();
    s.append([e(1, 1), e(2, 1), e(3, 2), e(4, 2)]);
    s.createSnapshot(2, null, new Uint8Array());
    s.compact(2);
    const log = new RaftLog(s, NO_LIMIT);
    log.append([e(5, 3)]);
    assert.equal(log.term(1), TERM_COMPACTED);
    assert.equal(log.term(2), 1, "the snapshot's own term is known");
    assert.equal(log.term(4), 2);
    assert.equal(log.term(5), 3);
    assert.equal(log.term(6), TERM_UNAVAILABLE);
    assert.equal(log.firstIndex(), 3);
    assert.equal(log.lastIndex(), 5);
  });

  it("slices across storage and the unstable tail within a byte budget (at least one entry)", () => {
    const s = new MemoryStorage();
    s.append([e(1, 1, 100), e(2, 1, 100), e(3, 1, 100)]);
    const log = new RaftLog(s, NO_LIMIT);
    log.append([e(4, 1, 100), e(5, 1, 100)]);
    assert.deepEqual(
      log.slice(2, 6, NO_LIMIT).map((x) => x.index),
      [2, 3, 4, 5],
    );
    assert.equal(log.slice(2, 6, 1).length, 1);
    assert.deepEqual(
      log.slice(2, 6, 3 * 116).map((x) => x.index),
      [2, 3, 4],
    );
    assert.equal(log.slice(4, 6, 1).length, 1);
  });

  it("stableTo ignores a stale report whose entry was replaced in the meantime", () => {
    const log = logWith([1], [1, 1]);
    log.unstable.acceptInProgress();
    log.append([e(3, 2)]); // replaces index 3 while the first write is in flight
    log.stableTo(3, 1);
    assert.equal(log.unstable.offset, 2, "nothing was marked stable");
    log.stableTo(3, 2);
    assert.equal(log.unstable.offset, 4);
  });

  it("hands out committed entries once, in order, and none while a snapshot is pending", () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(3);
    assert.deepEqual(
      log.nextCommittedEntries().map((x) => x.index),
      [1, 2, 3],
    );
    log.applying = 3;
    assert.equal(log.hasNextCommittedEntries(), false);
    log.restore({
      data: new Uint8Array(),
      metadata: {
        index: 10,
        term: 2,
        confState: { voters: [1n], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      },
    });
    assert.equal(log.hasNextCommittedEntries(), false);
  });
});

describe("quorum", () => {
  /** The dumb reference: the largest index such that a majority has at least it. */
  function referenceIndex(acked: number[]): number {
    if (acked.length === 0) return Number.MAX_SAFE_INTEGER;
    let best = 0;
    for (const candidate of acked) {
      const count = acked.filter((a) => a >= candidate).length;
      if (count > acked.length / 2) best = Math.max(best, candidate);
    }
    return best;
  }

  it("majorityIndex agrees with the reference", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { maxLength: 9 }), (acked) => {
        const scratch = Float64Array.from(acked);
        assert.equal(majorityIndex(acked.length, scratch), referenceIndex(acked));
      }),
      { numRuns: 500 },
    );
  });

  it("the joint index is the smaller of the two majorities'", () => {
    const acked = new Map<bigint, number>([
      [1n, 10],
      [2n, 8],
      [3n, 3],
      [4n, 9],
    ]);
    assert.equal(majorityIndexOf([1n, 2n, 3n], acked), 8);
    assert.equal(majorityIndexOf([3n, 5n, 6n], acked), 0, "unknown ids count as 0");
    assert.equal(jointIndexOf([1n, 2n, 3n], [3n, 4n, 5n], acked), 3);
    assert.equal(jointIndexOf([1n, 2n, 4n], [], acked), 9, "an empty half agrees with everything");
  });

  it("vote results: won, lost and pending, in majority and joint configurations", () => {
    const votes = (pairs: Array<[number, boolean]>) => new Map(pairs.map(([id, v]) => [BigInt(id), v]));
    const three = [1n, 2n, 3n];
    assert.equal(majorityVoteResult(three, votes([[1, true]])), VoteResult.Pending);
    assert.equal(
      majorityVoteResult(
        three,
        votes([
          [1, true],
          [2, true],
        ]),
      ),
      VoteResult.Won,
    );
    assert.equal(
      majorityVoteResult(
        three,
        votes([
          [1, false],
          [2, false],
        ]),
      ),
      VoteResult.Lost,
    );
    assert.equal(majorityVoteResult([], votes([])), VoteResult.Won);
    const outgoing = [3n, 4n, 5n];
    assert.equal(
      jointVoteResult(
        three,
        outgoing,
        votes([
          [1, true],
          [2, true],
        ]),
      ),
      VoteResult.Pending,
    );
    assert.equal(
      jointVoteResult(
        three,
        outgoing,
        votes([
          [1, true],
          [2, true],
          [3, true],
          [4, true],
        ]),
      ),
      VoteResult.Won,
    );
    assert.equal(
      jointVoteResult(
        three,
        outgoing,
        votes([
          [1, true],
          [2, true],
          [4, false],
          [5, false],
        ]),
      ),
      VoteResult.Lost,
    );
  });
});

describe("inflights", () => {
  it("is full at the message or byte limit and frees acknowledged messages", () => {
    const inf = new Inflights(3, 1000);
    inf.add(1, 100);
    inf.add(2, 100);
    assert.equal(inf.full(), false);
    inf.add(3, 100);
    assert.equal(inf.full(), true);
    inf.freeLE(2);
    assert.equal(inf.count(), 1);
    inf.add(4, 900);
    assert.equal(inf.full(), true, "byte limit");
    inf.freeLE(10);
    assert.equal(inf.count(), 0);
    assert.equal(inf.bytes(), 0);
    // Wraps around the ring.
    for (let i = 5; i < 50; i++) {
      inf.add(i, 1);
      inf.freeLE(i - 1);
      assert.equal(inf.count(), 1);
    }
    assert.throws(() => {
      inf.add(100, 1);
      inf.add(101, 1);
      inf.add(102, 1);
    }, /full/);
  });
});
