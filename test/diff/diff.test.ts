import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runGrpcWatchScenario } from "./grpcWatch.js";
import {
  compare,
  describeDifferences,
  labelLeases,
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
  { file: "lock.txt", targets: [etcdTsTarget] },
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

  it("labels lease ids no step captured in first-seen order: in session keys (simple and base64 JSON), JSON fields and `lease list`", () => {
    const identity = { memberId: 1000n, clusterId: 1001n, name: "ref", raftIndex: 5 };
    const labels = new Map<bigint, string>();
    const read = (text: string) => labelLeases(normalise(text, identity, "127.0.0.1:1"), labels);
    const first = 0x694d7f5a3b2c1d11n;
    const second = 0x694d7f5a3b2c1d0en;
    const b64 = (key: string) => Buffer.from(key).toString("base64");
    // Short hex words after a slash are keys, not leases; so are small numbers.
    assert.equal(read(`mylock/${first.toString(16)}\n\nl/abcdef\n`), "mylock/<lease-1>\n\nl/abcdef\n");
    assert.equal(
      read(
        `{"kvs":[{"key":"${b64(`mylock/${second.toString(16)}`)}","lease":${second}},` +
          `{"key":"${b64(`mylock/${first.toString(16)}`)}","lease":${first}},` +
          `{"key":"${b64("plain")}","lease":1234}]}`,
      ),
      '{"kvs":[{"key":"b64(mylock/<lease-2>)","lease":<lease-2>},' +
        '{"key":"b64(mylock/<lease-1>)","lease":<lease-1>},' +
        `{"key":"${b64("plain")}","lease":1234}]}`,
    );
    // etcd lists leases by expiry (timing): compared in id order; a new id gets the next label.
    const third = 0x694d7f5a3b2c1d20n;
    assert.equal(
      read(`found 3 leases\n${third.toString(16)}\n${first.toString(16)}\n${second.toString(16)}\n`),
      "found 3 leases\n<lease-2>\n<lease-1>\n<lease-3>\n",
    );
    assert.equal(read(`lease ${third.toString(16)} granted`), "lease <lease-3> granted");
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
