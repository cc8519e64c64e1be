/**
 * Leases persist in the backend's `lease` table (etcd's leasepb.Lease rows) and come back at open; keys
 * come back from the KV store's KeyValue.lease (spec §8.5). Issue 9: "keys of an expired lease are gone,
 * keys of a live lease stay" across a restart.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MemoryBackend } from "../../src/backend/memory.js";
import { ManualClock } from "../../src/lease/clock.js";
import {
  decodeLeaseRow,
  encodeLeaseRow,
  INT64_MAX,
  INT64_MIN,
  leaseIdFromKey,
  leaseIdKey,
} from "../../src/lease/codec.js";
import { FOREVER_REMAINING_SECONDS, Lessor } from "../../src/lease/lessor.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { applyGrant, applyPut, applyRevoke, liveKeys, openMember, s } from "./harness.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

describe("lease rows: etcd's layout", () => {
  const table: [id: bigint, ttl: number, remaining: number, key: string, value: string][] = [
    [1n, 2, 0, "0000000000000001", "08011002"],
    [0x1234n, 300, 120, "0000000000001234", "08b42410ac021878"],
    [-1n, 5, 0, "ffffffffffffffff", "08ffffffffffffffffff011005"],
    [INT64_MIN, 9_000_000_000, 0, "8000000000000000", "08808080808080808080011080b4c4c321"],
    [INT64_MAX, 2, 0, "7fffffffffffffff", "08ffffffffffffffff7f1002"],
  ];
  for (const [id, ttlSeconds, remainingTtlSeconds, key, value] of table) {
    it(`lease ${id}`, () => {
      assert.equal(hex(leaseIdKey(id)), key);
      assert.equal(leaseIdFromKey(leaseIdKey(id)), id);
      const row = { id, ttlSeconds, remainingTtlSeconds };
      assert.equal(hex(encodeLeaseRow(row)), value);
      assert.deepEqual(decodeLeaseRow(encodeLeaseRow(row)), row);
    });
  }

  it("skips fields a later version may add", () => {
    // ID 3, TTL 4, then field 9 (varint 1).
    assert.deepEqual(decodeLeaseRow(Buffer.from("080310044801", "hex")), {
      id: 3n,
      ttlSeconds: 4,
      remainingTtlSeconds: 0,
    });
  });
});

describe("restart from the backend", () => {
  it("brings back leases, TTLs and attached keys; no deadline until promoted", () => {
    const first = openMember();
    first.lessor.promote(0);
    applyGrant(first, 1n, 30);
    applyGrant(first, -5n, 2);
    applyGrant(first, 9n, 0); // raised to the minimum, 2
    applyGrant(first, 4n, 60);
    applyPut(first, "a", 1n);
    applyPut(first, "b", 1n);
    applyPut(first, "c", -5n);
    applyPut(first, "d", 0n);
    applyRevoke(first, 4n);
    first.store.stop();

    const clock = new ManualClock(5_000_000);
    const m = openMember({}, first.backend, clock);
    assert.deepEqual(m.lessor.leases(), [-5n, 1n, 9n]);
    assert.equal(m.lessor.ttlOf(1n), 30);
    assert.equal(m.lessor.ttlOf(9n), 2);
    assert.deepEqual(m.lessor.attachedKeys(1n)?.map(s).sort(), ["a", "b"]);
    assert.deepEqual(m.lessor.attachedKeys(-5n)?.map(s), ["c"]);
    assert.equal(m.lessor.unknownAttachCount, 0);
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, FOREVER_REMAINING_SECONDS);
    clock.advance(100_000);
    assert.deepEqual(m.lessor.expired(), []);

    // Becoming leader: now + TTL + extension for every lease.
    m.lessor.promote(1_000);
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, 31);
    assert.equal(m.lessor.timeToLive(-5n, false).ttlSeconds, 3);
    m.lessor.checkInvariants();
  });

  it("keys of an expired lease are gone, keys of a live lease stay", () => {
    const first = openMember();
    first.lessor.promote(0);
    applyGrant(first, 1n, 5);
    applyGrant(first, 2n, 100);
    applyPut(first, "dies", 1n);
    applyPut(first, "lives", 2n);
    first.clock.advance(4_000);
    first.lessor.renew(2n);
    first.store.stop();

    // The member was down for a while; on restart it is elected again.
    const m = openMember({}, first.backend, new ManualClock(0));
    m.lessor.promote(1_000);
    m.clock.advance(6_000);
    const expired = m.lessor.expired();
    assert.deepEqual(expired, [1n]);
    for (const id of expired) applyRevoke(m, id);
    assert.deepEqual(liveKeys(m), ["lives@2"]);
    m.store.stop();

    // And again after another restart: the revoke was persisted with the keys' deletion.
    const again = openMember({}, m.backend, new ManualClock(0));
    assert.deepEqual(again.lessor.leases(), [2n]);
    assert.deepEqual(liveKeys(again), ["lives@2"]);
    assert.deepEqual(again.lessor.attachedKeys(2n)?.map(s), ["lives"]);
  });

  it("raises stored TTLs to today's minimum without rewriting the rows", () => {
    const first = openMember({ minTtlSeconds: 2 });
    applyGrant(first, 1n, 3);
    applyGrant(first, 2n, 10);
    const rowBefore = hex(first.backend.get("lease", leaseIdKey(1n)) as Uint8Array);
    const m = openMember({ minTtlSeconds: 5 }, first.backend);
    assert.equal(m.lessor.ttlOf(1n), 5);
    assert.equal(m.lessor.ttlOf(2n), 10);
    assert.equal(hex(m.backend.get("lease", leaseIdKey(1n)) as Uint8Array), rowBefore);
  });

  it("checkpointed remaining TTLs survive a restart only when persisted", () => {
    for (const checkpointPersist of [false, true]) {
      const options = { checkpointEnabled: true, checkpointIntervalMs: 60_000, checkpointPersist };
      const first = openMember(options);
      applyGrant(first, 1n, 600);
      first.lessor.checkpoint(1n, 42);
      first.backend.seal(first.index++, 1);
      const m = openMember(options, first.backend);
      m.lessor.promote(0);
      assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, checkpointPersist ? 42 : 600);
    }
  });

  it("a store rebuilt against a lessor that lacks a lease counts the stray attachment", () => {
    const first = openMember();
    applyGrant(first, 1n, 60);
    applyPut(first, "k", 1n);
    // A lease table that lost the row (not something etcd-ts writes; e.g. a tool edited the file).
    first.backend.delete("lease", leaseIdKey(1n));
    const backend: MemoryBackend = first.backend;
    const lessor = Lessor.open({ backend, clock: new ManualClock(), minTtlSeconds: 2 });
    MvccStore.open({ backend, leases: lessor });
    assert.equal(lessor.size, 0);
    assert.equal(lessor.unknownAttachCount, 1);
  });
});
