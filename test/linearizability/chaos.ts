import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ClusterTarget, startCluster } from "../support/cluster.js";
import { formatReport, runFaultRun } from "./faultRun.js";

/**
 * The long fault run:
 *
 *   npm run chaos -- --duration 600 --seed 7 [--round 60] [--clients 6] [--keys 6] [--out DIR] [--keep]
 *
 * Starts a 3-member cluster behind the fault proxies and runs back-to-back rounds of random faults
 * (each `--round` seconds, then heal and prove: linearizable history, every acknowledged write in the
 * log, one HashKV, a gap-free watch). Each round writes fresh keys, so its history is checked on its own
 * (keys never shared: per-key checking makes this exact, and it bounds the checker's memory). A failing
 * round prints its seed and keeps its history file for `test/linearizability/check.ts`; the process exits 1.
 * `--target etcd` (default) runs real etcd 3.4.23 members, `--target etcd-ts` runs etcd-ts members.
 */

const EXIT_PASS = 0;
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;

function usage(message: string): number {
  process.stderr.write(
    `${message}\nusage: chaos.ts --duration SECONDS [--seed N] [--round SECONDS] [--clients N] [--keys N] [--out DIR] [--keep] [--target etcd|etcd-ts]\n`,
  );
  return EXIT_USAGE;
}

function positiveInt(text: string | undefined, fallback: number): number | null {
  if (text === undefined) return fallback;
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: "string" },
      seed: { type: "string" },
      round: { type: "string" },
      clients: { type: "string" },
      keys: { type: "string" },
      out: { type: "string" },
      keep: { type: "boolean", default: false },
      target: { type: "string", default: "etcd" },
    },
  });
  const durationS = positiveInt(values.duration, 60);
  const seed = positiveInt(values.seed, Date.now() % 1_000_000_000);
  const roundS = positiveInt(values.round, 60);
  const clients = positiveInt(values.clients, 6);
  const keys = positiveInt(values.keys, 6);
  if (durationS === null || seed === null || roundS === null || clients === null || keys === null) {
    return usage("--duration, --seed, --round, --clients and --keys take positive integers");
  }
  const kind = values.target;
  if (kind !== "etcd" && kind !== "etcd-ts") return usage(`unknown --target ${kind} (etcd or etcd-ts)`);
  const out = values.out ?? join(tmpdir(), "etcd-ts-chaos");
  const rounds = Math.max(1, Math.ceil(durationS / roundS));
  process.stdout.write(
    `chaos: ${kind}, seed ${seed}, ${durationS} s in ${rounds} round(s), ${clients} clients, ${keys} keys, histories in ${out}\n`,
  );
  const cluster: ClusterTarget = await startCluster(kind, { size: 3, seed });
  let failed = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const roundSeed = seed * 1_000 + round;
      const report = await runFaultRun({
        target: cluster,
        seed: roundSeed,
        durationMs: Math.min(roundS, durationS - round * roundS) * 1_000,
        clients,
        keys,
        // Every round kills (and restarts) a member at least once.
        killAt: round % 3,
        historyDir: out,
        keepHistory: values.keep,
        log: (line) => process.stdout.write(`[round ${round + 1}/${rounds}] ${line}\n`),
      });
      process.stdout.write(`${formatReport(report)}\n`);
      if (!report.ok) {
        failed++;
        process.stdout.write(`round ${round + 1} FAILED: seed ${seed} (round seed ${roundSeed})\n`);
      }
    }
  } finally {
    await cluster.stop();
  }
  process.stdout.write(
    failed === 0
      ? `chaos seed ${seed}: all ${rounds} rounds passed\n`
      : `chaos seed ${seed}: ${failed} of ${rounds} rounds FAILED\n`,
  );
  return failed === 0 ? EXIT_PASS : EXIT_FAIL;
}

process.exitCode = await main();
