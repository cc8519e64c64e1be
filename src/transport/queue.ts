import { assert } from "../assert.js";
import type { Message } from "../raft/index.js";

/**
 * A peer's outgoing messages: a FIFO ring of fixed capacity (allocated once per peer), also bounded in
 * bytes. push() refuses at either bound; the caller drops the message and reports the peer unreachable.
 */
export class MessageQueue {
  private readonly ring: (Message | undefined)[];
  private readonly sizes: Float64Array;
  private head = 0;
  private count = 0;
  private bytes = 0;

  constructor(
    private readonly messagesMax: number,
    private readonly bytesMax: number,
  ) {
    this.ring = new Array<Message | undefined>(messagesMax).fill(undefined);
    this.sizes = new Float64Array(messagesMax);
  }

  get length(): number {
    return this.count;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Adds at the tail; false (nothing added) when full by count or by bytes. */
  push(message: Message, sizeBytes: number): boolean {
    if (this.count === this.messagesMax) return false;
    // One message larger than the whole byte bound is still let in alone, so it can reach the frame check
    // (and be reported there) instead of being refused forever.
    if (this.count > 0 && this.bytes + sizeBytes > this.bytesMax) return false;
    const slot = (this.head + this.count) % this.messagesMax;
    this.ring[slot] = message;
    this.sizes[slot] = sizeBytes;
    this.count++;
    this.bytes += sizeBytes;
    return true;
  }

  peek(): Message {
    assert(this.count > 0, "peek on an empty message queue");
    return this.ring[this.head]!;
  }

  peekSizeBytes(): number {
    assert(this.count > 0, "peekSizeBytes on an empty message queue");
    return this.sizes[this.head]!;
  }

  shift(): Message {
    assert(this.count > 0, "shift on an empty message queue");
    const message = this.ring[this.head]!;
    this.ring[this.head] = undefined;
    this.bytes -= this.sizes[this.head]!;
    this.head = (this.head + 1) % this.messagesMax;
    this.count--;
    if (this.count === 0) this.bytes = 0;
    return message;
  }

  /** Empties the queue; returns how many messages were dropped. */
  clear(): number {
    const dropped = this.count;
    while (this.count > 0) this.shift();
    this.head = 0;
    return dropped;
  }
}
