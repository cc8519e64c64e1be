import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeConfChange,
  decodeConfChangeEntry,
  decodeConfChangeV2,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  decodeSnapshotMetadata,
  encodeConfChange,
  encodeConfChangeV2,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
  encodeSnapshotMetadata,
  RaftReader,
  RaftWriter,
} from "../../src/raft/codec.js";
import { isRaftError, RaftErrorCode } from "../../src/raft/errors.js";
import type { ConfState, Entry, Message, Snapshot } from "../../src/raft/types.js";
import {
  ConfChangeTransition,
  ConfChangeType,
  EMPTY_BYTES,
  EntryType,
  MessageType,
} from "../../src/raft/types.js";

const RUNS = 300;
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const index = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const bytes = fc.uint8Array({ maxLength: 64 });
const entry: fc.Arbitrary<Entry> = fc.record({
  term: index,
  index,
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange, EntryType.ConfChangeV2),
  data: bytes,
});
const ids = fc.array(u64, { maxLength: 5 });
const confState: fc.Arbitrary<ConfState> = fc.record({
  voters: ids,
  learners: ids,
  votersOutgoing: ids,
  learnersNext: ids,
  autoLeave: fc.boolean(),
});
const snapshot: fc.Arbitrary<Snapshot> = fc.record({
  data: bytes,
  metadata: fc.record({ confState, index, term: index }),
});
const message: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: 0, max: MessageType.PreVoteResp }) as fc.Arbitrary<MessageType>,
  to: u64,
  from: u64,
  term: index,
  logTerm: index,
  index,
  entries: fc.array(entry, { maxLength: 4 }),
  commit: index,
  snapshot: fc.option(snapshot, { nil: null }),
  reject: fc.boolean(),
  rejectHint: index,
  context: bytes,
});
const changeType = fc.constantFrom(
  ConfChangeType.AddNode,
  ConfChangeType.RemoveNode,
  ConfChangeType.UpdateNode,
  ConfChangeType.AddLearnerNode,
);

/** Decoded byte fields may share nothing with the input; compare them as plain arrays. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function roundTrips<T>(arb: fc.Arbitrary<T>, enc: (v: T) => Uint8Array, dec: (b: Uint8Array) => T): void {
  fc.assert(
    fc.property(arb, (v) => {
      assert.deepEqual(plain(dec(enc(v))), plain(v));
    }),
    { numRuns: RUNS },
  );
}

const decodeFails = (e: unknown) => isRaftError(e, RaftErrorCode.Decode);

describe("raft codec", () => {
  it("round-trips entries", () => roundTrips(entry, encodeEntry, decodeEntry));
  it("round-trips hard states", () =>
    roundTrips(fc.record({ term: index, vote: u64, commit: index }), encodeHardState, decodeHardState));
  it("round-trips conf states", () => roundTrips(confState, encodeConfState, decodeConfState));
  it("round-trips snapshot metadata", () =>
    roundTrips(fc.record({ confState, index, term: index }), encodeSnapshotMetadata, decodeSnapshotMetadata));
  it("round-trips snapshots", () => roundTrips(snapshot, encodeSnapshot, decodeSnapshot));
  it("round-trips messages (all fields)", () => roundTrips(message, encodeMessage, decodeMessage));
  it("round-trips conf changes (v1)", () =>
    roundTrips(
      fc.record({ id: u64, type: changeType, nodeId: u64, context: bytes }),
      encodeConfChange,
      decodeConfChange,
    ));
  it("round-trips conf changes (v2)", () =>
    roundTrips(
      fc.record({
        transition: fc.constantFrom(
          ConfChangeTransition.Auto,
          ConfChangeTransition.JointImplicit,
          ConfChangeTransition.JointExplicit,
        ),
        changes: fc.array(fc.record({ type: changeType, nodeId: u64 }), { maxLength: 4 }),
        context: bytes,
      }),
      encodeConfChangeV2,
      decodeConfChangeV2,
    ));

  it("keeps 64-bit ids exact", () => {
    const id = 0xffff_ffff_ffff_fffen;
    const m = decodeMessage(
      encodeMessage({
        type: MessageType.Heartbeat,
        to: id,
        from: 1n + (1n << 53n),
        term: 3,
        logTerm: 0,
        index: 0,
        entries: [],
        commit: Number.MAX_SAFE_INTEGER,
        snapshot: null,
        reject: false,
        rejectHint: 0,
        context: EMPTY_BYTES,
      }),
    );
    assert.equal(m.to, id);
    assert.equal(m.from, 1n + (1n << 53n));
    assert.equal(m.commit, Number.MAX_SAFE_INTEGER);
  });

  it("encodes the empty ConfChangeV2 (leave joint) as empty data, as raft proposes it", () => {
    const leave = { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES };
    assert.equal(encodeConfChangeV2(leave).length, 0);
    assert.deepEqual(decodeConfChangeV2(EMPTY_BYTES), leave);
    const v1 = { id: 9n, type: ConfChangeType.AddLearnerNode, nodeId: 5n, context: new Uint8Array([1]) };
    const asV2 = decodeConfChangeEntry({
      term: 1,
      index: 1,
      type: EntryType.ConfChange,
      data: encodeConfChange(v1),
    });
    assert.deepEqual(plain(asV2), plain({ transition: 0, changes: [{ type: 3, nodeId: 5n }], context: [1] }));
  });

  it("is compact: a heartbeat is a handful of bytes, an append is the payload plus a few bytes per entry", () => {
    const hb = encodeMessage({
      type: MessageType.Heartbeat,
      to: 2n,
      from: 1n,
      term: 5,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 100,
      snapshot: null,
      reject: false,
      rejectHint: 0,
      context: EMPTY_BYTES,
    });
    assert.ok(hb.length <= 16, `heartbeat is ${hb.length} bytes`);
    const entries = Array.from({ length: 10 }, (_, i) => ({
      term: 5,
      index: 1000 + i,
      type: EntryType.Normal,
      data: new Uint8Array(256),
    }));
    const app = encodeMessage({
      type: MessageType.App,
      to: 2n,
      from: 1n,
      term: 5,
      logTerm: 5,
      index: 999,
      entries,
      commit: 998,
      snapshot: null,
      reject: false,
      rejectHint: 0,
      context: EMPTY_BYTES,
    });
    assert.ok(app.length <= 10 * (256 + 8) + 20, `append is ${app.length} bytes`);
  });

  it("rejects truncated input, trailing bytes, unknown enums, oversized values and bad versions", () => {
    const good = encodeEntry({ term: 1, index: 2, type: EntryType.Normal, data: new Uint8Array([7, 8, 9]) });
    for (let cut = 0; cut < good.length; cut++)
      assert.throws(() => decodeEntry(good.subarray(0, cut)), decodeFails);
    assert.throws(() => decodeEntry(new Uint8Array([...good, 0])), decodeFails);
    assert.throws(
      () => decodeEntry(new Uint8Array([2, ...good.subarray(1)])),
      decodeFails,
      "unknown version",
    );
    assert.throws(() => decodeEntry(new Uint8Array([1, 1, 2, 9, 0])), decodeFails, "unknown entry type");
    // A varint above 2^53 for a number field.
    const big = new RaftWriter();
    big.byte(1);
    big.u64(1n << 60n);
    assert.throws(() => decodeHardState(big.toBytes()), decodeFails);
    // A varint of 11 bytes.
    assert.throws(() => new RaftReader(new Uint8Array(11).fill(0x80)).u64(), decodeFails);
    // Above 2^64.
    const over = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert.throws(() => new RaftReader(over).u64(), decodeFails);
    // Unknown message type and flags.
    const msg = encodeMessage({
      type: MessageType.App,
      to: 2n,
      from: 1n,
      term: 1,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      snapshot: null,
      reject: false,
      rejectHint: 0,
      context: EMPTY_BYTES,
    });
    const badType = Uint8Array.from(msg);
    badType[1] = 99;
    assert.throws(() => decodeMessage(badType), decodeFails);
    // A length prefix larger than the input must not allocate or read past the end.
    const lying = new RaftWriter();
    lying.byte(1);
    lying.uint(1);
    lying.uint(1);
    lying.byte(0);
    lying.uint(1_000_000);
    assert.throws(() => decodeEntry(lying.toBytes()), decodeFails);
  });

  it("never throws anything but a Decode error on random bytes", () => {
    const decoders = [
      decodeEntry,
      decodeHardState,
      decodeConfState,
      decodeSnapshot,
      decodeMessage,
      decodeConfChange,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (b) => {
        for (const d of decoders) {
          try {
            d(b);
          } catch (e) {
            if (!decodeFails(e)) throw e;
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("copies decoded bytes, so the input buffer may be reused", () => {
    const buf = encodeEntry({ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) });
    const e = decodeEntry(buf);
    buf.fill(0);
    assert.deepEqual(Array.from(e.data), [1, 2, 3]);
  });
});

describe("codec copies byte strings", () => {
  it("decodes entry data from a Buffer into its own memory, not a view that pins the input", () => {
    const encoded = Buffer.from(encodeEntry({ term: 1, index: 2, type: 0, data: new Uint8Array([1, 2, 3]) }));
    const decoded = decodeEntry(encoded);
    assert.notEqual(decoded.data.buffer, encoded.buffer);
    encoded.fill(0);
    assert.deepEqual([...decoded.data], [1, 2, 3]);
  });
});
