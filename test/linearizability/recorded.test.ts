import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkHistory, formatResult } from "./checker.js";
import { readHistory } from "./history.js";

/**
 * A history recorded from a real etcd 3.4 cluster (testdata/record.ts) whose clients read with
 * serializable gets, i.e. from the member's local state without ReadIndex, as a server that skips
 * ReadIndex would answer every read. It holds a genuinely stale read; the checker must find it and print
 * the few ops that prove it.
 */

const RECORDED = fileURLToPath(new URL("./testdata/serializable-stale-read.jsonl", import.meta.url));
const CHECK_CLI = fileURLToPath(new URL("./check.ts", import.meta.url));

it("a recorded history with a stale read is a violation, shrunk to the ops that prove it", () => {
  const { header, ops } = readHistory(RECORDED);
  assert.equal(header.target, "etcd 3.4.23");
  assert.ok(ops.length > 500, "a real run, not a hand-made one");
  const result = checkHistory(ops);
  assert.equal(result.verdict, "violation");
  assert.ok(result.violations.length >= 1, formatResult(result));
  for (const violation of result.violations) {
    assert.equal(violation.minimal, true);
    assert.ok(violation.ops.length <= 4, formatResult(result));
    const read = violation.ops.find((op) => op.input.kind === "get");
    assert.ok(read !== undefined, "the offending op is a read");
    // The read returned a value that a write completed before the read began had already replaced.
    const stale = read.output?.kind === "get" ? read.output.value : undefined;
    const overwrite = violation.ops.find(
      (op) =>
        op.input.kind !== "get" &&
        op.input.value !== stale &&
        op.completeNs !== null &&
        op.completeNs < read.invokeNs,
    );
    assert.ok(overwrite !== undefined, formatResult(result));
  }
  // The header revisions give it away across keys as well.
  assert.ok(result.revisionProblems.some((p) => /stale read/.test(p.message)));
});

it("check.ts replays the recorded file and prints the offending sub-history", () => {
  const run = spawnSync(process.execPath, ["--import", "tsx", CHECK_CLI, RECORDED], { encoding: "utf8" });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stdout, /^VIOLATION: \d+ ops/m);
  assert.match(run.stdout, /is not linearizable; shortest offending sub-history: \d of the key's \d+ ops:/);
  assert.match(run.stdout, /=> ok rev \d+\n[\s\S]*get\s+=> "[^"]+"@\d+ \(rev \d+\)/);
});
