import { assert } from "../assert.js";
import { EtcdError, isEtcdError } from "../errors.js";

/**
 * Linearizable reads (etcd's linearizableReadLoop): every read that arrives while a ReadIndex round is in
 * flight joins the next round, so one heartbeat round serves any number of concurrent reads. A round asks
 * raft for a read index (a unique 8-byte context), and its readers are released once the member has
 * applied up to that index.
 */

interface Reader {
  resolve(): void;
  reject(error: unknown): void;
}

interface Round {
  context: Uint8Array;
  readers: Reader[];
  /** -1 until raft answers. */
  index: number;
  startedMs: number;
  /** False while there is no leader to ask: sent when one appears, or timed out. */
  sent: boolean;
}

export interface ReadIndexHost {
  /** Asks raft for a read index with this context; throws when raft refuses (no leader). */
  requestReadIndex(context: Uint8Array): void;
  appliedIndex(): number;
}

export class ReadIndexRounds {
  private waiting: Reader[] = [];
  private round: Round | null = null;
  private nextContext = 1n;

  constructor(
    private readonly host: ReadIndexHost,
    /** Readers queued for the next round beyond this are refused with "too many requests". */
    private readonly readersMax: number,
    /** A round not answered within this fails its readers with "request timed out". */
    private readonly timeoutMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(readersMax > 0 && timeoutMs > 0, "read bounds are positive");
  }

  /** Resolves when a read that starts now may be served from local state. */
  barrier(): Promise<void> {
    if (this.waiting.length >= this.readersMax) return Promise.reject(new EtcdError("TooManyRequests"));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.startRound();
    });
  }

  /** raft answered a readIndex call. */
  onReadState(context: Uint8Array, index: number): void {
    const round = this.round;
    if (round === null || round.index !== -1 || !sameBytes(context, round.context)) return;
    round.index = index;
    this.onApplied();
  }

  /** Call after every apply: releases the round once applied >= its index, then starts the next. */
  onApplied(): void {
    const round = this.round;
    if (round === null || round.index === -1 || this.host.appliedIndex() < round.index) return;
    this.round = null;
    for (const reader of round.readers) reader.resolve();
    this.startRound();
  }

  /**
   * The leader changed (`hasLeader`: a new one is known). A round already sent may never be answered
   * (raft drops pending read requests with the lead): its readers fail with "leader changed", as etcd's
   * read loop does. A round waiting for a leader is sent now.
   */
  leaderChanged(hasLeader: boolean): void {
    const round = this.round;
    if (round === null) return;
    if (round.sent && round.index === -1) {
      this.round = null;
      const error = new EtcdError("LeaderChanged");
      for (const reader of round.readers) reader.reject(error);
      if (hasLeader) this.startRound();
      return;
    }
    if (!round.sent && hasLeader) this.send(round);
  }

  /** Fails a round that raft never answered (a lost leader, a dropped request). Call periodically. */
  expire(): void {
    const round = this.round;
    if (round === null || this.nowMs() - round.startedMs < this.timeoutMs) return;
    this.round = null;
    const error = new EtcdError("Timeout");
    for (const reader of round.readers) reader.reject(error);
    this.startRound();
  }

  failAll(error: unknown): void {
    const readers = [...(this.round?.readers ?? []), ...this.waiting];
    this.round = null;
    this.waiting = [];
    for (const reader of readers) reader.reject(error);
  }

  private startRound(): void {
    if (this.round !== null || this.waiting.length === 0) return;
    const context = new Uint8Array(8);
    new DataView(context.buffer).setBigUint64(0, this.nextContext++);
    const round: Round = { context, readers: this.waiting, index: -1, startedMs: this.nowMs(), sent: false };
    this.waiting = [];
    this.round = round;
    this.send(round);
  }

  /**
   * Without a leader the round waits for one (etcd's read loop waits too), up to the timeout: readers then
   * fail with "request timed out", not at once.
   */
  private send(round: Round): void {
    try {
      this.host.requestReadIndex(round.context);
      round.sent = true;
    } catch (error) {
      if (isEtcdError(error, "NoLeader")) return;
      this.round = null;
      for (const reader of round.readers) reader.reject(error);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
