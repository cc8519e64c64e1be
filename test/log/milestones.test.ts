import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { createLogger } from "../../src/log/logger.js";
import { MILESTONES, RAFT_MESSAGES } from "../../src/log/milestones.js";

type Line = Record<string, unknown> & { level: string; ts: string; caller: string; msg: string };

const testdata = new URL("./testdata/", import.meta.url);
/** Lines printed by the real etcd 3.4.23 with --logger=zap (one member, three members, a flag error). */
const ETCD_LINES: readonly Line[] = readdirSync(testdata)
  .filter((name) => name.endsWith(".jsonl"))
  .flatMap((name) =>
    readFileSync(new URL(name, testdata), "utf8")
      .trim()
      .split("\n")
      .map((text) => JSON.parse(text) as Line),
  );

const fieldNames = (line: Record<string, unknown>) =>
  Object.keys(line).filter((key) => !["level", "ts", "caller", "msg"].includes(key));

describe("etcd milestone messages", () => {
  for (const [name, milestone] of Object.entries(MILESTONES)) {
    if (!milestone.inEtcd34Zap) {
      it(`${name} is not a zap line in etcd 3.4.23 (capnslog / 3.5 only)`, () => {
        assert.ok(!ETCD_LINES.some((line) => line.msg === milestone.msg));
      });
      continue;
    }
    it(`${name}: "${milestone.msg}" matches etcd's line`, () => {
      const line = ETCD_LINES.find(
        (l) => l.msg === milestone.msg && fieldNames(l).join() === milestone.fields.join(),
      );
      assert.ok(
        line !== undefined,
        `no etcd line with msg ${JSON.stringify(milestone.msg)} and fields ${milestone.fields}`,
      );
      assert.equal(line.level, milestone.level);
      assert.equal(line.caller, milestone.etcdCaller);
    });
  }

  it("our logger prints a milestone with etcd's keys in etcd's order", () => {
    const lines: string[] = [];
    const log = createLogger({ destination: { write: (line: string) => lines.push(line) } }).child("embed");
    const m = MILESTONES.servingClientTrafficInsecurely;
    log.log(m.level, m.msg, { address: "127.0.0.1:2379" });
    const ours = JSON.parse(lines[0]!) as Record<string, unknown>;
    const etcds = ETCD_LINES.find((l) => l.msg === m.msg)!;
    assert.deepEqual(Object.keys(ours), Object.keys(etcds));
  });
});

describe("etcd's raft messages", () => {
  const id = 0x7265ed141678b405n;
  const decimal = 8243255363503698949n;
  const cases: ReadonlyArray<readonly [string, string]> = [
    [RAFT_MESSAGES.switchedToConfiguration(id, []), "7265ed141678b405 switched to configuration voters=()"],
    [
      RAFT_MESSAGES.switchedToConfiguration(id, [decimal]),
      `7265ed141678b405 switched to configuration voters=(${decimal})`,
    ],
    [RAFT_MESSAGES.becameFollower(id, 0n), "7265ed141678b405 became follower at term 0"],
    [
      RAFT_MESSAGES.newRaft(id, [], { term: 0n, commit: 0n, applied: 0n, lastIndex: 0n, lastTerm: 0n }),
      "newRaft 7265ed141678b405 [peers: [], term: 0, commit: 0, applied: 0, lastindex: 0, lastterm: 0]",
    ],
    [RAFT_MESSAGES.startingNewElection(id, 1n), "7265ed141678b405 is starting a new election at term 1"],
    [RAFT_MESSAGES.becameCandidate(id, 2n), "7265ed141678b405 became candidate at term 2"],
    [
      RAFT_MESSAGES.receivedVote(id, "MsgVoteResp", id, 2n),
      "7265ed141678b405 received MsgVoteResp from 7265ed141678b405 at term 2",
    ],
    [RAFT_MESSAGES.becameLeader(id, 2n), "7265ed141678b405 became leader at term 2"],
    [
      RAFT_MESSAGES.electedLeader(id, id, 2n),
      "raft.node: 7265ed141678b405 elected leader 7265ed141678b405 at term 2",
    ],
  ];
  for (const [ours, expected] of cases) {
    it(expected, () => {
      assert.equal(ours, expected);
      assert.ok(
        ETCD_LINES.some((line) => line.msg === expected),
        "the expected text is etcd's own",
      );
    });
  }
  it("sorts voters ascending and prints ids without padding", () => {
    assert.equal(
      RAFT_MESSAGES.switchedToConfiguration(0xfn, [3n, 1n, 2n], [9n]),
      "f switched to configuration voters=(1 2 3) learners=(9)",
    );
    assert.equal(
      RAFT_MESSAGES.lostLeader(0x35f3781129ca454n, 0x4f4757a2778cf431n, 3n),
      "raft.node: 35f3781129ca454 lost leader 4f4757a2778cf431 at term 3",
    );
    assert.ok(
      ETCD_LINES.some((line) => line.msg.startsWith("raft.node: ") && line.msg.includes(" lost leader ")),
    );
  });
});
