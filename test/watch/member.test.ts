import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type Member, startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";
import { callUnary, etcdserverpb, type KVClient, type mvccpb } from "../../src/proto/index.js";
import { STREAM_QUEUED_BYTES_MAX_DEFAULT, type WatchHub } from "../../src/watch/hub.js";
import { freePort } from "../support/ports.js";
import { rng } from "../support/prng.js";
import { clients, STREAM_WAIT_MS, WatchSession } from "./watchServer.js";

/**
 * Issue 9's three watch proofs on a real member (raft, WAL, lmdb, the apply loop feeding the hub), where
 * history.test.ts, churn.test.ts and stuck.test.ts run them on the store double with tighter bounds:
 * - history replayed across a compaction boundary (below: canceled with compact_revision; at and above:
 *   every event, then live);
 * - no event lost, duplicated or reordered while 10,000 writes stream in through raft and watchers join
 *   and leave at random (seeded);
 * - a stuck consumer: what the member holds for it stays within the hub's per-stream bound while 8 MB of
 *   events go by, and a healthy watcher gets every event before the next put is issued (no timing
 *   assertion: a fan-out held up by the stuck stream would hang the lockstep); unstuck, it catches up.
 */

const text = (u: Uint8Array | undefined) => Buffer.from(u ?? []).toString("latin1");

async function startTestMember(): Promise<{ member: Member; endpoint: string; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-member-watch-"));
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const member = await startMember({
    name: "mw",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    listenPeerUrls: peerUrl,
    initialAdvertisePeerUrls: peerUrl,
    initialCluster: `mw=${peerUrl}`,
    log: createLogger({ level: "error", destination: { write() {} } }),
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
  });
  const endpoint = (member.clientUrls[0] as string).replace("http://", "");
  return {
    member,
    endpoint,
    async stop() {
      await member.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The member's watch hub, for its stats (queued bytes, watchers). */
function hubOf(member: Member): WatchHub {
  return member.watchHub;
}

function eventLine(e: mvccpb.Event): string {
  const prev = e.prevKv === undefined ? "-" : `${text(e.prevKv.value)}@${e.prevKv.modRevision}`;
  const kv = e.kv;
  return `${e.type}|${text(kv?.key)}|${text(kv?.value)}|${kv?.modRevision}|${kv?.createRevision}|${kv?.version}|${prev}`;
}

describe("watch on a member (raft, WAL, lmdb)", () => {
  it("replays history across a compaction boundary, then goes on live", async () => {
    const running = await startTestMember();
    const { kv, watch, close } = clients(running.endpoint);
    const sessions: WatchSession[] = [];
    try {
      const PUTS = 1500;
      const revisions: number[] = [];
      for (let i = 0; i < PUTS; i++) {
        const response = await callUnary(kv, kv.Put, {
          key: Buffer.from(`h/${i % 7}`),
          value: Buffer.from(`v${i}`),
        });
        revisions.push(response.header?.revision ?? 0);
      }
      const compactAt = revisions[499] as number;
      await callUnary(kv, kv.Compact, { revision: compactAt, physical: true });
      const store = running.member.server.store;

      const below = new WatchSession(watch);
      sessions.push(below);
      below.create({ key: Buffer.from("h/"), rangeEnd: Buffer.from("h0"), startRevision: compactAt - 1 });
      assert.equal((await below.next()).created, true);
      const cancel = await below.next();
      assert.deepEqual(
        [cancel.canceled, cancel.compactRevision, cancel.events.length],
        [true, compactAt, 0],
        "a start below the compaction is canceled with compact_revision",
      );

      for (const start of [compactAt, compactAt + 1]) {
        const s = new WatchSession(watch);
        sessions.push(s);
        s.create({ key: Buffer.from("h/"), rangeEnd: Buffer.from("h0"), startRevision: start, prevKv: true });
        const created = await s.next();
        assert.equal(created.created, true);
        const current = created.header?.revision ?? 0;
        const expected = store
          .eventsBetween(start, current)
          .map((e) => `${text(e.kv.key)}@${e.kv.modRevision}`);
        assert.equal(expected.length, current - start + 1, "every revision from the start is in history");
        const got: string[] = [];
        while (got.length < expected.length) {
          const r = await s.next();
          for (const e of r.events) {
            got.push(`${text(e.kv?.key)}@${e.kv?.modRevision}`);
            // prev_kv is read at mod_revision - 1, as etcd's watch server does: below the compaction that
            // read fails and the event goes without one; above it, the key's previous value.
            const i = Number(/v(\d+)/.exec(text(e.kv?.value))?.[1]);
            const mod = e.kv?.modRevision ?? 0;
            // (h/live, put once by the previous round, is a creation: no prev_kv either.)
            const prev = mod - 1 < compactAt || Number.isNaN(i) ? "" : `v${i - 7}`;
            assert.equal(text(e.prevKv?.value), prev, `prev_kv of ${text(e.kv?.key)}@${mod}`);
          }
        }
        assert.deepEqual(got, expected, `replay from ${start}`);
        const live = await callUnary(kv, kv.Put, { key: Buffer.from("h/live"), value: Buffer.from("x") });
        const next = await s.next();
        assert.deepEqual(
          next.events.map((e) => `${text(e.kv?.key)}@${e.kv?.modRevision}`),
          [`h/live@${live.header?.revision}`],
          "then live, with no gap and no duplicate",
        );
      }
    } finally {
      for (const s of sessions) s.close();
      close();
      await running.stop();
    }
  });

  it("no event lost or duplicated while 10,000 writes stream in and watchers join and leave at random (seed 21)", async (t) => {
    const WRITES = 10_000;
    const WRITERS = 16;
    const STREAMS = 6;
    const KEYS = 40;
    /** Guard for the final drain (not a timing assertion). */
    const DRAIN_WAIT_MS = 60_000;
    const next = rng(21);
    const running = await startTestMember();
    const { kv, watch, close } = clients(running.endpoint);
    interface Watcher {
      stream: number;
      id: number;
      prefix: string;
      requestedStart: number;
      start: number;
      prevKv: boolean;
      state: "pending" | "live" | "cancelling" | "done";
      events: string[];
    }
    const watchers: Watcher[] = [];
    const pending: Watcher[][] = [];
    const byId: Map<number, Watcher>[] = [];
    const problems: string[] = [];
    const sessions: WatchSession[] = [];
    try {
      for (let s = 0; s < STREAMS; s++) {
        const session = new WatchSession(watch);
        const queue: Watcher[] = [];
        const ids = new Map<number, Watcher>();
        session.call.removeAllListeners("data");
        session.call.on("data", (r: etcdserverpb.WatchResponse) => {
          if (r.created) {
            const w = queue.shift();
            if (w === undefined) return problems.push(`stream ${s}: unexpected created`);
            w.id = r.watchId;
            w.state = "live";
            w.start = w.requestedStart === 0 ? (r.header?.revision ?? 0) + 1 : w.requestedStart;
            ids.set(w.id, w);
            return;
          }
          const w = ids.get(r.watchId);
          if (w === undefined) return problems.push(`stream ${s}: response for unknown id ${r.watchId}`);
          if (r.canceled) {
            if (w.state !== "cancelling") problems.push(`watcher ${s}/${w.id} canceled by the server`);
            w.state = "done";
            ids.delete(r.watchId);
            return;
          }
          for (const e of r.events) w.events.push(eventLine(e));
        });
        sessions.push(session);
        pending.push(queue);
        byId.push(ids);
      }
      const key = (n: number) => `c/${String(n).padStart(2, "0")}`;
      const createWatcher = (revision: number) => {
        const s = Math.floor(next() * STREAMS);
        const shape = next();
        const k = Math.floor(next() * KEYS);
        const prefix = shape < 0.3 ? "c/" : shape < 0.6 ? `c/${Math.floor(k / 10)}` : key(k);
        const roll = next();
        const requestedStart = roll < 0.6 ? 0 : Math.max(1, Math.floor(next() * revision));
        const w: Watcher = {
          stream: s,
          id: -1,
          prefix,
          requestedStart,
          start: 0,
          prevKv: next() < 0.4,
          state: "pending",
          events: [],
        };
        watchers.push(w);
        pending[s]?.push(w);
        const end = Buffer.from(prefix, "latin1");
        end[end.length - 1] = (end[end.length - 1] as number) + 1;
        sessions[s]?.create({
          key: Buffer.from(prefix, "latin1"),
          rangeEnd: prefix.length === 4 ? undefined : end,
          startRevision: requestedStart,
          prevKv: w.prevKv,
        });
      };
      const cancelWatcher = () => {
        const live = watchers.filter((w) => w.state === "live");
        const w = live[Math.floor(next() * live.length)];
        if (w === undefined) return;
        w.state = "cancelling";
        sessions[w.stream]?.cancel(w.id);
      };
      const write = async (client: KVClient, i: number) => {
        const k = i % KEYS;
        const roll = (i * 7919) % 100;
        if (roll < 75) {
          await callUnary(client, client.Put, { key: Buffer.from(key(k)), value: Buffer.from(`v${i}`) });
        } else if (roll < 88) {
          await callUnary(client, client.DeleteRange, { key: Buffer.from(key(k)) });
        } else {
          await callUnary(client, client.Txn, {
            success: [
              {
                request: {
                  case: "requestPut",
                  value: { key: Buffer.from(key(k)), value: Buffer.from(`t${i}`) },
                },
              },
              {
                request: {
                  case: "requestPut",
                  value: { key: Buffer.from(key((k + 1) % KEYS)), value: Buffer.from(`t${i}`) },
                },
              },
              { request: { case: "requestDeleteRange", value: { key: Buffer.from(key((k + 2) % KEYS)) } } },
            ],
          });
        }
      };

      let issued = 0;
      let done = 0;
      const writers = Array.from({ length: WRITERS }, async () => {
        while (issued < WRITES) {
          const i = issued++;
          await write(kv, i);
          done++;
        }
      });
      const store = running.member.server.store;
      const controller = (async () => {
        while (done < WRITES) {
          const roll = next();
          if (roll < 0.5) createWatcher(store.revision);
          else if (roll < 0.8) cancelWatcher();
          else {
            const session = sessions[Math.floor(next() * STREAMS)] as WatchSession;
            if (session.call.isPaused()) session.call.resume();
            else session.call.pause();
          }
          await new Promise((resolve) => setTimeout(resolve, 2 + Math.floor(next() * 10)));
        }
      })();
      await Promise.all([...writers, controller]);
      for (const session of sessions) session.call.resume();
      const finalRev = store.revision;

      const last = new Map<string, string>();
      const history = store.eventsBetween(1, finalRev).map((e) => {
        const k = text(e.kv.key);
        const before = last.get(k);
        const created = e.type === "PUT" && e.kv.createRevision === e.kv.modRevision;
        if (e.type === "PUT") last.set(k, `${text(e.kv.value)}@${e.kv.modRevision}`);
        else last.delete(k);
        const type = e.type === "PUT" ? 0 : 1;
        const head = `${type}|${k}|${text(e.kv.value)}|${e.kv.modRevision}|${e.kv.createRevision}|${e.kv.version}`;
        return {
          key: k,
          mod: e.kv.modRevision,
          line: (prevKv: boolean) => `${head}|${prevKv && !created && before !== undefined ? before : "-"}`,
        };
      });
      const expectedFor = (w: Watcher) =>
        history.filter((e) => e.mod >= w.start && e.key.startsWith(w.prefix)).map((e) => e.line(w.prevKv));
      const deadline = Date.now() + DRAIN_WAIT_MS;
      for (;;) {
        const behind = watchers.filter((w) => w.state === "live" && w.events.length < expectedFor(w).length);
        const waiting = watchers.filter((w) => w.state === "pending" || w.state === "cancelling");
        if (behind.length === 0 && waiting.length === 0) break;
        if (Date.now() > deadline) assert.fail(`${behind.length} behind, ${waiting.length} answers missing`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(problems, []);
      for (const w of watchers) {
        const expected = expectedFor(w);
        const label = `watcher ${w.stream}/${w.id} ${w.prefix} from ${w.start}`;
        if (w.state === "live") assert.deepEqual(w.events, expected, label);
        else assert.deepEqual(w.events, expected.slice(0, w.events.length), `${label} (a prefix)`);
      }
      assert.ok(watchers.length > 50, `enough watchers took part (${watchers.length})`);
      // Deletes of absent keys make no revision; the puts (three in four writes) each make one.
      assert.ok(history.length >= (WRITES * 3) / 4, `the writes went through (${history.length} events)`);
      t.diagnostic(`${watchers.length} watchers; hub ${JSON.stringify(hubOf(running.member).stats())}`);
    } finally {
      for (const s of sessions) s.close();
      close();
      await running.stop();
    }
  });

  it("a stuck consumer: the member holds a bounded amount for it and the other watcher gets every event", async () => {
    const PUTS = 2000;
    const VALUE_BYTES = 4096;
    const running = await startTestMember();
    const { kv, watch, close } = clients(running.endpoint);
    const healthy = new WatchSession(watch);
    const stuck = new RawWatchStream(running.endpoint);
    try {
      const hub = hubOf(running.member);
      healthy.create({ key: Buffer.from("k/"), rangeEnd: Buffer.from("k0") });
      assert.equal((await healthy.next()).created, true);
      const store = running.member.server.store;
      const startRev = store.revision + 1;
      stuck.create({ key: Buffer.from("k/"), rangeEnd: Buffer.from("k0"), startRevision: startRev });
      const value = Buffer.alloc(VALUE_BYTES, 121);
      let queuedMaxBytes = 0;
      for (let i = 0; i < PUTS; i++) {
        const response = await callUnary(kv, kv.Put, { key: Buffer.from(`k/${i % 10}`), value });
        const event = await healthy.next();
        assert.equal(
          event.events[0]?.kv?.modRevision,
          response.header?.revision,
          "the event of this very put",
        );
        queuedMaxBytes = Math.max(queuedMaxBytes, hub.stats().queuedBytes);
      }
      assert.equal(hub.stats().slowWatchers, 1, "the stuck watcher fell behind");
      assert.ok(
        queuedMaxBytes <= STREAM_QUEUED_BYTES_MAX_DEFAULT + VALUE_BYTES + 1024,
        `queued at most ${queuedMaxBytes} bytes while ${PUTS * VALUE_BYTES} bytes of events went by`,
      );
      assert.ok(
        queuedMaxBytes > STREAM_QUEUED_BYTES_MAX_DEFAULT / 2,
        "the stuck stream did fill to its bound",
      );

      stuck.resume();
      const finalRev = store.revision;
      const deadline = Date.now() + STREAM_WAIT_MS;
      const revisions = () => stuck.responses.flatMap((r) => r.events.map((e) => e.kv?.modRevision ?? 0));
      while (revisions().length < finalRev - startRev + 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const got = revisions();
      assert.deepEqual(
        got,
        Array.from({ length: finalRev - startRev + 1 }, (_, i) => startRev + i),
        "unstuck, it gets every event from its start, in order, once",
      );
      assert.equal(hub.stats().slowWatchers, 0, "and it is synced again");
    } finally {
      healthy.close();
      stuck.close();
      close();
      await running.stop();
    }
  });
});

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
