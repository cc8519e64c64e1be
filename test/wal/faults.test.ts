import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { WalError } from "../../src/wal/errors.js";
import type { WalFaults } from "../../src/wal/fs.js";
import { Wal, type WalOptions } from "../../src/wal/wal.js";
import { METADATA, makeEntries, makeEntry, recordingLogger, withTempDir } from "./support.js";

/**
 * Each case: three appends succeed; the fourth writer call fails while five appends of one turn are in
 * it. Expect: the five reject with WAL_FATAL, the fatal handler runs once, later appends reject at once,
 * and a reopen (without faults) finds every append that was reported durable, intact.
 */
const CASES: Array<{ name: string; faults: WalFaults; message: RegExp }> = [
  { name: "a short write", faults: { shortWriteAt: 4 }, message: /short write/ },
  { name: "ENOSPC on write", faults: { enospcAt: 4 }, message: /ENOSPC/ },
  { name: "EIO on fdatasync", faults: { eioOnFdatasyncAt: 4 }, message: /fdatasync failed.*EIO/ },
  {
    name: "the writer thread dying",
    faults: { exitWorkerAt: 4 },
    message: /exited unexpectedly \(code 70\)/,
  },
];

describe("WAL fault injection", () => {
  for (const { name, faults, message } of CASES) {
    it(`stops on ${name} and keeps everything reported durable`, async () => {
      await withTempDir(async (base) => {
        const dir = join(base, "wal");
        const fatals: WalError[] = [];
        const opts: WalOptions = {
          segmentSizeBytes: 1 << 20,
          logger: recordingLogger(),
          onFatal: (error) => fatals.push(error),
        };
        await (await Wal.create(dir, METADATA, opts)).close();
        const { wal } = await Wal.open(dir, {}, { ...opts, faults });
        for (let i = 1; i <= 3; i++)
          await wal.append({ term: 1, vote: 1n, commit: i - 1 }, [makeEntry(i, 1, 3000)]);
        const doomed = [];
        for (let i = 4; i <= 8; i++)
          doomed.push(wal.append({ term: 1, vote: 1n, commit: 3 }, [makeEntry(i, 1, 3000)]));
        const outcomes = await Promise.allSettled(doomed);
        for (const outcome of outcomes) {
          assert.equal(outcome.status, "rejected");
          assert.equal((outcome as PromiseRejectedResult).reason.code, "WAL_FATAL");
          assert.match((outcome as PromiseRejectedResult).reason.message, message);
        }
        assert.equal(fatals.length, 1);
        assert.equal(fatals[0]!.code, "WAL_FATAL");
        await assert.rejects(wal.append(null, [makeEntry(9)]), { code: "WAL_FATAL" });
        await assert.rejects(wal.saveSnapshotMarker({ index: 9, term: 1, confState: new Uint8Array(0) }), {
          code: "WAL_FATAL",
        });
        await wal.close();

        const reopened = await Wal.open(dir, {}, opts);
        assert.ok(reopened.entries.length >= 3);
        assert.deepEqual(reopened.entries.slice(0, 3), makeEntries(1, 3, 1, 3000));
        for (const entry of reopened.entries) assert.deepEqual(entry, makeEntry(entry.index, 1, 3000));
        const next = reopened.entries.length + 1;
        await reopened.wal.append(null, [makeEntry(next, 2)]);
        await reopened.wal.close();
        const last = await Wal.open(dir, {}, opts);
        assert.deepEqual(last.entries.at(-1), makeEntry(next, 2));
        await last.wal.close();
        assert.equal(fatals.length, 1);
      });
    });
  }

  it("logs a warning for a slow fdatasync and carries on", async () => {
    await withTempDir(async (base) => {
      const dir = join(base, "wal");
      const logger = recordingLogger();
      const opts: WalOptions = { segmentSizeBytes: 1 << 20, logger, slowFsyncWarnMs: 250 };
      await (await Wal.create(dir, METADATA, opts)).close();
      const { wal } = await Wal.open(
        dir,
        {},
        { ...opts, faults: { slowFdatasyncAt: 2, slowFdatasyncMs: 300 } },
      );
      for (let i = 1; i <= 3; i++) await wal.append(null, [makeEntry(i)]);
      await wal.close();
      // At least the injected one (a loaded machine may add a genuinely slow one).
      const slow = logger.lines.filter((l) => l.msg === "slow fdatasync" && Number(l.fields.tookMs) >= 300);
      assert.ok(slow.length >= 1);
      assert.equal(slow[0]!.level, "warn");
      assert.equal(slow[0]!.fields.expectedMs, 250);
      const reopened = await Wal.open(dir, {}, opts);
      assert.deepEqual(reopened.entries, makeEntries(1, 3));
      await reopened.wal.close();
    });
  });

  it("by default logs one fatal JSON line on stderr and exits the process with code 1", async () => {
    await withTempDir(async (base) => {
      const dir = join(base, "wal");
      const child = spawn(
        process.execPath,
        ["--import", "tsx", fileURLToPath(new URL("./faultChild.ts", import.meta.url)), dir],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      assert.equal(code, 1, `exit code (stderr: ${stderr})`);
      assert.deepEqual(stdout.trim().split("\n"), ["durable 1", "durable 2"]);
      const fatalLines = stderr
        .trim()
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line.level === "fatal");
      assert.equal(fatalLines.length, 1);
      assert.equal(fatalLines[0]!.code, "WAL_FATAL");
      assert.match(String(fatalLines[0]!.msg), /fdatasync failed.*EIO/);

      const opened = await Wal.open(dir, {}, { logger: recordingLogger(), segmentSizeBytes: 1 << 20 });
      assert.deepEqual(opened.entries.slice(0, 2), makeEntries(1, 2));
      await opened.wal.close();
    });
  });
});
