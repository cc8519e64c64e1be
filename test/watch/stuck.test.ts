import assert from "node:assert/strict";
import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import { callUnary, etcdserverpb } from "../../src/proto/index.js";
import type { FanoutMode } from "../../src/watch/types.js";
import { clients, STREAM_WAIT_MS, startWatchServer, WatchSession } from "./watchServer.js";

/**
 * A stuck consumer: a raw HTTP/2 Watch stream (its own connection) that never reads. While 2,000 puts of
 * 4 KiB stream in, the server must keep what it holds for that stream within its bound (the watcher
 * falls behind instead: nothing queued per event), and a healthy watcher on another connection must get
 * every event before the next put is issued (lockstep: a fan-out stalled by the stuck stream would hang
 * here). Latencies are printed, not asserted. Once the stuck client reads again, it catches up from
 * history with every event in order.
 */

const PUTS = 2000;
const VALUE_BYTES = 4096;
const STREAM_QUEUED_BYTES_MAX = 256 * 1024;

/** A Watch call over plain node:http2 whose response side is not read until `resume`. */
class RawWatchStream {
  private readonly session: http2.ClientHttp2Session;
  private readonly request: http2.ClientHttp2Stream;
  private pending = Buffer.alloc(0);
  readonly responses: etcdserverpb.WatchResponse[] = [];

  constructor(endpoint: string) {
    this.session = http2.connect(`http://${endpoint}`);
    this.session.on("error", () => {});
    this.request = this.session.request({
      ":method": "POST",
      ":path": "/etcdserverpb.Watch/Watch",
      "content-type": "application/grpc",
      te: "trailers",
    });
    this.request.on("error", () => {});
    this.request.pause();
    this.request.on("data", (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5) {
        const length = this.pending.readUInt32BE(1);
        if (this.pending.length < 5 + length) break;
        this.responses.push(etcdserverpb.WatchResponse.decode(this.pending.subarray(5, 5 + length)));
        this.pending = this.pending.subarray(5 + length);
      }
    });
  }

  create(request: etcdserverpb.WatchCreateRequestInit): void {
    const message = etcdserverpb.WatchRequest.encode({
      requestUnion: { case: "createRequest", value: request },
    });
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    this.request.write(frame);
  }

  resume(): void {
    this.request.resume();
  }

  close(): void {
    this.request.close();
    this.session.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

for (const fanout of ["worker", "inline"] satisfies FanoutMode[]) {
  describe(`a stuck watch consumer (${fanout} fan-out)`, () => {
    it("keeps the server's memory for it bounded and does not hold up other watchers", async (t) => {
      const running = await startWatchServer({ fanout, streamQueuedBytesMax: STREAM_QUEUED_BYTES_MAX });
      const { kv, watch, close } = clients(running.endpoint);
      const healthy = new WatchSession(watch);
      const stuck = new RawWatchStream(running.endpoint);
      try {
        healthy.create({ key: Buffer.from("k/"), rangeEnd: Buffer.from("k0") });
        assert.equal((await healthy.next()).created, true);
        const value = Buffer.alloc(VALUE_BYTES, 121);
        const put = async (i: number) => {
          const started = performance.now();
          const response = await callUnary(kv, kv.Put, { key: Buffer.from(`k/${i % 10}`), value });
          const event = await healthy.next();
          assert.equal(
            event.events[0]?.kv?.modRevision,
            response.header?.revision,
            "the event of this very put",
          );
          return performance.now() - started;
        };
        const baseline: number[] = [];
        for (let i = 0; i < 200; i++) baseline.push(await put(i));

        // An explicit start: the create travels on another connection and may land after the first put.
        const startRev = running.server.store.revision + 1;
        stuck.create({ key: Buffer.from("k/"), rangeEnd: Buffer.from("k0"), startRevision: startRev });
        const withStuck: number[] = [];
        let queuedMaxBytes = 0;
        for (let i = 0; i < PUTS; i++) {
          withStuck.push(await put(i));
          queuedMaxBytes = Math.max(queuedMaxBytes, running.hub.stats().queuedBytes);
        }
        const stats = running.hub.stats();
        assert.equal(stats.slowWatchers, 1, "the stuck watcher fell behind");
        // What the server holds for the stuck stream: at most its bound plus one response, while 8 MB of
        // events went by.
        assert.ok(
          queuedMaxBytes <= STREAM_QUEUED_BYTES_MAX + VALUE_BYTES + 1024,
          `queued at most ${queuedMaxBytes} bytes`,
        );
        assert.ok(queuedMaxBytes > STREAM_QUEUED_BYTES_MAX / 2, "the stream did fill up to its bound");

        baseline.sort((a, b) => a - b);
        withStuck.sort((a, b) => a - b);
        t.diagnostic(
          `${fanout}: put-to-event ms without a stuck stream p50 ${percentile(baseline, 50).toFixed(2)} ` +
            `p99 ${percentile(baseline, 99).toFixed(2)}; with one p50 ${percentile(withStuck, 50).toFixed(2)} ` +
            `p99 ${percentile(withStuck, 99).toFixed(2)}; server queue max ${queuedMaxBytes} bytes`,
        );

        // Unstuck, it catches up from history: every event from its start, in order, once.
        stuck.resume();
        const finalRev = running.server.store.revision;
        const deadline = Date.now() + STREAM_WAIT_MS;
        const revisions = () => stuck.responses.flatMap((r) => r.events.map((e) => e.kv?.modRevision ?? 0));
        while (revisions().length < finalRev - startRev + 1 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const got = revisions();
        assert.equal(got.length, finalRev - startRev + 1, "every event reached the unstuck client");
        assert.deepEqual(
          got,
          got.map((_, i) => startRev + i),
        );
        assert.equal(running.hub.stats().slowWatchers, 0, "and it is synced again");
      } finally {
        healthy.close();
        stuck.close();
        close();
        await running.stop();
      }
    });
  });
}
