import { assert } from "../assert.js";
import { EtcdError } from "../errors.js";

/**
 * Callers waiting for their proposal to be applied (etcd's wait.Wait), keyed by request id, with one
 * shared coarse deadline sweep instead of a timer per request (STYLE: undici's low-precision timers).
 *
 * All waiters share one timeout, so insertion order is deadline order and the sweep stops at the first
 * waiter still in time.
 */

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
  deadlineMs: number;
}

export class Waiters<T> {
  private readonly pending = new Map<bigint, Waiter<T>>();

  constructor(
    /** Beyond this many waiters new requests are refused with "etcdserver: too many requests". */
    private readonly waitersMax: number,
    private readonly timeoutMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(waitersMax > 0 && timeoutMs > 0, "waiter bounds are positive");
  }

  get size(): number {
    return this.pending.size;
  }

  /** Registers a waiter for `id`; the returned promise settles on trigger, fail or deadline. */
  wait(id: bigint): Promise<T> {
    if (this.pending.size >= this.waitersMax) return Promise.reject(new EtcdError("TooManyRequests"));
    assert(!this.pending.has(id), "request ids are unique");
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadlineMs: this.nowMs() + this.timeoutMs });
    });
  }

  /** True when somebody waits for `id` (the request was proposed by this member). */
  has(id: bigint): boolean {
    return this.pending.has(id);
  }

  trigger(id: bigint, value: T): void {
    const waiter = this.pending.get(id);
    if (waiter === undefined) return;
    this.pending.delete(id);
    waiter.resolve(value);
  }

  fail(id: bigint, error: unknown): void {
    const waiter = this.pending.get(id);
    if (waiter === undefined) return;
    this.pending.delete(id);
    waiter.reject(error);
  }

  /** Rejects every waiter whose deadline has passed with `error`. */
  expire(errorFor: () => unknown): void {
    const now = this.nowMs();
    for (const [id, waiter] of this.pending) {
      if (waiter.deadlineMs > now) break;
      this.pending.delete(id);
      waiter.reject(errorFor());
    }
  }

  /** Rejects everything (shutdown). */
  failAll(error: unknown): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}
