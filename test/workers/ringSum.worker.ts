// Test fixture: consumes frames, checks order and content, and publishes the last sequence seen.
import { workerData } from "node:worker_threads";
import { RingConsumer, SharedIndex } from "../../src/workers/ring.js";

const consumer = new RingConsumer(workerData.buffer as SharedArrayBuffer);
const done = new SharedIndex(workerData.done as SharedArrayBuffer);
let expected = 1;
while (!consumer.closed) {
  consumer.waitForData(200);
  consumer.poll((tag, payload) => {
    if (tag !== expected || payload.length !== expected % 100) throw new Error(`frame ${tag} out of order`);
    for (let i = 0; i < payload.length; i++) {
      if (payload[i] !== ((expected + i) & 0xff)) throw new Error(`frame ${tag} corrupt at ${i}`);
    }
    expected++;
  });
  consumer.release();
  done.advance(expected - 1);
}
