import type { Worker } from "node:worker_threads";
import { assert } from "../assert.js";
import type { KeyValue, MvccEvent } from "../mvcc/types.js";
import { createRingBuffer, type FrameVisitor, RingConsumer, RingProducer } from "../workers/ring.js";
import { spawnWorker } from "../workers/spawn.js";
import {
  EVENTS_HEADER_BYTES,
  eventFrameSize,
  InTag,
  isCreateEvent,
  type PrevLookup,
  REGISTER_HEADER_BYTES,
  writeEventFrame,
} from "./frames.js";

/**
 * The main thread's side of the fan-out worker: spawns it, writes input frames (group registrations and
 * applied events) into the input ring, and drains the output ring in an async loop that hands every
 * frame to the hub. Never blocks the main thread: a frame that does not fit now is refused (`false`) and
 * the hub decides what to do (serve those revisions from history).
 */

export interface WatchWorkerData {
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  clusterId: bigint;
  memberId: bigint;
  fragmentLimitBytes: number;
}

export type WatchWorkerMessage = { type: "ready" } | { type: "fatal"; message: string };

/** How long the output loop sleeps between checks when nothing arrives (it wakes on every publish). */
const OUTPUT_IDLE_WAIT_MS = 1000;
/** Output frames handled per turn of the event loop before yielding to I/O. */
const OUTPUT_FRAMES_PER_TURN = 4096;

export class WorkerLink {
  private readonly inputBuffer: SharedArrayBuffer;
  private readonly outputBuffer: SharedArrayBuffer;
  private readonly producer: RingProducer;
  private readonly consumer: RingConsumer;
  private worker: Worker | null = null;
  private closed = false;
  private exited: Promise<void> = Promise.resolve();
  private loop: Promise<void> = Promise.resolve();

  constructor(
    inputRingBytes: number,
    outputRingBytes: number,
    private readonly onFrame: FrameVisitor,
    /** After each drained batch of output frames (the hub flushes and resyncs there). */
    private readonly afterDrain: () => void,
    private readonly onFatal: (error: Error) => void,
  ) {
    this.inputBuffer = createRingBuffer({ capacityBytes: inputRingBytes });
    this.outputBuffer = createRingBuffer({ capacityBytes: outputRingBytes });
    this.producer = new RingProducer(this.inputBuffer);
    this.consumer = new RingConsumer(this.outputBuffer);
  }

  /** The largest output area one response frame can carry. */
  get outputPayloadMax(): number {
    return this.consumer.maxPayloadBytes;
  }

  /** Fraction of the input ring in use (the hub resumes the live feed below one half). */
  get inputFill(): number {
    return this.producer.usedBytes() / this.producer.capacityBytes;
  }

  async start(ids: { clusterId: bigint; memberId: bigint }, fragmentLimitBytes: number): Promise<void> {
    const workerData: WatchWorkerData = {
      input: this.inputBuffer,
      output: this.outputBuffer,
      clusterId: ids.clusterId,
      memberId: ids.memberId,
      fragmentLimitBytes,
    };
    const worker = spawnWorker(import.meta.url, "../workers/watchWorker", { workerData });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: WatchWorkerMessage): void => {
        if (message.type === "ready") {
          worker.off("error", reject);
          resolve();
        } else this.fail(new Error(`watch worker: ${message.message}`));
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
    });
    worker.on("error", (error) => this.fail(error));
    this.exited = new Promise((resolve) => {
      worker.once("exit", (code) => {
        if (!this.closed) this.fail(new Error(`watch worker exited with code ${code}`));
        resolve();
      });
    });
    this.loop = this.runOutput();
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.onFatal(error);
  }

  private async runOutput(): Promise<void> {
    while (!this.closed) {
      await this.consumer.waitForDataAsync(OUTPUT_IDLE_WAIT_MS);
      if (this.closed) break;
      const frames = this.consumer.poll(this.onFrame, OUTPUT_FRAMES_PER_TURN);
      this.consumer.release();
      if (frames === 0) continue;
      this.afterDrain();
      // Let I/O run before the next batch: the writes just queued are flushed to the sockets, and
      // client requests (puts, creates) are read. Without this the loop could go on in microtasks for
      // as long as the worker keeps producing, and the streams would not be written at all meanwhile.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Queues a group registration; false when the ring has no room now. */
  tryRegister(id: number, flags: number, key: Uint8Array, end: Uint8Array | null): boolean {
    const endLength = end === null ? 0 : end.length;
    const view = this.producer.tryReserve(InTag.REGISTER, REGISTER_HEADER_BYTES + key.length + endLength);
    if (view === null) return false;
    const data = new DataView(view.buffer, view.byteOffset, view.byteLength);
    data.setUint32(0, id, true);
    data.setUint32(4, flags, true);
    data.setUint32(8, key.length, true);
    data.setInt32(12, end === null ? -1 : end.length, true);
    view.set(key, REGISTER_HEADER_BYTES);
    if (end !== null) view.set(end, REGISTER_HEADER_BYTES + key.length);
    this.producer.commit();
    return true;
  }

  tryUnregister(id: number): boolean {
    const view = this.producer.tryReserve(InTag.UNREGISTER, 4);
    if (view === null) return false;
    new DataView(view.buffer, view.byteOffset, 4).setUint32(0, id, true);
    this.producer.commit();
    return true;
  }

  /**
   * Queues one revision's events (with their prev_kv when `prevOf` is given); false when the frame does
   * not fit now, or can never fit (larger than half the ring).
   */
  tryEvents(
    revision: number,
    raftTerm: number,
    events: readonly MvccEvent[],
    prevOf: PrevLookup | null,
  ): boolean {
    const prevs: (KeyValue | undefined)[] | null = prevOf === null ? null : new Array(events.length);
    let size = EVENTS_HEADER_BYTES;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as MvccEvent;
      let prev: KeyValue | undefined;
      if (prevs !== null && !isCreateEvent(event)) {
        prev = (prevOf as PrevLookup)(event);
        prevs[i] = prev;
      }
      size += eventFrameSize(event, prev);
    }
    if (size > this.producer.maxPayloadBytes) return false;
    const view = this.producer.tryReserve(InTag.EVENTS, size);
    if (view === null) return false;
    const data = new DataView(view.buffer, view.byteOffset, view.byteLength);
    data.setFloat64(0, revision, true);
    data.setFloat64(8, raftTerm, true);
    data.setUint32(16, events.length, true);
    data.setUint32(20, 0, true);
    let o = EVENTS_HEADER_BYTES;
    for (let i = 0; i < events.length; i++) {
      o = writeEventFrame(data, view, o, events[i] as MvccEvent, prevs === null ? undefined : prevs[i]);
    }
    assert(o === size, "an EVENTS frame is filled exactly");
    this.producer.commit();
    return true;
  }

  /** Makes queued frames visible to the worker and wakes it. */
  publish(): void {
    this.producer.publish();
  }

  async close(): Promise<void> {
    if (this.worker === null) return;
    const wasClosed = this.closed;
    this.closed = true;
    this.producer.close();
    this.consumer.close();
    if (!wasClosed) await this.exited;
    await this.loop;
    this.worker = null;
  }
}
