// Child process for crash.test.ts. Opens (or creates) the WAL in argv[2], prints "ready <lastIndex>",
// then appends forever with several appends in flight, entries of term argv[3], and prints
// "durable <index>" the moment each append is reported durable. The parent kills it with SIGKILL.
import { writeSync } from "node:fs";
import { silentLogger } from "../../src/wal/log.js";
import type { WalEntry } from "../../src/wal/types.js";
import { Wal, type WalOptions } from "../../src/wal/wal.js";
import { crashEntrySize, METADATA, makeEntry } from "./support.js";

const dir = process.argv[2]!;
const term = Number(process.argv[3]);
const APPENDS_IN_FLIGHT = 4;
const options: WalOptions = { segmentSizeBytes: 64 * 1024, logger: silentLogger };

const wal = (await Wal.exists(dir))
  ? (await Wal.open(dir, {}, options)).wal
  : await Wal.create(dir, METADATA, options);
/**
 * Synchronous writes to a pipe: once written, the parent sees the line even if we die next. The pipe is
 * non-blocking, so a full pipe (the parent busy) answers EAGAIN: wait a millisecond and write the rest.
 */
function writeLine(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      Atomics.wait(PAUSE, 0, 0, 1);
    }
  }
}
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

writeLine(1, `ready ${wal.lastIndex}\n`);

let next = wal.lastIndex + 1;
function appendOne(): void {
  const count = 1 + (next % 4);
  const entries: WalEntry[] = [];
  for (let k = 0; k < count; k++, next++) entries.push(makeEntry(next, term, crashEntrySize(next)));
  const last = next - 1;
  wal.append({ term, vote: 1n, commit: last - 1 }, entries).then(
    () => {
      writeLine(1, `durable ${last}\n`);
      appendOne();
    },
    (err: unknown) => {
      writeLine(2, `append failed: ${String(err)}\n`);
      process.exit(3);
    },
  );
}
for (let i = 0; i < APPENDS_IN_FLIGHT; i++) appendOne();
