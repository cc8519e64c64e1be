/**
 * The watch fan-out thread: drains the input ring filled by the main thread (src/watch/workerLink.ts),
 * keeps the registry of watcher groups, matches each applied revision's events against their ranges and
 * encodes one response per group into the output ring. The main thread only copies those bytes to the
 * watchers' streams.
 *
 * Input frames are processed one at a time and released after their outputs are written (event views
 * point into the input frame). A full output ring makes this thread wait (the main thread drains it);
 * the main thread never waits for this one: it serves from history what it could not queue.
 *
 * Any failure is fatal: one message to the main thread, exit code 1 (the member stops).
 */
import { parentPort, workerData } from "node:worker_threads";
import { bytesToLatin1 } from "../backend/bytes.js";
import { FanoutCore, type ResponseSink } from "../watch/fanout.js";
import { EventBatch, InTag, OutTag, REGISTER_HEADER_BYTES, RESPONSES_HEADER_BYTES } from "../watch/frames.js";
import { HeaderIds } from "../watch/wire.js";
import type { WatchWorkerData, WatchWorkerMessage } from "../watch/workerLink.js";
import { RingConsumer, RingProducer } from "./ring.js";

const port = parentPort;
if (port === null) throw new Error("watchWorker must run as a worker thread");
const data = workerData as WatchWorkerData;
const post = (message: WatchWorkerMessage): void => port.postMessage(message);

/** How long an idle worker sleeps before checking whether the ring was closed. */
const IDLE_WAIT_MS = 1000;
/** How long one wait for output space lasts before the loop looks at the ring's state again. */
const SPACE_WAIT_MS = 1000;

const input = new RingConsumer(data.input);
const output = new RingProducer(data.output);
const core = new FanoutCore(new HeaderIds(data.clusterId, data.memberId), data.fragmentLimitBytes);
const batch = new EventBatch();
const areaBytesMax = output.maxPayloadBytes - RESPONSES_HEADER_BYTES;
const EMPTY = new Uint8Array(0);

const sink: ResponseSink = {
  reserve(groupId, revision, messageCount, areaBytes) {
    const view = output.tryReserve(OutTag.RESPONSES, RESPONSES_HEADER_BYTES + areaBytes);
    if (view === null) return null;
    const header = new DataView(view.buffer, view.byteOffset, RESPONSES_HEADER_BYTES);
    header.setUint32(0, groupId, true);
    header.setUint32(4, messageCount, true);
    header.setFloat64(8, revision, true);
    return view.subarray(RESPONSES_HEADER_BYTES);
  },
  commit() {
    output.commit();
  },
  tooBig(groupId, revision) {
    const view = output.tryReserve(OutTag.TOO_BIG, 16);
    if (view === null) return false;
    const frame = new DataView(view.buffer, view.byteOffset, 16);
    frame.setUint32(0, groupId, true);
    frame.setUint32(4, 0, true);
    frame.setFloat64(8, revision, true);
    output.commit();
    return true;
  },
};

/** Waits until the consumer frees output space (or the ring closes); false once closed. */
async function waitForOutputSpace(): Promise<boolean> {
  output.publish();
  await output.waitForSpaceAsync(SPACE_WAIT_MS);
  return !output.closed;
}

/** Writes a small control frame, waiting for space as needed. */
async function writeSmall(tag: number, fill: (frame: DataView) => void, size: number): Promise<boolean> {
  for (;;) {
    const view = output.tryReserve(tag, size);
    if (view !== null) {
      fill(new DataView(view.buffer, view.byteOffset, size));
      output.commit();
      return true;
    }
    if (!(await waitForOutputSpace())) return false;
  }
}

function register(payload: Uint8Array): void {
  const frame = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const id = frame.getUint32(0, true);
  const flags = frame.getUint32(4, true);
  const keyLength = frame.getUint32(8, true);
  const endLength = frame.getInt32(12, true);
  const key = payload.subarray(REGISTER_HEADER_BYTES, REGISTER_HEADER_BYTES + keyLength);
  const end =
    endLength < 0
      ? null
      : payload.subarray(REGISTER_HEADER_BYTES + keyLength, REGISTER_HEADER_BYTES + keyLength + endLength);
  core.register({ id, flags, key: bytesToLatin1(key), end: end === null ? null : bytesToLatin1(end) });
}

async function handle(tag: number, payload: Uint8Array): Promise<boolean> {
  switch (tag) {
    case InTag.REGISTER:
      register(payload);
      return true;
    case InTag.UNREGISTER: {
      const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
      core.unregister(id);
      return writeSmall(OutTag.UNREGISTERED, (frame) => frame.setUint32(0, id, true), 4);
    }
    case InTag.EVENTS: {
      batch.fillFromFrame(
        new DataView(payload.buffer, payload.byteOffset, payload.byteLength),
        payload,
        bytesToLatin1,
      );
      core.match(batch);
      while (!core.emit(sink, areaBytesMax)) {
        if (!(await waitForOutputSpace())) return false;
      }
      const revision = batch.revision;
      return writeSmall(OutTag.DONE, (frame) => frame.setFloat64(0, revision, true), 8);
    }
    default:
      throw new Error(`unknown input frame tag ${tag}`);
  }
}

let frameTag = 0;
let framePayload: Uint8Array = EMPTY;
const take = (tag: number, payload: Uint8Array): void => {
  frameTag = tag;
  framePayload = payload;
};

async function run(): Promise<void> {
  // A pending Atomics.waitAsync does not keep a thread alive; this handle does while the loop runs.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    for (;;) {
      if (input.poll(take, 1) === 0) {
        output.publish();
        if (input.closed) return;
        input.waitForData(IDLE_WAIT_MS);
        continue;
      }
      const open = await handle(frameTag, framePayload);
      framePayload = EMPTY;
      input.release();
      if (!open) return;
      // Publish per input frame: the main thread delivers while this thread works on the next one.
      output.publish();
    }
  } finally {
    clearInterval(keepAlive);
  }
}

post({ type: "ready" });
try {
  await run();
} catch (error) {
  post({ type: "fatal", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(1);
}
