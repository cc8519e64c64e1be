import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FRAME_HEADER_BYTES } from "../../src/wal/format.js";
import { decodeSegment, loadSegment, newDecodeState } from "../../src/wal/reader.js";
import type { WalSnapshotPosition } from "../../src/wal/types.js";
import { buildSegment, entryRec, hardStateRec, makeEntry, metadataRec, withTempDir } from "./support.js";

const FROM_START: WalSnapshotPosition = { index: 0, term: 0 };

/** decodeSegment's answer (or its error code and message) for these bytes. */
function decodeOutcome(bytes: Uint8Array, isLast: boolean): unknown {
  const state = newDecodeState(FROM_START);
  state.startFound = true;
  try {
    const result = decodeSegment(bytes, "seg.wal", isLast, state);
    return {
      result,
      entries: state.entries.map((e) => [e.index, e.term, Buffer.from(e.data).toString("hex")]),
      hardState: state.hardState,
      lastIndex: state.lastIndex,
    };
  } catch (error) {
    const e = error as Error & { code?: string };
    return { error: e.code, message: e.message };
  }
}

function lastNonZero(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i >= 0; i--) if (bytes[i] !== 0) return i + 1;
  return 0;
}

/**
 * Writes `file` and checks that loading it in pieces decodes exactly as the whole file does (last segment
 * or not), reports the true file size, and leaves out only zeros.
 */
async function assertSameAsWhole(dir: string, file: Uint8Array): Promise<{ loadedBytes: number }> {
  const path = join(dir, "seg.wal");
  await writeFile(path, file);
  const whole = new Uint8Array(await readFile(path));
  const loaded = await loadSegment(path);
  assert.equal(loaded.fileSizeBytes, whole.length);
  assert.deepEqual(Buffer.from(loaded.bytes), Buffer.from(whole.subarray(0, loaded.bytes.length)));
  assert.ok(lastNonZero(whole) <= loaded.bytes.length, "only zeros are left out");
  for (const isLast of [true, false]) {
    assert.deepEqual(decodeOutcome(loaded.bytes, isLast), decodeOutcome(whole, isLast));
  }
  return { loadedBytes: loaded.bytes.length };
}

function records(count: number, sizeBytes: number) {
  const specs = [metadataRec(), hardStateRec({ term: 1, vote: 0n, commit: 0 })];
  for (let i = 1; i <= count; i++) specs.push(entryRec(makeEntry(i, 1, sizeBytes)));
  return specs;
}

describe("loadSegment", () => {
  it("reads the records of a preallocated segment but not its zero tail", async () => {
    await withTempDir(async (dir) => {
      const segmentBytes = 8 * 1024 * 1024;
      const seg = buildSegment(records(20, 100), 0, segmentBytes);
      assert.equal(seg.bytes.length, segmentBytes);
      const { loadedBytes } = await assertSameAsWhole(dir, seg.bytes);
      // One read chunk at most beyond the records, never the whole preallocated file.
      assert.ok(loadedBytes < 2 * 1024 * 1024, `loaded ${loadedBytes} bytes`);
      assert.ok(loadedBytes >= seg.endOffset);
    });
  });

  it("follows records that span several read chunks", async () => {
    await withTempDir(async (dir) => {
      const seg = buildSegment(records(40, 300 * 1024), 0, 32 * 1024 * 1024);
      const { loadedBytes } = await assertSameAsWhole(dir, seg.bytes);
      assert.ok(loadedBytes < seg.bytes.length);
    });
  });

  it("decodes a segment without a zero tail (a cut, truncated segment) whole", async () => {
    await withTempDir(async (dir) => {
      const seg = buildSegment(records(10, 64));
      const { loadedBytes } = await assertSameAsWhole(dir, seg.bytes);
      assert.equal(loadedBytes, seg.bytes.length);
    });
  });

  it("gives the whole-file answer for torn, garbled and trailing-garbage files", async () => {
    await withTempDir(async (dir) => {
      const base = buildSegment(records(30, 2000), 0, 4 * 1024 * 1024);
      const recordsEnd = base.endOffset;
      const variants: Array<[string, (b: Uint8Array) => void]> = [
        ["garbage far after the end of records", (b) => b.fill(7, 3 * 1024 * 1024, 3 * 1024 * 1024 + 10)],
        ["garbage right after the end of records", (b) => b.fill(1, recordsEnd + 100, recordsEnd + 101)],
        [
          "a flipped byte inside the last record",
          (b) => (b[recordsEnd - 40] = (b[recordsEnd - 40] ?? 0) ^ 0xff),
        ],
        ["a torn last record (tail zeroed)", (b) => b.fill(0, recordsEnd - 1024, recordsEnd)],
        [
          "a length word past the end of the file",
          (b) => new DataView(b.buffer).setUint32(recordsEnd, 0x3fff_fff8, true),
        ],
        ["a bad length word", (b) => new DataView(b.buffer).setUint32(recordsEnd, 3, true)],
        [
          "a non-zero pad word after the records",
          (b) => new DataView(b.buffer).setUint32(recordsEnd + 4, 5, true),
        ],
        ["a damaged middle record", (b) => (b[base.offsets[10]! + FRAME_HEADER_BYTES + 20] = 0x55)],
      ];
      for (const [, damage] of variants) {
        const bytes = new Uint8Array(base.bytes);
        damage(bytes);
        await assertSameAsWhole(dir, bytes);
      }
      // Files cut short at every interesting place, including inside a frame header.
      for (const end of [0, 3, FRAME_HEADER_BYTES, base.offsets[5]! + 5, recordsEnd - 1, recordsEnd + 4]) {
        await assertSameAsWhole(dir, base.bytes.slice(0, end));
      }
    });
  });
});
