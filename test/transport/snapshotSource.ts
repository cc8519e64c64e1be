/** Snapshot messages and data sources for tests. */
import { createHash } from "node:crypto";
import { type Message, MessageType, newMessage } from "../../src/raft/index.js";

/** A MsgSnap at `index` whose snapshot data (the raft snapshot's own bytes) is small JSON, as the server's is. */
export function snapMessage(from: bigint, to: bigint, index: number): Message {
  const message = newMessage(MessageType.Snap, to, from, 3);
  message.snapshot = {
    data: new TextEncoder().encode(JSON.stringify({ members: [String(from), String(to)] })),
    metadata: {
      index,
      term: 3,
      confState: { voters: [from, to], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    },
  };
  return message;
}

export async function* sourceOf(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

/** Pseudo-random bytes for the chunk at `offset` of the stream of `seed`. */
function fill(chunk: Buffer, seed: number, offset: number): void {
  let x = (seed * 2654435761 + offset) >>> 0 || 1;
  for (let i = 0; i < chunk.length; i++) {
    if ((i & 3) === 0) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
    }
    chunk[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
}

/**
 * `totalBytes` of pseudo-random data in fresh chunks of `chunkBytes`, generated as they
 * are pulled: the source itself holds one chunk at a time. `digest` resolves to its SHA-256 once read.
 */
export function generatedSource(
  totalBytes: number,
  chunkBytes: number,
  seed = 7,
): { source: AsyncGenerator<Uint8Array>; digest: Promise<string>; pulledBytes: () => number } {
  const hash = createHash("sha256");
  let pulled = 0;
  let resolveDigest: (digest: string) => void = () => {};
  const digest = new Promise<string>((resolve) => {
    resolveDigest = resolve;
  });
  async function* source(): AsyncGenerator<Uint8Array> {
    while (pulled < totalBytes) {
      const size = Math.min(chunkBytes, totalBytes - pulled);
      const chunk = Buffer.allocUnsafe(size);
      fill(chunk, seed, pulled);
      hash.update(chunk);
      pulled += size;
      yield chunk;
    }
    resolveDigest(hash.digest("hex"));
  }
  return { source: source(), digest, pulledBytes: () => pulled };
}
