/**
 * Raft's own invariant check. src/raft imports nothing of the project (ARCHITECTURE.md), so it cannot use
 * src/assert.ts; this is the same contract: it throws, it is never caught inside raft, and it stays on in
 * production, because a member whose consensus state is inconsistent must stop rather than answer.
 */
export class RaftAssertionError extends Error {
  override readonly name = "RaftAssertionError";
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new RaftAssertionError(message);
}

/** Terms and indexes are numbers; they must stay exact integers (below 2^53). */
export function assertIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RaftAssertionError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}
