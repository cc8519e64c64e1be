import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IntervalIndex } from "../../src/watch/intervalIndex.js";
import { rng } from "../support/prng.js";

interface Entry {
  id: number;
  start: string;
  end: string | null;
  single: boolean;
}

/** The reference: a plain list scanned in full. */
function reference(entries: Map<number, Entry>, key: string): number[] {
  const hits: number[] = [];
  for (const e of entries.values()) {
    if (e.single ? key === e.start : e.start <= key && (e.end === null || key < e.end)) hits.push(e.id);
  }
  return hits.sort((a, b) => a - b);
}

/** Short keys over a small alphabet with high bytes, so ranges overlap, nest and share bounds. */
function randomKey(next: () => number): string {
  const alphabet = ["\x00", "a", "b", "c", "\xff"];
  let key = "";
  const length = 1 + Math.floor(next() * 3);
  for (let i = 0; i < length; i++) key += alphabet[Math.floor(next() * alphabet.length)];
  return key;
}

describe("watch interval index", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`stabs the same groups as a full scan through random adds and removes (seed ${seed})`, () => {
      const next = rng(seed);
      const index = new IntervalIndex();
      const entries = new Map<number, Entry>();
      let nextId = 0;
      for (let step = 0; step < 3000; step++) {
        const roll = next();
        if (roll < 0.45 || entries.size === 0) {
          const id = nextId++;
          const single = next() < 0.3;
          let start = randomKey(next);
          let end: string | null = null;
          if (!single && next() < 0.8) {
            end = randomKey(next);
            if (end === start) end += "a";
            if (end < start) [start, end] = [end, start];
          }
          const entry = { id, start, end, single };
          entries.set(id, entry);
          if (single) index.addKey(id, start);
          else index.addRange(id, start, end);
        } else if (roll < 0.75) {
          const ids = [...entries.keys()];
          const id = ids[Math.floor(next() * ids.length)] as number;
          const entry = entries.get(id) as Entry;
          entries.delete(id);
          if (entry.single) index.removeKey(id, entry.start);
          else index.removeRange(id, entry.start);
        } else {
          const key = randomKey(next);
          const hits: number[] = [];
          index.stab(key, (id) => hits.push(id));
          const expected = reference(entries, key);
          assert.deepEqual(
            hits.sort((a, b) => a - b),
            expected,
            `step ${step} key ${JSON.stringify(key)}`,
          );
          assert.equal(index.contains(key), expected.length > 0);
        }
        assert.equal(index.size, entries.size);
      }
    });
  }

  it("refuses an empty range and a double add (programmer errors)", () => {
    const index = new IntervalIndex();
    assert.throws(() => index.addRange(1, "b", "a"));
    assert.throws(() => index.addRange(1, "b", "b"));
    index.addKey(2, "k");
    assert.throws(() => index.addKey(2, "k"));
    assert.throws(() => index.removeRange(9, "x"));
  });
});
