/**
 * Two and three transports on 127.0.0.1: messages arrive whole and in order per stream, batched into
 * frames; one stream per peer and direction; the identity and log lines etcd prints.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MessageType, newMessage } from "../../src/raft/index.js";
import { appMessage, connectAll, linesWith, type Node, startNode, waitFor } from "./harness.js";

describe("three transports exchange messages", () => {
  let nodes: Node[] = [];
  before(async () => {
    nodes = [await startNode(1n), await startNode(2n), await startNode(3n)];
    connectAll(nodes);
    await waitFor("all streams active", () =>
      nodes.every((n) => n.transport.activePeers() === 2 && n.transport.inboundStreams().length === 2),
    );
  });
  after(async () => {
    for (const node of nodes) await node.close();
  });

  it("keeps the order of each stream and batches messages into few frames", async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const count = 5000;
    const framesBefore = a.transport.peerStatus(2n)!.counters.framesSent;
    // Several send() calls in one turn, interleaving two destinations: each stream keeps its own order.
    for (let seq = 1; seq <= count; seq += 100) {
      const batch = [];
      for (let i = seq; i < seq + 100; i++) batch.push(appMessage(1n, 2n, i), appMessage(1n, 3n, i));
      a.transport.send(batch);
    }
    await waitFor("all delivered", () => b.received.length >= count && c.received.length >= count);
    for (const node of [b, c]) {
      assert.equal(node.received.length, count);
      node.received.forEach((m, i) => {
        assert.equal(m.index, i + 1);
        assert.equal(m.from, 1n);
        assert.equal(m.to, node.id);
        assert.equal(m.type, MessageType.App);
        assert.equal(
          new TextDecoder().decode(m.entries[0]!.data.subarray(0, String(i + 1).length + 2)),
          `${i + 1}:0`,
        );
      });
    }
    const framesSent = a.transport.peerStatus(2n)!.counters.framesSent - framesBefore;
    assert.ok(
      framesSent > 0 && framesSent < count / 10,
      `batched: ${framesSent} frames for ${count} messages`,
    );
    assert.equal(b.transport.countersFor(1n)!.messagesReceived, count);
    assert.deepEqual(a.unreachable, []);
    b.received.length = 0;
    c.received.length = 0;
  });

  it("carries every field of a message", async () => {
    const [a, b] = nodes as [Node, Node, Node];
    const message = newMessage(MessageType.AppResp, 2n, 1n, 7);
    message.logTerm = 6;
    message.index = 1234567;
    message.commit = 99;
    message.reject = true;
    message.rejectHint = 1200;
    message.context = new Uint8Array([1, 2, 3]);
    a.transport.send([message]);
    await waitFor("delivered", () => b.received.length === 1);
    assert.deepEqual(b.received[0], message);
    b.received.length = 0;
  });

  it("splits frames at frameTargetBytes and delivers large messages", async () => {
    const [a, , c] = nodes as [Node, Node, Node];
    const framesBefore = a.transport.peerStatus(3n)!.counters.framesSent;
    // 40 messages of 64 KiB: more than the 256 KiB target, so several frames.
    const batch = [];
    for (let i = 1; i <= 40; i++) batch.push(appMessage(1n, 3n, i, 1, 64 * 1024));
    a.transport.send(batch);
    await waitFor("delivered", () => c.received.length === 40);
    assert.deepEqual(
      c.received.map((m) => m.index),
      batch.map((m) => m.index),
    );
    assert.equal(c.received[39]!.entries[0]!.data.length, 64 * 1024);
    const frames = a.transport.peerStatus(3n)!.counters.framesSent - framesBefore;
    assert.ok(frames >= 40 / 4 - 1 && frames <= 40, `40 x 64 KiB went in ${frames} frames`);
    c.received.length = 0;
  });

  it("keeps one stream per peer and direction, and logs etcd's lines", () => {
    for (const node of nodes) {
      assert.deepEqual(
        node.transport.inboundStreams().sort(),
        nodes.filter((n) => n !== node).map((n) => n.id),
      );
      assert.equal(linesWith(node, "peer became active").length, 2);
      assert.equal(linesWith(node, "added remote peer").length, 2);
      const established = linesWith(node, "established TCP streaming connection with remote peer");
      assert.equal(established.filter((l) => l["stream-writer-type"] === "stream Message").length, 2);
      assert.equal(established.filter((l) => l["stream-reader-type"] === "stream Message").length, 2);
      assert.equal(linesWith(node, "peer became active")[0]!.caller, "rafthttp");
    }
    assert.ok(nodes[0]!.transport.activeSince(2n) > 0);
    assert.equal(nodes[0]!.transport.activeSince(9n), 0);
  });

  it("ignores messages to unknown ids and to 0 (etcd drops them)", async () => {
    const [a, b] = nodes as [Node, Node, Node];
    a.transport.send([appMessage(1n, 42n, 1), appMessage(1n, 0n, 2), appMessage(1n, 2n, 3)]);
    await waitFor("delivered", () => b.received.length === 1);
    assert.equal(b.received[0]!.index, 3);
    assert.deepEqual(a.unreachable, []);
    b.received.length = 0;
  });
});

describe("two transports", () => {
  it("a member that reaches us first is answered through a remote until it is added", async () => {
    const a = await startNode(11n);
    const b = await startNode(12n);
    try {
      // Only a knows b: b learns a's URLs from the handshake (X-PeerURLs), as etcd's remotes do.
      a.transport.addPeer(12n, [b.url]);
      a.transport.send([appMessage(11n, 12n, 1)]);
      await waitFor("b received", () => b.received.length === 1);
      assert.equal(b.transport.peerStatus(11n)?.isRemote, true);
      assert.equal(b.transport.activeSince(11n), 0, "a remote is not an active peer");
      b.transport.send([appMessage(12n, 11n, 1)]);
      await waitFor("a received the answer", () => a.received.length === 1);
      b.transport.addPeer(11n, [a.url]);
      assert.equal(b.transport.peerStatus(11n)?.isRemote, false);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
