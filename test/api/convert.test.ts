import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type * as mvcc from "../../src/mvcc/types.js";
import { etcdserverpb } from "../../src/proto/index.js";
import * as convert from "../../src/server/convert.js";

const b = (s: string) => Buffer.from(s);

describe("convert: wire requests to the store's types", () => {
  it("passes Range, Put and DeleteRange through as the same object when numbers are safe", () => {
    const range = etcdserverpb.RangeRequest.create({ key: b("a"), rangeEnd: b("b"), limit: 3, revision: 7 });
    assert.equal(convert.rangeRequestToStore(range), range);
    const put = etcdserverpb.PutRequest.create({ key: b("k"), value: b("v"), lease: 1n << 60n });
    assert.equal(convert.putRequestToStore(put), put);
    const del = etcdserverpb.DeleteRangeRequest.create({ key: b("k"), prevKv: true });
    assert.equal(convert.deleteRangeRequestToStore(del), del);
  });

  it("clamps int64 values beyond 2^53 to the safe range (as decoded from the wire)", () => {
    const bytes = etcdserverpb.RangeRequest.encode({
      key: b("a"),
      maxModRevision: 2 ** 62,
      revision: -(2 ** 62),
    });
    const range = etcdserverpb.RangeRequest.decode(bytes);
    const out = convert.rangeRequestToStore(range);
    assert.notEqual(out, range);
    assert.equal(out.maxModRevision, Number.MAX_SAFE_INTEGER);
    assert.equal(out.revision, -Number.MAX_SAFE_INTEGER);
    assert.deepEqual(out.key, range.key);
    const compaction = convert.compactionRequestToStore(
      etcdserverpb.CompactionRequest.create({ revision: 2 ** 60 }),
    );
    assert.equal(compaction.revision, Number.MAX_SAFE_INTEGER);
  });

  it("turns txn oneofs into the store's optional fields, nested txns included", () => {
    const wire = etcdserverpb.TxnRequest.decode(
      etcdserverpb.TxnRequest.encode({
        compare: [
          { key: b("k"), target: 3, result: 3, targetUnion: { case: "value", value: b("v") } },
          { key: b("k"), target: 0, targetUnion: { case: "version", value: 2 } },
          { key: b("k"), target: 3, targetUnion: { case: "lease", value: 5n } },
          { key: b("k"), rangeEnd: b("l") },
        ],
        success: [
          { request: { case: "requestPut", value: { key: b("p"), value: b("1") } } },
          {
            request: {
              case: "requestTxn",
              value: { failure: [{ request: { case: "requestRange", value: { key: b("r"), limit: 2 } } }] },
            },
          },
          {},
        ],
        failure: [{ request: { case: "requestDeleteRange", value: { key: b("d"), rangeEnd: b("e") } } }],
      }),
    );
    const txn = convert.txnRequestToStore(wire);
    const [c0, c1, c2, c3] = txn.compare ?? [];
    assert.deepEqual(
      { result: c0?.result, target: c0?.target, value: Buffer.from(c0?.value ?? []).toString() },
      { result: 3, target: 3, value: "v" },
    );
    assert.equal(c1?.version, 2);
    assert.equal(c1?.value, undefined);
    // Target VALUE with a lease comparand: the store sees no value, so it compares with empty bytes.
    assert.equal(c2?.value, undefined);
    assert.equal(c2?.lease, 5n);
    assert.equal(Buffer.from(c3?.rangeEnd ?? []).toString(), "l");
    const [put, nested, empty] = txn.success ?? [];
    assert.equal(Buffer.from(put?.requestPut?.value ?? []).toString(), "1");
    assert.equal(nested?.requestTxn?.failure?.[0]?.requestRange?.limit, 2);
    assert.deepEqual(empty, {});
    assert.equal(Buffer.from(txn.failure?.[0]?.requestDeleteRange?.rangeEnd ?? []).toString(), "e");
  });
});

describe("convert: store responses to wire Init shapes", () => {
  const kv: mvcc.KeyValue = {
    key: b("k"),
    createRevision: 2,
    modRevision: 3,
    version: 2,
    value: b("v"),
    lease: 0n,
  };

  it("encodes a txn response with op oneofs, op headers holding only the revision, nested header empty", () => {
    const response: mvcc.TxnResponse = {
      header: { revision: 5 },
      succeeded: true,
      responses: [
        { responseRange: { header: { revision: 4 }, kvs: [kv], more: false, count: 1 } },
        { responsePut: { header: { revision: 5 }, prevKv: kv } },
        { responseDeleteRange: { header: { revision: 5 }, deleted: 0, prevKvs: [] } },
        {
          responseTxn: {
            header: { revision: 0 },
            succeeded: false,
            responses: [{ responsePut: { header: { revision: 5 } } }],
          },
        },
      ],
    };
    const decoded = etcdserverpb.TxnResponse.decode(
      etcdserverpb.TxnResponse.encode(convert.txnResponseToWire(response)),
    );
    assert.equal(decoded.succeeded, true);
    const cases = decoded.responses.map((r) => r.response?.case);
    assert.deepEqual(cases, ["responseRange", "responsePut", "responseDeleteRange", "responseTxn"]);
    const [range, put, , nested] = decoded.responses;
    assert.ok(range?.response?.case === "responseRange");
    assert.deepEqual(range.response.value.header, { clusterId: 0n, memberId: 0n, revision: 4, raftTerm: 0 });
    assert.equal(Buffer.from(range.response.value.kvs[0]?.value ?? []).toString(), "v");
    assert.ok(put?.response?.case === "responsePut");
    assert.equal(put.response.value.prevKv?.version, 2);
    assert.ok(nested?.response?.case === "responseTxn");
    // Present but empty, as etcd sends a nested txn's header.
    assert.deepEqual(nested.response.value.header, { clusterId: 0n, memberId: 0n, revision: 0, raftTerm: 0 });
    assert.equal(nested.response.value.responses[0]?.response?.case, "responsePut");
  });

  it("passes range responses and key-values through unchanged", () => {
    const range: mvcc.RangeResponse = { header: { revision: 9 }, kvs: [kv], more: true, count: 4 };
    assert.equal(convert.rangeResponseToWire(range), range);
    assert.equal(convert.keyValueToWire(kv), kv);
  });
});
