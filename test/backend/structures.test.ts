import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SortedStringMap } from "../../src/backend/sortedStringMap.js";
import { WriteBuffer } from "../../src/backend/writeBuffer.js";

describe("SortedStringMap", () => {
  it("matches a Map plus sorting under random inserts, deletes and range scans (leaves split and merge)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("set", "set", "delete"), fc.integer({ min: 0, max: 3000 })), {
          minLength: 1,
          maxLength: 4000,
        }),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 3000 }),
        (ops, a, z) => {
          const map = new SortedStringMap<number>();
          const model = new Map<string, number>();
          // Keys share long prefixes and include bytes 0 and 255, like real keys.
          const k = (n: number) => `/registry/\u00ff${String(n).padStart(5, "0")}\u0000`;
          for (const [op, n] of ops) {
            if (op === "set") assert.equal(map.set(k(n), n), !model.has(k(n)));
            else assert.equal(map.delete(k(n)), model.get(k(n)));
            if (op === "set") model.set(k(n), n);
            else model.delete(k(n));
          }
          map.checkInvariants();
          assert.equal(map.size, model.size);
          const [lo, hi] = a <= z ? [k(a), k(z)] : [k(z), k(a)];
          const seen: string[] = [];
          map.forEachInRange(lo, hi, (key) => {
            seen.push(key);
            return true;
          });
          const expected = [...model.keys()].filter((key) => key >= lo && key < hi).sort();
          assert.deepEqual(seen, expected);
          for (const key of expected.slice(0, 20)) assert.equal(map.get(key), model.get(key));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("WriteBuffer", () => {
  it("keeps an entry until its unit is committed, and a later write of the key until that one is", () => {
    const buffer = new WriteBuffer(2);
    const bytes = new Uint8Array(0);
    buffer.write(0, "a", bytes, new Uint8Array([1]));
    buffer.write(1, "a", bytes, null);
    assert.equal(buffer.seal(), 1);
    buffer.write(0, "a", bytes, new Uint8Array([2]));
    buffer.write(0, "b", bytes, new Uint8Array([3]));
    assert.equal(buffer.seal(), 2);
    buffer.trim(1);
    assert.deepEqual(buffer.lookup(0, "a")?.value, new Uint8Array([2]), "unit 2 rewrote a: it stays");
    assert.equal(buffer.lookup(1, "a"), undefined, "the delete of unit 1 is committed");
    assert.deepEqual(
      buffer.collectRange(0, "", null).map((e) => e.key),
      ["a", "b"],
    );
    buffer.trim(2);
    assert.equal(buffer.pendingEntries, 0);
    assert.equal(buffer.isEmpty(0), true);
    assert.throws(() => buffer.trim(3), /not sealed/);
  });
});
