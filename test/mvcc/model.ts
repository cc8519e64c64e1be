/**
 * A reference model of etcd 3.4's KV semantics, written to be read, not to be fast: the whole history is a
 * list of records, and every question is answered by scanning it. The property tests run the same
 * operations against this model and against MvccStore and require identical answers (responses, errors,
 * events, revisions).
 *
 * It shares nothing with src/mvcc except the request/response types, the error codes and the record
 * encoding (for HashKV, whose format is ours).
 */
import { encodeRecord, encodeTombstone, revisionKey } from "../../src/mvcc/codec.js";
import type {
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  MvccEvent,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "../../src/mvcc/types.js";
import { crc32cUpdate } from "../../src/wal/crc32c.js";

export class ModelError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

interface ModelRecord {
  main: number;
  sub: number;
  key: string;
  /** undefined for a tombstone. */
  kv: KeyValue | undefined;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");
const bytes = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function inRange(key: string, start: string, rangeEnd: Uint8Array | undefined): boolean {
  if (rangeEnd === undefined || rangeEnd.length === 0) return key === start;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return key >= start;
  return key >= start && key < hex(rangeEnd);
}

function copyKv(kv: KeyValue): KeyValue {
  return { ...kv, key: new Uint8Array(kv.key), value: new Uint8Array(kv.value) };
}

export class Model {
  records: ModelRecord[] = [];
  revision = 1;
  compactRevision = -1;
  leases = new Set<bigint>();

  /** Every key's KeyValue at `rev`, from the newest record <= rev of each key (tombstones hide). */
  stateAt(rev: number): Map<string, KeyValue> {
    const state = new Map<string, KeyValue>();
    for (const r of this.records) {
      if (r.main > rev) continue;
      if (r.kv === undefined) state.delete(r.key);
      else state.set(r.key, r.kv);
    }
    return state;
  }

  private liveSorted(rev: number, start: string, rangeEnd: Uint8Array | undefined): KeyValue[] {
    const state = this.stateAt(rev);
    return [...state.entries()]
      .filter(([key]) => inRange(key, start, rangeEnd))
      .sort(([a], [b]) => cmpStr(a, b))
      .map(([, kv]) => copyKv(kv));
  }

  // ---------------------------------------------------------------------------------------- range

  range(req: RangeRequest, curRev = this.revision): RangeResponse {
    const rev = req.revision ?? 0;
    if (rev > curRev) throw new ModelError("FutureRev");
    const at = rev <= 0 ? curRev : rev;
    if (at < this.compactRevision) throw new ModelError("Compacted");
    const all = this.liveSorted(at, hex(req.key), req.rangeEnd);
    const count = all.length;
    if (req.countOnly) return { header: { revision: curRev }, kvs: [], more: false, count };
    const order = req.sortOrder ?? 0;
    const target = req.sortTarget ?? 0;
    const filtered =
      order !== 0 ||
      (req.minModRevision ?? 0) !== 0 ||
      (req.maxModRevision ?? 0) !== 0 ||
      (req.minCreateRevision ?? 0) !== 0 ||
      (req.maxCreateRevision ?? 0) !== 0;
    const limit = req.limit ?? 0;
    // The fetch is cut to limit + 1 keys only without sort and filters.
    let kvs = !filtered && limit > 0 ? all.slice(0, limit + 1) : all;
    kvs = kvs.filter(
      (kv) =>
        (req.maxModRevision ? kv.modRevision <= req.maxModRevision : true) &&
        (req.minModRevision ? kv.modRevision >= req.minModRevision : true) &&
        (req.maxCreateRevision ? kv.createRevision <= req.maxCreateRevision : true) &&
        (req.minCreateRevision ? kv.createRevision >= req.minCreateRevision : true),
    );
    const effectiveOrder = target !== 0 && order === 0 ? 1 : order;
    const field = (kv: KeyValue): number | string =>
      target === 0
        ? hex(kv.key)
        : target === 1
          ? kv.version
          : target === 2
            ? kv.createRevision
            : target === 3
              ? kv.modRevision
              : hex(kv.value);
    const compare = (a: KeyValue, b: KeyValue) => {
      const x = field(a);
      const y = field(b);
      return x < y ? -1 : x > y ? 1 : 0;
    };
    if (target >= 0 && target <= 4) {
      // Stable sorts: ties stay in key order in both directions.
      if (effectiveOrder === 1) kvs = [...kvs].sort(compare);
      if (effectiveOrder === 2) kvs = [...kvs].sort((a, b) => compare(b, a));
    }
    let more = false;
    if (limit > 0 && kvs.length > limit) {
      kvs = kvs.slice(0, limit);
      more = true;
    }
    if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
    return { header: { revision: curRev }, kvs, more, count };
  }

  // ---------------------------------------------------------------------------------------- writes

  private beginWrite(): WriteState {
    return { beginRev: this.revision, changes: [], events: [] };
  }

  private readRev(w: WriteState): number {
    return w.changes.length > 0 ? w.beginRev + 1 : w.beginRev;
  }

  /** State the txn's reads see: the pre-txn records plus its own changes. */
  private withChanges(w: WriteState, fn: () => void): void {
    const saved = this.records;
    this.records = [...saved, ...w.changes];
    try {
      fn();
    } finally {
      this.records = saved;
    }
  }

  private rangeIn(w: WriteState, req: RangeRequest): RangeResponse {
    let out: RangeResponse | undefined;
    this.withChanges(w, () => {
      out = this.range(req, this.readRev(w));
    });
    return out as RangeResponse;
  }

  private doPut(w: WriteState, key: Uint8Array, value: Uint8Array, lease: bigint): number {
    const rev = w.beginRev + 1;
    const k = hex(key);
    let prior: KeyValue | undefined;
    this.withChanges(w, () => {
      prior = this.stateAt(rev).get(k);
    });
    const before = this.stateAt(w.beginRev).get(k);
    const kv: KeyValue = {
      key: new Uint8Array(key),
      createRevision: prior ? prior.createRevision : rev,
      modRevision: rev,
      version: prior ? prior.version + 1 : 1,
      value: new Uint8Array(value),
      lease,
    };
    w.changes.push({ main: rev, sub: w.changes.length, key: k, kv });
    w.events.push(
      before ? { type: "PUT", kv: copyKv(kv), prevKv: copyKv(before) } : { type: "PUT", kv: copyKv(kv) },
    );
    return rev;
  }

  private doDeleteRange(w: WriteState, start: Uint8Array, rangeEnd: Uint8Array | undefined): number {
    let doomed: KeyValue[] = [];
    this.withChanges(w, () => {
      doomed = this.liveSorted(this.readRev(w), hex(start), rangeEnd);
    });
    const rev = w.beginRev + 1;
    for (const kv of doomed) {
      const k = hex(kv.key);
      const before = this.stateAt(w.beginRev).get(k);
      w.changes.push({ main: rev, sub: w.changes.length, key: k, kv: undefined });
      const dkv: KeyValue = {
        key: new Uint8Array(kv.key),
        createRevision: 0,
        modRevision: rev,
        version: 0,
        value: new Uint8Array(0),
        lease: 0n,
      };
      w.events.push(
        before ? { type: "DELETE", kv: dkv, prevKv: copyKv(before) } : { type: "DELETE", kv: dkv },
      );
    }
    return doomed.length;
  }

  private endWrite(w: WriteState): void {
    if (w.changes.length === 0) return;
    this.records.push(...w.changes);
    this.revision++;
  }

  private putOp(w: WriteState, req: PutRequest): PutResponse {
    let current: KeyValue | undefined;
    if (req.ignoreValue || req.ignoreLease || req.prevKv) {
      current = this.rangeIn(w, { key: req.key }).kvs[0];
    }
    if ((req.ignoreValue || req.ignoreLease) && !current) throw new ModelError("KeyNotFound");
    const value = req.ignoreValue ? (current as KeyValue).value : (req.value ?? new Uint8Array(0));
    const lease = req.ignoreLease ? (current as KeyValue).lease : (req.lease ?? 0n);
    const revision = this.doPut(w, req.key, value, lease);
    return req.prevKv && current ? { header: { revision }, prevKv: current } : { header: { revision } };
  }

  private deleteOp(w: WriteState, req: DeleteRangeRequest): DeleteRangeResponse {
    const prevKvs = req.prevKv ? this.rangeIn(w, { key: req.key, rangeEnd: req.rangeEnd }).kvs : [];
    const deleted = this.doDeleteRange(w, req.key, req.rangeEnd);
    const revision = deleted > 0 || w.changes.length > 0 ? w.beginRev + 1 : w.beginRev;
    return { header: { revision }, deleted, prevKvs };
  }

  put(req: PutRequest): { response: PutResponse; events: MvccEvent[] } {
    const lease = req.lease ?? 0n;
    if (lease !== 0n && !this.leases.has(lease)) throw new ModelError("LeaseNotFound");
    const w = this.beginWrite();
    const response = this.putOp(w, req);
    this.endWrite(w);
    return { response, events: w.events };
  }

  deleteRange(req: DeleteRangeRequest): { response: DeleteRangeResponse; events: MvccEvent[] } {
    const w = this.beginWrite();
    const response = this.deleteOp(w, req);
    this.endWrite(w);
    return { response, events: w.events };
  }

  // ---------------------------------------------------------------------------------------- txn

  private compareHolds(c: Compare): boolean {
    const kvs = this.liveSorted(this.revision, hex(c.key), c.rangeEnd);
    const test = (kv: KeyValue): boolean => {
      let order = 0;
      const sign = (a: number | bigint, b: number | bigint) => (a < b ? -1 : a > b ? 1 : 0);
      if (c.target === 3) order = cmpStr(hex(kv.value), hex(c.value ?? new Uint8Array(0)));
      else if (c.target === 1) order = sign(kv.createRevision, c.createRevision ?? 0);
      else if (c.target === 2) order = sign(kv.modRevision, c.modRevision ?? 0);
      else if (c.target === 0) order = sign(kv.version, c.version ?? 0);
      else if (c.target === 4) order = sign(kv.lease, c.lease ?? 0n);
      if (c.result === 0) return order === 0;
      if (c.result === 3) return order !== 0;
      if (c.result === 1) return order > 0;
      if (c.result === 2) return order < 0;
      return true;
    };
    if (kvs.length === 0) {
      if (c.target === 3) return false;
      return test({
        key: c.key,
        createRevision: 0,
        modRevision: 0,
        version: 0,
        value: new Uint8Array(0),
        lease: 0n,
      });
    }
    return kvs.every(test);
  }

  /** Decides every branch on the path first, against the pre-txn state. */
  private decide(req: TxnRequest): Decided {
    const succeeded = (req.compare ?? []).every((c) => this.compareHolds(c));
    const ops = (succeeded ? req.success : req.failure) ?? [];
    return {
      succeeded,
      ops,
      nested: ops.map((op) => (op.requestTxn ? this.decide(op.requestTxn) : undefined)),
    };
  }

  private flatten(d: Decided): RequestOp[] {
    return d.ops.flatMap((op, i) => (op.requestTxn ? this.flatten(d.nested[i] as Decided) : [op]));
  }

  txn(req: TxnRequest, isWrite: boolean): { response: TxnResponse; events: MvccEvent[] } {
    const decided = this.decide(req);
    const flat = this.flatten(decided);
    if (isWrite) {
      const keys = new Set(this.stateAt(this.revision).keys());
      const unboundedDeletes: string[] = [];
      for (const op of flat) {
        const d = op.requestDeleteRange;
        if (d?.rangeEnd?.length === 1 && d.rangeEnd[0] === 0) unboundedDeletes.push(hex(d.key));
        const p = op.requestPut;
        if (!p) continue;
        if (p.ignoreValue || p.ignoreLease) {
          const k = hex(p.key);
          if (!keys.has(k) || unboundedDeletes.some((s) => s <= k)) throw new ModelError("KeyNotFound");
        }
        if ((p.lease ?? 0n) !== 0n && !this.leases.has(p.lease as bigint))
          throw new ModelError("LeaseNotFound");
      }
    }
    for (const op of flat) {
      const r = op.requestRange;
      if (!r || (r.revision ?? 0) === 0) continue;
      if ((r.revision as number) > this.revision) throw new ModelError("FutureRev");
      if ((r.revision as number) < this.compactRevision) throw new ModelError("Compacted");
    }
    const w = this.beginWrite();
    const responses = this.runOps(w, decided);
    const revision = w.changes.length > 0 ? w.beginRev + 1 : w.beginRev;
    this.endWrite(w);
    return { response: { header: { revision }, succeeded: decided.succeeded, responses }, events: w.events };
  }

  private runOps(w: WriteState, d: Decided): ResponseOp[] {
    return d.ops.map((op, i): ResponseOp => {
      if (op.requestRange) return { responseRange: this.rangeIn(w, op.requestRange) };
      if (op.requestPut) return { responsePut: this.putOp(w, op.requestPut) };
      if (op.requestDeleteRange) return { responseDeleteRange: this.deleteOp(w, op.requestDeleteRange) };
      if (op.requestTxn) {
        const sub = d.nested[i] as Decided;
        return {
          responseTxn: { header: { revision: 0 }, succeeded: sub.succeeded, responses: this.runOps(w, sub) },
        };
      }
      return {};
    });
  }

  // ---------------------------------------------------------------------------------------- compaction

  compact(rev: number): { header: { revision: number } } {
    if (rev <= this.compactRevision) throw new ModelError("Compacted");
    if (rev > this.revision) throw new ModelError("FutureRev");
    this.compactRevision = rev;
    return { header: { revision: this.revision } };
  }

  /** HashKV as specified in MvccStore.hashKV, from the full history. */
  hashKV(revision: number): { hash: number; revision: number; compactRevision: number } {
    if (revision > 0 && revision <= this.compactRevision) throw new ModelError("Compacted");
    if (revision > 0 && revision > this.revision) throw new ModelError("FutureRev");
    const at = revision === 0 ? this.revision : revision;
    let crc = crc32cUpdate(0, Buffer.from("key", "latin1"));
    const newestAtOrBefore = new Map<string, ModelRecord>();
    for (const r of this.records) if (r.main <= at) newestAtOrBefore.set(r.key, r);
    const sorted = [...this.records].sort((a, b) => a.main - b.main || a.sub - b.sub);
    for (const r of sorted) {
      if (r.main > at) continue;
      if (r.main <= this.compactRevision && (newestAtOrBefore.get(r.key) !== r || r.kv === undefined))
        continue;
      crc = crc32cUpdate(crc, revisionKey(r.main, r.sub));
      const record =
        r.kv === undefined
          ? encodeTombstone(bytes(r.key))
          : encodeRecord(r.kv.key, r.kv.value, r.kv.createRevision, r.kv.version, r.kv.lease);
      crc = crc32cUpdate(crc, record);
    }
    return { hash: crc, revision: this.revision, compactRevision: this.compactRevision };
  }
}

interface WriteState {
  beginRev: number;
  changes: ModelRecord[];
  events: MvccEvent[];
}

interface Decided {
  succeeded: boolean;
  ops: RequestOp[];
  nested: Array<Decided | undefined>;
}
