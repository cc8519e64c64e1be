import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { callUnary, type etcdserverpb, type KVClient, type WatchClient } from "../../src/proto/index.js";
import { startRealEtcd } from "../support/realEtcd.js";
import { clients, startWatchServer, WatchSession } from "./watchServer.js";

/**
 * Spec §7 (Watch) as a table of rules over the gRPC service, each checked against the etcd-ts double in
 * both fan-out modes and, with the same assertions, against a real etcd 3.4.23: a rule that fails on etcd
 * is a wrong rule, not a finding. Each rule uses its own keys; revisions are read from the writes.
 */

/** The progress interval both servers run with here (etcd's flag takes a duration). */
const PROGRESS_INTERVAL_MS = 300;

interface Target {
  name: string;
  start(): Promise<{ endpoint: string; stop(): Promise<void> }>;
}

const targets: Target[] = [
  {
    name: "etcd-ts double, inline fan-out",
    start: () => startWatchServer({ fanout: "inline", progressNotifyIntervalMs: PROGRESS_INTERVAL_MS }),
  },
  {
    name: "etcd-ts double, worker fan-out",
    start: () => startWatchServer({ fanout: "worker", progressNotifyIntervalMs: PROGRESS_INTERVAL_MS }),
  },
  {
    name: "etcd-ts double, worker fan-out, one write per response (grpc-js unpatched)",
    start: () =>
      startWatchServer({
        fanout: "worker",
        progressNotifyIntervalMs: PROGRESS_INTERVAL_MS,
        perMessageWrites: true,
      }),
  },
  {
    name: "real etcd 3.4.23",
    start: () =>
      startRealEtcd({ flags: [`--experimental-watch-progress-notify-interval=${PROGRESS_INTERVAL_MS}ms`] }),
  },
];

const b = (s: string) => Buffer.from(s);
const text = (u: Uint8Array | undefined) => Buffer.from(u ?? []).toString();

/** A response without the member-specific header fields: what the rules compare. */
function summary(r: etcdserverpb.WatchResponse) {
  return {
    id: r.watchId,
    rev: r.header?.revision ?? 0,
    ...(r.created ? { created: true } : {}),
    ...(r.canceled ? { canceled: true } : {}),
    ...(r.compactRevision !== 0 ? { compact: r.compactRevision } : {}),
    ...(r.cancelReason !== "" ? { reason: r.cancelReason } : {}),
    ...(r.fragment ? { fragment: true } : {}),
    events: r.events.map((e) => {
      const kv = e.kv;
      const base = `${e.type === 0 ? "PUT" : "DELETE"} ${text(kv?.key)}=${text(kv?.value)} c${kv?.createRevision} m${kv?.modRevision} v${kv?.version}`;
      return e.prevKv === undefined ? base : `${base} prev=${text(e.prevKv.value)}@${e.prevKv.modRevision}`;
    }),
  };
}

for (const target of targets) {
  describe(`Watch rules (spec §7) against ${target.name}`, () => {
    let running: { endpoint: string; stop(): Promise<void> };
    let kv: KVClient;
    let watch: WatchClient;
    let close: () => void;
    const sessions: WatchSession[] = [];
    const session = (metadata?: grpc.Metadata) => {
      const s = new WatchSession(watch, metadata);
      sessions.push(s);
      return s;
    };
    const put = async (key: string, value: string) =>
      (await callUnary(kv, kv.Put, { key: b(key), value: b(value) })).header?.revision ?? 0;
    const del = async (key: string, rangeEnd?: string) =>
      (await callUnary(kv, kv.DeleteRange, { key: b(key), ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }))
        .header?.revision ?? 0;
    const current = async () =>
      (await callUnary(kv, kv.Range, { key: b("\0"), countOnly: true })).header?.revision ?? 0;

    before(async () => {
      running = await target.start();
      ({ kv, watch, close } = clients(running.endpoint));
    });

    after(async () => {
      for (const s of sessions) s.close();
      close();
      await running.stop();
    });

    it("create from now: created with the current revision, then one response per write revision", async () => {
      const s = session();
      const rev0 = await current();
      s.create({ key: b("r1/"), rangeEnd: b("r10") });
      assert.deepEqual(summary(await s.next()), { id: 0, rev: rev0, created: true, events: [] });
      const rev1 = await put("r1/a", "1");
      // A txn: every event of one revision in one response, in op order; a range delete in key order.
      const txn = await callUnary(kv, kv.Txn, {
        success: [
          { request: { case: "requestPut", value: { key: b("r1/c"), value: b("3") } } },
          { request: { case: "requestPut", value: { key: b("r1/b"), value: b("2") } } },
        ],
      });
      const rev2 = txn.header?.revision ?? 0;
      const rev3 = await del("r1/", "r10");
      assert.deepEqual(summary(await s.next()), {
        id: 0,
        rev: rev1,
        events: [`PUT r1/a=1 c${rev1} m${rev1} v1`],
      });
      assert.deepEqual(summary(await s.next()), {
        id: 0,
        rev: rev2,
        events: [`PUT r1/c=3 c${rev2} m${rev2} v1`, `PUT r1/b=2 c${rev2} m${rev2} v1`],
      });
      // DELETE events carry only the key and the deletion revision.
      assert.deepEqual(summary(await s.next()), {
        id: 0,
        rev: rev3,
        events: [`DELETE r1/a= c0 m${rev3} v0`, `DELETE r1/b= c0 m${rev3} v0`, `DELETE r1/c= c0 m${rev3} v0`],
      });
    });

    it("watch ids: auto ids count from 0 skipping taken ones; duplicates and empty ranges are refused", async () => {
      const s = session();
      const rev = await current();
      s.create({ key: b("r2"), watchId: 1 });
      s.create({ key: b("r2") });
      s.create({ key: b("r2") });
      s.create({ key: b("r2"), watchId: 1 });
      s.create({ key: b("r2b"), rangeEnd: b("r2a") });
      s.create({ key: b("r2a"), rangeEnd: b("r2a") });
      const refused = (reason: string) => ({
        id: -1,
        rev,
        created: true,
        canceled: true,
        reason,
        events: [],
      });
      assert.deepEqual(summary(await s.next()), { id: 1, rev, created: true, events: [] });
      assert.deepEqual(summary(await s.next()), { id: 0, rev, created: true, events: [] });
      assert.deepEqual(summary(await s.next()), { id: 2, rev, created: true, events: [] });
      assert.deepEqual(
        summary(await s.next()),
        refused("mvcc: duplicate watch ID provided on the WatchStream"),
      );
      assert.deepEqual(summary(await s.next()), refused("mvcc: watcher range is empty"));
      assert.deepEqual(summary(await s.next()), refused("mvcc: watcher range is empty"));
      const r = await put("r2", "x");
      const seen = [await s.next(), await s.next(), await s.next()].map((x) => x.watchId).sort();
      assert.deepEqual(seen, [0, 1, 2]);
      assert.equal(r, await current());
    });

    it("range forms: range_end \\0 is every key from key; an empty key with \\0 is every key", async () => {
      const s = session();
      s.create({ key: b("r3m"), rangeEnd: b("\0") });
      s.create({ key: b(""), rangeEnd: b("\0"), watchId: 5 });
      await s.next();
      await s.next();
      const rev = await put("r3z", "1");
      const got = [summary(await s.next()), summary(await s.next())].sort((x, y) => x.id - y.id);
      assert.deepEqual(
        got.map((g) => [g.id, g.rev]),
        [
          [0, rev],
          [5, rev],
        ],
      );
      await put("r3a", "1"); // below r3m: only the all-keys watcher
      const next = summary(await s.next());
      assert.equal(next.id, 5);
    });

    it("prev_kv: on updates and deletes, never on a creation", async () => {
      const s = session();
      s.create({ key: b("r4"), prevKv: true });
      await s.next();
      const c = await put("r4", "a");
      const u = await put("r4", "b");
      const d = await del("r4");
      assert.deepEqual(summary(await s.next()).events, [`PUT r4=a c${c} m${c} v1`]);
      assert.deepEqual(summary(await s.next()).events, [`PUT r4=b c${c} m${u} v2 prev=a@${c}`]);
      assert.deepEqual(summary(await s.next()).events, [`DELETE r4= c0 m${d} v0 prev=b@${u}`]);
    });

    it("filters: NOPUT and NODELETE drop events; a batch left empty is not sent", async () => {
      const s = session();
      s.create({ key: b("r5"), filters: [0] });
      await s.next();
      const t = session();
      t.create({ key: b("r5"), filters: [1] });
      await t.next();
      const p = await put("r5", "1");
      const d = await del("r5");
      assert.deepEqual(summary(await s.next()), { id: 0, rev: d, events: [`DELETE r5= c0 m${d} v0`] });
      assert.deepEqual(summary(await t.next()), { id: 0, rev: p, events: [`PUT r5=1 c${p} m${p} v1`] });
      t.progress();
      assert.equal(
        (await t.next()).watchId,
        -1,
        "the filtered delete sent nothing before the progress reply",
      );
    });

    it("start_revision in the past replays history, then goes on live without gaps or duplicates", async () => {
      const first = await put("r6", "1");
      await put("r6", "2");
      const third = await put("r6", "3");
      const s = session();
      s.create({ key: b("r6"), startRevision: first });
      assert.deepEqual(summary(await s.next()), { id: 0, rev: third, created: true, events: [] });
      const replay = summary(await s.next());
      assert.equal(replay.rev, third, "a replay's header carries the revision at sync time");
      assert.deepEqual(
        replay.events.map((e) => e.split(" ")[1]),
        ["r6=1", "r6=2", "r6=3"],
      );
      const fourth = await put("r6", "4");
      assert.deepEqual(summary(await s.next()).events, [`PUT r6=4 c${first} m${fourth} v4`]);
    });

    it("start_revision in the future: events before it are skipped", async () => {
      const now = await current();
      const s = session();
      s.create({ key: b("r7"), startRevision: now + 2 });
      assert.deepEqual(summary(await s.next()), { id: 0, rev: now, created: true, events: [] });
      await put("r7", "skipped");
      const taken = await put("r7", "taken");
      assert.deepEqual(summary(await s.next()).events, [`PUT r7=taken c${taken - 1} m${taken} v2`]);
    });

    it("compacted start: created, then canceled with compact_revision and header revision 0; the id stays taken", async () => {
      const old = await put("r8", "1");
      const compactAt = await put("r8", "2");
      await callUnary(kv, kv.Compact, { revision: compactAt });
      const s = session();
      s.create({ key: b("r8"), startRevision: old });
      const created = summary(await s.next());
      assert.deepEqual(created, { id: 0, rev: compactAt, created: true, events: [] });
      assert.deepEqual(summary(await s.next()), {
        id: 0,
        rev: 0,
        canceled: true,
        compact: compactAt,
        events: [],
      });
      // Its id is still taken on the stream (auto ids skip it) until the client cancels it.
      s.create({ key: b("r8") });
      assert.equal((await s.next()).watchId, 1);
      s.cancel(0);
      assert.deepEqual(summary(await s.next()), { id: 0, rev: compactAt, canceled: true, events: [] });
      // start_revision == compact revision is fine; the auto id counter only moves forward (0 is free again).
      s.create({ key: b("r8"), startRevision: compactAt });
      assert.equal((await s.next()).watchId, 2);
      assert.deepEqual(summary(await s.next()).events, [`PUT r8=2 c${old} m${compactAt} v2`]);
    });

    it("cancel: a known id answers canceled with the current revision; an unknown id gets no answer", async () => {
      const s = session();
      s.create({ key: b("r9") });
      await s.next();
      const rev = await current();
      s.cancel(0);
      assert.deepEqual(summary(await s.next()), { id: 0, rev, canceled: true, events: [] });
      s.cancel(42);
      s.progress();
      assert.deepEqual(summary(await s.next()), { id: -1, rev, events: [] }, "no reply to the unknown id");
      await put("r9", "after cancel");
      s.progress();
      assert.equal((await s.next()).watchId, -1, "no events after a cancel");
    });

    it("several watchers on one stream each get their events; a client half-close keeps the stream", async () => {
      const s = session();
      s.create({ key: b("r10/"), rangeEnd: b("r100") });
      s.create({ key: b("r10/a") });
      await s.next();
      await s.next();
      s.call.end();
      const rev = await put("r10/a", "1");
      const got = [summary(await s.next()), summary(await s.next())].sort((x, y) => x.id - y.id);
      assert.deepEqual(got, [
        { id: 0, rev, events: [`PUT r10/a=1 c${rev} m${rev} v1`] },
        { id: 1, rev, events: [`PUT r10/a=1 c${rev} m${rev} v1`] },
      ]);
    });

    it("progress_notify: a quiet synced watcher gets {header, watch_id} each interval", async () => {
      const s = session();
      s.create({ key: b("r11"), progressNotify: true, watchId: 3 });
      await s.next();
      const rev = await current();
      const notify = summary(await s.next());
      assert.deepEqual(notify, { id: 3, rev, events: [] });
    });

    it("fragment: a response of at least max-request-bytes + 512 KiB splits as etcd's sendFragments", async () => {
      const value = Buffer.alloc(1_000_000, 97);
      const revs: number[] = [];
      for (let i = 0; i < 4; i++) revs.push(await put(`r12/${i}`, value.toString()));
      const s = session();
      s.create({ key: b("r12/"), rangeEnd: b("r120"), startRevision: revs[0], fragment: true });
      s.create({ key: b("r12/"), rangeEnd: b("r120"), startRevision: revs[0] });
      const shapes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await s.next();
        shapes.push(`${r.watchId}:${r.created ? "created" : `${r.events.length}${r.fragment ? "+" : ""}`}`);
      }
      // Watcher 0 (fragment) gets 2 + 2 events, the first flagged; watcher 1 gets all four at once. The two
      // watchers' responses may interleave, each in its own order.
      const of = (id: string) => shapes.filter((x) => x.startsWith(id));
      assert.deepEqual(of("0:"), ["0:created", "0:2+", "0:2"]);
      assert.deepEqual(of("1:"), ["1:created", "1:4"]);

      // Live: one revision deleting the four keys, whose prev_kv make a 4 MB response.
      const live = session();
      live.create({ key: b("r12/"), rangeEnd: b("r120"), prevKv: true, fragment: true });
      await live.next();
      const deleted = await del("r12/", "r120");
      const first = await live.next();
      const second = await live.next();
      assert.deepEqual(
        [first, second].map((r) => [r.header?.revision, r.events.length, r.fragment]),
        [
          [deleted, 2, true],
          [deleted, 2, false],
        ],
      );
      assert.deepEqual(
        [...first.events, ...second.events].map((e) => [text(e.kv?.key), e.prevKv?.value.length]),
        [0, 1, 2, 3].map((i) => [`r12/${i}`, 1_000_000]),
      );
    });
  });
}

describe("Watch stream rules of the etcd-ts double only (no leader)", () => {
  it("hasleader: refused at once without a leader; cancelled after three election timeouts without one", async () => {
    const running = await startWatchServer({ fanout: "worker", electionTimeoutMs: 20 });
    const { watch, close } = clients(running.endpoint);
    try {
      const metadata = new grpc.Metadata();
      metadata.set("hasleader", "true");
      const live = new WatchSession(watch, metadata);
      live.create({ key: b("h") });
      assert.equal((await live.next()).created, true);
      const plain = new WatchSession(watch);
      plain.create({ key: b("h") });
      assert.equal((await plain.next()).created, true);
      running.server.leader = 0n;
      const refused = new WatchSession(watch, metadata);
      const error = await refused.failure();
      assert.deepEqual([error.code, error.details], [grpc.status.UNAVAILABLE, "etcdserver: no leader"]);
      const cancelled = await live.failure();
      assert.deepEqual(
        [cancelled.code, cancelled.details],
        [grpc.status.UNAVAILABLE, "etcdserver: no leader"],
      );
      // A stream opened without hasleader is not affected.
      plain.progress();
      assert.equal((await plain.next()).watchId, -1);
      plain.close();
    } finally {
      close();
      await running.stop();
    }
  });
});
