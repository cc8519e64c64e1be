import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../../src/backend/backend.js";
import { type LmdbBackend, openLmdbBackend } from "../../src/backend/lmdb.js";
import { backendSuite } from "./suite.js";

let dir = "";
const fatal = (message: string) => {
  throw new Error(`backend fatal in a test: ${message}`);
};

backendSuite({
  name: "lmdb",
  open: async () => {
    dir = mkdtempSync(join(tmpdir(), "etcd-ts-lmdb-"));
    // Short batches so that the tests cross many commits.
    return await openLmdbBackend({ dir, batchIntervalMs: 5, onFatal: fatal, ringCapacityBytes: 1 << 20 });
  },
  reopen: async (backend: Backend) => {
    await backend.close();
    return (await openLmdbBackend({ dir, batchIntervalMs: 5, onFatal: fatal })) as LmdbBackend;
  },
  cleanup: async () => {
    rmSync(dir, { recursive: true, force: true });
  },
});
