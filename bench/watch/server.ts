/**
 * The watch bench's etcd-ts server: the store double with the watch hub (test/watch/watchServer.ts) in a
 * process of its own, so that its RSS and CPU are its own. Prints "READY <host:port>" on stdout, stops
 * on SIGTERM. The watch path without raft and WAL (target `etcd-ts` runs the real member).
 *
 *   node --import tsx bench/watch/server.ts --fanout worker|inline|auto
 */
import type { FanoutMode } from "../../src/watch/types.js";
import { startWatchServer } from "../../test/watch/watchServer.js";

const fanoutArg = process.argv[process.argv.indexOf("--fanout") + 1] ?? "auto";
if (!["worker", "inline", "auto"].includes(fanoutArg)) {
  process.stderr.write(`--fanout must be worker, inline or auto, not ${fanoutArg}\n`);
  process.exit(2);
}
const running = await startWatchServer({ fanout: fanoutArg as FanoutMode });
process.stdout.write(`READY ${running.endpoint}\n`);
process.once("SIGTERM", () => {
  void running.stop().then(() => process.exit(0));
});
