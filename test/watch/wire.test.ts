import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bytesToLatin1 } from "../../src/backend/bytes.js";
import type { KeyValue, MvccEvent } from "../../src/mvcc/types.js";
import { etcdserverpb, type mvccpb } from "../../src/proto/index.js";
import { FanoutCore, ResponseEncoder, type ResponseSink, withWatchIdBytes } from "../../src/watch/fanout.js";
import { EventBatch, GroupFlag } from "../../src/watch/frames.js";
import {
  encodeControlResponse,
  fragmentEnds,
  HeaderIds,
  int53Halves,
  varint64Size,
  watchIdFieldSize,
  writeVarint64,
  writeWatchIdField,
} from "../../src/watch/wire.js";
import { rng } from "../support/prng.js";

/** Byte fields as plain arrays, so Buffer and Uint8Array views compare by content. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const CLUSTER = 0xdeadbeefcafef00dn;
const MEMBER = 0x8000000000000001n;

function bigintVarint(value: bigint): number[] {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function randomKv(next: () => number, key: Uint8Array, modRevision: number): KeyValue {
  const leases = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 123456789012345678n];
  const value = Buffer.alloc(Math.floor(next() * 40));
  for (let i = 0; i < value.length; i++) value[i] = Math.floor(next() * 256);
  return {
    key,
    createRevision: Math.max(1, modRevision - Math.floor(next() * 5)),
    modRevision,
    version: 1 + Math.floor(next() * 1000),
    value,
    lease: leases[Math.floor(next() * leases.length)] as bigint,
  };
}

function randomEvents(next: () => number, revision: number, count: number): MvccEvent[] {
  const events: MvccEvent[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(`k${Math.floor(next() * 20)}`);
    if (next() < 0.3) {
      const kv: KeyValue = {
        key,
        createRevision: 0,
        modRevision: revision,
        version: 0,
        value: Buffer.alloc(0),
        lease: 0n,
      };
      events.push(
        next() < 0.5
          ? { type: "DELETE", kv }
          : { type: "DELETE", kv, prevKv: randomKv(next, key, revision - 1) },
      );
    } else {
      const kv = randomKv(next, key, revision);
      events.push(
        next() < 0.5 ? { type: "PUT", kv } : { type: "PUT", kv, prevKv: randomKv(next, key, revision - 1) },
      );
    }
  }
  return events;
}

/** What etcd would send: the events with prev_kv when wanted (never on a create). */
function expectedEvents(events: readonly MvccEvent[], prevKv: boolean): mvccpb.EventInit[] {
  return events.map((event) => {
    const create = event.type === "PUT" && event.kv.createRevision === event.kv.modRevision;
    const out: mvccpb.EventInit = { type: event.type === "PUT" ? 0 : 1, kv: event.kv };
    if (prevKv && !create && event.prevKv !== undefined) out.prevKv = event.prevKv;
    return out;
  });
}

describe("watch wire encoding", () => {
  it("writes 64-bit varints from uint32 halves as a BigInt reference does", () => {
    const next = rng(7);
    const samples = [
      0n,
      1n,
      127n,
      128n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 35n,
      2n ** 53n,
      2n ** 63n,
      2n ** 64n - 1n,
    ];
    for (let i = 0; i < 2000; i++)
      samples.push(
        BigInt.asUintN(64, BigInt(Math.floor(next() * 2 ** 53)) << BigInt(Math.floor(next() * 12))),
      );
    for (const value of samples) {
      const lo = Number(value & 0xffffffffn);
      const hi = Number(value >> 32n);
      const out = new Uint8Array(10);
      const end = writeVarint64(out, 0, lo, hi);
      assert.deepEqual([...out.subarray(0, end)], bigintVarint(value), `varint of ${value}`);
      assert.equal(varint64Size(lo, hi), end, `size of ${value}`);
    }
    for (const id of [-1, -2, -(2 ** 32), -(2 ** 53 - 1), 2 ** 53 - 1, 0, 5]) {
      const { lo, hi } = int53Halves(id);
      assert.equal((BigInt(hi) << 32n) | BigInt(lo), BigInt.asUintN(64, BigInt(id)), `halves of ${id}`);
    }
  });

  it("encodes response bodies that decode to etcd's WatchResponse, for every group option", () => {
    const ids = new HeaderIds(CLUSTER, MEMBER);
    const next = rng(42);
    for (let round = 0; round < 300; round++) {
      const revision = 2 + Math.floor(next() * 1e9);
      const events = randomEvents(next, revision, 1 + Math.floor(next() * 8));
      const prevKv = next() < 0.5;
      const watchId = [0, 1, 300, -1, -7, 2 ** 40][Math.floor(next() * 6)] as number;
      const raftTerm = Math.floor(next() * 10);
      const batch = new EventBatch();
      batch.fillFromEvents(
        revision,
        raftTerm,
        events,
        0,
        events.length,
        prevKv ? (e) => e.prevKv : null,
        bytesToLatin1,
      );
      const encoder = new ResponseEncoder(ids, 2 * 1024 * 1024);
      const selection = events.map((_, i) => i);
      const flags = prevKv ? GroupFlag.PREV_KV : 0;
      encoder.plan(batch, selection, 0, selection.length, flags, revision, raftTerm);
      assert.equal(encoder.messageCount, 1);
      const body = new Uint8Array(encoder.bodySizes[0] as number);
      assert.equal(encoder.writeBody(0, body, 0), body.length);
      const message = Buffer.alloc(body.length + watchIdFieldSize(watchId));
      message.set(body);
      assert.equal(writeWatchIdField(message, body.length, watchId), message.length);
      const decoded = etcdserverpb.WatchResponse.decode(message);
      const expected = etcdserverpb.WatchResponse.create({
        header: { clusterId: CLUSTER, memberId: MEMBER, revision, raftTerm },
        watchId,
        events: expectedEvents(events, prevKv),
      });
      assert.deepEqual(plain(decoded), plain(expected), `round ${round}`);
    }
  });

  it("encodes control responses (created, refused, compaction cancel, progress)", () => {
    const ids = new HeaderIds(CLUSTER, MEMBER);
    const cases = [
      { revision: 5, raftTerm: 2, watchId: 0, created: true },
      {
        revision: 5,
        raftTerm: 2,
        watchId: -1,
        created: true,
        canceled: true,
        cancelReason: "mvcc: watcher range is empty",
      },
      { revision: 0, raftTerm: 2, watchId: 3, canceled: true, compactRevision: 9 },
      { revision: 7, raftTerm: 3, watchId: -1 },
      { revision: 0, raftTerm: 0, watchId: 2 ** 53 - 1, canceled: true, compactRevision: -1 },
    ];
    for (const response of cases) {
      const decoded = etcdserverpb.WatchResponse.decode(encodeControlResponse(ids, response));
      const { revision, raftTerm, ...rest } = response;
      assert.deepEqual(
        decoded,
        etcdserverpb.WatchResponse.create({
          header: { clusterId: CLUSTER, memberId: MEMBER, revision, raftTerm },
          ...rest,
        }),
      );
    }
  });

  it("splits fragments exactly where etcd's sendFragments does (its loop over the real codec as reference)", () => {
    const next = rng(99);
    for (let round = 0; round < 200; round++) {
      const count = 1 + Math.floor(next() * 12);
      const limit = 200 + Math.floor(next() * 3000);
      const events: mvccpb.EventInit[] = [];
      for (let i = 0; i < count; i++) {
        events.push({
          kv: {
            key: Buffer.from(`key${i}`),
            modRevision: 9,
            value: new Uint8Array(Math.floor(next() * 900)),
          },
        });
      }
      const watchId = Math.floor(next() * 1000);
      const header = { clusterId: CLUSTER, memberId: MEMBER, revision: 9, raftTerm: 2 };
      const size = (init: etcdserverpb.WatchResponseInit) => etcdserverpb.WatchResponse.encode(init).length;
      // etcd's loop, verbatim in spirit: fill while the response stays below the limit, at least one event.
      let reference: number[] | null = null;
      if (!(size({ header, watchId, events }) < limit || count < 2)) {
        reference = [];
        let index = 0;
        for (;;) {
          const cur: mvccpb.EventInit[] = [];
          for (const ev of events.slice(index)) {
            cur.push(ev);
            if (cur.length > 1 && size({ header, watchId, events: cur, fragment: true }) >= limit) {
              cur.pop();
              break;
            }
            index++;
          }
          reference.push(index);
          if (index === count) break;
        }
      }
      const base = size({ header, watchId });
      const fieldSizes = events.map((ev) => size({ events: [ev] }));
      assert.deepEqual(fragmentEnds(base, fieldSizes, count, limit), reference, `round ${round}`);
    }
  });

  it("fans one revision out to each matching group once, filters and prev_kv applied", () => {
    const ids = new HeaderIds(CLUSTER, MEMBER);
    const core = new FanoutCore(ids, 2 * 1024 * 1024);
    const key = (s: string) => s;
    core.register({ id: 0, flags: GroupFlag.SINGLE, key: key("k1"), end: null });
    core.register({ id: 1, flags: 0, key: key("k"), end: key("l") });
    core.register({ id: 2, flags: GroupFlag.NOPUT, key: key("k"), end: null });
    core.register({ id: 3, flags: GroupFlag.PREV_KV | GroupFlag.NODELETE, key: key("a"), end: key("k2") });
    core.register({ id: 4, flags: withWatchIdBytes(GroupFlag.FRAGMENT, 2), key: key("z"), end: null });
    const kv = (k: string, rev: number): KeyValue => ({
      key: Buffer.from(k),
      createRevision: 1,
      modRevision: rev,
      version: 2,
      value: Buffer.from("v"),
      lease: 0n,
    });
    const del = (k: string, rev: number): KeyValue => ({
      key: Buffer.from(k),
      createRevision: 0,
      modRevision: rev,
      version: 0,
      value: new Uint8Array(0),
      lease: 0n,
    });
    const events: MvccEvent[] = [
      { type: "PUT", kv: kv("k1", 10), prevKv: kv("k1", 9) },
      { type: "DELETE", kv: del("k3", 10), prevKv: kv("k3", 8) },
    ];
    const batch = new EventBatch();
    batch.fillFromEvents(10, 2, events, 0, 2, (e) => e.prevKv, bytesToLatin1);
    core.match(batch);
    const out = new Map<number, etcdserverpb.WatchResponse[]>();
    const sink: ResponseSink = {
      reserve: (groupId, _revision, count, areaBytes) => {
        const area = new Uint8Array(areaBytes);
        pending = { groupId, count, area };
        return area;
      },
      commit: () => {
        const { groupId, count, area } = pending as { groupId: number; count: number; area: Uint8Array };
        const messages: etcdserverpb.WatchResponse[] = [];
        let o = 0;
        for (let m = 0; m < count; m++) {
          const size = new DataView(area.buffer, area.byteOffset + o, 4).getUint32(0, true);
          messages.push(etcdserverpb.WatchResponse.decode(area.subarray(o + 4, o + 4 + size)));
          o += 4 + size;
        }
        out.set(groupId, messages);
      },
      tooBig: () => assert.fail("nothing is too big here"),
    };
    let pending: { groupId: number; count: number; area: Uint8Array } | null = null;
    assert.equal(core.emit(sink, 1 << 20), true);
    const keys = (groupId: number) =>
      out
        .get(groupId)?.[0]
        ?.events.map(
          (e) => `${e.type}:${Buffer.from(e.kv?.key ?? []).toString()}:${e.prevKv ? "prev" : "-"}`,
        );
    assert.deepEqual(keys(0), ["0:k1:-"]);
    assert.deepEqual(keys(1), ["0:k1:-", "1:k3:-"]);
    assert.deepEqual(keys(2), ["1:k3:-"]);
    assert.deepEqual(keys(3), ["0:k1:prev"]);
    assert.equal(out.has(4), false, "a group without events gets no response");
    assert.equal(out.get(1)?.[0]?.header?.revision, 10);
  });
});
