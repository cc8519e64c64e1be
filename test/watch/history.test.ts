import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { callUnary, type etcdserverpb } from "../../src/proto/index.js";
import type { FanoutMode } from "../../src/watch/types.js";
import { clients, startWatchServer, WatchSession } from "./watchServer.js";

/**
 * Replay from history (spec §7.2 step 2, §7.3, §7.4) around a compaction: watchers starting below, at
 * and above the compact revision; a replay longer than 1000 revisions (etcd's batch bound) that then
 * joins the live stream; and a watcher stuck while catching up whose next revision gets compacted: it is
 * cancelled with compact_revision after exactly the events it could take, none lost in between.
 */

const text = (u: Uint8Array | undefined) => Buffer.from(u ?? []).toString();

function flatten(responses: etcdserverpb.WatchResponse[]): string[] {
  return responses.flatMap((r) =>
    r.events.map((e) => `${e.type}:${text(e.kv?.key)}=${text(e.kv?.value)}@${e.kv?.modRevision}`),
  );
}

for (const fanout of ["worker", "inline"] satisfies FanoutMode[]) {
  describe(`watch history across compaction (${fanout} fan-out)`, () => {
    it("start below, at and above the compact revision; a 2,500-revision replay in batches of at most 1000", async () => {
      const running = await startWatchServer({ fanout });
      const { kv, watch, close } = clients(running.endpoint);
      const sessions: WatchSession[] = [];
      try {
        const puts: number[] = [];
        for (let i = 0; i < 3000; i++) {
          const key = `h/${i % 7}`;
          const response = await callUnary(kv, kv.Put, {
            key: Buffer.from(key),
            value: Buffer.from(`v${i}`),
          });
          puts.push(response.header?.revision ?? 0);
        }
        const compactAt = puts[499] as number;
        await callUnary(kv, kv.Compact, { revision: compactAt, physical: true });
        const expectedFrom = (start: number, current: number) =>
          running.server.store
            .eventsBetween(start, current)
            .map((e) => `0:${text(e.kv.key)}=${text(e.kv.value)}@${e.kv.modRevision}`);

        const below = new WatchSession(watch);
        sessions.push(below);
        below.create({ key: Buffer.from("h/"), rangeEnd: Buffer.from("h0"), startRevision: compactAt - 1 });
        assert.equal((await below.next()).created, true);
        const cancel = await below.next();
        assert.deepEqual(
          [cancel.canceled, cancel.compactRevision, cancel.header?.revision, cancel.events.length],
          [true, compactAt, 0, 0],
        );

        for (const start of [compactAt, compactAt + 1]) {
          const s = new WatchSession(watch);
          sessions.push(s);
          s.create({ key: Buffer.from("h/"), rangeEnd: Buffer.from("h0"), startRevision: start });
          const created = await s.next();
          assert.equal(created.created, true);
          const current = created.header?.revision ?? 0;
          const expected = expectedFrom(start, current);
          assert.equal(
            expected.length,
            current - start + 1,
            "every revision after the compaction is in history",
          );
          const got: etcdserverpb.WatchResponse[] = [];
          while (flatten(got).length < expected.length) got.push(await s.next());
          assert.deepEqual(flatten(got), expected);
          for (const r of got) {
            const revisions = new Set(r.events.map((e) => e.kv?.modRevision));
            assert.ok(
              revisions.size <= 1000,
              `a replay response covers at most 1000 revisions (${revisions.size})`,
            );
            assert.equal(r.header?.revision, current, "replay headers carry the revision at sync time");
          }
          assert.ok(got.length >= 3, "2,500 revisions take three responses");
          // Then it is live: the next write comes as its own response.
          const live = await callUnary(kv, kv.Put, {
            key: Buffer.from("h/live"),
            value: Buffer.from(String(start)),
          });
          const liveRev = live.header?.revision ?? 0;
          const response = await s.next();
          assert.deepEqual(flatten([response]), [`0:h/live=${start}@${liveRev}`]);
          assert.equal(response.header?.revision, liveRev);
        }
      } finally {
        for (const s of sessions) s.close();
        close();
        await running.stop();
      }
    });

    it("a stuck watcher catching up is cancelled with compact_revision once its next revision is compacted", async () => {
      // A small stream bound so that the paused stream falls behind after a few responses.
      const running = await startWatchServer({ fanout, streamQueuedBytesMax: 16 * 1024 });
      const { kv, watch, close } = clients(running.endpoint);
      const stuck = new WatchSession(watch);
      try {
        stuck.create({ key: Buffer.from("s/"), rangeEnd: Buffer.from("s0") });
        assert.equal((await stuck.next()).created, true);
        const start = running.server.store.revision + 1;
        stuck.call.pause();
        const value = Buffer.alloc(1000, 120);
        for (let i = 0; i < 300; i++) await callUnary(kv, kv.Put, { key: Buffer.from(`s/${i % 5}`), value });
        const stats = running.hub.stats();
        assert.equal(stats.slowWatchers, 1, "the paused watcher fell behind instead of queueing every event");
        assert.ok(stats.queuedBytes < 256 * 1024, `bounded queue (${stats.queuedBytes} bytes)`);
        const current = running.server.store.revision;
        await callUnary(kv, kv.Compact, { revision: current, physical: true });
        stuck.call.resume();
        const got: etcdserverpb.WatchResponse[] = [];
        for (;;) {
          const r = await stuck.next();
          if (r.canceled) {
            assert.deepEqual([r.compactRevision, r.header?.revision, r.events.length], [current, 0, 0]);
            break;
          }
          got.push(r);
        }
        // What it got before the cancel: exactly the first events from its start, no gap, no duplicate.
        const revisions = flatten(got).map((e) => Number(e.split("@")[1]));
        assert.ok(
          revisions.length > 0 && revisions.length < 300,
          `${revisions.length} events before the cancel`,
        );
        assert.deepEqual(
          revisions,
          revisions.map((_, i) => start + i),
        );
      } finally {
        stuck.close();
        close();
        await running.stop();
      }
    });
  });
}
