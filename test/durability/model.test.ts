import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startStoreServer } from "../api/storeServer.js";
import { AckModel, type ObservedKey } from "./model.js";
import { readAll, runWriters } from "./writers.js";

/** The durability checker must catch every way a member can lose or invent acknowledged writes. */

const observed = (entries: [string, string, number][]): Map<string, ObservedKey> =>
  new Map(entries.map(([key, value, modRevision]) => [key, { value, modRevision }]));

describe("the acknowledged-writes model", () => {
  it("accepts exactly the acknowledged state, and an unanswered op either applied or not", () => {
    for (const applied of [false, true]) {
      const model = new AckModel();
      assert.deepEqual(model.ack(0, { kind: "put", key: "a", value: "1" }, 2), []);
      assert.deepEqual(model.ack(0, { kind: "put", key: "b", value: "2" }, 3), []);
      model.unanswer(0, {
        kind: "txn",
        writes: [
          { key: "a", value: "3" },
          { key: "b", value: null },
        ],
      });
      const seen = applied
        ? observed([["a", "3", 4]])
        : observed([
            ["a", "1", 2],
            ["b", "2", 3],
          ]);
      assert.deepEqual(model.checkAndSettle(seen, applied ? 4 : 3), []);
      assert.deepEqual(
        model.state("a"),
        applied ? { value: "3", modRevision: 4 } : { value: "1", modRevision: 2 },
      );
    }
  });

  it("reports a lost write, a wrong revision, an invented key and a revision that went backwards", () => {
    const model = new AckModel();
    model.ack(0, { kind: "put", key: "a", value: "1" }, 2);
    model.ack(1, { kind: "put", key: "b", value: "2" }, 3);
    model.ack(1, { kind: "delete", key: "b" }, 4, 1);
    assert.deepEqual(
      model.checkAndSettle(
        observed([
          ["a", "1", 5],
          ["c", "x", 3],
        ]),
        3,
      ),
      [
        "revision went backwards: 3 < acknowledged 4",
        "key a: acknowledged 1@2, found 1@5",
        "key c: acknowledged absent, found x@3",
      ],
    );
  });

  it("reports a torn txn: some of its writes applied, others not", () => {
    const model = new AckModel();
    model.ack(0, { kind: "put", key: "a", value: "1" }, 2);
    model.unanswer(0, {
      kind: "txn",
      writes: [
        { key: "a", value: "2" },
        { key: "b", value: "3" },
      ],
    });
    const problems = model.checkAndSettle(observed([["a", "2", 3]]), 3);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? "", /writer 0: unanswered txn is neither applied nor absent/);
  });

  it("reports acknowledgements that contradict each other", () => {
    const model = new AckModel();
    assert.deepEqual(model.ack(0, { kind: "put", key: "a", value: "1" }, 5), []);
    assert.deepEqual(model.ack(0, { kind: "put", key: "a", value: "2" }, 5), [
      "writer 0: put acknowledged at revision 5, not above 5",
    ]);
    assert.deepEqual(model.ack(0, { kind: "delete", key: "a" }, 6, 0), [
      "writer 0: delete of existing key a deleted 0",
    ]);
  });

  it("catches, end to end, a server that forgets its writes on restart (the store double)", async () => {
    const model = new AckModel();
    const first = await startStoreServer();
    const run = await runWriters({
      endpoint: first.endpoint,
      model,
      writers: 4,
      connections: 2,
      seed: 1,
      round: 1,
      opsPerWriter: 20,
    });
    await first.stop();
    assert.deepEqual([run.problems, run.errors], [[], []]);
    // A "restart" that comes back empty: every acknowledged key is reported, and the revision too.
    const second = await startStoreServer();
    try {
      const seen = await readAll(second.endpoint);
      const problems = model.checkAndSettle(seen.keys, seen.revision);
      assert.match(problems[0] ?? "", /^revision went backwards: 1 < acknowledged \d+$/);
      assert.ok(problems.length > 10, `only ${problems.length} problems reported`);
      assert.ok(
        problems.slice(1).every((p) => /^key dur\/w\d\d\/k\d\d: acknowledged .*, found absent$/.test(p)),
      );
    } finally {
      await second.stop();
    }
  });
});
