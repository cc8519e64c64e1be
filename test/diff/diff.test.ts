import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runGrpcWatchScenario } from "./grpcWatch.js";
import {
  compare,
  describeDifferences,
  loadAllowList,
  normalise,
  parseScenario,
  runScenario,
  type StepOutput,
} from "./harness.js";
import {
  type DiffTarget,
  etcdTsTarget,
  offByOneTarget,
  realEtcdTarget,
  storeDoubleTarget,
} from "./targets.js";

const here = import.meta.dirname;
const allowList = loadAllowList(join(here, "allowlist.json"));

/**
 * Each scenario runs once against a real etcd, then against each target listed for it. The store double
 * (the api layer over a bare store: no raft, no lessor) runs what it can serve: it pins the api layer's
 * answers without raft's timing, so a difference that shows only there is the api's, and one that shows
 * only against the member is the server's.
 */
const SCENARIOS: { file: string; targets: DiffTarget[] }[] = [
  { file: "kv.txt", targets: [etcdTsTarget, storeDoubleTarget] },
  { file: "lease.txt", targets: [etcdTsTarget] },
  { file: "watch.txt", targets: [etcdTsTarget] },
];

describe("differential: etcdctl scenarios against a real etcd 3.4.23 and etcd-ts layers", () => {
  for (const scenario of SCENARIOS) {
    describe(scenario.file, () => {
      const steps = parseScenario(readFileSync(join(here, "scenarios", scenario.file), "utf8"));
      let reference: StepOutput[];

      before(async () => {
        reference = await runScenario(realEtcdTarget, steps);
      });

      for (const target of scenario.targets) {
        it(`${target.name} answers as etcd, except allow-listed differences`, async () => {
          const other = await runScenario(target, steps);
          const result = compare(steps, reference, other, allowList, target.name);
          assert.equal(
            result.unexpected.length,
            0,
            `differences:\n${describeDifferences(result.unexpected)}`,
          );
          assert.deepEqual(
            result.stale.map((e) => e.command),
            [],
            "allow-list entries that no longer match a difference",
          );
        });
      }
    });
  }

  describe("watch over gRPC (grpcWatch.ts)", () => {
    let reference: Awaited<ReturnType<typeof runGrpcWatchScenario>>;

    before(async () => {
      reference = await runGrpcWatchScenario(realEtcdTarget);
    });

    it(`${etcdTsTarget.name} answers as etcd, except allow-listed differences`, async () => {
      const other = await runGrpcWatchScenario(etcdTsTarget);
      const result = compare(reference.steps, reference.outputs, other.outputs, allowList, etcdTsTarget.name);
      assert.equal(result.unexpected.length, 0, `differences:\n${describeDifferences(result.unexpected)}`);
      assert.deepEqual(
        result.stale.map((e) => e.command),
        [],
        "allow-list entries that no longer match a difference",
      );
    });
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

  it("parses background commands (`&NAME`, `send NAME line`, `stop NAME`) and leading NAME=value environment words", () => {
    const steps = parseScenario(
      "watch foo --prefix -w json &W1\nsend W1 watch 'a b' --rev=2\nstop W1\nput x y\n",
    );
    assert.deepEqual(
      steps.map((s) => [s.args, s.background, s.send, s.stop]),
      [
        [["watch", "foo", "--prefix", "-w", "json"], "W1", undefined, undefined],
        [
          ["send", "W1", "watch", "a b", "--rev=2"],
          undefined,
          { name: "W1", line: "watch 'a b' --rev=2" },
          undefined,
        ],
        [["stop", "W1"], undefined, undefined, "W1"],
        [["put", "x", "y"], undefined, undefined, undefined],
      ],
    );
    const withEnv = parseScenario("ETCDCTL_WATCH_KEY=a ETCDCTL_WATCH_RANGE_END='b c' watch &W2\n");
    assert.deepEqual(
      withEnv.map((s) => [s.env, s.args, s.background]),
      [[{ ETCDCTL_WATCH_KEY: "a", ETCDCTL_WATCH_RANGE_END: "b c" }, ["watch"], "W2"]],
    );
  });

  it("shows raft indexes relative to the index the member started the scenario at, in every format", () => {
    const identity = { memberId: 1000n, clusterId: 1001n, name: "ref", raftIndex: 5 };
    const endpoint = "127.0.0.1:1";
    const lines = [
      '{"raftIndex":9,"raftTerm":2,"raftAppliedIndex":8}',
      "127.0.0.1:1, 3e8, 3.4.23, 25 kB, true, false, 2, 9, 8, \n",
      "| 127.0.0.1:1 | 3e8 | 3.4.23 | 25 kB |      true |      false |         2 |         9 |                  8 |        |",
    ];
    assert.deepEqual(
      lines.map((line) => normalise(line, identity, endpoint)),
      [
        '{"raftIndex":<index+4>,"raftTerm":<term>,"raftAppliedIndex":<index+3>}',
        "<endpoint>, <member-id>, 3.4.23, 25 kB, true, false, 2, <index+4>, <index+3>, \n",
        "| <endpoint> | <member-id> | 3.4.23 | 25 kB | true | false | 2 | <index+4> | <index+3> | |",
      ],
    );
  });

  it("reports an allow-list mask that covers nothing as stale, even beside a mask that allows the step", () => {
    const steps = parseScenario("endpoint status\n");
    const reference = [{ stdout: "size 1 kB, index 7\n", stderr: "", exitCode: 0 }];
    const other = [{ stdout: "size 9 kB, index 7\n", stderr: "", exitCode: 0 }];
    const size = { command: "endpoint status", mask: "\\d+ kB", reason: "sizes differ" };
    const index = { command: "endpoint status", mask: "index 99", reason: "an old difference" };
    const result = compare(steps, reference, other, [size, index], "t");
    assert.deepEqual(result.unexpected, []);
    assert.deepEqual(
      result.allowed.map((a) => a.entry),
      [size],
    );
    assert.deepEqual(result.stale, [index]);
  });

  it("captures ids with `=> NAME`, and reads lease TTLs and key lists as timing- and order-free", () => {
    const steps = parseScenario("lease grant 60 => L1\nlease revoke $L1\n");
    assert.deepEqual(
      steps.map((s) => [s.args, s.capture]),
      [
        [["lease", "grant", "60"], "L1"],
        [["lease", "revoke", "$L1"], undefined],
      ],
    );
    const identity = { memberId: 1000n, clusterId: 1001n, name: "ref", raftIndex: 5 };
    const read = (text: string) => normalise(text, identity, "127.0.0.1:1");
    assert.equal(
      read("lease 1 granted with TTL(600s), remaining(597s), attached keys([b a])"),
      "lease 1 granted with TTL(600s), remaining(about 600s), attached keys([a b])",
    );
    // Far from the granted TTL is not timing: it stays, and fails unless etcd says the same.
    assert.equal(read("TTL(600s), remaining(500s)"), "TTL(600s), remaining(500s)");
    assert.equal(
      read('{"ttl":299,"granted-ttl":300,"keys":["Yw==","YQ=="]}'),
      '{"ttl":<about 300>,"granted-ttl":300,"keys":["YQ==","Yw=="]}',
    );
  });
});
