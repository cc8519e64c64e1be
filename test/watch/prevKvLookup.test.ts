import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { MemoryBackend } from "../../src/backend/memory.js";
import { MvccStore } from "../../src/mvcc/store.js";
import type { WriteOp } from "../../src/mvcc/types.js";
import { etcdserverpb } from "../../src/proto/index.js";
import { WatchHub } from "../../src/watch/hub.js";
import type { FanoutMode, StreamTransport, WatchCreate } from "../../src/watch/types.js";
import { feedHub } from "./watchServer.js";

/**
 * A store opened with eventsWithPrevKv false hands the hub events without prevKv; the hub then reads the
 * previous value itself (keyValueAt at revision - 1) for watchers that asked for prev_kv. What the
 * watchers receive must be exactly what they receive when the store reads the previous value in the
 * write: same events, same prev_kv, for puts on new and existing keys, deletes, ranges, txns and across
 * a compaction.
 */

class RecordingTransport implements StreamTransport {
  readonly responses: etcdserverpb.WatchResponse[] = [];
  write(frames: Buffer, written: () => void): void {
    let o = 0;
    while (o < frames.length) {
      const length = frames.readUInt32BE(o + 1);
      this.responses.push(etcdserverpb.WatchResponse.decode(frames.subarray(o + 5, o + 5 + length)));
      o += 5 + length;
    }
    queueMicrotask(written);
  }
  setReading(): void {}
  /** The hub aborts its streams when it closes (after the comparison). */
  abort(): void {}
}

function create(key: string, rangeEnd: string, prevKv: boolean, watchId: number): WatchCreate {
  return {
    key: Buffer.from(key),
    rangeEnd: Buffer.from(rangeEnd),
    startRevision: 0,
    progressNotify: false,
    filters: [],
    prevKv,
    watchId,
    fragment: false,
  };
}

const b = (text: string) => Buffer.from(text);

/** The writes: new keys, overwrites, a lease-free txn touching several keys, deletes, a compaction. */
const script: WriteOp[] = [
  { type: "put", request: { key: b("a"), value: b("a1") } },
  { type: "put", request: { key: b("b"), value: b("b1") } },
  { type: "put", request: { key: b("a"), value: b("a2") } },
  { type: "put", request: { key: b("a"), value: b("a3"), prevKv: true } },
  {
    type: "txn",
    request: {
      success: [
        { requestPut: { key: b("c"), value: b("c1") } },
        { requestPut: { key: b("b"), value: b("b2") } },
        { requestDeleteRange: { key: b("x") } },
      ],
    },
  },
  { type: "compaction", request: { revision: 5 } },
  { type: "put", request: { key: b("c"), value: b("c2") } },
  { type: "deleteRange", request: { key: b("a") } },
  { type: "put", request: { key: b("a"), value: b("a4") } },
  { type: "deleteRange", request: { key: b("a"), rangeEnd: b("z"), prevKv: true } },
  { type: "put", request: { key: b("b"), value: b("b3") } },
];

interface Seen {
  watchId: string;
  events: unknown[];
}

const running: Array<{ hub: WatchHub; store: MvccStore }> = [];

afterEach(async () => {
  for (const { hub, store } of running.splice(0)) {
    await hub.close();
    await store.close();
  }
});

async function run(fanout: FanoutMode, eventsWithPrevKv: boolean): Promise<Seen[]> {
  const store = MvccStore.open({ backend: new MemoryBackend(), eventsWithPrevKv });
  const hub = new WatchHub({ fanout, store, header: () => ({ clusterId: 1n, memberId: 2n, raftTerm: 3 }) });
  running.push({ hub, store });
  await hub.start();
  feedHub(store, hub);
  const transport = new RecordingTransport();
  const stream = hub.openStream(transport);
  stream.create(create("a", "z", true, 1));
  stream.create(create("b", "", false, 2));
  stream.create(create("a", "", true, 3));
  let index = 1;
  for (const op of script) store.apply(++index, 1, op);
  const deadline = Date.now() + 10_000;
  const eventCount = () => transport.responses.reduce((n, r) => n + r.events.length, 0);
  // Watcher 1 sees 12 events, watcher 2 four, watcher 3 six.
  while (eventCount() < 22) {
    assert.ok(Date.now() < deadline, `timed out with ${eventCount()} events`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const kv = (k: etcdserverpb.WatchResponse["events"][number]["kv"]) =>
    k === null || k === undefined
      ? null
      : [
          Buffer.from(k.key).toString(),
          Buffer.from(k.value).toString(),
          k.createRevision,
          k.modRevision,
          k.version,
        ];
  return transport.responses
    .filter((r) => r.events.length > 0)
    .map((r) => ({
      watchId: String(r.watchId),
      events: r.events.map((e) => [e.type, kv(e.kv), kv(e.prevKv)]),
    }));
}

for (const fanout of ["inline", "worker"] satisfies FanoutMode[]) {
  describe(`prev_kv looked up by the hub (${fanout} fan-out)`, () => {
    it("gives watchers the same events and prev_kv as a store that reads them in the write", async () => {
      const withStorePrev = await run(fanout, true);
      const withHubLookup = await run(fanout, false);
      assert.deepEqual(withHubLookup, withStorePrev);
      const prevs = withHubLookup.flatMap((s) => s.events).filter((e) => (e as unknown[])[2] !== null);
      // Overwrites and deletes of live keys seen by watchers 1 and 3 carry their previous value...
      assert.ok(prevs.length >= 8, `${prevs.length} events with prev_kv`);
      // ...and watcher 2 (no prev_kv) never gets one.
      for (const s of withHubLookup.filter((x) => x.watchId === "2"))
        for (const e of s.events) assert.equal((e as unknown[])[2], null);
    });
  });
}
