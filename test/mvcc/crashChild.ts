/**
 * Child process of the crash test: opens the store in argv[2], applies crashOp(seed, i) for i after the
 * store's consistent index up to argv[4], and reports on stdout "applied <i>" and "durable <index>" lines,
 * until it is killed (kill -9) or done.
 */
import { openLmdbBackend } from "../../src/backend/lmdb.js";
import { EtcdError } from "../../src/errors.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { crashOp } from "./crashOps.js";
import { TestLeases } from "./harness.js";

const [dir, seedText, lastText] = process.argv.slice(2);
const seed = Number(seedText);
const last = Number(lastText);
const backend = await openLmdbBackend({ dir: dir as string, batchIntervalMs: 5, drainSliceMs: 1 });
const store = MvccStore.open({ backend, leases: new TestLeases(), compactionBatchLimit: 20 });
process.stdout.write(`ready ${store.consistentIndex}\n`);
for (let i = store.consistentIndex + 1; i <= last; i++) {
  try {
    store.apply(i, 1, crashOp(seed, i));
  } catch (error) {
    if (!(error instanceof EtcdError)) throw error;
  }
  if (i % 2 === 0) {
    process.stdout.write(`applied ${i}\ndurable ${backend.durableIndex()}\n`);
    // About 2 ops per millisecond, so that a kill lands after a few hundred of them; the pauses also let
    // the compaction slices and stdout interleave with the applies.
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
await store.close();
process.stdout.write("done\n");
