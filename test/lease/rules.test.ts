/**
 * One table per rule of spec §8 (Lease) and §14 (limits), on a lessor with a manual clock.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isEtcdError } from "../../src/errors.js";
import { INT64_MAX, INT64_MIN } from "../../src/lease/codec.js";
import {
  FOREVER_REMAINING_SECONDS,
  MAX_LEASE_TTL_SECONDS,
  minLeaseTtlSeconds,
  type RenewResult,
} from "../../src/lease/lessor.js";
import { applyGrant, applyPut, applyRevoke, openMember, s } from "./harness.js";

function expectError(fn: () => unknown, code: "LeaseNotFound" | "LeaseExist" | "LeaseTTLTooLarge"): void {
  assert.throws(fn, (error: unknown) => isEtcdError(error, code));
}

describe("minimum TTL: ceil(1.5 x election timeout) in seconds, from ticks as etcd computes it", () => {
  const table: [electionTicks: number, heartbeatMs: number, minTtlSeconds: number][] = [
    [10, 100, 2], // the defaults: 15 x 100 ms = 1.5 s -> 2
    [10, 50, 1], // 750 ms -> 1
    [11, 100, 2], // 3 x 11 / 2 = 16 ticks (integer division): 1.6 s -> 2
    [20, 100, 3], // exactly 3 s stays 3
    [7, 300, 3], // 10 ticks x 300 ms
    [50, 1000, 75],
  ];
  for (const [ticks, heartbeatMs, expected] of table) {
    it(`${ticks} ticks of ${heartbeatMs} ms -> ${expected} s`, () => {
      assert.equal(minLeaseTtlSeconds(ticks, heartbeatMs), expected);
    });
  }
});

describe("grant: TTL rules (spec §8.1)", () => {
  const table: [requestedSeconds: number, effective: number | "LeaseTTLTooLarge"][] = [
    [-5, 2],
    [0, 2],
    [1, 2],
    [2, 2],
    [3, 3],
    [3600, 3600],
    [MAX_LEASE_TTL_SECONDS, MAX_LEASE_TTL_SECONDS],
    [MAX_LEASE_TTL_SECONDS + 1, "LeaseTTLTooLarge"],
    [Number(INT64_MAX), "LeaseTTLTooLarge"],
    [Number(INT64_MIN), 2],
  ];
  for (const [requested, expected] of table) {
    it(`TTL ${requested} -> ${expected}`, () => {
      const m = openMember();
      if (expected === "LeaseTTLTooLarge") {
        expectError(() => applyGrant(m, 1n, requested), "LeaseTTLTooLarge");
        assert.equal(m.lessor.exists(1n), false);
        assert.equal(m.lessor.size, 0);
      } else {
        assert.equal(applyGrant(m, 1n, requested), expected);
        assert.equal(m.lessor.ttlOf(1n), expected);
      }
    });
  }
});

describe("grant: ids (spec §8.1)", () => {
  it("accepts negative and extreme client-chosen ids, refuses 0 and duplicates", () => {
    const m = openMember();
    for (const id of [1n, -1n, INT64_MIN, INT64_MAX, 0x7fff_0000_0000_0001n]) {
      assert.equal(applyGrant(m, id, 10), 10);
      assert.equal(m.lessor.exists(id), true);
    }
    expectError(() => applyGrant(m, 0n, 10), "LeaseNotFound");
    expectError(() => applyGrant(m, -1n, 10), "LeaseExist");
    expectError(() => applyGrant(m, INT64_MIN, 5), "LeaseExist");
    // etcd checks the TTL before the id: a duplicate with a too large TTL reports the TTL.
    expectError(() => applyGrant(m, 1n, MAX_LEASE_TTL_SECONDS + 1), "LeaseTTLTooLarge");
    assert.equal(m.lessor.size, 5);
    assert.equal(m.lessor.grantedTotal, 5);
  });

  it("does not change the KV revision", () => {
    const m = openMember();
    const before = m.store.revision;
    applyGrant(m, 5n, 10);
    applyGrant(m, 6n, 10);
    assert.equal(m.store.revision, before);
  });
});

describe("TimeToLive (spec §8.4)", () => {
  const table: [elapsedMs: number, ttlSeconds: number][] = [
    [0, 100],
    [1, 99], // truncated: 99.999 s
    [999, 99],
    [1000, 99],
    [1001, 98],
    [99_999, 0],
    [100_000, 0],
    [100_500, 0], // not -0
    [101_000, -1], // expired, revoke not yet applied
    [101_500, -1],
  ];
  for (const [elapsedMs, ttlSeconds] of table) {
    it(`granted 100 s on the primary, ${elapsedMs} ms later: TTL ${ttlSeconds}`, () => {
      const m = openMember();
      m.lessor.promote(0);
      applyGrant(m, 7n, 100);
      m.clock.advance(elapsedMs);
      const ttl = m.lessor.timeToLive(7n, false);
      assert.ok(Object.is(ttl.ttlSeconds, ttlSeconds), `TTL ${ttl.ttlSeconds}`);
      assert.equal(ttl.grantedTtlSeconds, 100);
      assert.deepEqual(ttl.keys, []);
    });
  }

  it("unknown lease: TTL -1, granted 0, no error", () => {
    const m = openMember();
    m.lessor.promote(0);
    assert.deepEqual(m.lessor.timeToLive(42n, true), {
      id: 42n,
      ttlSeconds: -1,
      grantedTtlSeconds: 0,
      keys: [],
    });
  });

  it("keys only when asked for; a follower reports no deadline", () => {
    const m = openMember();
    applyGrant(m, 7n, 30);
    applyPut(m, "b", 7n);
    applyPut(m, "a", 7n);
    applyPut(m, "c", 0n);
    const withKeys = m.lessor.timeToLive(7n, true);
    assert.deepEqual(withKeys.keys.map(s).sort(), ["a", "b"]);
    assert.equal(withKeys.ttlSeconds, FOREVER_REMAINING_SECONDS);
    assert.deepEqual(m.lessor.timeToLive(7n, false).keys, []);
    assert.deepEqual(m.lessor.attachedKeys(7n)?.map(s).sort(), ["a", "b"]);
    assert.equal(m.lessor.attachedKeys(8n), undefined);
  });
});

describe("Leases: sorted by remaining time (spec §8.4)", () => {
  it("orders by deadline, renewals move a lease back, ties by id", () => {
    const m = openMember();
    m.lessor.promote(0);
    applyGrant(m, 1n, 50);
    applyGrant(m, 2n, 10);
    applyGrant(m, -3n, 30);
    applyGrant(m, 4n, 10);
    applyGrant(m, 5n, 20);
    assert.deepEqual(m.lessor.leases(), [2n, 4n, 5n, -3n, 1n]);
    m.clock.advance(5000);
    m.lessor.renew(2n); // now expires at 15 s from the start, after 4 (10 s)
    assert.deepEqual(m.lessor.leases(), [4n, 2n, 5n, -3n, 1n]);
  });

  it("on a follower every lease has no deadline: listed by id", () => {
    const m = openMember();
    for (const id of [9n, -2n, 3n]) applyGrant(m, id, 5);
    assert.deepEqual(m.lessor.leases(), [-2n, 3n, 9n]);
  });
});

describe("renew (KeepAlive, spec §8.2)", () => {
  it("answers by role and state", async () => {
    const m = openMember();
    applyGrant(m, 1n, 10);
    assert.deepEqual(m.lessor.renew(1n), { kind: "notPrimary" });
    m.lessor.promote(0);
    assert.deepEqual(m.lessor.renew(2n), { kind: "notFound" });
    m.clock.advance(9_999);
    assert.deepEqual(m.lessor.renew(1n), { kind: "renewed", ttlSeconds: 10, clearCheckpoint: false });
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, 10);
    m.clock.advance(10_000);
    const expired = m.lessor.renew(1n) as Extract<RenewResult, { kind: "expired" }>;
    assert.equal(expired.kind, "expired");
    // A second keepalive shares the wait.
    const again = m.lessor.renew(1n) as Extract<RenewResult, { kind: "expired" }>;
    assert.equal(again.revoked, expired.revoked);
    applyRevoke(m, 1n);
    assert.equal(await expired.revoked, true);
    assert.deepEqual(m.lessor.renew(1n), { kind: "notFound" });
    assert.equal(m.lessor.renewedTotal, 1);
  });

  it("a keepalive waiting on an expired lease learns to forward when the member is demoted", async () => {
    const m = openMember();
    applyGrant(m, 1n, 2);
    m.lessor.promote(0);
    m.clock.advance(2_000);
    const result = m.lessor.renew(1n);
    assert.equal(result.kind, "expired");
    m.lessor.demote();
    assert.equal(await (result as Extract<RenewResult, { kind: "expired" }>).revoked, false);
    assert.equal(m.lessor.exists(1n), true);
  });

  it("a re-promotion releases waiters, and the lease renews again", async () => {
    const m = openMember();
    applyGrant(m, 1n, 2);
    m.lessor.promote(0);
    m.clock.advance(3_000);
    const result = m.lessor.renew(1n) as Extract<RenewResult, { kind: "expired" }>;
    m.lessor.promote(0);
    assert.equal(await result.revoked, false);
    assert.equal(m.lessor.renew(1n).kind, "renewed");
  });
});

describe("promote: every lease to now + TTL + extension (spec §8.5)", () => {
  it("gives followers' leases a fresh deadline with the extension", () => {
    const m = openMember();
    applyGrant(m, 1n, 10);
    applyGrant(m, 2n, 3);
    m.clock.advance(60_000); // time on a follower does not count
    assert.deepEqual(m.lessor.expired(), []);
    m.lessor.promote(1_000);
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, 11);
    assert.equal(m.lessor.timeToLive(2n, false).ttlSeconds, 4);
    m.clock.advance(3_999);
    assert.deepEqual(m.lessor.expired(), []);
    m.clock.advance(1);
    assert.deepEqual(m.lessor.expired(), [2n]);
    m.lessor.checkInvariants();
  });

  it("demote: nothing expires any more", () => {
    const m = openMember();
    applyGrant(m, 1n, 2);
    m.lessor.promote(0);
    m.lessor.demote();
    m.clock.advance(1_000_000);
    assert.deepEqual(m.lessor.expired(), []);
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, FOREVER_REMAINING_SECONDS);
    m.lessor.checkInvariants();
  });

  /** Expiries per one-second window (remaining whole seconds), from the earliest one. */
  function perSecond(m: ReturnType<typeof openMember>, ids: bigint[]): number[] {
    const remainingSeconds = ids.map((id) => m.lessor.timeToLive(id, false).ttlSeconds);
    const first = Math.min(...remainingSeconds);
    const counts: number[] = [];
    for (const r of remainingSeconds) counts[r - first] = (counts[r - first] ?? 0) + 1;
    return Array.from(counts, (c) => c ?? 0);
  }

  it("999 leases with one TTL: not spread", () => {
    const m = openMember();
    const ids = Array.from({ length: 999 }, (_, i) => BigInt(i + 1));
    for (const id of ids) m.lessor.grant(id, 10);
    m.lessor.promote(0);
    assert.deepEqual(perSecond(m, ids), [999]);
  });

  it("2000 leases with one TTL: at most 750 expire in any second, in order", () => {
    const m = openMember();
    const ids = Array.from({ length: 2000 }, (_, i) => BigInt(i + 1));
    for (const id of ids) m.lessor.grant(id, 10);
    m.lessor.promote(1_000);
    // TTL 10 + 1 s extension; then lease k (k > 750, by id) moves by k/750 s.
    assert.deepEqual(perSecond(m, ids), [750, 749, 501]);
    assert.equal(m.lessor.timeToLive(750n, false).ttlSeconds, 11);
    assert.equal(m.lessor.timeToLive(751n, false).ttlSeconds, 12); // 11 + 1.0013 s
    assert.equal(m.lessor.timeToLive(2000n, false).ttlSeconds, 13); // 11 + 2.667 s
    // Rounds hand them out in that order, 500 at a time.
    m.clock.advance(11_000);
    const first = m.lessor.expired();
    assert.equal(first.length, 500);
    assert.deepEqual(first, ids.slice(0, 500));
    m.lessor.checkInvariants();
  });

  it("leases in later windows only move by what piles up in their window", () => {
    const m = openMember();
    // 1000 leases of TTL 10 and 100 of TTL 60: only the first group piles up.
    for (let i = 1; i <= 1000; i++) m.lessor.grant(BigInt(i), 10);
    for (let i = 1001; i <= 1100; i++) m.lessor.grant(BigInt(i), 60);
    m.lessor.promote(0);
    assert.equal(m.lessor.timeToLive(1001n, false).ttlSeconds, 60);
    assert.equal(m.lessor.timeToLive(1100n, false).ttlSeconds, 60);
    assert.equal(m.lessor.timeToLive(1000n, false).ttlSeconds, 11);
  });
});

describe("expiry rounds (spec §8.5)", () => {
  it("earliest deadline first, ties by id, each handed out once per retry interval", () => {
    const m = openMember({ expiredRetryMs: 7_000 });
    m.lessor.promote(0);
    applyGrant(m, 30n, 3);
    applyGrant(m, 20n, 5);
    applyGrant(m, -10n, 3);
    applyGrant(m, 40n, 100);
    m.clock.advance(2_999);
    assert.deepEqual(m.lessor.expired(), []);
    m.clock.advance(1);
    assert.deepEqual(m.lessor.expired(), [-10n, 30n]);
    assert.deepEqual(m.lessor.expired(), []);
    m.clock.advance(2_000);
    assert.deepEqual(m.lessor.expired(), [20n]);
    applyRevoke(m, -10n);
    // The revoke of 30 got lost: handed out again 7 s after the first time.
    m.clock.advance(4_999);
    assert.deepEqual(m.lessor.expired(), []);
    m.clock.advance(1);
    assert.deepEqual(m.lessor.expired(), [30n]);
    m.lessor.checkInvariants();
  });

  it("at most 500 per round by default; a smaller limit is honoured", () => {
    const m = openMember();
    m.lessor.promote(0);
    for (let i = 1; i <= 1200; i++) m.lessor.grant(BigInt(i), 5);
    m.clock.advance(5_000);
    const rounds = [m.lessor.expired(), m.lessor.expired(), m.lessor.expired(), m.lessor.expired()];
    assert.deepEqual(
      rounds.map((r) => r.length),
      [500, 500, 200, 0],
    );
    assert.equal(new Set(rounds.flat()).size, 1200);
    m.clock.advance(10_000);
    assert.deepEqual(m.lessor.expired(3), [1n, 2n, 3n]);
  });

  it("a renewed lease leaves the round", () => {
    const m = openMember();
    m.lessor.promote(0);
    applyGrant(m, 1n, 2);
    applyGrant(m, 2n, 2);
    m.clock.advance(1_500);
    m.lessor.renew(1n);
    m.clock.advance(500);
    assert.deepEqual(m.lessor.expired(), [2n]);
  });
});

describe("checkpoints (--experimental-enable-lease-checkpoint, spec §8.5)", () => {
  it("the leader hands out remaining TTLs of long leases; a new leader restarts from them", () => {
    const m = openMember({ checkpointEnabled: true, checkpointIntervalMs: 300_000 });
    m.lessor.promote(0);
    applyGrant(m, 1n, 600);
    applyGrant(m, 2n, 200); // shorter than the interval: never checkpointed
    m.clock.advance(299_999);
    assert.deepEqual(m.lessor.dueCheckpoints(), []);
    m.clock.advance(1);
    assert.deepEqual(m.lessor.dueCheckpoints(), [{ id: 1n, remainingTtlSeconds: 300 }]);
    assert.deepEqual(m.lessor.dueCheckpoints(), []);
    m.lessor.checkpoint(1n, 300); // committed through raft
    m.lessor.checkpoint(99n, 5); // unknown: ignored
    m.lessor.demote();
    m.lessor.promote(1_000);
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, 301);
    assert.equal(m.lessor.timeToLive(1n, false).grantedTtlSeconds, 600);
    // A keepalive restarts the full TTL and asks the server to clear the checkpoint.
    assert.deepEqual(m.lessor.renew(1n), { kind: "renewed", ttlSeconds: 600, clearCheckpoint: true });
    assert.equal(m.lessor.timeToLive(1n, false).ttlSeconds, 600);
    m.lessor.checkpoint(1n, 0);
    assert.deepEqual(m.lessor.renew(1n), { kind: "renewed", ttlSeconds: 600, clearCheckpoint: false });
    m.lessor.checkInvariants();
  });

  it("batches are bounded and skip leases that were renewed to their full TTL", () => {
    const m = openMember({ checkpointEnabled: true, checkpointIntervalMs: 60_000 });
    m.lessor.promote(0);
    for (let i = 1; i <= 5; i++) applyGrant(m, BigInt(i), 120);
    m.clock.advance(60_000);
    m.lessor.renew(3n);
    assert.deepEqual(
      m.lessor.dueCheckpoints(2).map((c) => c.id),
      [1n, 2n],
    );
    assert.deepEqual(
      m.lessor.dueCheckpoints(2).map((c) => c.id),
      [4n, 5n],
    );
    assert.deepEqual(m.lessor.dueCheckpoints(2), []);
  });

  it("off by default: nothing scheduled, nothing to clear", () => {
    const m = openMember();
    m.lessor.promote(0);
    applyGrant(m, 1n, 6000);
    m.clock.advance(600_000);
    assert.deepEqual(m.lessor.dueCheckpoints(), []);
    m.lessor.checkpoint(1n, 10);
    assert.deepEqual(m.lessor.renew(1n), { kind: "renewed", ttlSeconds: 6000, clearCheckpoint: false });
  });
});
