import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRealEtcdCluster } from "../../support/cluster.js";
import { formatReport, runFaultRun } from "../faultRun.js";

/**
 * Records serializable-stale-read.jsonl: three clients on a real etcd 3.4 cluster doing put / get / CAS
 * with serializable gets (answered from the member's own state, no ReadIndex) while one member is cut
 * off. Such a history is not linearizable, and recorded.test.ts checks the checker says so.
 *
 *   node --import tsx test/linearizability/testdata/record.ts
 */

const OUT = fileURLToPath(new URL("./serializable-stale-read.jsonl", import.meta.url));
/** Seeds tried in turn until a run shows a stale read (timing decides whether one does). */
const SEEDS = [5, 6, 7, 8, 9];
let recorded = false;
const dir = mkdtempSync(join(tmpdir(), "linz-record-"));
const cluster = await startRealEtcdCluster({ seed: 5 });
try {
  for (const seed of SEEDS) {
    const report = await runFaultRun({
      target: cluster,
      seed,
      durationMs: 1_500,
      clients: 3,
      keys: 2,
      faults: ["isolate-member"],
      serializableReads: true,
      thinkMsMax: 5,
      tailMs: 200,
      historyDir: dir,
      keepHistory: true,
    });
    process.stdout.write(`${formatReport(report)}\n`);
    // Wanted: a stale value on one key (the search's verdict), not only an old header revision across keys.
    if (report.historyPath === null || report.check.violations.length === 0) continue;
    copyFileSync(report.historyPath, OUT);
    process.stdout.write(`wrote ${OUT}\n`);
    recorded = true;
    break;
  }
  if (!recorded) throw new Error(`no stale read with seeds ${SEEDS.join(", ")}`);
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
