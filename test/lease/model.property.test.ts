/**
 * The lessor against a deliberately simple reference model (a map scanned and sorted on every question),
 * with a fake clock: random grant/renew/revoke/advance/promote/demote sequences, and after each step the
 * same answers: which leases an expiry round hands out (and in what order), renew outcomes, TTLs, the
 * sorted listing. Also the indexed heap against a sorted array.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MemoryBackend } from "../../src/backend/memory.js";
import { isEtcdError } from "../../src/errors.js";
import { ManualClock } from "../../src/lease/clock.js";
import { IndexedHeap } from "../../src/lease/heap.js";
import { FOREVER_REMAINING_SECONDS, Lessor, MAX_LEASE_TTL_SECONDS } from "../../src/lease/lessor.js";

const MIN_TTL_SECONDS = 2;
const RETRY_MS = 3_000;

interface ModelLease {
  ttlSeconds: number;
  expiryMs: number;
  /** When an expiry round looks at it next (its expiry, or later once handed out). */
  checkMs: number;
}

/** The rules of spec §8 written as plainly as possible. */
class Model {
  readonly leases = new Map<bigint, ModelLease>();
  primary = false;
  constructor(readonly clock: ManualClock) {}

  grant(id: bigint, ttlSeconds: number): string {
    if (id === 0n) return "LeaseNotFound";
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) return "LeaseTTLTooLarge";
    if (this.leases.has(id)) return "LeaseExist";
    const ttl = Math.max(ttlSeconds, MIN_TTL_SECONDS);
    const expiryMs = this.primary ? this.clock.nowMs() + ttl * 1000 : Infinity;
    this.leases.set(id, { ttlSeconds: ttl, expiryMs, checkMs: expiryMs });
    return `granted ${ttl}`;
  }

  revoke(id: bigint): string {
    return this.leases.delete(id) ? "revoked" : "LeaseNotFound";
  }

  renew(id: bigint): string {
    if (!this.primary) return "notPrimary";
    const lease = this.leases.get(id);
    if (lease === undefined) return "notFound";
    if (lease.expiryMs <= this.clock.nowMs()) return "expired";
    lease.expiryMs = this.clock.nowMs() + lease.ttlSeconds * 1000;
    lease.checkMs = lease.expiryMs;
    return `renewed ${lease.ttlSeconds}`;
  }

  promote(extendMs: number): void {
    this.primary = true;
    for (const lease of this.leases.values()) {
      lease.expiryMs = this.clock.nowMs() + extendMs + lease.ttlSeconds * 1000;
      lease.checkMs = lease.expiryMs;
    }
  }

  demote(): void {
    this.primary = false;
    for (const lease of this.leases.values()) {
      lease.expiryMs = Infinity;
      lease.checkMs = Infinity;
    }
  }

  expired(limit: number): bigint[] {
    if (!this.primary) return [];
    const now = this.clock.nowMs();
    const due = [...this.leases.entries()]
      .filter(([, lease]) => lease.checkMs <= now)
      .sort(([idA, a], [idB, b]) => a.checkMs - b.checkMs || (idA < idB ? -1 : 1))
      .slice(0, limit);
    for (const [, lease] of due) lease.checkMs = now + RETRY_MS;
    return due.map(([id]) => id);
  }

  ttl(id: bigint): number {
    const lease = this.leases.get(id);
    if (lease === undefined) return -1;
    if (lease.expiryMs === Infinity) return FOREVER_REMAINING_SECONDS;
    return Math.trunc((lease.expiryMs - this.clock.nowMs()) / 1000) + 0;
  }

  listing(): bigint[] {
    return [...this.leases.entries()]
      .sort(([idA, a], [idB, b]) =>
        a.expiryMs === b.expiryMs ? (idA < idB ? -1 : 1) : a.expiryMs < b.expiryMs ? -1 : 1,
      )
      .map(([id]) => id);
  }
}

type Op =
  | { type: "grant"; id: bigint; ttlSeconds: number }
  | { type: "renew"; id: bigint }
  | { type: "revoke"; id: bigint }
  | { type: "advance"; ms: number }
  | { type: "round"; limit: number; lost: boolean[] }
  | { type: "promote"; extendMs: number }
  | { type: "demote" }
  | { type: "ttl"; id: bigint };

const idArb = fc.constantFrom(0n, 1n, 2n, 3n, 4n, 5n, 6n, -1n, -7n, 1n << 62n);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      type: fc.constant("grant" as const),
      id: idArb,
      ttlSeconds: fc.constantFrom(-1, 0, 1, 2, 3, 5, 8, MAX_LEASE_TTL_SECONDS + 1),
    }),
  },
  { weight: 4, arbitrary: fc.record({ type: fc.constant("renew" as const), id: idArb }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("revoke" as const), id: idArb }) },
  {
    weight: 5,
    arbitrary: fc.record({
      type: fc.constant("advance" as const),
      ms: fc.constantFrom(0, 1, 250, 499, 500, 999, 1000, 1500, 2999, 3000, 7000),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant("round" as const),
      limit: fc.constantFrom(1, 2, 500),
      lost: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant("promote" as const), extendMs: fc.constantFrom(0, 1000, 1500) }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("demote" as const) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("ttl" as const), id: idArb }) },
);

/** Runs one op on the lessor, returning what the model would say. */
function runLessor(lessor: Lessor, backend: MemoryBackend, op: Op, sealIndex: () => number): string {
  const seal = () => backend.seal(sealIndex(), 1);
  switch (op.type) {
    case "grant":
      try {
        return `granted ${lessor.grant(op.id, op.ttlSeconds).ttlSeconds}`;
      } catch (error) {
        if (isEtcdError(error)) return error.code;
        throw error;
      } finally {
        seal();
      }
    case "revoke":
      try {
        lessor.revoke(op.id);
        return "revoked";
      } catch (error) {
        if (isEtcdError(error)) return error.code;
        throw error;
      } finally {
        seal();
      }
    case "renew": {
      const result = lessor.renew(op.id);
      return result.kind === "renewed" ? `renewed ${result.ttlSeconds}` : result.kind;
    }
    default:
      throw new Error(`not a lessor op: ${op.type}`);
  }
}

describe("lessor against the reference model", () => {
  it("random grant/renew/revoke/advance/promote/demote sequences give the same answers", () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 5, maxLength: 80, size: "max" }),
        fc.boolean(),
        (ops, startPrimary) => {
          const clock = new ManualClock(10_000);
          const backend = new MemoryBackend();
          const lessor = Lessor.open({
            backend,
            clock,
            minTtlSeconds: MIN_TTL_SECONDS,
            expiredRetryMs: RETRY_MS,
          });
          // No keys in this test: the store is a stub whose write deletes nothing.
          lessor.setRangeDeleter(() => ({
            deleteRange: () => assert.fail("no keys are attached"),
            end: () => [],
          }));
          const model = new Model(clock);
          let index = 1;
          const sealIndex = () => index++;
          if (startPrimary) {
            lessor.promote(0);
            model.promote(0);
          }
          for (const op of ops) {
            switch (op.type) {
              case "grant":
              case "renew":
              case "revoke": {
                const expected =
                  op.type === "grant"
                    ? model.grant(op.id, op.ttlSeconds)
                    : op.type === "renew"
                      ? model.renew(op.id)
                      : model.revoke(op.id);
                assert.equal(
                  runLessor(lessor, backend, op, sealIndex),
                  expected,
                  JSON.stringify(op, replacer),
                );
                break;
              }
              case "advance":
                clock.advance(op.ms);
                break;
              case "round": {
                const handedOut = lessor.expired(op.limit);
                assert.deepEqual(handedOut, model.expired(op.limit));
                // The leader proposes a revoke for each; some proposals are lost (leader hiccup).
                handedOut.forEach((id, i) => {
                  if (op.lost[i % op.lost.length]) return;
                  assert.equal(
                    runLessor(lessor, backend, { type: "revoke", id }, sealIndex),
                    model.revoke(id),
                  );
                });
                break;
              }
              case "promote":
                lessor.promote(op.extendMs);
                model.promote(op.extendMs);
                break;
              case "demote":
                lessor.demote();
                model.demote();
                break;
              case "ttl":
                assert.equal(lessor.timeToLive(op.id, false).ttlSeconds, model.ttl(op.id));
                break;
            }
            lessor.checkInvariants();
            assert.deepEqual(lessor.leases(), model.listing());
          }
          // What is left in the backend is what the model holds.
          const stored: bigint[] = [];
          const reopened = Lessor.open({ backend, clock, minTtlSeconds: MIN_TTL_SECONDS });
          for (const id of reopened.leases()) stored.push(id);
          assert.deepEqual(
            stored,
            [...model.leases.keys()].sort((a, b) => (a < b ? -1 : 1)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

function replacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

describe("indexed heap against a sorted array", () => {
  interface Item {
    id: number;
    key: number;
    position: number;
  }
  it("upsert/remove/pop/rebuild keep the order and the positions", () => {
    const heapOp = fc.oneof(
      fc.record({
        type: fc.constant("upsert" as const),
        id: fc.nat(15),
        key: fc.integer({ min: 0, max: 20 }),
      }),
      fc.record({ type: fc.constant("remove" as const), id: fc.nat(15) }),
      fc.record({ type: fc.constant("pop" as const) }),
      fc.record({ type: fc.constant("rebuild" as const) }),
    );
    fc.assert(
      fc.property(fc.array(heapOp, { maxLength: 120, size: "max" }), (ops) => {
        const items = Array.from({ length: 16 }, (_, id): Item => ({ id, key: 0, position: -1 }));
        const heap = new IndexedHeap<Item>({
          less: (a, b) => a.key < b.key || (a.key === b.key && a.id < b.id),
          position: (item) => item.position,
          setPosition: (item, position) => {
            item.position = position;
          },
        });
        const inHeap = new Set<Item>();
        const first = () => [...inHeap].sort((a, b) => a.key - b.key || a.id - b.id)[0] as Item | undefined;
        for (const op of ops) {
          if (op.type === "upsert") {
            const item = items[op.id] as Item;
            item.key = op.key;
            heap.upsert(item);
            inHeap.add(item);
          } else if (op.type === "remove") {
            const item = items[op.id] as Item;
            heap.remove(item);
            inHeap.delete(item);
          } else if (op.type === "pop") {
            const expected = first();
            assert.equal(heap.pop(), expected);
            if (expected !== undefined) inHeap.delete(expected);
          } else {
            heap.rebuild([...inHeap]);
          }
          heap.checkInvariants();
          assert.equal(heap.size, inHeap.size);
          assert.equal(heap.peek(), first());
          for (const item of items) assert.equal(heap.has(item), inHeap.has(item));
        }
      }),
      { numRuns: 300 },
    );
  });
});
