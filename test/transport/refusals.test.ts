/**
 * Refusals between transports: a peer of another cluster is refused with etcd's 412 "cluster ID
 * mismatch" and both sides log etcd's lines; a removed member is refused (410 on its stream, 403 on a
 * snapshot) and its own transport reports "the member has been permanently removed from the cluster".
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TransportErrorCode } from "../../src/transport/index.js";
import { appMessage, linesWith, startNode, waitFor } from "./harness.js";
import { snapMessage, sourceOf } from "./snapshotSource.js";

describe("cluster ID mismatch", () => {
  it("is refused with etcd's 412 and logged on both sides; nothing is delivered", async () => {
    const a = await startNode(1n, { clusterId: 0xaaan });
    const b = await startNode(2n, { clusterId: 0xbbbn });
    try {
      a.transport.addPeer(2n, [b.url]);
      await waitFor(
        "a logged the refusal",
        () => linesWith(a, "request sent was ignored by remote peer due to cluster ID mismatch").length > 0,
      );
      const sender = linesWith(a, "request sent was ignored by remote peer due to cluster ID mismatch")[0]!;
      assert.equal(sender["remote-peer-id"], "2");
      assert.equal(sender["remote-peer-cluster-id"], "bbb");
      assert.equal(sender["local-member-cluster-id"], "aaa");
      assert.equal(sender.error, "cluster ID mismatch");
      const receiver = linesWith(b, "request cluster ID mismatch")[0]!;
      assert.equal(receiver["local-member-cluster-id"], "bbb");
      assert.equal(receiver["remote-peer-cluster-id"], "aaa");
      assert.equal(receiver["remote-peer-server-name"], "1");

      a.transport.send([appMessage(1n, 2n, 1)]);
      await waitFor(
        "a retried and failed again",
        () => a.transport.peerStatus(2n)!.counters.dialFailures >= 3,
      );
      assert.equal(a.transport.activeSince(2n), 0);
      assert.equal(b.received.length, 0);
      assert.deepEqual(b.transport.inboundStreams(), []);
      assert.ok(a.unreachable.includes(2n), "the queued message was dropped and reported");
      assert.deepEqual(a.removedErrors, []);

      a.transport.sendSnapshot(snapMessage(1n, 2n, 10), sourceOf([Buffer.from("data")]));
      await waitFor("snapshot refused", () => a.snapshotStatus.length === 1);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: false }]);
      assert.equal(b.snapshots.length, 0);
      const failed = linesWith(a, "failed to send database snapshot")[0]!;
      assert.equal(failed.error, "cluster ID mismatch");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("a removed member", () => {
  it("is refused with 410 and told to stop; it stops dialing that peer", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    try {
      b.removed.add(1n);
      a.transport.addPeer(2n, [b.url]);
      await waitFor("a was told", () => a.removedErrors.length === 1);
      assert.equal(a.removedErrors[0]!.code, TransportErrorCode.MemberRemoved);
      assert.equal(a.removedErrors[0]!.message, "the member has been permanently removed from the cluster");
      const refused = linesWith(b, "rejected stream from remote peer because it was removed")[0]!;
      assert.equal(refused["remote-peer-id-from"], "1");
      assert.equal(linesWith(a, "the member has been permanently removed from the cluster").length, 1);
      const dials = a.transport.peerStatus(2n)!.counters.dialFailures;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(a.transport.peerStatus(2n)!.counters.dialFailures, dials, "no redial after 410");
      a.transport.send([appMessage(1n, 2n, 1)]);
      assert.ok(a.unreachable.includes(2n));
      assert.equal(b.received.length, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("loses its open streams when removed, is refused on redial, and is told once", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    const c = await startNode(3n);
    try {
      a.transport.addPeer(2n, [b.url]);
      a.transport.addPeer(3n, [c.url]);
      await waitFor("streams up", () => a.transport.activePeers() === 2);
      // b and c apply the conf change that removes a: membership marks it, then removePeer.
      for (const node of [b, c]) {
        node.removed.add(1n);
        node.transport.removePeer(1n);
      }
      await waitFor("a was told", () => a.removedErrors.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(a.removedErrors.length, 1, "reported once though both peers refuse");
      assert.deepEqual(b.transport.inboundStreams(), []);
      assert.deepEqual(c.transport.inboundStreams(), []);
    } finally {
      for (const node of [a, b, c]) await node.close();
    }
  });

  it("has its snapshot refused with 403 and is told", async () => {
    const a = await startNode(1n);
    const b = await startNode(2n);
    try {
      a.transport.addPeer(2n, [b.url]);
      await waitFor("stream up", () => a.transport.activeSince(2n) > 0);
      b.removed.add(1n);
      a.transport.sendSnapshot(snapMessage(1n, 2n, 10), sourceOf([Buffer.alloc(1024)]));
      await waitFor("snapshot refused", () => a.snapshotStatus.length === 1);
      assert.deepEqual(a.snapshotStatus, [{ id: 2n, ok: false }]);
      assert.equal(a.removedErrors[0]?.code, TransportErrorCode.MemberRemoved);
      assert.equal(linesWith(b, "rejected Raft message from removed member").length, 1);
      assert.equal(b.snapshots.length, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
