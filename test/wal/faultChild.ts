// Child process for faults.test.ts: the third fdatasync fails, and the default fatal handler must log
// one fatal line and exit with code 1. Prints "durable N" for each append the WAL reports durable.
import { writeSync } from "node:fs";
import { silentLogger } from "../../src/wal/log.js";
import { Wal } from "../../src/wal/wal.js";
import { METADATA, makeEntry } from "./support.js";

const dir = process.argv[2]!;
const options = { segmentSizeBytes: 1 << 20, logger: silentLogger };
await (await Wal.create(dir, METADATA, options)).close();
const { wal } = await Wal.open(dir, {}, { ...options, faults: { eioOnFdatasyncAt: 3 } });
for (let i = 1; i <= 3; i++) {
  await wal.append(null, [makeEntry(i)]);
  writeSync(1, `durable ${i}\n`);
}
// Not reached: the third append's fdatasync fails and the process exits.
writeSync(1, "still running\n");
