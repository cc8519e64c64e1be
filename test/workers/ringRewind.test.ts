import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRingBuffer, RingConsumer, RingProducer } from "../../src/workers/ring.js";
import { rng } from "../support/prng.js";

/** Must match src/workers/ring.ts: the header before the frame area and the early-wrap position. */
const HEADER_BYTES = 64;
const REWIND_AFTER_BYTES = 1024 * 1024;
const FRAME_HEADER_BYTES = 8;

function frameBytes(length: number): number {
  return FRAME_HEADER_BYTES + ((length + 7) & ~7);
}

function fill(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 97) bytes[i] = (seq * 31 + i) & 0xff;
  if (length > 0) bytes[length - 1] = seq & 0xff;
  return bytes;
}

function sameFill(payload: Uint8Array, seq: number): boolean {
  const want = fill(seq, payload.length);
  for (let i = 0; i < payload.length; i += 97) if (payload[i] !== want[i]) return false;
  return payload.length === 0 || payload[payload.length - 1] === want[want.length - 1];
}

describe("ring rewinding", () => {
  it("a consumer that keeps up: frames cycle through the first megabyte, never the rest of a 16 MiB area", () => {
    const capacityBytes = 16 * 1024 * 1024;
    const buffer = createRingBuffer({ capacityBytes });
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    const random = rng(7);
    let next = 0;
    let expected = 0;
    let highestEnd = 0;
    const largestFrameBytes = frameBytes(4000);
    // 40 MiB of frames: without rewinding they would sweep the whole area twice.
    for (let written = 0; written < 40 * 1024 * 1024; ) {
      const burst = 1 + Math.floor(random() * 20);
      for (let i = 0; i < burst; i++) {
        const length = Math.floor(random() * 4000);
        assert.ok(producer.tryWrite(next, fill(next, length)));
        written += frameBytes(length);
        next++;
      }
      producer.publish();
      consumer.poll((tag, payload) => {
        assert.equal(tag, expected);
        assert.ok(sameFill(payload, expected));
        highestEnd = Math.max(highestEnd, payload.byteOffset - HEADER_BYTES + payload.length);
        expected++;
      });
      consumer.release();
      assert.equal(producer.usedBytes(), 0);
    }
    assert.equal(expected, next);
    assert.ok(
      highestEnd <= REWIND_AFTER_BYTES + 20 * largestFrameBytes,
      `frames reached offset ${highestEnd} of ${capacityBytes}`,
    );
  });

  it("a lagging consumer: order, content and usedBytes (exactly the frames in flight) hold through early and late wraps", () => {
    for (const seed of [1, 2, 3]) {
      const capacityBytes = 4 * 1024 * 1024;
      const buffer = createRingBuffer({ capacityBytes });
      const producer = new RingProducer(buffer);
      const consumer = new RingConsumer(buffer);
      const random = rng(seed);
      /** Sizes of frames published and not yet released, oldest first; and committed, not published. */
      const inFlight: number[] = [];
      let unpublished: number[] = [];
      let visitedCount = 0;
      let next = 0;
      let expected = 0;
      let refusals = 0;
      let highestEnd = 0;
      let earlyWraps = 0;
      let lastEnd = 0;
      for (let step = 0; step < 6000; step++) {
        const action = random();
        // Phases: the consumer keeps up (early wraps), then lags (the ring fills and wraps at its end).
        const lagging = Math.floor(step / 1500) % 2 === 1;
        if (action < (lagging ? 0.7 : 0.4)) {
          const big = random() < 0.02;
          const length = Math.floor(random() * (big ? producer.maxPayloadBytes / 2 : 40_000));
          if (producer.tryWrite(next, fill(next, length))) {
            unpublished.push(frameBytes(length));
            next++;
          } else {
            refusals++;
          }
        } else if (action < 0.75) {
          producer.publish();
          inFlight.push(...unpublished);
          unpublished = [];
        } else if (action < 0.9) {
          visitedCount += consumer.poll(
            (tag, payload) => {
              assert.equal(tag, expected);
              assert.ok(sameFill(payload, expected), `frame ${expected} intact`);
              const start = payload.byteOffset - HEADER_BYTES;
              // A frame at 0 after one that ended well before the end of the area: an early wrap.
              if (start === FRAME_HEADER_BYTES && lastEnd < capacityBytes - producer.maxPayloadBytes)
                earlyWraps++;
              lastEnd = start + payload.length;
              highestEnd = Math.max(highestEnd, lastEnd);
              expected++;
            },
            1 + Math.floor(random() * 50),
          );
        } else {
          consumer.release();
          inFlight.splice(0, visitedCount);
          visitedCount = 0;
        }
        const want = inFlight.reduce((sum, bytes) => sum + bytes, 0);
        assert.equal(producer.usedBytes(), want, `seed ${seed} step ${step}`);
        assert.equal(consumer.usedBytes(), want);
      }
      producer.publish();
      consumer.poll((tag, payload) => {
        assert.equal(tag, expected);
        assert.ok(sameFill(payload, expected));
        expected++;
      });
      consumer.release();
      assert.equal(expected, next);
      assert.equal(producer.usedBytes(), 0);
      assert.ok(refusals > 0, "the ring filled up at times (back-pressure was exercised)");
      assert.ok(highestEnd > capacityBytes / 2, "frames also reached the far part of the area");
      assert.ok(earlyWraps > 0, "the producer wrapped early at times");
    }
  });
});
