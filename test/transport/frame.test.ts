/**
 * The framing and the per-peer queue on their own: frames survive any split into socket chunks, the
 * size bound used to close batches is never below the real encoding, batches round-trip, and the queue
 * refuses at its bounds and keeps FIFO order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EntryType, encodeMessage, type Message, MessageType, newMessage } from "../../src/raft/index.js";
import {
  decodeMessagesPayload,
  FrameDecoder,
  FrameKind,
  frameOf,
  kindMask,
  MessageFrameBuilder,
  messageSizeBoundBytes,
} from "../../src/transport/frame.js";
import { MessageQueue } from "../../src/transport/queue.js";

const ALL_KINDS = kindMask(
  FrameKind.Messages,
  FrameKind.Heartbeat,
  FrameKind.SnapshotHeader,
  FrameKind.SnapshotChunk,
  FrameKind.SnapshotEnd,
);

const arbitraryId = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const arbitraryMessage: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(MessageType.App, MessageType.AppResp, MessageType.Heartbeat, MessageType.Vote),
    to: arbitraryId,
    from: arbitraryId,
    term: fc.nat(),
    logTerm: fc.nat(),
    index: fc.maxSafeNat(),
    commit: fc.maxSafeNat(),
    reject: fc.boolean(),
    rejectHint: fc.maxSafeNat(),
    context: fc.uint8Array({ maxLength: 40 }),
    entries: fc.array(
      fc.record({
        term: fc.maxSafeNat(),
        index: fc.maxSafeNat(),
        type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange, EntryType.ConfChangeV2),
        data: fc.uint8Array({ maxLength: 200 }),
      }),
      { maxLength: 5 },
    ),
  })
  .map((fields) => {
    const message = newMessage(fields.type, fields.to, fields.from, fields.term);
    return {
      ...message,
      logTerm: fields.logTerm,
      index: fields.index,
      commit: fields.commit,
      reject: fields.reject,
      rejectHint: fields.rejectHint,
      context: fields.context.length === 0 ? message.context : fields.context,
      entries: fields.entries.length === 0 ? message.entries : fields.entries.map((entry) => ({ ...entry })),
    };
  });

describe("frames", () => {
  it("decode the same whatever the chunk boundaries (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(FrameKind.Heartbeat, FrameKind.SnapshotChunk),
            fc.uint8Array({ maxLength: 300 }),
          ),
          { maxLength: 20 },
        ),
        fc.array(fc.nat(2000), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(([kind, payload]) => frameOf(kind, payload)));
          const got: [number, string][] = [];
          const decoder = new FrameDecoder(1024, ALL_KINDS, (kind, payload) =>
            got.push([kind, payload.toString("hex")]),
          );
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          let from = 0;
          for (const point of [...points, bytes.length]) {
            decoder.push(bytes.subarray(from, point));
            from = point;
          }
          assert.deepEqual(
            got,
            frames.map(([kind, payload]) => [kind, Buffer.from(payload).toString("hex")]),
          );
          assert.equal(decoder.atBoundary, true);
        },
      ),
      { seed: 3, numRuns: 300 },
    );
  });

  it("refuse a length above the bound before buffering it, and stay refused", () => {
    const decoder = new FrameDecoder(100, ALL_KINDS, () => assert.fail("no frame"));
    const header = Buffer.from([0, 0, 0, 101, FrameKind.SnapshotChunk]);
    assert.throws(() => decoder.push(header), /frame of 101 bytes exceeds the limit of 100/);
    assert.throws(() => decoder.push(Buffer.from([0])), /input after a malformed frame/);
  });

  it("refuse kinds not allowed on the connection", () => {
    const decoder = new FrameDecoder(100, kindMask(FrameKind.Heartbeat), () => {});
    decoder.push(frameOf(FrameKind.Heartbeat, new Uint8Array(0)));
    assert.throws(
      () => decoder.push(frameOf(FrameKind.Messages, new Uint8Array(1))),
      /unexpected frame kind 1/,
    );
  });

  it("messageSizeBoundBytes is never below the encoded size, and batches round-trip (property)", () => {
    const builder = new MessageFrameBuilder(256);
    fc.assert(
      fc.property(fc.array(arbitraryMessage, { minLength: 1, maxLength: 8 }), (messages) => {
        builder.start();
        for (const message of messages) {
          // encodeMessage adds one version byte to RaftWriter.message's output.
          assert.ok(messageSizeBoundBytes(message) >= encodeMessage(message).length - 1);
          builder.add(message);
        }
        const frame = Buffer.from(builder.finish());
        assert.equal(frame.readUInt32BE(0), frame.length - 5);
        assert.equal(frame[4], FrameKind.Messages);
        const decoded: Message[] = [];
        decodeMessagesPayload(frame.subarray(5), decoded);
        assert.deepEqual(decoded, messages);
        // Decoded byte fields are copies, not views of the frame.
        for (const message of decoded) assert.equal(Buffer.isBuffer(message.context), false);
      }),
      { seed: 5, numRuns: 200 },
    );
  });
});

describe("the per-peer queue", () => {
  it("is FIFO and refuses at its message and byte bounds", () => {
    const queue = new MessageQueue(3, 100);
    const m = (index: number) => {
      const message = newMessage(MessageType.App, 2n, 1n, 1);
      message.index = index;
      return message;
    };
    assert.equal(queue.push(m(1), 40), true);
    assert.equal(queue.push(m(2), 40), true);
    assert.equal(queue.push(m(3), 40), false, "bytes: 120 > 100");
    assert.equal(queue.push(m(3), 20), true);
    assert.equal(queue.push(m(4), 1), false, "count: 3 already");
    assert.equal(queue.shift().index, 1);
    assert.equal(queue.push(m(4), 10), true);
    assert.deepEqual([queue.shift().index, queue.shift().index, queue.shift().index], [2, 3, 4]);
    assert.equal(queue.length, 0);
    assert.equal(queue.sizeBytes, 0);
    // One message above the byte bound is let in alone (so the frame check reports it), not refused forever.
    assert.equal(queue.push(m(5), 1000), true);
    assert.equal(queue.push(m(6), 1), false);
    assert.equal(queue.clear(), 1);
  });
});
