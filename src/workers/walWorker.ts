// Entry of the WAL writer thread: see src/wal/writer.ts. Started by src/wal/wal.ts with spawnWorker.
import { parentPort, workerData } from "node:worker_threads";
import { assert } from "../assert.js";
import { faultyWalFs, nodeWalFs } from "../wal/fs.js";
import type { WalWorkerData, WalWorkerMessage } from "../wal/protocol.js";
import { WalWriter } from "../wal/writer.js";

assert(parentPort !== null, "walWorker runs as a worker thread");
const port = parentPort;
const data = workerData as WalWorkerData;
const post = (message: WalWorkerMessage): void => port.postMessage(message);
// A worker that dies mid-write, as the fault tests simulate; the main thread sees an unexpected exit.
const exitWorker = (): never => process.exit(70);
const fs = data.faults === null ? nodeWalFs : faultyWalFs(nodeWalFs, data.faults, exitWorker);

let writer: WalWriter | null = null;
try {
  writer = new WalWriter(data, fs, post);
} catch (err) {
  post({
    kind: "fatal",
    msg: `wal: opening the tail segment failed: ${(err as Error).message}`,
    errno: null,
    op: "open",
  });
}
if (writer !== null) await writer.run();
