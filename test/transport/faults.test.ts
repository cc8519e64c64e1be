/**
 * Dead, stalled and restarted peers: a peer that cannot take messages fills only its own bounded queue,
 * its drops are reported to raft as unreachable, the caller never waits, other peers are unaffected, and
 * the stream comes back by itself once the peer does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freePort } from "../support/ports.js";
import { appMessage, linesWith, type Node, startNode, waitFor } from "./harness.js";
import { startStallProxy } from "./proxy.js";

describe("a dead peer", () => {
  it("fills its queue, drops and reports unreachable; the live peer gets everything", async () => {
    const a = await startNode(1n, { limits: { queueMessagesMax: 256 } });
    const b = await startNode(2n);
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    try {
      a.transport.addPeer(2n, [b.url]);
      a.transport.addPeer(3n, [deadUrl]);
      await waitFor("stream to b", () => a.transport.activeSince(2n) > 0);
      await waitFor(
        "a failed dial to the dead peer",
        () => a.transport.peerStatus(3n)!.counters.dialFailures > 0,
      );
      assert.equal(a.transport.activeSince(3n), 0);

      const batch = [];
      for (let seq = 1; seq <= 1000; seq++) batch.push(appMessage(1n, 3n, seq), appMessage(1n, 2n, seq));
      a.transport.send(batch);
      const reportsAfterSend = a.unreachable.filter((id) => id === 3n).length;
      // send() returned: nothing waited for the dead peer.
      const dead = a.transport.peerStatus(3n)!;
      assert.ok(dead.queuedMessages <= 256, `dead peer queue ${dead.queuedMessages} <= 256`);
      assert.ok(dead.counters.messagesDropped >= 1000 - 256, `dropped ${dead.counters.messagesDropped}`);
      assert.ok(a.unreachable.includes(3n), "the dead peer was reported unreachable");
      assert.ok(!a.unreachable.includes(2n), "the live peer was not");

      await waitFor("b got all", () => b.received.length === 1000);
      assert.deepEqual(
        b.received.map((m) => m.index),
        batch.filter((m) => m.to === 2n).map((m) => m.index),
      );
      // The queued remainder goes at the next failed dial (reported again), never to a later connection.
      await waitFor(
        "queue dropped at the next dial failure",
        () => a.transport.peerStatus(3n)!.queuedMessages === 0,
      );
      assert.ok(a.unreachable.filter((id) => id === 3n).length > reportsAfterSend);
      assert.deepEqual(a.snapshotStatus, []);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("redials with backoff (not a dial per message)", async () => {
    const a = await startNode(1n, { limits: { backoffInitialMs: 50, backoffMaxMs: 400 } });
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    try {
      a.transport.addPeer(3n, [deadUrl]);
      const startMs = Date.now();
      for (let i = 0; i < 50; i++) {
        a.transport.send([appMessage(1n, 3n, i)]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const elapsedMs = Date.now() - startMs;
      const dials = a.transport.peerStatus(3n)!.counters.dialFailures;
      // 50-ms backoff doubling to 400 ms: far fewer dials than messages, and more than one.
      assert.ok(dials >= 2 && dials <= Math.ceil(elapsedMs / 40) + 1, `${dials} dials in ${elapsedMs} ms`);
      assert.ok(dials < 50 / 2, `${dials} dials for 50 messages`);
      // etcd logs the inactive peer at debug after the first failure; it never became active here.
      assert.equal(linesWith(a, "peer became inactive (message send to peer failed)").length, 0);
      assert.ok(linesWith(a, "peer deactivated again").length >= 1);
      const first = linesWith(a, "peer deactivated again")[0]!;
      assert.match(String(first.error), /^failed to dial 3 on stream Message \(.*ECONNREFUSED.*\)$/);
    } finally {
      await a.close();
    }
  });
});

describe("a stalled peer (its connection stops reading)", () => {
  it("bounds memory, reports unreachable, times out, and recovers when the peer does", async () => {
    const limits = { writeBufferBytesMax: 1024 * 1024, queueMessagesMax: 64, readTimeoutMs: 1500 };
    const a = await startNode(1n, { limits });
    const b = await startNode(2n);
    const c = await startNode(3n);
    const proxy = await startStallProxy(b.port);
    try {
      a.transport.addPeer(2n, [proxy.url]);
      a.transport.addPeer(3n, [c.url]);
      await waitFor("streams up", () => a.transport.activePeers() === 2);
      proxy.pause();

      // 64 KiB messages: 600 of them (~39 MB) cannot all fit the socket bound, the queue, and the kernel.
      let seq = 0;
      for (let round = 0; round < 20; round++) {
        const batch = [];
        for (let i = 0; i < 30; i++) batch.push(appMessage(1n, 2n, ++seq, 1, 64 * 1024));
        batch.push(appMessage(1n, 3n, round + 1));
        a.transport.send(batch);
        const status = a.transport.peerStatus(2n)!;
        assert.ok(status.queuedMessages <= 64, `queue ${status.queuedMessages}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const stalled = a.transport.peerStatus(2n)!;
      assert.ok(stalled.counters.messagesDropped > 0, "drops once the bounds are reached");
      assert.ok(a.unreachable.includes(2n));
      // The healthy peer was never held up.
      await waitFor("c got its messages", () => c.received.length === 20);
      assert.ok(!a.unreachable.includes(3n));

      // The stalled stream carries no heartbeat back: it is closed after readTimeoutMs.
      await waitFor("stream declared lost", () => a.transport.activeSince(2n) === 0, 5000);
      assert.ok(linesWith(a, "peer became inactive (message send to peer failed)").length >= 1);

      proxy.resume();
      await waitFor("stream back", () => a.transport.activeSince(2n) > 0, 5000);
      const before = b.received.length;
      a.transport.send([appMessage(1n, 2n, 100_000)]);
      await waitFor("delivered after recovery", () => b.received.some((m) => m.index === 100_000));
      assert.ok(b.received.length > before);
    } finally {
      await proxy.close();
      for (const node of [a, b, c]) await node.close();
    }
  });
});

describe("a restarted peer", () => {
  it("is redialed, and messages flow again on the new stream", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    try {
      a.transport.addPeer(2n, [b.url]);
      b.transport.addPeer(1n, [a.url]);
      await waitFor("streams up", () => a.transport.activeSince(2n) > 0 && b.transport.activeSince(1n) > 0);
      a.transport.send([appMessage(1n, 2n, 1)]);
      await waitFor("first message", () => b.received.length === 1);

      await b.transport.close();
      await waitFor("a sees the loss", () => a.transport.activeSince(2n) === 0);
      assert.ok(a.unreachable.includes(2n), "losing the stream is reported to raft");
      // While b is down, messages queue (bounded) or drop; none waits.
      a.transport.send([appMessage(1n, 2n, 2)]);

      await b.restart();
      b.transport.addPeer(1n, [a.url]);
      await waitFor("a redialed", () => a.transport.activeSince(2n) > 0, 5000);
      await waitFor("b's inbound stream from a", () => b.transport.inboundStreams().includes(1n));
      a.transport.send([appMessage(1n, 2n, 3)]);
      await waitFor("message after restart", () => b.received.some((m) => m.index === 3));
      assert.equal(a.transport.peerStatus(2n)!.counters.connectionsOpened, 2);
      // And the other direction: b's new transport reached a, which took the new stream in place of the old.
      await waitFor("b -> a up", () => b.transport.activeSince(1n) > 0);
      b.transport.send([appMessage(2n, 1n, 7)]);
      await waitFor("a got it", () => a.received.some((m) => m.index === 7));
      assert.deepEqual(a.transport.inboundStreams(), [2n]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("URL changes", () => {
  it("updatePeer keeps the open stream and dials the new URL once it breaks; a second URL is tried when the first fails", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const oldPath = await startStallProxy(b.port);
    try {
      a.transport.addPeer(2n, [deadUrl, oldPath.url]);
      await waitFor("stream up through the second URL", () => a.transport.activeSince(2n) > 0);
      assert.equal(oldPath.accepted, 1);
      // etcd changes only where the next dial goes: the established stream keeps carrying messages.
      a.transport.updatePeer(2n, [b.url]);
      a.transport.send([appMessage(1n, 2n, 5)]);
      await waitFor("delivered over the stream it had", () => b.received.some((m) => m.index === 5));
      assert.ok(linesWith(a, "updated remote peer").length === 1);
      // The old path goes away: the redial goes to the new URL.
      await oldPath.close();
      await waitFor("reconnected through the new URL", () => {
        a.transport.send([appMessage(1n, 2n, 6)]);
        return b.received.some((m) => m.index === 6);
      });
      assert.equal(oldPath.accepted, 1, "never dialed the old URL again");
    } finally {
      await oldPath.close();
      await a.close();
      await b.close();
    }
  });

  it("removePeer stops sending; later messages to it are ignored", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    try {
      a.transport.addPeer(2n, [b.url]);
      await waitFor("stream up", () => a.transport.activeSince(2n) > 0);
      a.transport.removePeer(2n);
      assert.equal(a.transport.peerStatus(2n), undefined);
      assert.equal(a.transport.activeSince(2n), 0);
      a.transport.send([appMessage(1n, 2n, 1)]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(b.received.length, 0);
      assert.deepEqual(a.unreachable, []);
      assert.equal(linesWith(a, "removed remote peer").length, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

export type { Node };
