/**
 * `npm run bench -- [workload] [options]`: etcd-ts's load generator. The default workload mirrors
 * `etcdctl check perf` (same loads, keys, values, pre-check, cleanup, criteria, verdict lines and exit
 * codes) and adds HDR latency histograms and an HTML report; see `--help` and bench/README lines in
 * the project README.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseConfig, usage } from "./load/config.js";
import { BenchError, ExitCode } from "./load/errors.js";
import { runBench, stopActiveTargets } from "./load/run.js";
import { timestampDirName } from "./report/write.js";

const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));

async function main(argv: readonly string[]): Promise<number> {
  const config = parseConfig(argv);
  if (config.help) {
    process.stdout.write(usage);
    return ExitCode.success;
  }
  const outDir = config.outDir ?? join(resultsDir, timestampDirName(new Date()));
  const outcome = await runBench(config, outDir, {
    out: (line) => {
      if (process.stdout.writable) process.stdout.write(`${line}\n`);
    },
    progress: process.stderr.isTTY ? (line) => process.stderr.write(line) : null,
  });
  return outcome.exitCode;
}

/** One line on stderr, never a stack trace (BENCH_DEBUG=1 prints it for a bench bug). */
function reportError(error: unknown): number {
  if (error instanceof BenchError) {
    process.stderr.write(`Error: ${error.message}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`Error: ${message.split("\n")[0]}\n`);
  if (process.env.BENCH_DEBUG === "1" && error instanceof Error && error.stack !== undefined) {
    process.stderr.write(`${error.stack}\n`);
  }
  return ExitCode.error;
}

// A reader that went away (`| head`) ends our output, not the run with a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
});

// Interrupted: stop the servers we started (etcd, the no-op server) before leaving, as etcdctl
// leaves nothing behind either.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void stopActiveTargets().finally(() => process.exit(130));
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Leftover grpc-js timers or child handles must not keep a finished run alive.
    setTimeout(() => process.exit(code), 500).unref();
  },
  (error: unknown) => {
    process.exitCode = reportError(error);
    setTimeout(() => process.exit(process.exitCode), 500).unref();
  },
);
