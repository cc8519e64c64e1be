/**
 * Revoke through a real MvccStore on the memory backend (spec §8.3): all attached keys go in one
 * revision, in key order, the lease row goes in the same backend unit, no keys means no revision.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isEtcdError } from "../../src/errors.js";
import { leaseIdKey } from "../../src/lease/codec.js";
import { applyGrant, applyPut, applyRevoke, b, liveKeys, openMember, s } from "./harness.js";

describe("revoke through the store", () => {
  it("deletes every attached key in one revision, events in ascending key order", () => {
    const m = openMember();
    applyGrant(m, 7n, 60);
    applyGrant(m, 8n, 60);
    for (const key of ["m", "b", "zz", "a\xff", "a"]) applyPut(m, key, 7n);
    applyPut(m, "other", 8n);
    applyPut(m, "plain", 0n);
    const before = m.store.revision;
    const events = applyRevoke(m, 7n);
    assert.equal(m.store.revision, before + 1);
    assert.deepEqual(
      events.map((e) => [e.type, s(e.kv.key), e.kv.modRevision]),
      ["a", "a\xff", "b", "m", "zz"].map((key) => ["DELETE", key, before + 1]),
    );
    // Each event carries the deleted state, lease included.
    assert.deepEqual(
      events.map((e) => e.prevKv?.lease),
      [7n, 7n, 7n, 7n, 7n],
    );
    assert.deepEqual(liveKeys(m), ["other@8", "plain@0"]);
    assert.equal(m.lessor.exists(7n), false);
    assert.equal(m.backend.get("lease", leaseIdKey(7n)), undefined);
    assert.notEqual(m.backend.get("lease", leaseIdKey(8n)), undefined);
    assert.equal(m.lessor.revokedTotal, 1);
    // History has the same single revision.
    assert.deepEqual(
      m.store.eventsBetween(before + 1, before + 1).map((e) => s(e.kv.key)),
      ["a", "a\xff", "b", "m", "zz"],
    );
  });

  it("a lease without keys goes without a revision", () => {
    const m = openMember();
    applyGrant(m, 7n, 60);
    applyPut(m, "x", 0n);
    const before = m.store.revision;
    assert.deepEqual(applyRevoke(m, 7n), []);
    assert.equal(m.store.revision, before);
    assert.equal(m.lessor.exists(7n), false);
  });

  it("keys that left the lease stay; keys that joined it go", () => {
    const m = openMember();
    applyGrant(m, 1n, 60);
    applyGrant(m, 2n, 60);
    applyPut(m, "moved", 1n);
    applyPut(m, "moved", 2n); // now on lease 2
    applyPut(m, "freed", 1n);
    applyPut(m, "freed", 0n); // no lease any more
    applyPut(m, "deleted", 1n);
    m.store.apply(m.index++, 1, { type: "deleteRange", request: { key: b("deleted") } });
    applyPut(m, "joined", 0n);
    applyPut(m, "joined", 1n);
    applyPut(m, "txn", 0n);
    m.store.apply(m.index++, 1, {
      type: "txn",
      request: { success: [{ requestPut: { key: b("txn"), value: b("t"), lease: 1n } }] },
    });
    assert.deepEqual(m.lessor.attachedKeys(1n)?.map(s).sort(), ["joined", "txn"]);
    const events = applyRevoke(m, 1n);
    assert.deepEqual(
      events.map((e) => s(e.kv.key)),
      ["joined", "txn"],
    );
    assert.deepEqual(liveKeys(m), ["freed@0", "moved@2"]);
  });

  it("an unknown lease fails before anything changes; puts on a revoked lease fail", () => {
    const m = openMember();
    applyGrant(m, 1n, 60);
    applyPut(m, "k", 1n);
    const before = m.store.revision;
    assert.throws(
      () => applyRevoke(m, 2n),
      (e: unknown) => isEtcdError(e, "LeaseNotFound"),
    );
    assert.equal(m.store.revision, before);
    applyRevoke(m, 1n);
    assert.throws(
      () => applyRevoke(m, 1n),
      (e: unknown) => isEtcdError(e, "LeaseNotFound"),
    );
    assert.throws(
      () => applyPut(m, "k", 1n),
      (e: unknown) => isEtcdError(e, "LeaseNotFound"),
    );
  });

  it("an expired lease's keys vanish through the leader's round and the revoke", () => {
    const m = openMember();
    m.lessor.promote(0);
    applyGrant(m, 1n, 2);
    applyGrant(m, 2n, 10);
    applyPut(m, "short", 1n);
    applyPut(m, "long", 2n);
    m.clock.advance(2_000);
    for (const id of m.lessor.expired()) applyRevoke(m, id);
    assert.deepEqual(liveKeys(m), ["long@2"]);
    assert.deepEqual(m.lessor.expired(), []);
    m.lessor.checkInvariants();
  });
});
