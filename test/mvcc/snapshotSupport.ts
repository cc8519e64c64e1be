/** Helpers shared by the snapshot install tests (snapshotInstall.test.ts, snapshotInstallCrash.test.ts). */
import { open as openFile } from "node:fs/promises";
import type { Backend } from "../../src/backend/backend.js";
import { EtcdError } from "../../src/errors.js";
import type { MvccStore } from "../../src/mvcc/store.js";
import { crashOp } from "./crashOps.js";
import { dumpStore, normalize } from "./harness.js";

/** Streams `backend.snapshot()` into `path`, as the peer transport does on the receiving side. */
export async function writeImage(backend: Backend, path: string): Promise<void> {
  const snapshot = await backend.snapshot();
  const file = await openFile(path, "w");
  try {
    for await (const chunk of snapshot.chunks(64 * 1024)) await file.write(chunk);
    await file.sync();
  } finally {
    await file.close();
    await snapshot.close();
  }
}

/** Applies crashOp(seed, i) for i in (from, to] at raft index i; client errors are part of the history. */
export function applyOps(store: MvccStore, seed: number, from: number, to: number): Promise<void>[] {
  const compactions: Promise<void>[] = [];
  for (let i = from + 1; i <= to; i++) {
    try {
      const result = store.apply(i, 2, crashOp(seed, i));
      if (result.type === "compaction") compactions.push(result.physicalDone);
    } catch (error) {
      if (!(error instanceof EtcdError)) throw error;
    }
  }
  return compactions;
}

/**
 * Everything a client can observe of the store's state, for comparing two stores. `physical` adds the
 * whole-backend hash (Maintenance.Hash), which also depends on how far a compaction got.
 */
export function observe(store: MvccStore, physical = true): unknown {
  const first = Math.max(store.compactRevision, 1);
  const revisions = [...new Set([store.revision, first, store.revision - 3])].filter((rev) => rev >= first);
  return {
    revision: store.revision,
    compactRevision: store.compactRevision,
    consistentIndex: store.consistentIndex,
    hashKV: normalize(store.hashKV(0)),
    hash: physical ? store.hash() : null,
    ranges: revisions.map((rev) => dumpStore(store, rev)),
    // Above the compact revision: records at it may or may not be removed yet.
    history: normalize(store.eventsBetween(store.compactRevision + 1, store.revision)),
  };
}
