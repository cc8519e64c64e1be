/** What is specific to the lmdb backend's writer thread: back-pressure, failures, and the unflushed buffer. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type LmdbBackend, openLmdbBackend } from "../../src/backend/lmdb.js";

const b = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-writer-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function waitFor(condition: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (condition()) resolve();
      else if (Date.now() - started > 10_000) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describe("lmdb backend writer", () => {
  it("blocks the producer on a full ring and loses nothing (back-pressure)", async () => {
    await withDir(async (dir) => {
      const backend = await openLmdbBackend({ dir, ringCapacityBytes: 64 * 1024, onFatal: assert.fail });
      const value = new Uint8Array(10_000).fill(3);
      // 2,000 frames of 10 kB through a 64 kB ring: the main thread must wait for the writer many times.
      for (let i = 0; i < 2000; i++) {
        backend.put("key", b(`k${String(i).padStart(5, "0")}`), value);
        backend.seal(i + 1, 1);
      }
      let count = 0;
      backend.range("key", b("k"), null, (_key, v) => {
        assert.equal(v.length, 10_000);
        count++;
        return true;
      });
      assert.equal(count, 2000);
      await backend.forceCommit();
      assert.equal(backend.durableIndex(), 2000);
      await backend.close();
      const again = await openLmdbBackend({ dir, onFatal: assert.fail });
      assert.equal(again.consistentIndex, 2000);
      await again.close();
    });
  });

  it("trims the unflushed buffer once the writer commits, and reads stay the same", async () => {
    await withDir(async (dir) => {
      const backend = (await openLmdbBackend({
        dir,
        batchIntervalMs: 1000,
        onFatal: assert.fail,
      })) as LmdbBackend;
      backend.put("key", b("a"), b("1"));
      backend.seal(1, 1);
      assert.equal(backend.bufferedEntries, 1);
      await backend.forceCommit();
      assert.equal(Buffer.from(backend.get("key", b("a")) ?? []).toString(), "1");
      assert.equal(backend.bufferedEntries, 0, "the read after the commit trimmed the buffer");
      await backend.close();
    });
  });

  it("a write-only stretch does not grow the buffer: each seal trims what the writer committed", async () => {
    await withDir(async (dir) => {
      const backend = (await openLmdbBackend({
        dir,
        batchIntervalMs: 1,
        onFatal: assert.fail,
      })) as LmdbBackend;
      for (let i = 1; i <= 200; i++) {
        backend.put("key", b(`k${i}`), b("v"));
        backend.seal(i, 1);
      }
      await backend.forceCommit();
      backend.put("key", b("last"), b("v"));
      backend.seal(201, 1);
      assert.equal(backend.bufferedEntries, 1, "only the last unit waits for the writer");
      await backend.close();
    });
  });

  it("a failed commit calls onFatal once, and the backend refuses further writes", async () => {
    await withDir(async (dir) => {
      const messages: string[] = [];
      const backend = await openLmdbBackend({ dir, failCommitAtSeq: 3, onFatal: (m) => messages.push(m) });
      for (let i = 1; i <= 5; i++) {
        backend.put("key", b(`k${i}`), b("v"));
        backend.seal(i, 1);
      }
      await assert.rejects(backend.forceCommit(), /backend is dead/);
      await waitFor(() => messages.length > 0, "the fatal report");
      assert.equal(messages.length, 1);
      assert.match(messages[0] ?? "", /failpoint: commit of unit/);
      assert.throws(() => backend.put("key", b("x"), b("y")), /backend is dead/);
      await backend.close();
      const again = await openLmdbBackend({ dir, onFatal: assert.fail });
      assert.ok(again.consistentIndex < 3, "the failed batch did not commit");
      await again.close();
    });
  });

  it("a writer thread that dies calls onFatal", async () => {
    await withDir(async (dir) => {
      const messages: string[] = [];
      const backend = await openLmdbBackend({ dir, onFatal: (m) => messages.push(m) });
      const worker = (backend as unknown as { worker: { terminate(): Promise<number> } }).worker;
      await worker.terminate();
      await waitFor(() => messages.length > 0, "the fatal report");
      assert.match(messages[0] ?? "", /backend writer exited with code 1/);
      await backend.close();
    });
  });
});
