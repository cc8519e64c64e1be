import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { HistoryBuilder } from "./build.js";
import { type CheckResult, checkHistory, formatResult } from "./checker.js";
import {
  HistoryFormatError,
  type HistoryOp,
  HistoryRecorder,
  parseHistory,
  readHistory,
  writeHistory,
} from "./history.js";

const CHECK_CLI = fileURLToPath(new URL("./check.ts", import.meta.url));

function verdictOf(ops: HistoryOp[], revisionOrder = true): CheckResult {
  return checkHistory(ops, { revisionOrder });
}

function idsOf(ops: readonly HistoryOp[]): number[] {
  return ops.map((op) => op.id).sort((a, b) => a - b);
}

describe("linearizable histories pass", () => {
  const cases: { name: string; build: () => HistoryBuilder }[] = [
    {
      name: "sequential put then get",
      build: () => new HistoryBuilder().put(1, "k", "a", [0, 1], 2).get(2, "k", [2, 3], "a", 2, 2),
    },
    {
      name: "a read of an absent key before any write",
      build: () => new HistoryBuilder().get(1, "k", [0, 1], null, 0, 1).put(2, "k", "a", [2, 3], 2),
    },
    {
      name: "a read concurrent with a put may see the old value",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .put(1, "k", "b", [2, 10], 3)
          .get(2, "k", [3, 4], "a", 2, 2),
    },
    {
      name: "a read concurrent with a put may see the new value, and a later one must too",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .put(1, "k", "b", [2, 10], 3)
          .get(2, "k", [3, 4], "b", 3, 3)
          .get(3, "k", [5, 6], "b", 3, 3),
    },
    {
      name: "concurrent puts linearized in the order a read shows, not their invoke order",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 10], 3)
          .put(2, "k", "b", [1, 10], 2)
          .get(3, "k", [11, 12], "a", 3, 3),
    },
    {
      name: "a write with an unknown outcome that a later read shows (it was applied)",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .pendingPut(2, "k", "b", 2)
          .get(3, "k", [50, 51], "b", 7, 7),
    },
    {
      name: "a write with an unknown outcome that nobody ever sees (it was not applied)",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .pendingPut(2, "k", "b", 2)
          .get(3, "k", [50, 51], "a", 2, 7),
    },
    {
      name: "a CAS chain on value and on mod revision, and a failed CAS",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .cas(1, "k", { value: "a" }, "b", [2, 3], true, 3)
          .cas(2, "k", { value: "a" }, "c", [4, 5], false, 3)
          .cas(2, "k", { modRevision: 3 }, "d", [6, 7], true, 4)
          .get(3, "k", [8, 9], "d", 4, 4),
    },
    {
      name: "two concurrent CASes on the same value: one wins",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .cas(1, "k", { value: "a" }, "b", [2, 6], true, 4)
          .cas(2, "k", { value: "a" }, "c", [2, 6], false, 3)
          .get(3, "k", [7, 8], "b", 4, 4),
    },
    {
      name: "a create-if-absent CAS (mod revision 0)",
      build: () =>
        new HistoryBuilder()
          .cas(1, "k", { modRevision: 0 }, "a", [0, 1], true, 2)
          .cas(2, "k", { modRevision: 0 }, "b", [2, 3], false, 2)
          .get(3, "k", [4, 5], "a", 2, 2),
    },
    {
      name: "a pending CAS whose effect a read shows, with its revision pinned by the read",
      build: () =>
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .pendingCas(2, "k", { value: "a" }, "b", 2)
          .get(3, "k", [10, 11], "b", 5, 5)
          .cas(3, "k", { modRevision: 5 }, "c", [12, 13], true, 6),
    },
  ];
  for (const { name, build } of cases) {
    it(name, () => {
      const result = verdictOf(build().ops());
      assert.equal(result.verdict, "linearizable", formatResult(result));
    });
  }
});

describe("non-linearizable histories are caught", () => {
  it("a stale read: a read after a completed overwrite shows the old value", () => {
    const ops = new HistoryBuilder()
      .put(1, "k", "a", [0, 1], 2)
      .put(1, "k", "b", [2, 3], 3)
      .get(2, "k", [4, 5], "a", 2, 3)
      .ops();
    const result = verdictOf(ops, false);
    assert.equal(result.verdict, "violation");
    assert.equal(result.violations.length, 1);
    assert.deepEqual(idsOf(result.violations[0]?.ops ?? []), [1, 2, 3]);
    assert.equal(result.violations[0]?.minimal, true);
  });

  it("a lost write: an acknowledged put that a later read does not see", () => {
    const ops = new HistoryBuilder().put(1, "k", "a", [0, 1], 2).get(2, "k", [2, 3], null, 0, 2).ops();
    const result = verdictOf(ops, false);
    assert.equal(result.verdict, "violation");
    assert.deepEqual(idsOf(result.violations[0]?.ops ?? []), [1, 2]);
  });

  it("a CAS that succeeded twice on the same expected value", () => {
    const ops = new HistoryBuilder()
      .put(1, "k", "a", [0, 1], 2)
      .cas(1, "k", { value: "a" }, "b", [2, 6], true, 3)
      .cas(2, "k", { value: "a" }, "c", [2, 6], true, 4)
      .ops();
    const result = verdictOf(ops, false);
    assert.equal(result.verdict, "violation");
    assert.deepEqual(idsOf(result.violations[0]?.ops ?? []), [1, 2, 3]);
  });

  it("a CAS on a mod revision that succeeded twice", () => {
    const ops = new HistoryBuilder()
      .put(1, "k", "a", [0, 1], 2)
      .cas(1, "k", { modRevision: 2 }, "b", [2, 3], true, 3)
      .cas(2, "k", { modRevision: 2 }, "c", [4, 5], true, 4)
      .ops();
    assert.equal(verdictOf(ops, false).verdict, "violation");
  });

  it("a read from the future: it shows a value whose write started after the read returned", () => {
    const ops = new HistoryBuilder().get(1, "k", [0, 1], "a", 2, 2).put(2, "k", "a", [2, 3], 2).ops();
    assert.equal(verdictOf(ops, false).verdict, "violation");
  });

  it("a pending write seen before it was invoked", () => {
    const ops = new HistoryBuilder().get(1, "k", [0, 1], "a", 2, 2).pendingPut(2, "k", "a", 5).ops();
    assert.equal(verdictOf(ops, false).verdict, "violation");
  });

  it("a read with the right value but the wrong mod revision", () => {
    const ops = new HistoryBuilder().put(1, "k", "a", [0, 1], 2).get(2, "k", [2, 3], "a", 5, 5).ops();
    assert.equal(verdictOf(ops, false).verdict, "violation");
  });

  it("a failed CAS whose compare must have held", () => {
    const ops = new HistoryBuilder()
      .put(1, "k", "a", [0, 1], 2)
      .cas(2, "k", { value: "a" }, "b", [2, 3], false, 2)
      .ops();
    assert.equal(verdictOf(ops, false).verdict, "violation");
  });

  it("one violation is found among many keys, and only its key is reported", () => {
    const builder = new HistoryBuilder();
    let revision = 1;
    for (let i = 0; i < 50; i++) {
      revision++;
      builder.put(1, `k${i % 5}`, `v${i}`, [i * 10, i * 10 + 1], revision);
      builder.get(2, `k${i % 5}`, [i * 10 + 2, i * 10 + 3], `v${i}`, revision, revision);
    }
    builder.get(3, "k2", [1000, 1001], "v2", 4, revision);
    const result = verdictOf(builder.ops(), false);
    assert.equal(result.verdict, "violation");
    assert.deepEqual(
      result.violations.map((v) => v.key),
      ["k2"],
    );
    assert.ok((result.violations[0]?.ops.length ?? 0) <= 3, formatResult(result));
  });
});

describe("revisions across keys", () => {
  it("a read of an unchanged key at an old header revision, after a write elsewhere completed, is a stale read", () => {
    const ops = new HistoryBuilder()
      .put(1, "a", "x", [0, 1], 2)
      .put(1, "b", "y", [2, 3], 3)
      .get(2, "a", [4, 5], "x", 2, 2)
      .ops();
    // Key by key this is linearizable: only the header revision gives the staleness away.
    assert.equal(verdictOf(ops, false).verdict, "linearizable");
    const result = verdictOf(ops);
    assert.equal(result.verdict, "violation");
    assert.equal(result.violations.length, 0);
    assert.match(result.revisionProblems[0]?.message ?? "", /stale read/);
  });

  it("two writes with one revision, and a later write with a lower revision, are reported", () => {
    const same = new HistoryBuilder().put(1, "a", "x", [0, 1], 2).put(1, "b", "y", [2, 3], 2).ops();
    assert.match(
      verdictOf(same)
        .revisionProblems.map((p) => p.message)
        .join("\n"),
      /same revision 2/,
    );
    const backwards = new HistoryBuilder().put(1, "a", "x", [0, 1], 5).put(1, "b", "y", [2, 3], 4).ops();
    assert.match(verdictOf(backwards).revisionProblems[0]?.message ?? "", /higher revision/);
  });

  it("a read that skipped a write of its key below its header revision", () => {
    const ops = new HistoryBuilder()
      .put(1, "a", "x", [0, 1], 2)
      .put(1, "a", "y", [0, 10], 3)
      .get(2, "a", [2, 3], "x", 2, 4)
      .ops();
    assert.match(
      verdictOf(ops)
        .revisionProblems.map((p) => p.message)
        .join("\n"),
      /missing op 2's write at revision 3/,
    );
  });
});

describe("search budget", () => {
  it("a search that runs out of budget is undecided, never linearizable", () => {
    const builder = new HistoryBuilder();
    // Thirty overlapping puts: the search needs more than ten steps to order them by revision.
    for (let i = 0; i < 30; i++) builder.put(i, "k", `v${i}`, [0, 100], 2 + i);
    builder.get(99, "k", [200, 201], "v29", 31, 31);
    const result = checkHistory(builder.ops(), { stepBudgetPerKey: 10 });
    assert.equal(result.verdict, "undecided");
    assert.equal(result.undecided[0]?.key, "k");
    assert.match(formatResult(result), /UNDECIDED/);
    assert.equal(checkHistory(builder.ops()).verdict, "linearizable");
  });
});

describe("shrinking", () => {
  it("a stale read deep in a long history shrinks to the three ops that prove it", () => {
    const builder = new HistoryBuilder();
    let revision = 1;
    for (let i = 0; i < 300; i++) {
      revision++;
      builder.put(i % 7, "k", `v${i}`, [i * 10, i * 10 + 4], revision);
      builder.get(
        (i + 3) % 7,
        "k",
        [i * 10 + 2, i * 10 + 8],
        i % 2 === 0 ? `v${i}` : i === 0 ? null : `v${i - 1}`,
        i % 2 === 0 ? revision : revision - 1,
        revision,
      );
    }
    // v150 was written at revision 152 and overwritten long before this read.
    builder.get(9, "k", [3100, 3101], "v150", 152, revision);
    const result = checkHistory(builder.ops(), { revisionOrder: false });
    assert.equal(result.verdict, "violation", formatResult(result));
    const violation = result.violations[0];
    assert.ok(violation !== undefined);
    assert.equal(violation.ops.length, 3, formatResult(result));
    assert.equal(violation.minimal, true);
    const kinds = violation.ops.map(
      (op) => `${op.input.kind}:${op.input.kind === "get" ? "" : op.input.value}`,
    );
    assert.ok(kinds.includes("put:v150"), kinds.join(","));
    assert.equal(violation.ops[2]?.input.kind, "get");
    assert.match(formatResult(result), /shortest offending sub-history: 3 of the key's 601 ops/);
  });
});

describe("history files", () => {
  it("round-trips through JSON lines, with the recorder's monotonic times", async () => {
    const recorder = new HistoryRecorder();
    const put = recorder.invoke(1, { kind: "put", key: "k", value: "a" });
    await new Promise((resolve) => setTimeout(resolve, 2));
    recorder.complete(put, { kind: "put", revision: 2 });
    const lost = recorder.invoke(2, { kind: "put", key: "k", value: "b" });
    recorder.fail(lost, "deadline exceeded");
    const read = recorder.invoke(3, { kind: "get", key: "k" });
    recorder.fail(read, "unavailable");
    recorder.invoke(4, { kind: "cas", key: "k", expect: { modRevision: 2 }, value: "c" });
    const ops = recorder.ops();
    assert.equal(ops.length, 3, "the failed read is dropped, the open cas kept as pending");
    assert.ok((ops[0]?.completeNs ?? 0) - (ops[0]?.invokeNs ?? 0) >= 1e6);
    const dir = mkdtempSync(join(tmpdir(), "linz-"));
    try {
      const path = join(dir, "h.jsonl");
      writeHistory(path, ops, { seed: 7 });
      const back = readHistory(path);
      assert.deepEqual(back.ops, ops);
      assert.equal(back.header.seed, 7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses malformed lines with their line number", () => {
    const header = '{"format":"etcd-ts-history","version":1}';
    const good =
      '{"id":1,"client":0,"invokeNs":0,"completeNs":5,"input":{"kind":"get","key":"k"},"output":{"kind":"get","value":null,"modRevision":0,"revision":1}}';
    assert.equal(parseHistory(`${header}\n${good}\n`).ops.length, 1);
    const cases: [string, RegExp][] = [
      ['{"format":"nope","version":1}', /line 1: the first line must be a header/],
      [`${header}\n{"id":1`, /line 2: not JSON/],
      [`${header}\n${good}\n${good}`, /line 3: duplicate op id 1/],
      [`${header}\n${good.replace('"completeNs":5', '"completeNs":null')}`, /both null/],
      [`${header}\n${good.replace('"kind":"get","key"', '"kind":"del","key"')}`, /unknown op kind "del"/],
      [`${header}\n${good.replace('"invokeNs":0', '"invokeNs":9')}`, /completes before it is invoked/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseHistory(text),
        (error: unknown) => error instanceof HistoryFormatError && message.test(error.message),
      );
    }
  });

  it("check.ts replays a file: exit 1 and the offending sub-history on a violation, 0 on a clean one", () => {
    const dir = mkdtempSync(join(tmpdir(), "linz-"));
    try {
      const bad = join(dir, "bad.jsonl");
      writeHistory(
        bad,
        new HistoryBuilder()
          .put(1, "k", "a", [0, 1], 2)
          .put(1, "k", "b", [2, 3], 3)
          .get(2, "k", [4, 5], "a", 2, 3)
          .ops(),
        { seed: 42 },
      );
      const run = spawnSync(process.execPath, ["--import", "tsx", CHECK_CLI, bad], { encoding: "utf8" });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stdout, /run: \{"seed":42\}/);
      assert.match(run.stdout, /VIOLATION/);
      assert.match(
        run.stdout,
        /key "k" is not linearizable; shortest offending sub-history: 3 of the key's 3 ops/,
      );
      const good = join(dir, "good.jsonl");
      writeHistory(
        good,
        new HistoryBuilder().put(1, "k", "a", [0, 1], 2).get(2, "k", [2, 3], "a", 2, 2).ops(),
      );
      const out = execFileSync(process.execPath, ["--import", "tsx", CHECK_CLI, good], { encoding: "utf8" });
      assert.match(out, /^LINEARIZABLE: 2 ops/m);
      const broken = join(dir, "broken.jsonl");
      writeFileSync(broken, "nonsense\n");
      assert.equal(spawnSync(process.execPath, ["--import", "tsx", CHECK_CLI, broken]).status, 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
