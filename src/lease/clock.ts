import { assert } from "../assert.js";

/**
 * Where the lessor gets its time: monotonic milliseconds from an arbitrary origin. Only differences are
 * used (expiries are never persisted, only TTLs), so the origin does not matter and a wall-clock jump
 * cannot expire or resurrect a lease. Injected so that tests and the simulator drive time by hand.
 */
export interface Clock {
  nowMs(): number;
}

/** The process's monotonic clock. */
export const monotonicClock: Clock = { nowMs: () => performance.now() };

/** A clock that moves only when told to: for tests and the simulator. */
export class ManualClock implements Clock {
  constructor(private currentMs = 0) {}

  nowMs(): number {
    return this.currentMs;
  }

  advance(durationMs: number): void {
    assert(Number.isFinite(durationMs) && durationMs >= 0, "a monotonic clock never goes back");
    this.currentMs += durationMs;
  }
}
