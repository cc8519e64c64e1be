import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type SnapshotFile, Snapshotter, snapshotName } from "../../src/wal/snap.js";
import { entryData, recordingLogger, withTempDir } from "./support.js";

function snapshot(index: number, term: number, dataBytes = 1000): SnapshotFile {
  return {
    index,
    term,
    confState: new Uint8Array([index & 0xff, 1, 2]),
    data: entryData(index, term, dataBytes),
  };
}

describe("Snapshotter", () => {
  it("saves atomically under etcd's name and loads the same snapshot back", async () => {
    await withTempDir(async (base) => {
      const dir = join(base, "snap");
      const snapper = new Snapshotter(dir, { logger: recordingLogger() });
      assert.equal(await snapper.loadNewest(), null, "no directory: no snapshot");
      const name = await snapper.save(snapshot(0x1234, 3, 100_000));
      assert.equal(name, "0000000000000003-0000000000001234.snap");
      assert.equal(name, snapshotName(3, 0x1234));
      assert.deepEqual(await readdir(dir), [name], "no temporary file left behind");
      assert.deepEqual(await snapper.loadNewest(), snapshot(0x1234, 3, 100_000));
      const empty = snapshot(9, 1, 0);
      empty.confState = new Uint8Array(0);
      await snapper.save(empty);
      assert.deepEqual(
        await snapper.loadNewest(),
        snapshot(0x1234, 3, 100_000),
        "newest by term, then index",
      );
    });
  });

  it("skips a corrupt newest file with a log line, renames it .broken, and returns the next older one", async () => {
    await withTempDir(async (dir) => {
      const logger = recordingLogger();
      const snapper = new Snapshotter(dir, { logger });
      await snapper.save(snapshot(10, 1));
      const newest = await snapper.save(snapshot(20, 1));
      const truncated = await snapper.save(snapshot(30, 1));
      const path = join(dir, newest);
      const bytes = new Uint8Array(await readFile(path));
      bytes[500] = bytes[500]! ^ 1;
      await writeFile(path, bytes);
      const cut = await readFile(join(dir, truncated));
      await writeFile(join(dir, truncated), cut.subarray(0, cut.length - 1));

      assert.deepEqual(await snapper.loadNewest(), snapshot(10, 1));
      const files = (await readdir(dir)).sort();
      assert.deepEqual(files, [snapshotName(1, 10), `${newest}.broken`, `${truncated}.broken`].sort());
      const warnings = logger.lines.filter((l) => l.level === "warn").map((l) => l.fields.error ?? "");
      assert.ok(warnings.some((w) => /CRC mismatch/.test(String(w))));
      assert.ok(warnings.some((w) => /sizes do not add up/.test(String(w))));
    });
  });

  it("loads the newest snapshot that has a marker in the WAL", async () => {
    await withTempDir(async (dir) => {
      const snapper = new Snapshotter(dir, { logger: recordingLogger() });
      await snapper.save(snapshot(10, 1));
      await snapper.save(snapshot(20, 2));
      await snapper.save(snapshot(30, 2));
      const markers = [
        { index: 0, term: 0 },
        { index: 10, term: 1 },
        { index: 20, term: 2 },
        { index: 30, term: 1 },
      ];
      assert.deepEqual(await snapper.loadNewestAvailable(markers), snapshot(20, 2));
      assert.equal(await snapper.loadNewestAvailable([{ index: 0, term: 0 }]), null);
    });
  });

  it("keeps at most maxSnapshots files, newest first; 0 keeps all", async () => {
    await withTempDir(async (base) => {
      const limited = new Snapshotter(join(base, "a"), { maxSnapshots: 2, logger: recordingLogger() });
      const unlimited = new Snapshotter(join(base, "b"), { maxSnapshots: 0, logger: recordingLogger() });
      for (let i = 1; i <= 5; i++) {
        await limited.save(snapshot(i * 10, 1, 10));
        await unlimited.save(snapshot(i * 10, 1, 10));
      }
      assert.deepEqual((await readdir(join(base, "a"))).sort(), [snapshotName(1, 40), snapshotName(1, 50)]);
      assert.equal((await readdir(join(base, "b"))).length, 5);
    });
  });
});
