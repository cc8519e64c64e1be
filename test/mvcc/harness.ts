/**
 * Shared by the mvcc tests: random operations (fast-check arbitraries), a runner that applies one operation
 * to MvccStore or to the reference model and returns a comparable outcome, and a normaliser that turns
 * byte arrays into strings so that Buffer and Uint8Array results compare equal.
 */
import fc from "fast-check";
import { EtcdError } from "../../src/errors.js";
import type { LeaseLookup } from "../../src/mvcc/lease.js";
import type { MvccStore } from "../../src/mvcc/store.js";
import { isTxnReadOnly } from "../../src/mvcc/txn.js";
import type {
  Compare,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from "../../src/mvcc/types.js";
import { checkTxnRequest } from "../../src/mvcc/validate.js";
import { type Model, ModelError } from "./model.js";

export const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

/** The lease the tests treat as granted; any other non-zero id is unknown. */
export const LIVE_LEASE = 7n;

/** A LeaseLookup where only LIVE_LEASE exists; records attachments so tests can check them. */
export class TestLeases implements LeaseLookup {
  readonly attached = new Map<string, bigint>();
  exists(id: bigint): boolean {
    return id === LIVE_LEASE;
  }
  attach(id: bigint, key: Uint8Array): void {
    this.attached.set(Buffer.from(key).toString("latin1"), id);
  }
  detach(id: bigint, key: Uint8Array): void {
    const k = Buffer.from(key).toString("latin1");
    if (this.attached.get(k) !== id)
      throw new Error(`detach of ${k} from ${id}, attached to ${this.attached.get(k)}`);
    this.attached.delete(k);
  }
}

export type Op =
  | { type: "put"; request: PutRequest }
  | { type: "deleteRange"; request: DeleteRangeRequest }
  | { type: "txn"; request: TxnRequest }
  | { type: "range"; request: RangeRequest }
  | { type: "compact"; revision: number }
  | { type: "hashKV"; revision: number }
  | { type: "yield" };

const keyArb = fc.constantFrom("a", "ab", "abc", "b", "c", "d");
const rangeEndArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant("\0") },
  { weight: 2, arbitrary: fc.constantFrom("b", "c", "e", "a\0", "ab\xff") },
);
const valueArb = fc.constantFrom("", "x", "y", "z", "xx");
const leaseArb = fc.constantFrom(0n, 0n, 0n, LIVE_LEASE, 99n);

const putArb: fc.Arbitrary<PutRequest> = fc
  .record({
    key: keyArb,
    value: valueArb,
    lease: leaseArb,
    prevKv: fc.boolean(),
    ignoreValue: fc.constantFrom(false, false, false, true),
    ignoreLease: fc.constantFrom(false, false, false, true),
  })
  .map((r) => ({
    key: b(r.key),
    // Requests that pass validation only: ignore_value without a value, ignore_lease without a lease.
    value: r.ignoreValue ? new Uint8Array(0) : b(r.value),
    lease: r.ignoreLease ? 0n : r.lease,
    prevKv: r.prevKv,
    ignoreValue: r.ignoreValue,
    ignoreLease: r.ignoreLease,
  }));

const deleteArb: fc.Arbitrary<DeleteRangeRequest> = fc
  .record({ key: keyArb, rangeEnd: rangeEndArb, prevKv: fc.boolean() })
  .map((r) => ({
    key: b(r.key),
    rangeEnd: r.rangeEnd === undefined ? undefined : b(r.rangeEnd),
    prevKv: r.prevKv,
  }));

function rangeArb(maxRevision: number): fc.Arbitrary<RangeRequest> {
  return fc
    .record({
      key: keyArb,
      rangeEnd: rangeEndArb,
      limit: fc.constantFrom(0, 0, 1, 2, 3, -1),
      revision: fc.integer({ min: -2, max: maxRevision }),
      sortOrder: fc.constantFrom(0, 0, 1, 2),
      sortTarget: fc.constantFrom(0, 0, 1, 2, 3, 4),
      keysOnly: fc.boolean(),
      countOnly: fc.constantFrom(false, false, false, true),
      minModRevision: fc.constantFrom(0, 0, 0, 3, 6),
      maxModRevision: fc.constantFrom(0, 0, 0, 5, 9),
      minCreateRevision: fc.constantFrom(0, 0, 0, 2, 4),
      maxCreateRevision: fc.constantFrom(0, 0, 0, 4, 8),
    })
    .map((r) => ({ ...r, key: b(r.key), rangeEnd: r.rangeEnd === undefined ? undefined : b(r.rangeEnd) }));
}

const compareArb: fc.Arbitrary<Compare> = fc
  .record({
    key: keyArb,
    rangeEnd: rangeEndArb,
    result: fc.constantFrom(0, 1, 2, 3),
    target: fc.constantFrom(0, 1, 2, 3, 4),
    number: fc.integer({ min: 0, max: 8 }),
    value: valueArb,
    lease: leaseArb,
  })
  .map((r) => {
    const c: Compare = { key: b(r.key), result: r.result, target: r.target };
    if (r.rangeEnd !== undefined) c.rangeEnd = b(r.rangeEnd);
    if (r.target === 0) c.version = r.number;
    if (r.target === 1) c.createRevision = r.number;
    if (r.target === 2) c.modRevision = r.number;
    if (r.target === 3) c.value = b(r.value);
    if (r.target === 4) c.lease = r.lease;
    return c;
  });

function requestOpArb(depth: number, maxRevision: number): fc.Arbitrary<RequestOp> {
  const leaves: fc.Arbitrary<RequestOp>[] = [
    rangeArb(maxRevision).map((r) => ({ requestRange: r })),
    putArb.map((p) => ({ requestPut: p })),
    deleteArb.map((d) => ({ requestDeleteRange: d })),
  ];
  if (depth > 0) leaves.push(txnArb(depth - 1, maxRevision).map((t) => ({ requestTxn: t })));
  return fc.oneof(...leaves);
}

export function txnArb(depth: number, maxRevision: number): fc.Arbitrary<TxnRequest> {
  return fc.record({
    compare: fc.array(compareArb, { maxLength: 2 }),
    success: fc.array(requestOpArb(depth, maxRevision), { maxLength: 3 }),
    failure: fc.array(requestOpArb(depth, maxRevision), { maxLength: 3 }),
  });
}

/** Relative weights of the operation kinds (compaction and hashKV share `compact`). */
export interface OpWeights {
  put: number;
  deleteRange: number;
  txn: number;
  range: number;
  compact: number;
}

const DEFAULT_WEIGHTS: OpWeights = { put: 6, deleteRange: 2, txn: 3, range: 4, compact: 1 };

/** Random operations; revisions drawn up to `maxRevision` (reads beyond the current one test FutureRev). */
export function opArb(maxRevision: number, weights: OpWeights = DEFAULT_WEIGHTS): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: weights.put, arbitrary: putArb.map((request): Op => ({ type: "put", request })) },
    {
      weight: weights.deleteRange,
      arbitrary: deleteArb.map((request): Op => ({ type: "deleteRange", request })),
    },
    {
      weight: weights.txn,
      arbitrary: txnArb(2, maxRevision).map((request): Op => ({ type: "txn", request })),
    },
    {
      weight: weights.range,
      arbitrary: rangeArb(maxRevision).map((request): Op => ({ type: "range", request })),
    },
    {
      weight: weights.compact,
      arbitrary: fc
        .integer({ min: -1, max: maxRevision })
        .map((revision): Op => ({ type: "compact", revision })),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: -1, max: maxRevision })
        .map((revision): Op => ({ type: "hashKV", revision })),
    },
    { weight: 1, arbitrary: fc.constant<Op>({ type: "yield" }) },
  );
}

/**
 * Maps each drawn revision r >= 1 into [1, current + 1] (so most reads hit a real revision and a few the
 * future), leaving 0 and negative revisions as drawn. Applied at run time, when the current revision is
 * known; both sides get the same resolved op.
 */
export function resolveRevisions(op: Op, current: number): Op {
  const fit = (r: number) => (r >= 1 ? 1 + ((r - 1) % (current + 1)) : r);
  const fixRange = (r: RangeRequest): RangeRequest => ({ ...r, revision: fit(r.revision ?? 0) });
  const fixOps = (ops: RequestOp[] | undefined): RequestOp[] | undefined =>
    ops?.map((o) => {
      if (o.requestRange) return { requestRange: fixRange(o.requestRange) };
      if (o.requestTxn) return { requestTxn: fixTxn(o.requestTxn) };
      return o;
    });
  const fixTxn = (t: TxnRequest): TxnRequest => ({
    ...t,
    success: fixOps(t.success),
    failure: fixOps(t.failure),
  });
  switch (op.type) {
    case "range":
      return { type: "range", request: fixRange(op.request) };
    case "txn":
      return { type: "txn", request: fixTxn(op.request) };
    case "compact":
    case "hashKV":
      return { ...op, revision: fit(op.revision) };
    default:
      return op;
  }
}

/** Turns byte arrays into strings and drops undefined fields, so results from both sides compare equal. */
export function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value).toString("latin1")}`;
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = normalize(v);
    return out;
  }
  return value;
}

/** A txn that fails validation (duplicate keys...) never reaches the store: such ops are skipped. */
export function isValid(op: Op): boolean {
  if (op.type !== "txn") return true;
  try {
    checkTxnRequest(op.request);
    return true;
  } catch {
    return false;
  }
}

export type Outcome = { ok: unknown } | { error: string };

function capture(fn: () => unknown): Outcome {
  try {
    return { ok: normalize(fn()) };
  } catch (error) {
    if (error instanceof EtcdError) return { error: error.code };
    if (error instanceof ModelError) return { error: error.code };
    throw error;
  }
}

export interface StoreSide {
  store: MvccStore;
  /** Raft index of the last applied write. */
  index: number;
  /** physicalDone promises of compactions (tests await them before reopening). */
  compactions: Promise<void>[];
}

export function runOnStore(side: StoreSide, op: Op): Outcome {
  const { store } = side;
  switch (op.type) {
    case "put":
      return capture(() => {
        const r = store.apply(++side.index, 1, { type: "put", request: op.request });
        return { response: r.response, events: r.events };
      });
    case "deleteRange":
      return capture(() => {
        const r = store.apply(++side.index, 1, { type: "deleteRange", request: op.request });
        return { response: r.response, events: r.events };
      });
    case "txn":
      return capture(() => {
        if (isTxnReadOnly(op.request)) return { response: store.txnReadOnly(op.request), events: [] };
        const r = store.apply(++side.index, 1, { type: "txn", request: op.request });
        return { response: r.response, events: r.events };
      });
    case "range":
      return capture(() => store.range(op.request));
    case "compact":
      return capture(() => {
        const r = store.apply(++side.index, 1, { type: "compaction", request: { revision: op.revision } });
        side.compactions.push(r.physicalDone);
        return r.response;
      });
    case "hashKV":
      return capture(() => store.hashKV(op.revision));
    case "yield":
      return { ok: null };
  }
}

export function runOnModel(model: Model, op: Op): Outcome {
  switch (op.type) {
    case "put":
      return capture(() => model.put(op.request));
    case "deleteRange":
      return capture(() => model.deleteRange(op.request));
    case "txn":
      return capture(() => {
        const readOnly = isTxnReadOnly(op.request);
        const r = model.txn(op.request, !readOnly);
        return { response: r.response, events: r.events };
      });
    case "range":
      return capture(() => model.range(op.request));
    case "compact":
      return capture(() => model.compact(op.revision));
    case "hashKV":
      return capture(() => model.hashKV(op.revision));
    case "yield":
      return { ok: null };
  }
}

/** Every key's KeyValue at `revision`, via a plain range over all keys. */
export function dumpStore(store: MvccStore, revision = 0): unknown {
  return normalize(store.range({ key: b("\0"), rangeEnd: b("\0"), revision }));
}

export function dumpModel(model: Model, revision = 0): unknown {
  return normalize(model.range({ key: b("\0"), rangeEnd: b("\0"), revision }));
}
