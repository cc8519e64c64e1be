import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { found, KeyIndex } from "../../src/mvcc/keyIndex.js";

/**
 * The key index of etcd's key_index_test.go: put 2, put 4, delete 6, put 8, put 10, delete 12, put 14,
 * put 14.1, delete 16.
 */
function fooIndex(): KeyIndex {
  const ki = new KeyIndex("foo");
  ki.put(2, 0);
  ki.put(4, 0);
  ki.tombstone(6, 0);
  ki.put(8, 0);
  ki.put(10, 0);
  ki.tombstone(12, 0);
  ki.put(14, 0);
  ki.put(14, 1);
  ki.tombstone(16, 0);
  return ki;
}

const gen = (created: number, ...revs: ReadonlyArray<readonly [number, number]>) => ({
  created,
  ver: 3,
  revs: revs.flat(),
});
const g1 = [2, [2, 0], [4, 0], [6, 0]] as const;
const g2 = [8, [8, 0], [10, 0], [12, 0]] as const;
const g3 = [14, [14, 0], [14, 1], [16, 0]] as const;
const empty = { created: 0, ver: 0, revs: [] as number[] };

describe("KeyIndex (etcd's key_index_test.go)", () => {
  it("get returns the newest revision at or before a revision inside a live generation", () => {
    const ki = fooIndex();
    const cases: Array<[number, [number, number, number, number] | null]> = [
      [0, null],
      [1, null],
      [2, [2, 0, 2, 1]],
      [3, [2, 0, 2, 1]],
      [4, [4, 0, 2, 2]],
      [5, [4, 0, 2, 2]],
      [6, null],
      [7, null],
      [8, [8, 0, 8, 1]],
      [11, [10, 0, 8, 2]],
      [12, null],
      [14, [14, 1, 14, 2]],
      [15, [14, 1, 14, 2]],
      [16, null],
      [17, null],
    ];
    for (const [rev, want] of cases) {
      const got = ki.get(rev) ? [found.main, found.sub, found.createdMain, found.ver] : null;
      assert.deepEqual(got, want, `get(${rev})`);
    }
  });

  it("compaction at each revision keeps etcd's generations and kept revision, and removes the rest", () => {
    const table: Array<[number, unknown[], [number, number] | null]> = [
      [1, [gen(...g1), gen(...g2), gen(...g3), empty], null],
      [2, [gen(...g1), gen(...g2), gen(...g3), empty], [2, 0]],
      [3, [gen(...g1), gen(...g2), gen(...g3), empty], [2, 0]],
      [4, [gen(2, [4, 0], [6, 0]), gen(...g2), gen(...g3), empty], [4, 0]],
      [5, [gen(2, [4, 0], [6, 0]), gen(...g2), gen(...g3), empty], [4, 0]],
      [6, [gen(...g2), gen(...g3), empty], null],
      [7, [gen(...g2), gen(...g3), empty], null],
      [8, [gen(...g2), gen(...g3), empty], [8, 0]],
      [9, [gen(...g2), gen(...g3), empty], [8, 0]],
      [10, [gen(8, [10, 0], [12, 0]), gen(...g3), empty], [10, 0]],
      [11, [gen(8, [10, 0], [12, 0]), gen(...g3), empty], [10, 0]],
      [12, [gen(...g3), empty], null],
      [13, [gen(...g3), empty], null],
      [14, [gen(14, [14, 1], [16, 0]), empty], [14, 1]],
      [15, [gen(14, [14, 1], [16, 0]), empty], [14, 1]],
      [16, [empty], null],
      [17, [empty], null],
    ];
    const all = [2, 4, 6, 8, 10, 12, 14, 14.1, 16];
    for (const [rev, generations, kept] of table) {
      const ki = fooIndex();
      const keptNow = ki.kept(rev) ? [found.main, found.sub] : null;
      assert.deepEqual(keptNow, kept, `kept(${rev})`);
      const removed: number[] = [];
      ki.compact(rev, (main, sub) => removed.push(main + sub / 10));
      assert.deepEqual(ki.toJSON(), generations, `compact(${rev})`);
      // Physically removed: every revision <= rev except the one compaction keeps.
      const keptId = kept === null ? -1 : kept[0] + kept[1] / 10;
      assert.deepEqual(
        removed,
        all.filter((r) => Math.floor(r) <= rev && r !== keptId),
        `removed by compact(${rev})`,
      );
      assert.equal(ki.isEmpty(), rev >= 16);
    }
  });

  it("compacting twice equals compacting once at the later revision", () => {
    for (let first = 1; first <= 17; first++) {
      for (let second = first; second <= 17; second++) {
        const twice = fooIndex();
        twice.compact(first, () => {});
        if (!twice.isEmpty()) twice.compact(second, () => {});
        const once = fooIndex();
        once.compact(second, () => {});
        assert.deepEqual(twice.toJSON(), once.toJSON(), `compact(${first}) then compact(${second})`);
      }
    }
  });

  it("a tombstone on a key that is not live is refused", () => {
    const ki = new KeyIndex("k");
    ki.put(2, 0);
    assert.equal(ki.tombstone(3, 0), true);
    assert.equal(ki.tombstone(4, 0), false);
    assert.equal(ki.isLive(), false);
  });
});
