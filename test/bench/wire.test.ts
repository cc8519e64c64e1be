import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { putRandomInt63 } from "../../bench/load/varint.js";
import { FramedMessage, PutRequestTemplate, prefixEnd, TxnPutTemplate } from "../../bench/load/wire.js";
import { etcdserverpb } from "../../src/proto/index.js";

describe("hot-path request templates decode with the project's generated codecs", () => {
  it("check perf's PutRequest: key = prefix + 256 patched bytes, value = 1,024 zero bytes", () => {
    const prefix = Buffer.from("/etcdctl-check-perf/");
    const template = PutRequestTemplate.build(prefix, 256, Buffer.alloc(1024));
    const suffix = Buffer.alloc(256, 7);
    putRandomInt63(suffix, 0);
    suffix.copy(template.buffer, template.keySuffixOffset);
    const decoded = etcdserverpb.PutRequest.decode(template.buffer);
    assert.deepEqual(Buffer.from(decoded.key), Buffer.concat([prefix, suffix]));
    assert.equal(decoded.key.length, 276);
    assert.deepEqual(Buffer.from(decoded.value), Buffer.alloc(1024));
    assert.equal(decoded.lease, 0n);
    assert.equal(decoded.prevKv, false);
  });

  it("a clone has its own bytes, and its frame carries gRPC's 5-byte length prefix", () => {
    const template = PutRequestTemplate.build(Buffer.from("/p/"), 8, Buffer.from("value"));
    const clone = template.clone();
    clone.buffer[clone.keySuffixOffset] = 0x55;
    assert.notEqual(template.buffer[template.keySuffixOffset], 0x55);
    const framed = clone.frame.framed;
    assert.equal(framed[0], 0, "not compressed");
    assert.equal(framed.readUInt32BE(1), clone.buffer.length);
    assert.deepEqual(framed.subarray(5), clone.buffer);
  });

  it("an empty value is left out, as proto3 encoders do", () => {
    const template = PutRequestTemplate.build(Buffer.from("k"), 3, Buffer.alloc(0));
    const decoded = etcdserverpb.PutRequest.decode(template.buffer);
    assert.equal(decoded.key.length, 4);
    assert.equal(decoded.value.length, 0);
    assert.deepEqual(template.buffer, etcdserverpb.PutRequest.encode({ key: decoded.key }));
  });

  it("txn-put's TxnRequest: no compares, `ops` puts in the success branch, each key patchable", () => {
    const template = TxnPutTemplate.build(Buffer.from("/t/"), 8, Buffer.from("vv"), 3);
    template.keySuffixOffsets.forEach((offset, op) => {
      template.buffer[offset] = 0x41 + op;
    });
    const decoded = etcdserverpb.TxnRequest.decode(template.buffer);
    assert.equal(decoded.compare.length, 0);
    assert.equal(decoded.failure.length, 0);
    assert.equal(decoded.success.length, 3);
    decoded.success.forEach((op, index) => {
      assert.equal(op.request?.case, "requestPut");
      if (op.request?.case !== "requestPut") return;
      assert.equal(
        Buffer.from(op.request.value.key).toString("latin1").slice(0, 4),
        `/t/${String.fromCharCode(0x41 + index)}`,
      );
      assert.deepEqual(Buffer.from(op.request.value.value), Buffer.from("vv"));
    });
  });

  it("FramedMessage.of frames any message", () => {
    const frame = FramedMessage.of(Buffer.from([1, 2, 3]));
    assert.deepEqual([...frame.framed], [0, 0, 0, 0, 3, 1, 2, 3]);
    assert.deepEqual([...frame.message], [1, 2, 3]);
  });
});

describe("prefixEnd (etcd's clientv3.GetPrefixRangeEnd)", () => {
  const cases: Array<[number[], number[]]> = [
    [[0x61], [0x62]],
    [
      [0x2f, 0x61, 0x2f],
      [0x2f, 0x61, 0x30],
    ],
    [[0x61, 0xff], [0x62]],
    [[0xff, 0xff], [0x00]],
    [[], [0x00]],
  ];
  for (const [prefix, end] of cases) {
    it(`[${prefix}] -> [${end}]`, () => assert.deepEqual([...prefixEnd(Buffer.from(prefix))], end));
  }
});
