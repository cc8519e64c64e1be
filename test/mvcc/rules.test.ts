/**
 * Edge cases from spec/etcd-v3-api.md, one test per rule, named after it (section numbers in the names).
 * They run on the in-memory backend; the same rules hold on lmdb (the backend suite and the crash test
 * cover that layer).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryBackend } from "../../src/backend/memory.js";
import { type ErrorCode, EtcdError } from "../../src/errors.js";
import { revisionKey } from "../../src/mvcc/codec.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { isTxnReadOnly } from "../../src/mvcc/txn.js";
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type RangeRequest,
  type RequestOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
} from "../../src/mvcc/types.js";
import { checkPutRequest, checkTxnRequest } from "../../src/mvcc/validate.js";
import { b, LIVE_LEASE, TestLeases } from "./harness.js";

const s = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1");

class Fixture {
  readonly backend = new MemoryBackend();
  readonly leases = new TestLeases();
  readonly store = MvccStore.open({ backend: this.backend, leases: this.leases, compactionBatchLimit: 2 });
  private index = 0;

  put(
    key: string,
    value = "",
    extra: { lease?: bigint; prevKv?: boolean; ignoreValue?: boolean; ignoreLease?: boolean } = {},
  ) {
    return this.store.apply(++this.index, 1, {
      type: "put",
      request: { key: b(key), value: b(value), ...extra },
    });
  }
  del(key: string, rangeEnd?: string, prevKv = false) {
    return this.store.apply(++this.index, 1, {
      type: "deleteRange",
      request: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd), prevKv },
    });
  }
  txn(request: TxnRequest) {
    if (isTxnReadOnly(request)) return { response: this.store.txnReadOnly(request), events: [] };
    return this.store.apply(++this.index, 1, { type: "txn", request });
  }
  compact(revision: number) {
    return this.store.apply(++this.index, 1, { type: "compaction", request: { revision } });
  }
  range(key: string, rangeEnd?: string, extra: Omit<RangeRequest, "key" | "rangeEnd"> = {}) {
    return this.store.range({
      key: b(key),
      rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd),
      ...extra,
    });
  }
  keys(key: string, rangeEnd?: string, extra: Omit<RangeRequest, "key" | "rangeEnd"> = {}): string[] {
    return this.range(key, rangeEnd, extra).kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`);
  }
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (error: unknown) => error instanceof EtcdError && error.code === code);
}

const rangeOp = (
  key: string,
  rangeEnd?: string,
  extra: Omit<RangeRequest, "key" | "rangeEnd"> = {},
): RequestOp => ({
  requestRange: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd), ...extra },
});
const putOp = (key: string, value = "", extra = {}): RequestOp => ({
  requestPut: { key: b(key), value: b(value), ...extra },
});
const delOp = (key: string, rangeEnd?: string): RequestOp => ({
  requestDeleteRange: { key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd) },
});
const cmp = (key: string, target: number, result: number, field: Partial<Compare> = {}): Compare => ({
  key: b(key),
  target,
  result,
  ...field,
});

describe("§4 response header revision", () => {
  it("a brand-new store has revision 1", () => {
    const f = new Fixture();
    assert.equal(f.store.revision, 1);
    assert.equal(f.range("a").header.revision, 1);
  });

  it("Range reports the current revision, not the requested historical one", () => {
    const f = new Fixture();
    f.put("a", "1");
    f.put("a", "2");
    const r = f.range("a", undefined, { revision: 2 });
    assert.equal(r.header.revision, 3);
    assert.equal(s(r.kvs[0]?.value), "1");
  });

  it("DeleteRange that deletes nothing does not bump the revision and reports the current one", () => {
    const f = new Fixture();
    f.put("a");
    const r = f.del("zz");
    assert.equal(r.response.header.revision, 2);
    assert.equal(r.response.deleted, 0);
    assert.equal(f.store.revision, 2);
    assert.deepEqual(r.events, []);
  });

  it("ops inside a txn report the revision at their position: [range, delete(absent), put, delete(absent)]", () => {
    const f = new Fixture();
    f.put("a");
    const r = f.txn({ success: [rangeOp("a"), delOp("absent"), putOp("b"), delOp("absent2")] });
    const revs = r.response.responses.map(
      (op) =>
        op.responseRange?.header.revision ??
        op.responsePut?.header.revision ??
        op.responseDeleteRange?.header.revision,
    );
    assert.deepEqual(revs, [2, 2, 3, 3]);
    assert.equal(r.response.header.revision, 3);
  });

  it("a nested txn's response header is empty (revision 0)", () => {
    const f = new Fixture();
    const r = f.txn({ success: [{ requestTxn: { success: [putOp("a")] } }] });
    assert.equal(r.response.responses[0]?.responseTxn?.header.revision, 0);
    assert.equal(r.response.header.revision, 2);
  });

  it("Compact reports the current revision after compaction", () => {
    const f = new Fixture();
    f.put("a");
    f.put("a");
    assert.equal(f.compact(2).response.header.revision, 3);
  });
});

describe("§5.1 keys and ranges", () => {
  const f = new Fixture();
  for (const k of ["a", "ab", "abc", "b", "c\xff", "d"]) f.put(k, k);

  it("an empty range_end means the single key", () => {
    assert.deepEqual(f.keys("ab"), ["ab=ab"]);
  });

  it('range_end "\\0" means every key >= key', () => {
    assert.deepEqual(f.keys("b", "\0"), ["b=b", "c\xff=c\xff", "d=d"]);
  });

  it('key "\\0" with range_end "\\0" means all keys', () => {
    assert.equal(f.range("\0", "\0").count, 6);
  });

  it("range_end <= key gives an empty result without error", () => {
    assert.deepEqual(f.keys("c", "b"), []);
    assert.deepEqual(f.keys("c", "c"), []);
  });

  it("a prefix range [prefix, prefix+1) holds exactly the keys with that prefix, bytewise", () => {
    assert.deepEqual(f.keys("ab", "ac"), ["ab=ab", "abc=abc"]);
    assert.deepEqual(f.keys("c", "d"), ["c\xff=c\xff"]);
  });
});

describe("§5.2 revisions and versions", () => {
  it("version is 1 at creation and +1 per put (even with the same value); a delete restarts it", () => {
    const f = new Fixture();
    f.put("k", "v");
    f.put("k", "v");
    let kv = f.range("k").kvs[0];
    assert.deepEqual([kv?.version, kv?.createRevision, kv?.modRevision], [2, 2, 3]);
    f.del("k");
    f.put("k", "v");
    kv = f.range("k").kvs[0];
    assert.deepEqual([kv?.version, kv?.createRevision, kv?.modRevision], [1, 5, 5]);
  });

  it("requests that change nothing do not bump the revision", () => {
    const f = new Fixture();
    f.put("a");
    f.txn({ success: [rangeOp("a")] });
    f.del("absent");
    f.txn({
      compare: [cmp("a", CompareTarget.VERSION, CompareResult.EQUAL, { version: 9 })],
      success: [putOp("a")],
    });
    f.txn({
      compare: [cmp("a", CompareTarget.VERSION, CompareResult.EQUAL, { version: 9 })],
      failure: [rangeOp("a")],
    });
    assert.equal(f.store.revision, 2);
  });

  it("every change of one write gets the same main revision and sub revisions in order", () => {
    const f = new Fixture();
    const r = f.txn({ success: [putOp("b"), putOp("a"), delOp("b")] });
    assert.deepEqual(
      r.events.map((e) => `${e.type}:${s(e.kv.key)}@${e.kv.modRevision}`),
      ["PUT:b@2", "PUT:a@2", "DELETE:b@2"],
    );
    for (const [sub, key] of ["b", "a", "b"].entries()) {
      assert.ok(f.backend.get("key", revisionKey(2, sub)) !== undefined, `record ${key} at 2.${sub}`);
    }
  });
});

describe("§5.3 Range", () => {
  it("a revision above the current one is a future revision; below the compaction, compacted; at it, allowed", () => {
    const f = new Fixture();
    f.put("a", "1");
    f.put("a", "2");
    f.put("a", "3");
    throwsCode(() => f.range("a", undefined, { revision: 5 }), "FutureRev");
    f.compact(3);
    throwsCode(() => f.range("a", undefined, { revision: 2 }), "Compacted");
    assert.deepEqual(f.keys("a", undefined, { revision: 3 }), ["a=2"]);
  });

  it("a non-KEY sort target with order NONE sorts ascending only the first limit+1 keys (spec example)", () => {
    const f = new Fixture();
    for (const [k, v] of [
      ["s1", "z"],
      ["s2", "y"],
      ["s3", "x"],
      ["s4", "a"],
    ])
      f.put(k as string, v);
    const none = f.range("s", "t", { sortTarget: SortTarget.VALUE, sortOrder: SortOrder.NONE, limit: 2 });
    assert.deepEqual(
      none.kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`),
      ["s3=x", "s2=y"],
    );
    assert.equal(none.more, true);
    const ascend = f.range("s", "t", { sortTarget: SortTarget.VALUE, sortOrder: SortOrder.ASCEND, limit: 2 });
    assert.deepEqual(
      ascend.kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`),
      ["s4=a", "s3=x"],
    );
  });

  it("sorting keeps key order among ties, ascending and descending", () => {
    const f = new Fixture();
    for (const [k, v] of [
      ["a", "1"],
      ["b", "1"],
      ["c", "0"],
      ["d", "1"],
      ["e", "0"],
    ])
      f.put(k as string, v);
    f.put("c", "0");
    assert.deepEqual(f.keys("a", "z", { sortTarget: SortTarget.VALUE, sortOrder: SortOrder.DESCEND }), [
      "a=1",
      "b=1",
      "d=1",
      "c=0",
      "e=0",
    ]);
    const byVersion = f.range("a", "z", { sortTarget: SortTarget.VERSION, sortOrder: SortOrder.DESCEND });
    assert.deepEqual(
      byVersion.kvs.map((kv) => s(kv.key)),
      ["c", "a", "b", "d", "e"],
    );
  });

  it("count ignores the min/max filters and the limit", () => {
    const f = new Fixture();
    for (const k of ["a", "b", "c", "d", "e", "f"]) f.put(k);
    const r = f.range("a", "z", { minModRevision: 5 });
    assert.equal(r.kvs.length, 3);
    assert.equal(r.count, 6);
    assert.equal(f.range("a", "z", { limit: 2 }).count, 6);
  });

  it("keys_only drops values; count_only returns no kvs, more false, and the count; a negative limit is none", () => {
    const f = new Fixture();
    for (const k of ["a", "b", "c"]) f.put(k, "value");
    const keysOnly = f.range("a", "z", { keysOnly: true });
    assert.deepEqual(
      keysOnly.kvs.map((kv) => [s(kv.key), kv.value.length, kv.version]),
      [
        ["a", 0, 1],
        ["b", 0, 1],
        ["c", 0, 1],
      ],
    );
    const countOnly = f.range("a", "z", { countOnly: true, limit: 1 });
    assert.deepEqual([countOnly.kvs.length, countOnly.more, countOnly.count], [0, false, 3]);
    const negative = f.range("a", "z", { limit: -1 });
    assert.deepEqual([negative.kvs.length, negative.more], [3, false]);
  });

  it("an unknown sort order leaves key order (and, not NONE, disables the limited fetch)", () => {
    const f = new Fixture();
    for (const [k, v] of [
      ["a", "3"],
      ["b", "1"],
      ["c", "2"],
    ])
      f.put(k as string, v);
    const r = f.range("a", "z", { sortTarget: SortTarget.VALUE, sortOrder: 7, limit: 2 });
    assert.deepEqual(
      r.kvs.map((kv) => s(kv.key)),
      ["a", "b"],
    );
    assert.equal(r.more, true);
  });
});

describe("§5.4 Put", () => {
  it("request checks: empty key, ignore_value with a value, ignore_lease with a lease", () => {
    throwsCode(() => checkPutRequest({ key: b("") }), "EmptyKey");
    throwsCode(() => checkPutRequest({ key: b("a"), value: b("v"), ignoreValue: true }), "ValueProvided");
    throwsCode(() => checkPutRequest({ key: b("a"), lease: 5n, ignoreLease: true }), "LeaseProvided");
  });

  it("an unknown lease is 'requested lease not found' at apply, and nothing changes", () => {
    const f = new Fixture();
    throwsCode(() => f.put("a", "v", { lease: 99n }), "LeaseNotFound");
    assert.equal(f.store.revision, 1);
    assert.equal(f.store.consistentIndex, 1, "the entry was applied all the same");
  });

  it("ignore_value/ignore_lease need the key: 'key not found'", () => {
    const f = new Fixture();
    throwsCode(() => f.put("a", "", { ignoreValue: true }), "KeyNotFound");
    throwsCode(() => f.put("a", "", { ignoreLease: true }), "KeyNotFound");
  });

  it("ignore_value keeps the value and still bumps mod_revision and version; ignore_lease keeps the lease", () => {
    const f = new Fixture();
    f.put("a", "v", { lease: LIVE_LEASE });
    f.put("a", "", { ignoreValue: true });
    let kv = f.range("a").kvs[0];
    assert.deepEqual([s(kv?.value), kv?.modRevision, kv?.version, kv?.lease], ["v", 3, 2, 0n]);
    f.put("a", "w", { lease: LIVE_LEASE });
    f.put("a", "x", { ignoreLease: true });
    kv = f.range("a").kvs[0];
    assert.deepEqual([s(kv?.value), kv?.lease], ["x", LIVE_LEASE]);
  });

  it("prev_kv returns the pre-put KeyValue, absent for a new key", () => {
    const f = new Fixture();
    assert.equal(f.put("a", "1", { prevKv: true }).response.prevKv, undefined);
    const r = f.put("a", "2", { prevKv: true });
    assert.equal(s(r.response.prevKv?.value), "1");
    assert.equal(r.response.prevKv?.modRevision, 2);
  });

  it("putting a key moves it from its old lease to the new one; lease 0 detaches", () => {
    const f = new Fixture();
    f.put("a", "", { lease: LIVE_LEASE });
    assert.equal(f.leases.attached.get("a"), LIVE_LEASE);
    f.put("a", "");
    assert.equal(f.leases.attached.has("a"), false);
  });
});

describe("§5.5 DeleteRange", () => {
  it("returns the count, prev_kvs in ascending key order, one DELETE event per key, and detaches leases", () => {
    const f = new Fixture();
    f.put("c", "3");
    f.put("a", "1", { lease: LIVE_LEASE });
    f.put("b", "2");
    const r = f.del("a", "z", true);
    assert.equal(r.response.deleted, 3);
    assert.deepEqual(
      r.response.prevKvs.map((kv) => s(kv.key)),
      ["a", "b", "c"],
    );
    assert.deepEqual(
      r.events.map((e) => `${e.type}:${s(e.kv.key)}:${s(e.prevKv?.value)}`),
      ["DELETE:a:1", "DELETE:b:2", "DELETE:c:3"],
    );
    assert.equal(r.events[0]?.kv.modRevision, 5);
    assert.equal(f.leases.attached.size, 0);
  });
});

describe("§5.6 Txn", () => {
  it("more ops than max-txn-ops (128) in any list is 'too many operations'; nested txns use the remaining budget", () => {
    const ranges = (n: number) => Array.from({ length: n }, () => rangeOp("a"));
    checkTxnRequest({ success: ranges(128) });
    throwsCode(() => checkTxnRequest({ success: ranges(129) }), "TooManyOps");
    throwsCode(
      () => checkTxnRequest({ compare: Array.from({ length: 129 }, () => cmp("a", 0, 0)) }),
      "TooManyOps",
    );
    checkTxnRequest({ success: [{ requestTxn: { success: ranges(127) } }] });
    throwsCode(() => checkTxnRequest({ success: [{ requestTxn: { success: ranges(128) } }] }), "TooManyOps");
  });

  it("an empty compare key or op key is 'key is not provided'; an op with nothing set is 'key not found'", () => {
    throwsCode(() => checkTxnRequest({ compare: [cmp("", 0, 0)] }), "EmptyKey");
    throwsCode(() => checkTxnRequest({ failure: [putOp("")] }), "EmptyKey");
    throwsCode(() => checkTxnRequest({ success: [{}] }), "KeyNotFound");
  });

  it("duplicate keys: two puts, or a put inside a delete range, in one list", () => {
    throwsCode(() => checkTxnRequest({ success: [putOp("a"), putOp("a")] }), "DuplicateKey");
    throwsCode(() => checkTxnRequest({ success: [delOp("a", "c"), putOp("b")] }), "DuplicateKey");
    throwsCode(
      () => checkTxnRequest({ success: [putOp("a"), { requestTxn: { success: [putOp("a")] } }] }),
      "DuplicateKey",
    );
  });

  it("allowed: overlapping deletes, the same key in success and failure, then and else of a nested txn", () => {
    checkTxnRequest({ success: [delOp("a", "c"), delOp("b", "d")] });
    checkTxnRequest({ success: [putOp("a")], failure: [putOp("a")] });
    checkTxnRequest({ success: [{ requestTxn: { success: [putOp("a")], failure: [putOp("a")] } }] });
  });

  it('quirk: a delete with range end "\\0" escapes the check, and the key ends deleted', () => {
    checkTxnRequest({ success: [putOp("k", "v"), delOp("k", "\0")] });
    const f = new Fixture();
    const r = f.txn({ success: [putOp("k", "v"), delOp("k", "\0")] });
    assert.deepEqual(
      r.events.map((e) => e.type),
      ["PUT", "DELETE"],
    );
    assert.equal(f.range("k").count, 0);
  });

  it("quirk: a nested put before a nested delete of the same key passes; the reverse order does not", () => {
    const nestedPut = { requestTxn: { success: [putOp("k")] } };
    const nestedDelete = { requestTxn: { success: [delOp("k")] } };
    checkTxnRequest({ success: [nestedPut, nestedDelete] });
    throwsCode(() => checkTxnRequest({ success: [nestedDelete, nestedPut] }), "DuplicateKey");
  });

  it("all compares, nested ones included, see the state before the txn", () => {
    const f = new Fixture();
    const r = f.txn({
      success: [
        putOp("k", "1"),
        {
          requestTxn: {
            compare: [cmp("k", CompareTarget.VALUE, CompareResult.EQUAL, { value: b("1") })],
            success: [putOp("then")],
            failure: [putOp("else")],
          },
        },
      ],
    });
    assert.equal(r.response.responses[1]?.responseTxn?.succeeded, false);
    assert.equal(f.range("else").count, 1);
  });

  it("ops run in order and later ops see earlier writes of the same txn", () => {
    const f = new Fixture();
    const r = f.txn({ success: [putOp("a", "new"), rangeOp("a")] });
    assert.equal(s(r.response.responses[1]?.responseRange?.kvs[0]?.value), "new");
  });

  it("a failed pre-check on the executed path fails the whole txn before anything changes", () => {
    const f = new Fixture();
    f.put("a");
    throwsCode(() => f.txn({ success: [putOp("b"), putOp("c", "", { lease: 99n })] }), "LeaseNotFound");
    throwsCode(() => f.txn({ success: [putOp("b"), putOp("zz", "", { ignoreValue: true })] }), "KeyNotFound");
    throwsCode(() => f.txn({ success: [putOp("b"), rangeOp("a", undefined, { revision: 3 })] }), "FutureRev");
    assert.equal(f.store.revision, 2);
    assert.equal(f.range("b").count, 0);
  });

  it("put errors come before range errors whatever their order", () => {
    const f = new Fixture();
    throwsCode(
      () => f.txn({ success: [rangeOp("a", undefined, { revision: 9 }), putOp("c", "", { lease: 99n })] }),
      "LeaseNotFound",
    );
  });

  it("ops of the branch that does not run are not checked", () => {
    const f = new Fixture();
    const r = f.txn({
      compare: [cmp("a", CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 })],
      success: [putOp("a")],
      failure: [putOp("b", "", { lease: 99n }), rangeOp("a", undefined, { revision: 99 })],
    });
    assert.equal(r.response.succeeded, true);
  });

  it("in a write txn the current revision + 1 is a future revision for a range", () => {
    const f = new Fixture();
    f.put("a");
    throwsCode(() => f.txn({ success: [putOp("b"), rangeOp("a", undefined, { revision: 3 })] }), "FutureRev");
  });

  it("a txn range with a negative revision fails as compacted once the store has a compact revision", () => {
    const f = new Fixture();
    f.put("a");
    assert.equal(
      f.txn({ success: [rangeOp("a", undefined, { revision: -1 })] }).response.responses.length,
      1,
    );
    throwsCode(() => f.txn({ success: [rangeOp("a", undefined, { revision: -2 })] }), "Compacted");
    f.compact(1);
    throwsCode(() => f.txn({ success: [rangeOp("a", undefined, { revision: -1 })] }), "Compacted");
    assert.equal(
      f.range("a", undefined, { revision: -1 }).count,
      1,
      "outside a txn it reads the current revision",
    );
  });

  it("compares: an absent key fails every VALUE compare and compares 0 otherwise", () => {
    const f = new Fixture();
    const holds = (c: Compare) => f.txn({ compare: [c] }).response.succeeded;
    for (const result of [
      CompareResult.EQUAL,
      CompareResult.NOT_EQUAL,
      CompareResult.GREATER,
      CompareResult.LESS,
    ]) {
      assert.equal(holds(cmp("x", CompareTarget.VALUE, result, { value: b("") })), false);
    }
    assert.equal(holds(cmp("x", CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 })), true);
    assert.equal(holds(cmp("x", CompareTarget.CREATE, CompareResult.EQUAL, { createRevision: 0 })), true);
    assert.equal(holds(cmp("x", CompareTarget.LEASE, CompareResult.EQUAL, { lease: 0n })), true);
  });

  it("compares over a range need every key to hold; an empty range is like an absent key", () => {
    const f = new Fixture();
    f.put("a", "1");
    f.put("b", "2");
    const holds = (c: Compare) => f.txn({ compare: [c] }).response.succeeded;
    assert.equal(
      holds(cmp("a", CompareTarget.VALUE, CompareResult.GREATER, { rangeEnd: b("c"), value: b("0") })),
      true,
    );
    assert.equal(
      holds(cmp("a", CompareTarget.VALUE, CompareResult.GREATER, { rangeEnd: b("c"), value: b("1") })),
      false,
    );
    assert.equal(
      holds(cmp("m", CompareTarget.VERSION, CompareResult.EQUAL, { rangeEnd: b("n"), version: 0 })),
      true,
    );
  });

  it("the comparand comes from the field matching the target (another field set means 0)", () => {
    const f = new Fixture();
    f.put("a");
    const holds = (c: Compare) => f.txn({ compare: [c] }).response.succeeded;
    assert.equal(holds(cmp("a", CompareTarget.VERSION, CompareResult.EQUAL, { createRevision: 1 })), false);
    assert.equal(holds(cmp("a", CompareTarget.VERSION, CompareResult.GREATER, { createRevision: 1 })), true);
  });

  it("failed compare with an empty failure list: succeeded false, no responses, no revision bump", () => {
    const f = new Fixture();
    const r = f.txn({ compare: [cmp("a", CompareTarget.VERSION, CompareResult.EQUAL, { version: 1 })] });
    assert.deepEqual(
      [r.response.succeeded, r.response.responses.length, r.response.header.revision],
      [false, 0, 1],
    );
  });

  it('divergence: a "\\0" delete before an ignore_value put of a key it deletes fails with key not found', () => {
    // etcd 3.4.23 panics on this txn (and on every restart that replays it).
    const f = new Fixture();
    f.put("k", "v");
    throwsCode(
      () => f.txn({ success: [delOp("a", "\0"), putOp("k", "", { ignoreValue: true })] }),
      "KeyNotFound",
    );
    assert.equal(f.store.revision, 2);
  });
});

describe("§6 Compact", () => {
  it("at or below the compact revision (negative too, or twice) is compacted; above the current is future", () => {
    const f = new Fixture();
    f.put("a");
    f.put("a");
    throwsCode(() => f.compact(4), "FutureRev");
    f.compact(0);
    throwsCode(() => f.compact(0), "Compacted");
    throwsCode(() => f.compact(-3), "Compacted");
    f.compact(3);
    throwsCode(() => f.compact(3), "Compacted");
    assert.equal(f.store.compactRevision, 3);
  });

  it("on a never-compacted store the compact revision is -1, so revision 0 succeeds once", () => {
    const f = new Fixture();
    assert.equal(f.store.compactRevision, -1);
    f.compact(0);
    assert.equal(f.store.compactRevision, 0);
  });

  it("after compacting at R each key keeps only its newest revision <= R; tombstones <= R disappear", async () => {
    const f = new Fixture();
    f.put("a", "1"); // 2
    f.put("a", "2"); // 3
    f.put("b", "1"); // 4
    f.del("b"); // 5
    f.put("a", "3"); // 6
    const done = f.compact(5).physicalDone;
    await done;
    const revisions: string[] = [];
    f.backend.range("key", revisionKey(0, 0), null, (key) => {
      revisions.push(`${Buffer.from(key).readUInt32BE(4)}`);
      return true;
    });
    assert.deepEqual(revisions, ["3", "6"]);
    assert.deepEqual(f.keys("a", "z", { revision: 5 }), ["a=2"]);
    assert.deepEqual(f.keys("a", "z"), ["a=3"]);
  });

  it("the compact revision applies at once, before the physical pass ends", () => {
    const f = new Fixture();
    for (let i = 0; i < 10; i++) f.put(`k${i}`);
    f.compact(8);
    throwsCode(() => f.range("k0", undefined, { revision: 7 }), "Compacted");
    assert.equal(f.range("k0", "k9", { revision: 8 }).count, 7);
  });
});

describe("§11.4 HashKV", () => {
  it("compact_revision is -1 before any compaction; errors: at/below it (and > 0) compacted, above current future", () => {
    const f = new Fixture();
    f.put("a");
    assert.equal(f.store.hashKV(0).compactRevision, -1);
    f.put("a");
    f.compact(2);
    throwsCode(() => f.store.hashKV(2), "Compacted");
    throwsCode(() => f.store.hashKV(4), "FutureRev");
    assert.deepEqual([f.store.hashKV(3).revision, f.store.hashKV(3).compactRevision], [3, 2]);
  });

  it("is equal on members with the same history whatever their physical compaction progress", async () => {
    const ops = (f: Fixture) => {
      for (let i = 0; i < 20; i++) f.put(`k${i % 7}`, `v${i}`);
      f.del("k3");
      const done = f.compact(15).physicalDone;
      for (let i = 0; i < 5; i++) f.put(`k${i}`, "late");
      return done;
    };
    // Hashes taken before the physical pass ran, after it finished, and after a reopen must all agree.
    const f = new Fixture();
    const physicalDone = ops(f);
    const before = new Map<number, number>();
    for (let rev = 16; rev <= f.store.revision; rev++) before.set(rev, f.store.hashKV(rev).hash);
    let stored = 0;
    f.backend.range("key", revisionKey(0, 0), null, () => {
      stored++;
      return true;
    });
    await physicalDone;
    let storedAfter = 0;
    f.backend.range("key", revisionKey(0, 0), null, () => {
      storedAfter++;
      return true;
    });
    assert.ok(storedAfter < stored, "the physical pass removed records");
    const reopened = MvccStore.open({ backend: f.backend });
    for (let rev = 16; rev <= f.store.revision; rev++) {
      assert.equal(f.store.hashKV(rev).hash, before.get(rev), `rev ${rev}`);
      assert.equal(reopened.hashKV(rev).hash, before.get(rev), `rev ${rev} after reopen`);
    }
  });
});

describe("events", () => {
  it("each write returns PUT/DELETE events with the key's state before the write as prevKv", () => {
    const f = new Fixture();
    f.put("a", "1");
    const r = f.txn({ success: [putOp("a", "2"), putOp("b", "1"), delOp("a", "\0")] });
    assert.deepEqual(
      r.events.map((e) => [e.type, s(e.kv.key), s(e.kv.value), e.kv.version, s(e.prevKv?.value)]),
      [
        ["PUT", "a", "2", 2, "1"],
        ["PUT", "b", "1", 1, undefined],
        ["DELETE", "a", "", 0, "1"],
        ["DELETE", "b", "", 0, undefined],
      ],
    );
  });

  it("history reads back as events in revision order", () => {
    const f = new Fixture();
    f.put("a", "1");
    f.del("a");
    f.put("b", "2");
    assert.deepEqual(
      f.store.eventsBetween(2, 4).map((e) => `${e.type}:${s(e.kv.key)}@${e.kv.modRevision}`),
      ["PUT:a@2", "DELETE:a@3", "PUT:b@4"],
    );
  });

  it("history reads stop at an event count or a byte budget and say so (watch catch-up)", () => {
    const f = new Fixture();
    f.put("a", "x".repeat(100));
    f.put("b", "y".repeat(100));
    f.put("c", "z");
    const all = f.store.eventsBetween(2, 4);
    assert.equal(f.store.lastEventsTruncated, false);
    assert.equal(all.length, 3);
    assert.equal(f.store.eventsBetween(2, 4, 2).length, 2);
    assert.equal(f.store.lastEventsTruncated, true, "stopped at the limit");
    // The budget is reached by the first record: the read stops after it (always at least one event).
    assert.deepEqual(
      f.store.eventsBetween(2, 4, 0, 50).map((e) => s(e.kv.key)),
      ["a"],
    );
    assert.equal(f.store.lastEventsTruncated, true, "stopped at the byte budget");
    assert.equal(f.store.eventsBetween(2, 4, 0, 1 << 20).length, 3);
    assert.equal(f.store.lastEventsTruncated, false);
  });

  it("keyValueAt: the key as of a revision, undefined when absent, compacted or in the future", () => {
    const f = new Fixture();
    f.put("k", "1"); // 2
    f.put("k", "2"); // 3
    f.del("k"); // 4
    f.put("k", "3"); // 5
    const at = (rev: number) => {
      const kv = f.store.keyValueAt(Buffer.from("k"), rev);
      return kv === undefined ? undefined : `${s(kv.value)}@${kv.modRevision}`;
    };
    assert.deepEqual(
      [at(1), at(2), at(3), at(4), at(5), at(6)],
      [undefined, "1@2", "2@3", undefined, "3@5", undefined],
    );
    f.compact(3);
    assert.deepEqual([at(2), at(3), at(5)], [undefined, "2@3", "3@5"]);
    assert.equal(f.store.keyValueAt(Buffer.from("absent"), 5), undefined);
  });
});
