import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TokenBucket } from "../../bench/load/rateLimiter.js";

const secondNs = 1_000_000_000;

/**
 * A caller that asks again as soon as its previous permit is due (etcdctl's generator when the
 * queue has room), on a simulated clock: counts permits before the deadline.
 */
function countEagerPermits(limiter: TokenBucket, startNs: number, durationNs: number): number[] {
  const permits: number[] = [];
  let askNs = startNs;
  for (;;) {
    const permitNs = limiter.reserve(askNs, startNs + durationNs);
    if (permitNs < 0) return permits;
    permits.push(permitNs);
    askNs = permitNs;
  }
}

describe("TokenBucket (x/time/rate semantics, burst 1)", () => {
  const cases: Array<{ rate: number; seconds: number; expected: number }> = [
    { rate: 150, seconds: 60, expected: 9000 }, // check perf s: etcd's revision advanced by exactly 9,000 puts
    { rate: 1000, seconds: 60, expected: 60_000 },
    { rate: 8000, seconds: 3, expected: 24_000 },
    { rate: 15_000, seconds: 1, expected: 15_000 },
    { rate: 7, seconds: 3, expected: 21 }, // 1e9/7 ns is not whole: the fraction must not drift
    { rate: 3, seconds: 0.5, expected: 2 }, // permits at 0 and 333 ms
  ];
  for (const { rate, seconds, expected } of cases) {
    it(`${rate}/s for ${seconds} s yields ${expected} permits`, () => {
      const permits = countEagerPermits(new TokenBucket(rate, 1), 5 * secondNs, seconds * secondNs);
      assert.equal(permits.length, expected);
      assert.equal(permits[0], 5 * secondNs, "the first permit is immediate");
    });
  }

  it("spaces permits by 1/rate, with the remainder carried exactly", () => {
    const permits = countEagerPermits(new TokenBucket(3, 1), 0, secondNs);
    assert.deepEqual(permits, [0, 333_333_333, 666_666_666]);
    const next = new TokenBucket(3, 1);
    for (let index = 0; index < 3; index++) next.reserve(0);
    assert.equal(next.reserve(0), secondNs, "three intervals of 1/3 s add up to exactly one second");
  });

  it("gives no catch-up beyond the burst to a caller that asks late", () => {
    const limiter = new TokenBucket(100, 1); // one permit per 10 ms
    assert.equal(limiter.reserve(0), 0);
    // Blocked for 95 ms (a full queue): the 9 permits missed meanwhile are lost, not bunched.
    assert.equal(limiter.reserve(95_000_000), 95_000_000);
    assert.equal(limiter.reserve(95_000_000), 105_000_000);
  });

  it("with a larger burst, gives that many permits at once after idling", () => {
    const limiter = new TokenBucket(10, 3);
    const atOnce = [limiter.reserve(secondNs), limiter.reserve(secondNs), limiter.reserve(secondNs)];
    assert.deepEqual(atOnce, [secondNs, secondNs, secondNs]);
    assert.equal(limiter.reserve(secondNs), secondNs + 100_000_000);
  });

  it("reserves nothing when the permit would not come before the deadline", () => {
    const limiter = new TokenBucket(2, 1);
    assert.equal(limiter.reserve(0, secondNs), 0);
    assert.equal(limiter.reserve(0, 500_000_000), -1, "due exactly at the deadline: refused");
    assert.equal(limiter.reserve(0, 500_000_001), 500_000_000, "the refusal consumed nothing");
  });

  it("rejects rates and bursts that are not whole and positive", () => {
    assert.throws(() => new TokenBucket(0));
    assert.throws(() => new TokenBucket(1.5));
    assert.throws(() => new TokenBucket(10, 0));
  });
});
