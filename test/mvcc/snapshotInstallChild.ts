/**
 * Child process of the snapshot install crash test: opens the lmdb store in argv[2], installs the backend
 * image at argv[3], and kills itself with SIGKILL at install step argv[4] (an InstallStep, or "none" to
 * finish). Prints "ready" once the store is open and "installed <consistent index>" when done.
 */
import { type InstallStep, openLmdbBackend } from "../../src/backend/lmdb.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { TestLeases } from "./harness.js";

const [dir, imagePath, killAt] = process.argv.slice(2);
const backend = await openLmdbBackend({
  dir: dir as string,
  batchIntervalMs: 2,
  installFailpoint: (step: InstallStep) => {
    if (step === killAt) process.kill(process.pid, "SIGKILL");
  },
});
const store = MvccStore.open({ backend, leases: new TestLeases() });
process.stdout.write("ready\n");
await store.installSnapshot(imagePath as string);
process.stdout.write(`installed ${store.consistentIndex}\n`);
await store.close();
