import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WalCorruptError, WalError } from "../../src/wal/errors.js";
import { CRC_FRAME_BYTES, entryFrameBytes, FRAME_HEADER_BYTES } from "../../src/wal/format.js";
import { decodeSegment, newDecodeState, SECTOR_BYTES } from "../../src/wal/reader.js";
import type { WalSnapshotPosition } from "../../src/wal/types.js";
import {
  buildSegment,
  entryData,
  entryRec,
  hardStateRec,
  METADATA,
  makeEntry,
  markerRec,
  metadataRec,
  type RecordSpec,
} from "./support.js";

const FROM_START: WalSnapshotPosition = { index: 0, term: 0 };

function decodeOne(bytes: Uint8Array, isLast = true, start = FROM_START) {
  const state = newDecodeState(start);
  if (start.index === 0) state.startFound = true;
  const result = decodeSegment(bytes, "seg.wal", isLast, state);
  return { state, result };
}

function entriesRecs(from: number, to: number, term = 1, size = 64): RecordSpec[] {
  const out: RecordSpec[] = [];
  for (let i = from; i <= to; i++) out.push(entryRec(makeEntry(i, term, size)));
  return out;
}

describe("record format", () => {
  it("keeps every frame 8-byte aligned and states its padding in the length word", () => {
    for (let size = 0; size <= 17; size++) {
      const seg = buildSegment([metadataRec(), entryRec(makeEntry(1, 1, size))]);
      const at = seg.offsets[1]!;
      const view = new DataView(seg.bytes.buffer);
      const bodyBytes = view.getUint32(at, true);
      const padBytes = view.getUint32(at + 4, true);
      assert.equal(at % 8, 0);
      assert.equal((bodyBytes + padBytes) % 8, 0);
      assert.ok(padBytes < 8);
      assert.equal(FRAME_HEADER_BYTES + bodyBytes + padBytes, entryFrameBytes(size));
      assert.equal(seg.endOffset % 8, 0);
    }
  });

  it("round-trips metadata, hard state, entries and snapshot markers", () => {
    const hs = { term: 7, vote: 0xffffffffffffffffn, commit: 2 ** 53 - 1 };
    const big = { index: 2 ** 53 - 1, term: 2 ** 40 + 3, type: 0xffffffff, data: entryData(1, 1, 1000) };
    const seg = buildSegment([
      metadataRec(),
      entryRec(makeEntry(1, 1, 0)),
      markerRec(1, 1),
      hardStateRec(hs),
      entryRec(makeEntry(2, 1, 5)),
    ]);
    const { state, result } = decodeOne(seg.bytes);
    assert.equal(result.torn, null);
    assert.equal(result.endOffset, seg.endOffset);
    assert.deepEqual(state.metadata, METADATA);
    assert.deepEqual(state.hardState, hs);
    assert.deepEqual(state.entries, [makeEntry(1, 1, 0), makeEntry(2, 1, 5)]);
    assert.deepEqual(state.snapshotMarkers, [{ index: 1, term: 1, confState: new Uint8Array([1, 2, 3]) }]);
    assert.equal(state.chainCrc, seg.chainCrc);

    const wide = decodeOne(buildSegment([metadataRec(), entryRec(big)]).bytes, true, {
      index: 2 ** 53 - 2,
      term: 0,
    });
    assert.deepEqual(wide.state.entries, [big]);
  });

  it("stops at never-written (zero) space in a preallocated segment", () => {
    const seg = buildSegment([metadataRec(), ...entriesRecs(1, 3)], 0, 64 * 1024);
    const { state, result } = decodeOne(seg.bytes);
    assert.equal(result.endOffset, seg.endOffset);
    assert.equal(result.torn, null);
    assert.equal(state.entries.length, 3);
  });
});

describe("recovery rules", () => {
  it("replaces the tail when a later entry has an index at or below the last one", () => {
    const seg = buildSegment([metadataRec(), ...entriesRecs(1, 5, 1), ...entriesRecs(3, 4, 2)]);
    const { state } = decodeOne(seg.bytes);
    assert.deepEqual(
      state.entries.map((e) => [e.index, e.term]),
      [
        [1, 1],
        [2, 1],
        [3, 2],
        [4, 2],
      ],
    );
    assert.deepEqual(state.entries[2], makeEntry(3, 2));
    assert.equal(state.lastIndex, 4);
  });

  it("returns only entries after the start snapshot and requires its marker with the same term", () => {
    const recs = [metadataRec(), ...entriesRecs(1, 3), markerRec(3, 1), ...entriesRecs(4, 6)];
    const { state } = decodeOne(buildSegment(recs).bytes, true, { index: 3, term: 1 });
    assert.ok(state.startFound);
    assert.deepEqual(
      state.entries.map((e) => e.index),
      [4, 5, 6],
    );
    assert.throws(
      () => decodeOne(buildSegment(recs).bytes, true, { index: 3, term: 2 }),
      (err: unknown) => err instanceof WalError && err.code === "WAL_SNAPSHOT_MISMATCH",
    );
    const { state: missing } = decodeOne(buildSegment(recs).bytes, true, { index: 2, term: 1 });
    assert.equal(missing.startFound, false);
  });

  it("refuses a gap in the entries", () => {
    const seg = buildSegment([metadataRec(), ...entriesRecs(1, 2), entryRec(makeEntry(4))]);
    assert.throws(
      () => decodeOne(seg.bytes),
      (err: unknown) => err instanceof WalError && err.code === "WAL_INDEX_GAP",
    );
  });

  it("refuses conflicting metadata", () => {
    const seg = buildSegment([metadataRec(), metadataRec({ memberId: 1n, clusterId: METADATA.clusterId })]);
    assert.throws(
      () => decodeOne(seg.bytes),
      (err: unknown) => err instanceof WalError && err.code === "WAL_METADATA_CONFLICT",
    );
  });

  it("chains CRCs across segments and refuses a segment whose CRC record breaks the chain", () => {
    const first = buildSegment([metadataRec(), ...entriesRecs(1, 3)]);
    const second = buildSegment([metadataRec(), ...entriesRecs(4, 5)], first.chainCrc);
    const state = newDecodeState(FROM_START);
    decodeSegment(first.bytes, "a.wal", false, state);
    state.atStart = false;
    decodeSegment(second.bytes, "b.wal", true, state);
    assert.equal(state.entries.length, 5);

    const stray = buildSegment([metadataRec(), ...entriesRecs(4, 5)], first.chainCrc ^ 1);
    const again = newDecodeState(FROM_START);
    decodeSegment(first.bytes, "a.wal", false, again);
    again.atStart = false;
    assert.throws(() => decodeSegment(stray.bytes, "b.wal", true, again), /b\.wal at offset 0: CRC record/);
  });
});

describe("torn writes and corruption", () => {
  /** Segment of small entries then one large entry (index 6) spanning several sectors. */
  function withLargeLast(sizeBytes?: number) {
    return buildSegment(
      [metadataRec(), ...entriesRecs(1, 5), entryRec(makeEntry(6, 1, 3 * SECTOR_BYTES))],
      0,
      sizeBytes,
    );
  }

  it("cuts a last record that has an unwritten (zero) sector in the last segment", () => {
    const seg = withLargeLast(16 * 1024);
    const last = seg.offsets.at(-1)!;
    const sector = (Math.floor(last / SECTOR_BYTES) + 2) * SECTOR_BYTES;
    seg.bytes.fill(0, sector, sector + SECTOR_BYTES);
    const { state, result } = decodeOne(seg.bytes);
    assert.deepEqual(result.torn, { offsetBytes: last, reason: "CRC mismatch in a partly written record" });
    assert.equal(result.endOffset, last);
    assert.deepEqual(
      state.entries.map((e) => e.index),
      [1, 2, 3, 4, 5],
    );
  });

  it("cuts a last record that runs past the end of the file", () => {
    const seg = withLargeLast();
    const last = seg.offsets.at(-1)!;
    const { result } = decodeOne(seg.bytes.subarray(0, last + 100));
    assert.equal(result.torn?.offsetBytes, last);
    assert.equal(result.endOffset, last);
  });

  it("refuses the same damage in a segment that is not the last one, naming file and offset", () => {
    const seg = withLargeLast();
    const last = seg.offsets.at(-1)!;
    const sector = (Math.floor(last / SECTOR_BYTES) + 2) * SECTOR_BYTES;
    seg.bytes.fill(0, sector, sector + SECTOR_BYTES);
    assert.throws(
      () => decodeOne(seg.bytes, false),
      (err: unknown) =>
        err instanceof WalCorruptError &&
        err.code === "WAL_CORRUPT" &&
        err.file === "seg.wal" &&
        err.offsetBytes === last &&
        err.message.includes(`seg.wal at offset ${last}`),
    );
    assert.throws(() => decodeOne(seg.bytes.subarray(0, last + 100), false), WalCorruptError);
  });

  it("refuses a flipped byte in the middle of the log, even in the last segment", () => {
    const seg = withLargeLast(16 * 1024);
    const victim = seg.offsets[3]!;
    seg.bytes[victim + 40] = seg.bytes[victim + 40]! ^ 0x10;
    assert.throws(
      () => decodeOne(seg.bytes),
      (err: unknown) =>
        err instanceof WalCorruptError && err.offsetBytes === victim && /CRC mismatch/.test(err.message),
    );
  });

  it("refuses a flipped byte in the last record when no sector of it is unwritten", () => {
    const seg = withLargeLast(16 * 1024);
    const last = seg.offsets.at(-1)!;
    seg.bytes[last + 700] = seg.bytes[last + 700]! ^ 1;
    assert.throws(() => decodeOne(seg.bytes), WalCorruptError);
  });

  it("refuses bad length words and misplaced records anywhere", () => {
    const cases: Array<[string, (b: Uint8Array, v: DataView, at: number) => void, RegExp]> = [
      ["padding word", (_b, v, at) => v.setUint32(at + 4, 3, true), /bad padding word/],
      ["short body", (_b, v, at) => v.setUint32(at, 4, true), /bad body length/],
      [
        "CRC record mid-segment",
        (b, _v, at) => {
          b[at + 12] = 4;
        },
        /CRC record out of place/,
      ],
      [
        "unknown type",
        (b, _v, at) => {
          b[at + 12] = 9;
        },
        /CRC mismatch|unknown record type/,
      ],
    ];
    for (const [name, damage, pattern] of cases) {
      const seg = buildSegment([metadataRec(), ...entriesRecs(1, 4)], 0, 8192);
      const at = seg.offsets[2]!;
      damage(seg.bytes, new DataView(seg.bytes.buffer), at);
      assert.throws(() => decodeOne(seg.bytes), pattern, name);
    }
    const noCrcFirst = buildSegment([metadataRec()]).bytes.subarray(CRC_FRAME_BYTES);
    assert.throws(() => decodeOne(noCrcFirst), /CRC record out of place/);
  });

  it("refuses data after the end of records in a segment that is not the last", () => {
    const seg = buildSegment([metadataRec(), ...entriesRecs(1, 2)], 0, 8192);
    seg.bytes[seg.endOffset + 600] = 1;
    assert.throws(() => decodeOne(seg.bytes, false), /data after the end of records/);
    const { result } = decodeOne(seg.bytes, true);
    assert.equal(result.endOffset, seg.endOffset, "in the last segment the leftovers are cut at open");
  });
});
