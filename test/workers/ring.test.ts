import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRingBuffer, RingConsumer, RingProducer, SharedIndex } from "../../src/workers/ring.js";
import { spawnWorker } from "../../src/workers/spawn.js";

function frame(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seq + i) & 0xff;
  return bytes;
}

describe("ring", () => {
  it("delivers frames in order with their tags, and only after publish", () => {
    const buffer = createRingBuffer({ capacityBytes: 256 });
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    assert.ok(producer.tryWrite(7, frame(1, 5)));
    assert.ok(producer.tryWrite(8, frame(2, 0)));
    assert.equal(
      consumer.poll(() => assert.fail("unpublished frame seen")),
      0,
    );
    producer.publish();
    const seen: Array<[number, number[]]> = [];
    assert.equal(
      consumer.poll((tag, payload) => seen.push([tag, [...payload]])),
      2,
    );
    assert.deepEqual(seen, [
      [7, [...frame(1, 5)]],
      [8, []],
    ]);
  });

  it("refuses a frame when full and accepts it once the consumer releases (back-pressure, no drop)", () => {
    const buffer = createRingBuffer({ capacityBytes: 128 });
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    let written = 0;
    while (producer.tryWrite(written, frame(written, 20))) {
      written++;
    }
    producer.publish();
    // 128 bytes hold four 32-byte frames only if the ring could fill completely; one cell stays free.
    assert.equal(written, 3);
    assert.equal(producer.tryWrite(99, frame(99, 20)), false);
    const tags: number[] = [];
    consumer.poll((tag) => tags.push(tag));
    assert.equal(producer.tryWrite(99, frame(99, 20)), false, "space is freed by release, not by poll");
    consumer.release();
    assert.ok(producer.tryWrite(3, frame(3, 20)));
    producer.publish();
    consumer.poll((tag) => tags.push(tag));
    assert.deepEqual(tags, [0, 1, 2, 3]);
  });

  it("wraps around the end of the area many times without corrupting a frame", () => {
    const buffer = createRingBuffer({ capacityBytes: 1024 });
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 2000; round++) {
      const burst = 1 + (round % 7);
      for (let i = 0; i < burst; i++) {
        const length = (next * 37) % 300;
        if (!producer.tryWrite(next, frame(next, length))) break;
        next++;
      }
      producer.publish();
      consumer.poll((tag, payload) => {
        assert.equal(tag, expected);
        assert.deepEqual(payload, frame(expected, (expected * 37) % 300));
        expected++;
      });
      consumer.release();
      assert.equal(consumer.usedBytes(), 0);
    }
    assert.equal(expected, next);
    assert.ok(next > 5000);
  });

  it("rejects a payload larger than half the ring with an assertion", () => {
    const producer = new RingProducer(createRingBuffer({ capacityBytes: 256 }));
    assert.throws(() => producer.tryReserve(0, producer.maxPayloadBytes + 1), /fits a frame/);
    assert.notEqual(producer.tryReserve(0, producer.maxPayloadBytes), null);
  });

  it("carries frames to a worker thread in order while the producer waits for space", async () => {
    const buffer = createRingBuffer({ capacityBytes: 4096 });
    const done = new SharedIndex();
    const worker = spawnWorker(import.meta.url, "./ringSum.worker", {
      workerData: { buffer, done: done.buffer },
    });
    const producer = new RingProducer(buffer);
    const total = 20_000;
    let fullHits = 0;
    for (let seq = 1; seq <= total; seq++) {
      const payload = frame(seq, seq % 100);
      while (!producer.tryWrite(seq, payload)) {
        fullHits++;
        producer.publish();
        await producer.waitForSpaceAsync(100);
      }
      if (seq % 64 === 0) producer.publish();
    }
    producer.publish();
    while (done.get() < total) await done.waitChangeAsync(done.get(), 1000);
    producer.close();
    const [code] = await Promise.all([new Promise((resolve) => worker.once("exit", resolve))]);
    assert.equal(code, 0);
    assert.equal(done.get(), total);
    assert.ok(fullHits > 0, "the small ring filled at least once, exercising back-pressure");
  });
});

describe("ring consumer waits", () => {
  it("sleeps in a wait made before its first poll until a frame is published", () => {
    const buffer = createRingBuffer({ capacityBytes: 256 });
    const producer = new RingProducer(buffer);
    // Publish and consume once so the write sequence is no longer at its initial value.
    producer.tryWrite(1, frame(1, 3));
    producer.publish();
    const first = new RingConsumer(buffer);
    first.poll(() => {});
    first.release();
    const consumer = new RingConsumer(buffer);
    const started = process.hrtime.bigint();
    consumer.waitForData(50);
    const waitedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(waitedMs >= 40, `waited ${waitedMs} ms instead of sleeping until the timeout`);
  });
});
