/**
 * Invariant checks that stay on in production (see STYLE.md): a broken invariant is a programmer error,
 * and a member that cannot trust its own state must stop rather than answer.
 */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
