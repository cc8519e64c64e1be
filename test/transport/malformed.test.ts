/**
 * Garbage on the peer port never crashes the process or disturbs other streams: bad HTTP is answered
 * 400, a malformed frame closes only its own connection (logged), a corrupt batch delivers nothing, and
 * random bytes after a valid handshake (fast-check) leave the transport working.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { CODEC_VERSION, encodeMessage } from "../../src/raft/index.js";
import { FrameKind } from "../../src/transport/index.js";
import {
  appMessage,
  CLUSTER_ID,
  linesWith,
  type Node,
  postSnapshot,
  rawFrame,
  startNode,
  waitFor,
} from "./harness.js";

/** A Messages frame carrying these encoded messages (each encodeMessage output minus its version byte). */
function messagesFrame(...encoded: Uint8Array[]): Buffer {
  return rawFrame(
    FrameKind.Messages,
    Buffer.concat([Buffer.from([CODEC_VERSION]), ...encoded.map((e) => e.subarray(1))]),
  );
}

interface RawStream {
  socket: Socket;
  closed: Promise<void>;
}

/** Opens a stream to `port` by hand, as member `from`, and resolves once the 101 arrived. */
async function rawStream(port: number, from: string, to: string): Promise<RawStream> {
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
  socket.write(
    [
      `GET /raft/stream/etcdts/${from} HTTP/1.1`,
      "Host: 127.0.0.1",
      "Connection: Upgrade",
      "Upgrade: etcd-ts-raft",
      `X-Server-From: ${from}`,
      "X-Server-Version: 3.4.23",
      "X-Min-Cluster-Version: 3.0.0",
      `X-Etcd-Cluster-ID: ${CLUSTER_ID.toString(16)}`,
      `X-Raft-To: ${to}`,
      "X-Etcd-Ts-Peer-Protocol: 1",
      "",
      "",
    ].join("\r\n"),
  );
  let head = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (head.includes("\r\n\r\n")) {
        socket.off("data", onData);
        if (head.startsWith("HTTP/1.1 101")) resolve();
        else reject(new Error(`handshake refused: ${head}`));
      }
    };
    socket.on("data", onData);
  });
  // Drain heartbeats from the receiver.
  socket.on("data", () => {});
  return { socket, closed };
}

describe("malformed input on the peer port", () => {
  let b: Node;
  let c: Node;
  before(async () => {
    b = await startNode(2n);
    c = await startNode(3n);
    c.transport.addPeer(2n, [b.url]);
    await waitFor("c -> b stream", () => c.transport.activeSince(2n) > 0);
  });
  after(async () => {
    await c.close();
    await b.close();
  });

  /** The real stream from c still delivers (the process and the transport are fine). */
  async function stillWorks(seq: number): Promise<void> {
    c.transport.send([appMessage(3n, 2n, seq)]);
    await waitFor(`c's message ${seq}`, () => b.received.some((m) => m.from === 3n && m.index === seq));
  }

  it("answers bytes that are not HTTP with 400 and closes", async () => {
    const socket = connect({ host: "127.0.0.1", port: b.port });
    socket.on("error", () => {});
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0xff, 0x00, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a]));
    await new Promise<void>((resolve) => socket.on("close", () => resolve()));
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
    await stillWorks(1);
  });

  const cases: [name: string, bytes: () => Buffer, logged: RegExp][] = [
    [
      "a length above frameMaxBytes",
      () => rawFrame(FrameKind.Messages, Buffer.alloc(0), 0xffffffff),
      /exceeds the limit/,
    ],
    ["an unknown frame kind", () => rawFrame(9, Buffer.alloc(3)), /unexpected frame kind 9/],
    [
      "a snapshot frame on a stream",
      () => rawFrame(FrameKind.SnapshotChunk, Buffer.alloc(3)),
      /unexpected frame kind 4/,
    ],
    [
      "a bad codec version",
      () =>
        rawFrame(
          FrameKind.Messages,
          Buffer.concat([Buffer.from([99]), encodeMessage(appMessage(1n, 2n, 1))]),
        ),
      /unsupported codec version 99/,
    ],
    [
      "a truncated message",
      () => messagesFrame(encodeMessage(appMessage(1n, 2n, 1)).subarray(0, 12)),
      /bad raft message in batch/,
    ],
    [
      "an empty batch",
      () => rawFrame(FrameKind.Messages, Buffer.from([CODEC_VERSION])),
      /empty message batch/,
    ],
    [
      "a message to another member",
      () => messagesFrame(encodeMessage(appMessage(1n, 2n, 1)), encodeMessage(appMessage(1n, 5n, 2))),
      /message to 5 on a stream to 2/,
    ],
  ];
  for (const [name, bytes, logged] of cases) {
    it(`closes a stream that sends ${name}; nothing of the frame is delivered`, async () => {
      const before = b.received.length;
      const linesBefore = linesWith(b, "failed to decode raft message on stream; closing it").length;
      const stream = await rawStream(b.port, "1", "2");
      stream.socket.write(bytes());
      await stream.closed;
      const lines = linesWith(b, "failed to decode raft message on stream; closing it");
      assert.equal(lines.length, linesBefore + 1);
      assert.match(String(lines.at(-1)!.error), logged);
      assert.equal(b.received.length, before, "nothing delivered from the bad frame");
      await stillWorks(10 + cases.findIndex(([n]) => n === name));
    });
  }

  it("delivers the valid frames before a bad one, in order", async () => {
    b.received.length = 0;
    const stream = await rawStream(b.port, "1", "2");
    stream.socket.write(
      Buffer.concat([
        messagesFrame(encodeMessage(appMessage(1n, 2n, 1)), encodeMessage(appMessage(1n, 2n, 2))),
        rawFrame(FrameKind.Heartbeat, Buffer.alloc(0)),
        messagesFrame(encodeMessage(appMessage(1n, 2n, 3))),
        rawFrame(7, Buffer.alloc(1)),
        messagesFrame(encodeMessage(appMessage(1n, 2n, 4))),
      ]),
    );
    await stream.closed;
    assert.deepEqual(
      b.received.filter((m) => m.from === 1n).map((m) => m.index),
      [1, 2, 3],
    );
  });

  it("survives random bytes after a valid handshake (property)", async () => {
    const valid = messagesFrame(encodeMessage(appMessage(1n, 2n, 1)));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }),
          // Mutations of a valid frame reach deeper into the decoder than pure noise.
          fc
            .tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length))
            .map(([at, value, cut]) => {
              const bytes = Buffer.from(valid);
              bytes[at] = value;
              return bytes.subarray(0, Math.max(1, cut));
            }),
        ),
        async (bytes) => {
          const stream = await rawStream(b.port, "1", "2");
          stream.socket.write(bytes);
          // Either the connection is closed as malformed, or the bytes were a (partial) valid stream.
          await new Promise((resolve) => setTimeout(resolve, 5));
          stream.socket.destroy();
          await stream.closed;
        },
      ),
      { numRuns: 150, seed: 10 },
    );
    await stillWorks(100);
  });

  it("answers garbage snapshot bodies with 400 and keeps no file", async () => {
    const bodies: [Buffer, string][] = [
      [Buffer.from("not frames at all"), "failed to decode raft message ("],
      [
        rawFrame(FrameKind.SnapshotChunk, Buffer.from("x")),
        "failed to decode raft message (the body does not start",
      ],
      [rawFrame(FrameKind.SnapshotHeader, encodeMessage(appMessage(1n, 2n, 1))), "wrong raft message type"],
      [rawFrame(FrameKind.SnapshotHeader, Buffer.from([1, 2, 3])), "failed to decode raft message ("],
    ];
    for (const [body, text] of bodies) {
      const answer = await postSnapshot(b.port, body);
      assert.ok(answer.status === 400, `${answer.status} ${answer.body}`);
      assert.ok(answer.body.startsWith(text), answer.body);
    }
    assert.equal(b.snapshots.length, 0);
    await stillWorks(200);
  });
});
