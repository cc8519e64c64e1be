import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RaftBug } from "../../src/raft/raft.js";
import { replayCommand, runSeed, type SimMood, type SimOptions } from "./sim.js";

/** Seeds run by `npm test`; the soak (`npm run sim -- --seeds N`) runs as many as you like. */
const SEEDS = 300;
const STEPS = 200;

describe("raft simulation", () => {
  it(`keeps every safety invariant and recovers after healing, over ${SEEDS} seeds`, (t) => {
    const failures: string[] = [];
    let committed = 0;
    let elections = 0;
    let reads = 0;
    let confChanges = 0;
    let snapshots = 0;
    let crashes = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const opts: SimOptions = { seed, steps: STEPS };
      const { result, failure } = runSeed(opts);
      if (failure !== undefined) {
        failures.push(`${failure.message}\n  replay: ${replayCommand(opts)} --trace`);
        continue;
      }
      committed += result!.committed;
      elections += result!.elections;
      reads += result!.reads;
      confChanges += result!.confChanges;
      snapshots += result!.snapshotsSent;
      crashes += result!.crashes;
    }
    t.diagnostic(
      `committed ${committed} entries, ${elections} elections, ${reads} linearizable reads, ` +
        `${confChanges} conf changes, ${snapshots} snapshots sent, ${crashes} crashes`,
    );
    assert.deepEqual(failures, []);
    // The runs must actually exercise the machinery they claim to check.
    assert.ok(committed > SEEDS * 20, `committed ${committed}`);
    assert.ok(elections > SEEDS, `elections ${elections}`);
    assert.ok(reads > SEEDS * 2, `reads ${reads}`);
    assert.ok(confChanges > SEEDS, `conf changes ${confChanges}`);
    assert.ok(snapshots > SEEDS / 2, `snapshots ${snapshots}`);
    assert.ok(crashes > SEEDS, `crashes ${crashes}`);
  });

  it("replays a seed exactly", () => {
    const a = runSeed({ seed: 42, steps: STEPS });
    const b = runSeed({ seed: 42, steps: STEPS });
    assert.deepEqual(a.result, b.result);
    assert.ok(a.result !== undefined && a.result.committed > 0);
  });

  // The simulator has teeth: each deliberately broken variant of raft is caught within a bounded number of
  // seeds. The mood is the fault profile where that class of bug shows (storms: crashes between sending and
  // persisting, contested elections).
  const variants: Array<[RaftBug, SimMood, string]> = [
    ["commitByCounting", "normal", "commit of an earlier term's entry by counting replicas"],
    ["voteBeforePersist", "storm", "vote granted before it is persisted"],
    ["skipLogMatching", "normal", "append without the log-matching check"],
    ["skipUpToDateCheck", "normal", "vote for a candidate with an out-of-date log"],
    ["readIndexWithoutHeartbeat", "normal", "ReadIndex answered without confirming leadership"],
  ];
  const HUNT_SEEDS_MAX = 250;
  for (const [bug, mood, what] of variants) {
    it(`catches a broken raft: ${what} (${bug})`, (t) => {
      for (let seed = 1; seed <= HUNT_SEEDS_MAX; seed++) {
        const opts: SimOptions = { seed, steps: STEPS, mood, bugs: new Set([bug]) };
        const { failure } = runSeed(opts);
        if (failure !== undefined) {
          t.diagnostic(`caught at seed ${seed}: ${failure.message.split("\n")[0]}`);
          t.diagnostic(`replay: ${replayCommand(opts)}`);
          return;
        }
      }
      assert.fail(`${bug} survived ${HUNT_SEEDS_MAX} seeds`);
    });
  }
});
