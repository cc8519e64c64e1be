/**
 * Crash test for installing a received backend snapshot (issue 10): a child process installs the image
 * into a follower's lmdb store and is killed with SIGKILL at each step of the install (the backend's
 * failpoints). Reopened, the follower holds either its old state whole with the received file still in
 * place (the install then runs again and completes), or the leader's state whole with the file gone;
 * never a mix. Which one follows from the step: the rename of the image over the data file is the only
 * change on disk.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type InstallStep, openLmdbBackend } from "../../src/backend/lmdb.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { b, LIVE_LEASE, TestLeases } from "./harness.js";
import { applyOps, observe, writeImage } from "./snapshotSupport.js";

const childPath = fileURLToPath(new URL("./snapshotInstallChild.ts", import.meta.url));
const LEADER_INDEX = 401;

/** Where a kill lands, and which state the follower must reopen with. */
const CASES: Array<{ killAt: InstallStep | "none"; expect: "old" | "new" }> = [
  { killAt: "writerStopped", expect: "old" },
  { killAt: "renamed", expect: "new" },
  { killAt: "synced", expect: "new" },
  { killAt: "reopened", expect: "new" },
  { killAt: "none", expect: "new" },
];

function runChild(dir: string, imagePath: string, killAt: string): Promise<{ killed: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", childPath, dir, imagePath, killAt], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve({ killed: true, out });
      else if (code === 0) resolve({ killed: false, out });
      else reject(new Error(`install child exited with code ${code}`));
    });
  });
}

async function openStore(dir: string): Promise<MvccStore> {
  const backend = await openLmdbBackend({ dir, batchIntervalMs: 2, onFatal: assert.fail });
  return MvccStore.open({ backend, leases: new TestLeases() });
}

describe("snapshot install crash test (kill -9 at each step)", () => {
  it("reopens with the old state and the file, or the new state without it, never a mix", async () => {
    const root = mkdtempSync(join(tmpdir(), "etcd-ts-snapinstall-crash-"));
    try {
      // The leader: history with compactions and a leased key; its image is the received file.
      const leader = await openStore(join(root, "leader"));
      await Promise.allSettled(applyOps(leader, 11, 0, LEADER_INDEX - 1));
      leader.apply(LEADER_INDEX, 3, {
        type: "put",
        request: { key: b("leased"), value: b("v"), lease: LIVE_LEASE },
      });
      const image = join(root, "leader.image");
      await writeImage(leader.backend, image);
      const expectedNew = observe(leader);
      await leader.close();

      for (const { killAt, expect } of CASES) {
        const memberDir = join(root, killAt);
        const snapDir = join(memberDir, "snap");
        const dbDir = join(snapDir, "db");
        mkdirSync(snapDir, { recursive: true });
        const follower = await openStore(dbDir);
        await Promise.allSettled(applyOps(follower, 23, 0, 150));
        const expectedOld = observe(follower);
        await follower.close();
        const received = join(snapDir, `${LEADER_INDEX.toString(16).padStart(16, "0")}.snap.db`);
        copyFileSync(image, received);

        const run = await runChild(dbDir, received, killAt);
        assert.equal(run.killed, killAt !== "none", `${killAt}: ${run.out}`);
        assert.match(run.out, /^ready\n/, killAt);

        const reopened = await openStore(dbDir);
        const state = observe(reopened);
        if (expect === "old") {
          assert.deepEqual(state, expectedOld, `${killAt}: the old state, whole`);
          assert.ok(existsSync(received), `${killAt}: the received file is still there`);
          assert.equal(statSync(received).size, statSync(image).size);
          // What the server does at restart when its backend is behind the raft snapshot: install again.
          await reopened.installSnapshot(received);
          assert.deepEqual(observe(reopened), expectedNew, `${killAt}: installed on the second try`);
        } else {
          assert.deepEqual(state, expectedNew, `${killAt}: the new state, whole`);
        }
        assert.equal(existsSync(received), false, `${killAt}: the received file is consumed`);
        // The installed store takes writes and keeps them across a restart.
        reopened.apply(LEADER_INDEX + 1, 3, { type: "put", request: { key: b("after"), value: b(killAt) } });
        const afterWrite = observe(reopened);
        await reopened.close();
        const again = await openStore(dbDir);
        assert.deepEqual(
          observe(again),
          afterWrite,
          `${killAt}: the write after the install survives a restart`,
        );
        await again.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
