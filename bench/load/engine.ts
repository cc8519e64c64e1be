import { performance } from "node:perf_hooks";
import { assert } from "../../src/assert.js";
import type { TokenBucket } from "./rateLimiter.js";
import type { LatencyRecorder } from "./recorder.js";

/** Permits handed out in one event-loop turn before yielding to I/O (completions must keep flowing). */
export const permitsPerTurnMax = 1024;

/** Starts one request for `client`; the workload later calls `Engine.complete(client, ...)` exactly once. */
export type IssueRequest = (client: number) => void;

export interface EngineOptions {
  /** Logical clients; each has at most one request in flight, like etcdctl's client goroutines. */
  clients: number;
  /** null: closed loop, every idle client issues at once. */
  limiter: TokenBucket | null;
  /** Stop generating after this long (null: after totalRequests). */
  durationSeconds: number | null;
  totalRequests: number | null;
  /**
   * Requests generated but not yet taken by a client (etcdctl's channel, capacity = clients). When it
   * is full the generator blocks holding one more request, and the permits it misses meanwhile are
   * lost (burst 1), as in etcdctl.
   */
  queueCapacity: number;
  recorder: LatencyRecorder;
  /** Wall time the stats collector starts (performance.now() ms); the recorder's time origin too. */
  startMs: number;
}

export interface EngineResult {
  sent: number;
  succeeded: number;
  failed: number;
  /** From the start to the last completion: the divisor of etcd's RPS. */
  statsSeconds: number;
  /** Whether the rate-limited generator ever blocked on a full queue (the server fell behind). */
  generatorBlocked: boolean;
}

function nowNs(): number {
  return Math.round(performance.now() * 1_000_000);
}

/**
 * The load generator's scheduler: a rate-limited (or closed-loop) generator feeding a bounded queue
 * drained by `clients` sequential clients, the shape of `etcdctl check perf` and etcd's
 * tools/benchmark, on one event loop. Latency is measured from the moment a client starts the request
 * to its completion callback, as etcdctl measures it (time spent queued is not latency there either).
 *
 * No per-request allocation here: client state is in typed arrays, timers are one per wake-up.
 */
export class Engine {
  private readonly idleClients: Int32Array;
  private idleCount: number;
  private readonly requestStartMs: Float64Array;
  private pending = 0;
  /** The generator holds one generated request because the queue was full. */
  private held = false;
  private generatorDone = false;
  private askNs: number;
  private readonly deadlineNs: number;
  /** A permit reserved from the limiter, due at this time, not yet dispatched (-1: none). */
  private reservedAtNs = -1;
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private generated = 0;
  private sent = 0;
  private generatorBlocked = false;
  private endMs = 0;
  private resolveDone: (() => void) | null = null;
  private issue: IssueRequest | null = null;
  private readonly tickBound = (): void => this.tick();

  constructor(private readonly options: EngineOptions) {
    assert(options.clients >= 1 && options.queueCapacity >= 1, "Engine: clients and queue must be >= 1");
    assert(options.durationSeconds !== null || options.totalRequests !== null, "Engine: no stop condition");
    this.idleClients = new Int32Array(options.clients);
    // Client 0 first, like a fresh pool: the stack pops from the end.
    for (let index = 0; index < options.clients; index++)
      this.idleClients[index] = options.clients - 1 - index;
    this.idleCount = options.clients;
    this.requestStartMs = new Float64Array(options.clients);
    const startNs = Math.round(options.startMs * 1_000_000);
    this.askNs = startNs;
    this.deadlineNs =
      options.durationSeconds === null
        ? Number.POSITIVE_INFINITY
        : startNs + Math.round(options.durationSeconds * 1_000_000_000);
  }

  get progress(): { sent: number; inFlight: number } {
    return { sent: this.sent, inFlight: this.inFlight };
  }

  /** Runs until the generator stops and every request it generated has completed. */
  run(issue: IssueRequest): Promise<EngineResult> {
    assert(this.issue === null, "Engine.run called twice");
    this.issue = issue;
    const done = new Promise<void>((resolve) => {
      this.resolveDone = resolve;
    });
    this.tick();
    return done.then(() => ({
      sent: this.sent,
      succeeded: this.options.recorder.successes,
      failed: this.options.recorder.failures,
      statsSeconds: (this.endMs - this.options.startMs) / 1000,
      generatorBlocked: this.generatorBlocked,
    }));
  }

  /** The workload's completion callback: `errorText` null on success. */
  complete(client: number, errorText: string | null): void {
    const endMs = performance.now();
    assert(this.inFlight > 0, "Engine.complete without a request in flight");
    this.inFlight--;
    if (errorText === null) this.options.recorder.recordSuccess(this.requestStartMs[client]!, endMs);
    else this.options.recorder.recordFailure(errorText);
    if (this.pending > 0) {
      this.pending--;
      this.send(client);
      if (this.held) {
        // The blocked generator's request enters the queue; it asks the limiter again from now.
        this.held = false;
        this.pending++;
        this.askNs = nowNs();
        this.scheduleTick(0);
      }
    } else {
      this.idleClients[this.idleCount++] = client;
      if (this.options.limiter === null && !this.generatorDone) this.tick();
    }
    if (this.generatorDone && this.inFlight === 0 && this.pending === 0 && !this.held) this.finish(endMs);
  }

  private send(client: number): void {
    this.sent++;
    this.inFlight++;
    this.requestStartMs[client] = performance.now();
    this.issue!(client);
  }

  private scheduleTick(delayMs: number): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(this.tickBound, delayMs);
  }

  private stopGenerator(): void {
    this.generatorDone = true;
    if (this.inFlight === 0 && this.pending === 0 && !this.held) this.finish(performance.now());
  }

  private finish(endMs: number): void {
    if (this.resolveDone === null) return;
    this.endMs = endMs;
    const resolve = this.resolveDone;
    this.resolveDone = null;
    resolve();
  }

  private tick(): void {
    this.timer = null;
    if (this.generatorDone || this.held) return;
    if (this.options.limiter === null) this.tickClosedLoop();
    else this.tickRateLimited(this.options.limiter);
  }

  /** Unlimited rate: every idle client issues at once until the stop condition. */
  private tickClosedLoop(): void {
    while (this.idleCount > 0) {
      if (this.stopConditionReached(nowNs())) {
        this.stopGenerator();
        return;
      }
      this.generated++;
      this.send(this.idleClients[--this.idleCount]!);
    }
  }

  private tickRateLimited(limiter: TokenBucket): void {
    const now = nowNs();
    for (let turn = 0; turn < permitsPerTurnMax; turn++) {
      if (this.reservedAtNs < 0) {
        if (this.options.totalRequests !== null && this.generated >= this.options.totalRequests) {
          this.stopGenerator();
          return;
        }
        this.reservedAtNs = limiter.reserve(this.askNs, this.deadlineNs);
        if (this.reservedAtNs < 0) {
          this.stopGenerator();
          return;
        }
      }
      if (this.reservedAtNs > now) {
        this.scheduleTick(Math.ceil((this.reservedAtNs - now) / 1_000_000));
        return;
      }
      // The permit is due: hand the request to an idle client, else queue it, else hold it.
      this.askNs = this.reservedAtNs;
      this.reservedAtNs = -1;
      this.generated++;
      if (this.idleCount > 0) {
        this.send(this.idleClients[--this.idleCount]!);
      } else if (this.pending < this.options.queueCapacity) {
        this.pending++;
      } else {
        this.held = true;
        this.generatorBlocked = true;
        return;
      }
    }
    this.scheduleTick(0);
  }

  private stopConditionReached(now: number): boolean {
    if (this.options.totalRequests !== null && this.generated >= this.options.totalRequests) return true;
    return now >= this.deadlineNs;
  }
}
