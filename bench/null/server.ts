/**
 * Entry point of the no-op gRPC KV server (see nullServer.ts), run as its own process by the bench's
 * --compare-null so that its CPU time and RSS are its own. Prints `listening on host:port` once bound
 * (port 0 picks a free one) and stops on SIGTERM or SIGINT.
 *
 *   node --import tsx bench/null/server.ts --listen 127.0.0.1:0
 */
import { parseArgs } from "node:util";
import { startNullServer } from "./nullServer.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: "string" } }, strict: true });
  const listen = values.listen ?? "127.0.0.1:0";
  const match = /^(.+):(\d+)$/.exec(listen);
  if (match?.[1] === undefined || match[2] === undefined)
    throw new Error(`--listen must be host:port, got "${listen}"`);
  const server = await startNullServer(match[1], Number(match[2]));
  const stop = (): void => {
    void server.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  // The bench keeps our stdin open; when it ends, the bench is gone and so are we.
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write(`listening on ${server.endpoint}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`Error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
