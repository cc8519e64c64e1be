import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ClusterTarget, startCluster } from "../support/cluster.js";
import { firstViolation } from "./faultRun.js";

/**
 * The checker's teeth against a broken server: etcd-ts members started with
 * ETCD_TS_FAULT_UNSAFE_LOCAL_READS=1 answer linearizable gets from local state, without ReadIndex. Under
 * an isolated member or a minority partition such a member serves reads its partition cannot know are
 * stale, and the fault run must report the history as not linearizable. (The client-side variant, with
 * serializable gets against a correct server, is in faultRun.test.ts.)
 */

const SEED = Number(process.env.FAULT_SEED ?? 20_241_123);
const HISTORY_DIR = join(tmpdir(), "etcd-ts-fault-runs");
/** Runs tried before concluding the checker missed the broken reads. */
const ATTEMPTS = 3;

describe("fault run on an etcd-ts cluster that serves linearizable reads without ReadIndex", {
  timeout: 120_000,
}, () => {
  let cluster: ClusterTarget;

  before(async () => {
    cluster = await startCluster("etcd-ts", {
      size: 3,
      seed: SEED,
      env: { ETCD_TS_FAULT_UNSAFE_LOCAL_READS: "1" },
    });
  });

  after(async () => {
    await cluster?.stop();
  });

  it("is reported as not linearizable", async () => {
    const { report, verdicts } = await firstViolation(
      {
        target: cluster,
        seed: SEED,
        durationMs: 2_500,
        clients: 6,
        keys: 2,
        faults: ["isolate-member", "partition-majority-minority"],
        thinkMsMax: 2,
        tailMs: 200,
        historyDir: HISTORY_DIR,
      },
      ATTEMPTS,
    );
    assert.ok(
      report !== null,
      `no violation in ${ATTEMPTS} runs against the broken server: ${verdicts.join(", ")}`,
    );
    assert.equal(report.ok, false);
  });
});
