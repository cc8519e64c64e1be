import { jointIndexOf } from "./quorum.js";
import type { Message } from "./types.js";
import { EMPTY_BYTES } from "./types.js";

/** A read request waiting for a quorum to confirm this leader, and the commit index when it arrived. */
export interface ReadIndexRequest {
  readonly req: Message;
  readonly index: number;
}

const CONTEXT_BYTES = 8;
const TWO_POW_32 = 4294967296;

/**
 * ReadIndex bookkeeping on the leader (thesis §6.4). Reads are numbered 1, 2, 3, ... as they arrive. A
 * heartbeat carries the number of the newest read queued when it was sent; a follower echoes it back. Once
 * a quorum has echoed number n, this node was still the leader after every read up to n arrived, so reads
 * 1..n are confirmed at once: any number of concurrent reads share one heartbeat round.
 */
export class ReadOnly {
  private readonly acks = new Map<bigint, number>();
  private queue: ReadIndexRequest[] = [];
  private head = 0;
  /** Number of reads confirmed so far (the numbers of confirmed reads are 1..confirmed). */
  private confirmed = 0;

  constructor(readonly maxPendingRequests: number) {}

  pendingCount(): number {
    return this.queue.length - this.head;
  }

  isFull(): boolean {
    return this.pendingCount() >= this.maxPendingRequests;
  }

  addRequest(commitIndex: number, req: Message): void {
    this.queue.push({ req, index: commitIndex });
  }

  /** Records that `from` answered a heartbeat that carried `context`. */
  recvAck(from: bigint, context: Uint8Array): void {
    const n = decodeReadContext(context);
    if (n <= 0) return;
    const prev = this.acks.get(from) ?? 0;
    if (n > prev) this.acks.set(from, n);
  }

  /** Returns the reads newly confirmed by the acknowledgements so far, oldest first. */
  maybeAdvance(incoming: readonly bigint[], outgoing: readonly bigint[]): ReadIndexRequest[] {
    const newConfirmed = Math.min(
      jointIndexOf(incoming, outgoing, this.acks),
      this.confirmed + this.pendingCount(),
    );
    if (newConfirmed <= this.confirmed) return [];
    const count = newConfirmed - this.confirmed;
    const out = this.queue.slice(this.head, this.head + count);
    this.head += count;
    this.confirmed = newConfirmed;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return out;
  }

  /** The context confirming every queued read, or empty bytes when none is waiting. */
  heartbeatContext(): Uint8Array {
    const pending = this.pendingCount();
    if (pending === 0) return EMPTY_BYTES;
    return encodeReadContext(this.confirmed + pending);
  }
}

export function encodeReadContext(n: number): Uint8Array {
  const out = new Uint8Array(CONTEXT_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, n % TWO_POW_32, true);
  view.setUint32(4, Math.floor(n / TWO_POW_32), true);
  return out;
}

/** The read number in a heartbeat context, or 0 if the context is absent or malformed. */
export function decodeReadContext(ctx: Uint8Array): number {
  if (ctx.length !== CONTEXT_BYTES) return 0;
  const view = new DataView(ctx.buffer, ctx.byteOffset, ctx.byteLength);
  const n = view.getUint32(0, true) + view.getUint32(4, true) * TWO_POW_32;
  return Number.isSafeInteger(n) ? n : 0;
}
