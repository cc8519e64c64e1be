import { parseArgs } from "node:util";
import { checkHistory } from "../../test/linearizability/checker.js";
import { simulateHistory } from "../../test/linearizability/simulate.js";

/**
 * How fast the linearizability checker checks histories like a fault run's: a correct store simulated
 * with K clients on 6 keys (test/linearizability/simulate.ts), N ops, some answers lost. Prints ops
 * checked per second and search steps; `--quick` runs the small sizes only (a smoke run).
 *
 *   npm run bench:checker [-- --quick]
 */

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const sizes = values.quick ? [2_000, 10_000] : [2_000, 10_000, 50_000, 200_000];
const clientCounts = [4, 16];
const unknownRates = [0.003, 0.05];
const REPEATS = 3;

process.stdout.write(
  "ops      clients  unknown  verdict       steps      ms (min of 3)  ops/s checked  heap MiB\n",
);
for (const ops of sizes) {
  for (const clients of clientCounts) {
    for (const unknownRate of unknownRates) {
      const history = simulateHistory({
        seed: ops + clients,
        clients,
        keys: 6,
        opsPerClient: Math.ceil(ops / clients),
        unknownRate,
        latencyHalfNsMax: 1_000_000,
        thinkNsMax: 2_000_000,
      });
      let bestMs = Number.POSITIVE_INFINITY;
      let verdict = "";
      let steps = 0;
      let heapMiB = 0;
      for (let r = 0; r < REPEATS; r++) {
        const result = checkHistory(history);
        bestMs = Math.min(bestMs, result.elapsedMs);
        verdict = result.verdict;
        steps = result.steps;
        heapMiB = Math.max(heapMiB, process.memoryUsage().heapUsed / 2 ** 20);
      }
      process.stdout.write(
        `${String(history.length).padEnd(8)} ${String(clients).padEnd(8)} ${unknownRate.toFixed(3).padEnd(8)} ${verdict.padEnd(13)} ${String(steps).padEnd(10)} ${bestMs.toFixed(0).padEnd(14)} ${Math.round(
          history.length / (bestMs / 1000),
        )
          .toString()
          .padEnd(14)} ${heapMiB.toFixed(0)}\n`,
      );
    }
  }
}
