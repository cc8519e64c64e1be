import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { compare, describeDifferences, loadAllowList, parseScenario, runScenario } from "./harness.js";
import { offByOneTarget, realEtcdTarget, storeDoubleTarget } from "./targets.js";

const here = import.meta.dirname;
const allowList = loadAllowList(join(here, "allowlist.json"));

describe("differential: etcdctl scenarios against a real etcd 3.4.23 and etcd-ts layers", () => {
  it("kv.txt: the api layer over the store answers as etcd, except the allow-listed differences", async () => {
    const steps = parseScenario(readFileSync(join(here, "scenarios/kv.txt"), "utf8"));
    const reference = await runScenario(realEtcdTarget, steps);
    const other = await runScenario(storeDoubleTarget, steps);
    const result = compare(steps, reference, other, allowList, storeDoubleTarget.name);
    assert.equal(result.unexpected.length, 0, `differences:\n${describeDifferences(result.unexpected)}`);
    assert.deepEqual(
      result.stale.map((e) => e.command),
      [],
      "allow-list entries that no longer match a difference",
    );
  });

  it("the comparison catches a wrong answer (a target whose Put headers are one revision off)", async () => {
    const steps = parseScenario("put a 1\nput a 2 -w json\nget a -w json\n");
    const good = await runScenario(storeDoubleTarget, steps);
    const bad = await runScenario(offByOneTarget, steps);
    const result = compare(steps, good, bad, [], offByOneTarget.name);
    assert.deepEqual(
      result.unexpected.map((d) => d.step.text),
      ["put a 2 -w json"],
    );
    assert.match(result.unexpected[0]?.other.stdout ?? "", /"revision":4/);
  });

  it("parses here-docs, quotes and comments", () => {
    const steps = parseScenario('# c\nput "a b" \'c d\'\ntxn <<EOF\nx\n\ny\nEOF\nget --k="1 2"\n');
    assert.deepEqual(
      steps.map((s) => [s.line, s.args, s.stdin]),
      [
        [2, ["put", "a b", "c d"], undefined],
        [3, ["txn"], "x\n\ny\n"],
        [8, ["get", "--k=1 2"], undefined],
      ],
    );
  });
});
