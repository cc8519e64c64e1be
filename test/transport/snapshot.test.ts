/**
 * Snapshots on their own connection: streamed from an async source in chunks, written to disk as they
 * arrive (temp file, fsync, rename to etcd's <index>.snap.db), handed to raft only once durable, and
 * reported back to the sender's raft. Memory stays bounded for a 200 MB snapshot.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { encodeMessage } from "../../src/raft/index.js";
import { FrameKind, snapshotFileName } from "../../src/transport/index.js";
import { appMessage, linesWith, type Node, postSnapshot, rawFrame, startNode, waitFor } from "./harness.js";
import { generatedSource, snapMessage, sourceOf } from "./snapshotSource.js";

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function pair(): Promise<[Node, Node]> {
  const a = await startNode(1n);
  const b = await startNode(2n);
  a.transport.addPeer(2n, [b.url]);
  b.transport.addPeer(1n, [a.url]);
  await waitFor("streams up", () => a.transport.activeSince(2n) > 0 && b.transport.activeSince(1n) > 0);
  return [a, b];
}

describe("snapshot transfer", () => {
  it("writes the data to <index>.snap.db before raft sees the MsgSnap, and reports success", async () => {
    const [a, b] = await pair();
    try {
      const chunks = [Buffer.from("first chunk|"), Buffer.alloc(3 * 1024 * 1024, 7), Buffer.from("|last")];
      const message = snapMessage(1n, 2n, 0x1234);
      a.transport.sendSnapshot(message, sourceOf(chunks));
      await waitFor("snapshot status", () => a.snapshotStatus.length === 1);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: true }]);
      assert.equal(b.snapshots.length, 1);
      const { message: got, file } = b.snapshots[0]!;
      assert.deepEqual(got, message);
      assert.equal(file.index, 0x1234);
      assert.equal(file.path, join(b.snapshotDir, "0000000000001234.snap.db"));
      assert.equal(snapshotFileName(0x1234), "0000000000001234.snap.db");
      assert.equal(file.sizeBytes, Buffer.concat(chunks).length);
      assert.ok(readFileSync(file.path).equals(Buffer.concat(chunks)));
      assert.deepEqual(readdirSync(b.snapshotDir), ["0000000000001234.snap.db"], "no temp file left");
      // Chunks above snapshotChunkBytes (1 MiB) are split; the stream is untouched meanwhile.
      assert.equal(linesWith(a, "sent database snapshot").length, 1);
      assert.equal(
        linesWith(b, "received and saved database snapshot")[0]!["incoming-snapshot-size-bytes"],
        file.sizeBytes,
      );
      a.transport.send([appMessage(1n, 2n, 9)]);
      await waitFor("stream still works", () => b.received.some((m) => m.index === 9));
      assert.equal(b.received.filter((m) => m.type === 7).length, 0, "the MsgSnap never went on the stream");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("streams 200 MB to disk with RSS growth far below its size", async () => {
    const [a, b] = await pair();
    const totalBytes = 200 * 1024 * 1024;
    const { source, digest } = generatedSource(totalBytes, 1024 * 1024);
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const baselineRss = process.memoryUsage().rss;
    let peakRss = baselineRss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 20);
    try {
      a.transport.sendSnapshot(snapMessage(1n, 2n, 77), source);
      await waitFor("snapshot status", () => a.snapshotStatus.length === 1, 120_000);
      clearInterval(sampler);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: true }]);
      const file = b.snapshots[0]!.file;
      assert.equal(file.sizeBytes, totalBytes);
      assert.equal(await fileSha256(file.path), await digest);
      const growthMb = (peakRss - baselineRss) / 1024 / 1024;
      // Sender and receiver run in this one process; each holds about a chunk. 64 MB leaves room for GC lag.
      assert.ok(growthMb < 64, `RSS grew ${growthMb.toFixed(1)} MB while streaming 200 MB`);
      console.log(`# 200 MB snapshot: peak RSS growth ${growthMb.toFixed(1)} MB`);
    } finally {
      clearInterval(sampler);
      await a.close();
      await b.close();
    }
  });

  it("a MsgSnap given to send() takes its data from the snapshotData option", async () => {
    const data = Buffer.from("backend snapshot bytes");
    const a = await startNode(1n, { extra: { snapshotData: () => sourceOf([data]) } });
    const b = await startNode(2n);
    try {
      a.transport.addPeer(2n, [b.url]);
      a.transport.send([snapMessage(1n, 2n, 5), appMessage(1n, 2n, 1)]);
      await waitFor("snapshot done", () => a.snapshotStatus.length === 1);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: true }]);
      assert.ok(readFileSync(b.snapshots[0]!.file.path).equals(data));
      await waitFor("the App too", () => b.received.length === 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("without a data source, a MsgSnap from send() fails at once and is reported", async () => {
    const a = await startNode(1n);
    try {
      a.transport.addPeer(2n, ["http://127.0.0.1:9"]);
      a.transport.send([snapMessage(1n, 2n, 5)]);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: false }]);
      assert.deepEqual(a.unreachable, [2n]);
    } finally {
      await a.close();
    }
  });

  it("one snapshot per peer at a time: a second one fails at once", async () => {
    const [a, b] = await pair();
    try {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield Buffer.from("a");
        await gate;
        yield Buffer.from("b");
      }
      a.transport.sendSnapshot(snapMessage(1n, 2n, 8), slow());
      let secondClosed = false;
      async function* second(): AsyncGenerator<Uint8Array> {
        try {
          yield Buffer.from("never read");
        } finally {
          secondClosed = true;
        }
      }
      const secondSource = second();
      await secondSource.next(); // started, so return() runs its finally
      a.transport.sendSnapshot(snapMessage(1n, 2n, 9), secondSource);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: false }]);
      await waitFor("the refused source was closed", () => secondClosed);
      release();
      await waitFor("first done", () => a.snapshotStatus.length === 2);
      assert.deepEqual(a.snapshotStatus[1], { id: 2n, ok: true });
      assert.ok(readFileSync(b.snapshots[0]!.file.path).equals(Buffer.from("ab")));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a source that fails mid-way fails the transfer; the receiver keeps no partial file", async () => {
    const [a, b] = await pair();
    try {
      async function* broken(): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(2 * 1024 * 1024, 1);
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw new Error("backend read failed");
      }
      a.transport.sendSnapshot(snapMessage(1n, 2n, 3), broken());
      await waitFor("failure reported", () => a.snapshotStatus.length === 1);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: false }]);
      assert.ok(a.unreachable.includes(2n));
      assert.match(String(linesWith(a, "failed to send database snapshot")[0]!.error), /backend read failed/);
      await waitFor("receiver cleaned up", () => readdirSync(b.snapshotDir).length === 0);
      assert.equal(b.snapshots.length, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a body whose checksum does not match is refused with 500 and never reaches raft", async () => {
    const b = await startNode(2n);
    try {
      const header = rawFrame(FrameKind.SnapshotHeader, encodeMessage(snapMessage(1n, 2n, 4)));
      const data = rawFrame(FrameKind.SnapshotChunk, Buffer.from("payload"));
      const end = Buffer.alloc(40);
      end.writeBigUInt64BE(7n, 0); // right size, wrong hash (zeros)
      const answer = await postSnapshot(
        b.port,
        Buffer.concat([header, data, rawFrame(FrameKind.SnapshotEnd, end)]),
      );
      assert.equal(answer.status, 500);
      assert.equal(answer.body, "failed to save KV snapshot (sha256 mismatch)\n");
      assert.equal(b.snapshots.length, 0);
      assert.deepEqual(readdirSync(b.snapshotDir), []);
    } finally {
      await b.close();
    }
  });
});
