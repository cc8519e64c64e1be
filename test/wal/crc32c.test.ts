import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crc32c, crc32cUpdate } from "../../src/wal/crc32c.js";

/** Bit-at-a-time reference: slow and obviously right. */
function referenceCrc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function seededBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe("crc32c", () => {
  it("matches the published check values (RFC 3720 B.4 and the CRC catalogue)", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.equal(crc32c(ascending), 0x46dd794e);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("agrees with a bit-at-a-time reference on random buffers of every length up to 300", () => {
    for (let length = 0; length <= 300; length++) {
      const bytes = seededBytes(length + 7, length);
      assert.equal(crc32c(bytes), referenceCrc32c(bytes), `length ${length}`);
    }
  });

  it("chains: update(update(0, a), b) equals the CRC of a followed by b, at any split and offset", () => {
    const bytes = seededBytes(99, 1000);
    const whole = crc32c(bytes);
    for (const split of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      assert.equal(crc32cUpdate(crc32cUpdate(0, bytes, 0, split), bytes, split, bytes.length), whole);
    }
    assert.equal(crc32cUpdate(0, bytes, 3, 77), crc32c(bytes.subarray(3, 77)));
  });
});
