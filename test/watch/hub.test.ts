import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { MemoryBackend } from "../../src/backend/memory.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { etcdserverpb } from "../../src/proto/index.js";
import { WatchHub } from "../../src/watch/hub.js";
import type { WatchStream } from "../../src/watch/stream.js";
import type { FanoutMode, StreamTransport, WatchCreate, WatchHubOptions } from "../../src/watch/types.js";
import { feedHub } from "./watchServer.js";

/**
 * The hub without gRPC: a store on the memory backend fed into the hub as the apply loop will, and
 * streams whose transport is a fake that records frames and acknowledges writes when told. Rules that
 * need exact control of the transport live here: resync after a snapshot, the watcher limit, ids that
 * are not exact integers, back-pressure on requests, the queued-bytes account, progress ticks, shutdown.
 */

class FakeTransport implements StreamTransport {
  readonly frames: Buffer[] = [];
  private readonly unacknowledged: (() => void)[] = [];
  readingChanges: boolean[] = [];
  aborted: { code: number; message: string } | null = null;

  constructor(public autoAck = true) {}

  write(frames: Buffer, written: () => void): void {
    this.frames.push(frames);
    if (this.autoAck) queueMicrotask(written);
    else this.unacknowledged.push(written);
  }

  setReading(reading: boolean): void {
    this.readingChanges.push(reading);
  }

  abort(code: number, message: string): void {
    this.aborted = { code, message };
  }

  ackAll(): void {
    for (const written of this.unacknowledged.splice(0)) written();
  }

  /** Every response written so far, decoded, oldest first (and forgotten). */
  take(): etcdserverpb.WatchResponse[] {
    const out: etcdserverpb.WatchResponse[] = [];
    for (const frames of this.frames.splice(0)) {
      let o = 0;
      while (o < frames.length) {
        const length = frames.readUInt32BE(o + 1);
        out.push(etcdserverpb.WatchResponse.decode(frames.subarray(o + 5, o + 5 + length)));
        o += 5 + length;
      }
    }
    return out;
  }
}

const ids = { clusterId: 7n, memberId: 9n, raftTerm: 2 };

function create(key: string, extra: Partial<WatchCreate> = {}): WatchCreate {
  return {
    key: Buffer.from(key),
    rangeEnd: new Uint8Array(0),
    startRevision: 0,
    progressNotify: false,
    filters: [],
    prevKv: false,
    watchId: 0,
    fragment: false,
    ...extra,
  };
}

interface Fixture {
  store: MvccStore;
  hub: WatchHub;
  index: number;
  put(key: string, value: string): number;
}

const running: Fixture[] = [];

async function fixture(fanout: FanoutMode, options: Partial<WatchHubOptions> = {}): Promise<Fixture> {
  const store = MvccStore.open({ backend: new MemoryBackend() });
  const hub = new WatchHub({ ...options, fanout, store, header: () => ids });
  await hub.start();
  feedHub(store, hub);
  const f: Fixture = {
    store,
    hub,
    index: 1,
    put(key, value) {
      f.index++;
      store.apply(f.index, 2, { type: "put", request: { key: Buffer.from(key), value: Buffer.from(value) } });
      return store.revision;
    },
  };
  running.push(f);
  return f;
}

/** Lets the fan-out (worker ring hops, catch-up rounds, acknowledgements) run. */
async function settle(ms = 60): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await settle(10);
  }
}

afterEach(async () => {
  for (const f of running.splice(0)) {
    await f.hub.close();
    await f.store.close();
  }
});

for (const fanout of ["worker", "inline"] satisfies FanoutMode[]) {
  describe(`watch hub (${fanout} fan-out)`, () => {
    it("resync (after a snapshot): synced watchers catch up from history, each event once", async () => {
      const f = await fixture(fanout);
      const transport = new FakeTransport();
      const stream = f.hub.openStream(transport);
      stream.create(create("a"));
      const revisions: number[] = [];
      const collect = () => {
        for (const r of transport.take()) for (const e of r.events) revisions.push(e.kv?.modRevision ?? 0);
      };
      const first = f.put("a", "1");
      f.hub.resync();
      f.put("a", "2");
      f.put("a", "3");
      f.hub.resync();
      const last = f.put("a", "4");
      await until(() => {
        collect();
        return revisions.length >= 4;
      }, "four events");
      await settle();
      collect();
      assert.deepEqual(revisions, [first, first + 1, first + 2, last]);
      assert.equal(f.hub.stats().slowWatchers, 0, "everyone is synced again");
    });

    it("refuses a create beyond watchersMax and an id that is not an exact integer", async () => {
      const f = await fixture(fanout, { watchersMax: 2 });
      const transport = new FakeTransport();
      const stream = f.hub.openStream(transport);
      stream.create(create("a"));
      stream.create(create("b"));
      stream.create(create("c"));
      stream.create(create("d", { watchId: 2 ** 60 }));
      const responses = transport.take();
      assert.deepEqual(
        responses.map((r) => [r.watchId, r.created, r.canceled, r.cancelReason]),
        [
          [0, true, false, ""],
          [1, true, false, ""],
          [-1, true, true, "etcdserver: too many requests"],
          [-1, true, true, "mvcc: watch ID out of range"],
        ],
      );
    });

    it("stops reading requests while control responses pile up past twice the bound, resumes after", async () => {
      const f = await fixture(fanout, { streamQueuedBytesMax: 1024 });
      const transport = new FakeTransport(false);
      const stream = f.hub.openStream(transport);
      for (let i = 0; i < 100; i++) stream.requestProgress();
      assert.deepEqual(transport.readingChanges, [false]);
      assert.ok(f.hub.stats().queuedBytes > 2048);
      transport.ackAll();
      assert.deepEqual(transport.readingChanges, [false, true]);
      assert.equal(f.hub.stats().queuedBytes, 0);
    });

    it("the hub-wide bound: a watcher it stopped catches up once another stream drains", async () => {
      const f = await fixture(fanout, { queuedBytesMax: 4096 });
      const hog = new FakeTransport(false);
      const hogStream = f.hub.openStream(hog);
      const transport = new FakeTransport(false);
      const stream = f.hub.openStream(transport);
      stream.create(create("a"));
      for (let i = 0; i < 200; i++) hogStream.requestProgress();
      const revisions = [f.put("a", "1"), f.put("a", "2"), f.put("a", "3")];
      await settle();
      assert.equal(f.hub.stats().slowWatchers, 1, "an event found the hub full: the watcher fell behind");
      // Its own stream still holds its created response (below its bound): only the hub's bound stops it.
      await settle();
      assert.equal(f.hub.stats().slowWatchers, 1, "still behind while the hub is full");
      hog.ackAll();
      await until(() => f.hub.stats().slowWatchers === 0, "the catch-up after the hub drained");
      transport.ackAll();
      const got = transport.take().flatMap((r) => r.events.map((e) => e.kv?.modRevision));
      assert.deepEqual(got, revisions);
    });

    it("a closed stream gives back its queued bytes and its watchers", async () => {
      const f = await fixture(fanout);
      const transport = new FakeTransport(false);
      const stream = f.hub.openStream(transport);
      stream.create(create("a"));
      stream.create(create("b", { startRevision: 1 }));
      f.put("a", "1");
      await settle();
      assert.ok(f.hub.stats().queuedBytes > 0);
      assert.equal(f.hub.stats().watchers, 2);
      stream.close();
      assert.deepEqual(
        [f.hub.stats().queuedBytes, f.hub.stats().watchers, f.hub.stats().streams, f.hub.stats().groups],
        [0, 0, 0, 0],
      );
      transport.ackAll(); // late acknowledgements of a closed stream change nothing
      assert.equal(f.hub.stats().queuedBytes, 0);
    });

    it("progress ticks: a quiet synced watcher gets one, one that got events does not; then all are quiet", async () => {
      const f = await fixture(fanout);
      const transport = new FakeTransport();
      const stream: WatchStream = f.hub.openStream(transport);
      stream.create(create("a", { progressNotify: true }));
      stream.create(create("b", { progressNotify: true }));
      stream.create(create("c"));
      transport.take();
      const rev = f.put("a", "1");
      await until(() => transport.frames.length > 0, "the event");
      transport.take();
      stream.progressTick();
      assert.deepEqual(
        transport.take().map((r) => [r.watchId, r.header?.revision, r.events.length]),
        [[1, rev, 0]],
      );
      stream.progressTick();
      assert.deepEqual(
        transport.take().map((r) => r.watchId),
        [0, 1],
      );
    });

    it("close ends every stream with 'etcdserver: server stopped'", async () => {
      const f = await fixture(fanout);
      const transport = new FakeTransport();
      const stream = f.hub.openStream(transport);
      stream.create(create("a"));
      await f.hub.close();
      assert.deepEqual(transport.aborted, { code: 14, message: "etcdserver: server stopped" });
      assert.equal(f.hub.stats().watchers, 0);
    });
  });
}
