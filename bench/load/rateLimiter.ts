import { assert } from "../../src/assert.js";

const nanosecondsPerSecond = 1_000_000_000;

/**
 * A token bucket with the semantics of Go's golang.org/x/time/rate limiter, which etcdctl check perf
 * builds with `rate.NewLimiter(rate, 1)`: permits at most `permitsPerSecond`, and at most `burst`
 * permits back to back after an idle spell. A caller that asks late does not get the missed permits
 * back beyond the burst: that is how a blocked generator loses throughput in etcdctl too.
 *
 * Kept as a theoretical arrival time (GCRA): the next permit is due at `tat`; each permit moves `tat`
 * by one interval. Time is integer nanoseconds and the interval's fraction (1e9 / rate is rarely an
 * integer) is carried exactly in units of 1/rate ns, so 150/s over 60 s yields exactly 9,000 permits,
 * as etcdctl's does, with no float drift at the deadline.
 *
 * The clock is the caller's (`nowNs` arguments), so tests drive it with a simulated clock.
 */
export class TokenBucket {
  private readonly intervalWholeNs: number;
  private readonly intervalRemainder: number;
  private readonly burstSlackNs: number;
  private tatNs = Number.NEGATIVE_INFINITY;
  /** Fraction of a nanosecond past `tatNs`, in units of 1/permitsPerSecond ns; always < permitsPerSecond. */
  private tatFraction = 0;

  constructor(
    readonly permitsPerSecond: number,
    readonly burst = 1,
  ) {
    assert(
      Number.isSafeInteger(permitsPerSecond) && permitsPerSecond >= 1,
      "TokenBucket: rate must be an integer >= 1",
    );
    assert(Number.isSafeInteger(burst) && burst >= 1, "TokenBucket: burst must be an integer >= 1");
    this.intervalWholeNs = Math.floor(nanosecondsPerSecond / permitsPerSecond);
    this.intervalRemainder = nanosecondsPerSecond % permitsPerSecond;
    this.burstSlackNs = Math.floor(((burst - 1) * nanosecondsPerSecond) / permitsPerSecond);
  }

  /**
   * Reserves the next permit for a caller asking at `nowNs` and returns the time it is due (>= nowNs;
   * the caller waits until then). If that time would not be before `deadlineNs`, reserves nothing and
   * returns -1, as x/time/rate's Wait refuses a wait that would outlast its context.
   */
  reserve(nowNs: number, deadlineNs = Number.POSITIVE_INFINITY): number {
    assert(Number.isSafeInteger(nowNs) && nowNs >= 0, "TokenBucket.reserve: nowNs must be a whole number");
    let tatNs = this.tatNs;
    let tatFraction = this.tatFraction;
    if (tatNs < nowNs) {
      // Idle long enough to have a full bucket: the schedule restarts from now.
      tatNs = nowNs;
      tatFraction = 0;
    }
    const permitAtNs = Math.max(nowNs, tatNs - this.burstSlackNs);
    if (permitAtNs >= deadlineNs) return -1;
    tatNs += this.intervalWholeNs;
    tatFraction += this.intervalRemainder;
    if (tatFraction >= this.permitsPerSecond) {
      tatFraction -= this.permitsPerSecond;
      tatNs += 1;
    }
    this.tatNs = tatNs;
    this.tatFraction = tatFraction;
    return permitAtNs;
  }
}
