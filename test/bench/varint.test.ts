import assert from "node:assert/strict";
import { describe, it } from "node:test";
import protobuf from "protobufjs";
import {
  putRandomInt63,
  putVarint,
  putZigZagInt63Parts,
  putZigZagSafeInteger,
  varintLengthMaxBytes,
} from "../../bench/load/varint.js";

function hex(value: bigint): string {
  const buf = new Uint8Array(varintLengthMaxBytes);
  const length = putVarint(buf, 0, value);
  return Buffer.from(buf.subarray(0, length)).toString("hex");
}

describe("putVarint mirrors Go's binary.PutVarint", () => {
  // The expected bytes are the documented outputs of Go's encoding/binary examples (ExamplePutVarint).
  const goExamples: Array<[bigint, string]> = [
    [-65n, "8101"],
    [-64n, "7f"],
    [-2n, "03"],
    [-1n, "01"],
    [0n, "00"],
    [1n, "02"],
    [2n, "04"],
    [63n, "7e"],
    [64n, "8001"],
    [0x42f0e1eba9ea3693n, "a6dad19ef5faf0f08501"],
  ];
  for (const [value, expected] of goExamples) {
    it(`PutVarint(${value}) = ${expected}`, () => assert.equal(hex(value), expected));
  }

  it("covers the int64 extremes in ten bytes", () => {
    assert.equal(hex((1n << 63n) - 1n), "feffffffffffffffff01");
    assert.equal(hex(-(1n << 63n)), "ffffffffffffffffff01");
  });

  it("refuses values outside int64", () => {
    assert.throws(() => putVarint(new Uint8Array(16), 0, 1n << 63n), /not an int64/);
  });

  it("agrees with protobuf's sint64 (the same zig-zag varint) on random int64s", () => {
    for (let trial = 0; trial < 500; trial++) {
      const value = BigInt.asIntN(
        64,
        BigInt(Math.floor(Math.random() * 2 ** 53)) * BigInt(1 + (trial % 4096)),
      );
      const expected = Buffer.from(protobuf.Writer.create().sint64(value.toString()).finish()).toString(
        "hex",
      );
      assert.equal(hex(value), expected, `value ${value}`);
    }
  });
});

describe("the allocation-free forms", () => {
  it("putZigZagInt63Parts equals putVarint for halves across the whole int63 range", () => {
    const highs = [0, 1, 0x3f, 0x40, 0x7fff, 0x123456, 0x7ffffffe, 0x7fffffff];
    const lows = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
    for (const high of highs) {
      for (const low of lows) {
        const value = (BigInt(high) << 32n) | BigInt(low);
        const fast = new Uint8Array(varintLengthMaxBytes);
        const reference = new Uint8Array(varintLengthMaxBytes);
        const length = putZigZagInt63Parts(fast, 0, high, low);
        assert.equal(length, putVarint(reference, 0, value));
        assert.deepEqual(fast, reference, `value ${value}`);
      }
    }
  });

  it("putZigZagSafeInteger equals putVarint and writes at the offset", () => {
    for (const value of [0, 1, 63, 64, 8191, 8192, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const fast = new Uint8Array(12);
      const reference = new Uint8Array(12);
      assert.equal(putZigZagSafeInteger(fast, 2, value), putVarint(reference, 2, BigInt(value)));
      assert.deepEqual(fast, reference);
    }
    assert.throws(() => putZigZagSafeInteger(new Uint8Array(12), 0, -1));
  });

  it("putRandomInt63 writes a non-negative int63 (even zig-zag, at most ten bytes) and leaves later bytes alone", () => {
    const buf = Buffer.alloc(256, 0xaa);
    let longest = 0;
    for (let trial = 0; trial < 1000; trial++) {
      buf.fill(0xaa);
      const length = putRandomInt63(buf, 0);
      longest = Math.max(longest, length);
      assert.ok(length >= 1 && length <= varintLengthMaxBytes);
      assert.equal(buf[0]! & 1, 0, "zig-zag of a non-negative number is even");
      assert.equal(buf[length - 1]! & 0x80, 0, "the last byte ends the varint");
      assert.equal(buf[length], 0xaa, "bytes after the varint are untouched, as with Go's reused key buffer");
    }
    // Random int63s are nearly all huge: 2^56 or more needs nine or ten bytes.
    assert.ok(longest >= 9);
  });
});
