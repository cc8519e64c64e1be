/**
 * Shared by the lease tests: a lessor and a real MvccStore on one memory backend with a manual clock,
 * wired the way the server wires them (lessor first, then the store with it, then the range deleter).
 */
import { MemoryBackend } from "../../src/backend/memory.js";
import { ManualClock } from "../../src/lease/clock.js";
import { Lessor, type LessorOptions } from "../../src/lease/lessor.js";
import { MvccStore } from "../../src/mvcc/store.js";

export const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
export const s = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

export interface Member {
  backend: MemoryBackend;
  clock: ManualClock;
  lessor: Lessor;
  store: MvccStore;
  /** The next raft index to seal with (apply steps seal one unit each). */
  index: number;
}

export type MemberOptions = Partial<Omit<LessorOptions, "backend" | "clock">>;

export function openMember(
  options: MemberOptions = {},
  backend = new MemoryBackend(),
  clock = new ManualClock(1_000_000),
): Member {
  const lessor = Lessor.open({ backend, clock, minTtlSeconds: 2, ...options });
  const store = MvccStore.open({ backend, leases: lessor });
  lessor.setRangeDeleter(() => store.beginWrite());
  return { backend, clock, lessor, store, index: backend.consistentIndex + 1 };
}

/** Applies a grant as the apply loop does: the lessor writes, the caller seals the unit. */
export function applyGrant(m: Member, id: bigint, ttlSeconds: number): number {
  try {
    return m.lessor.grant(id, ttlSeconds).ttlSeconds;
  } finally {
    m.backend.seal(m.index++, 1);
  }
}

export function applyRevoke(m: Member, id: bigint): ReturnType<Lessor["revoke"]> {
  try {
    return m.lessor.revoke(id);
  } finally {
    m.backend.seal(m.index++, 1);
  }
}

export function applyPut(m: Member, key: string, lease: bigint, value = "v"): number {
  return m.store.apply(m.index++, 1, { type: "put", request: { key: b(key), value: b(value), lease } })
    .response.header.revision;
}

export function liveKeys(m: Member): string[] {
  return m.store.range({ key: b("\0"), rangeEnd: b("\0") }).kvs.map((kv) => `${s(kv.key)}@${kv.lease}`);
}
