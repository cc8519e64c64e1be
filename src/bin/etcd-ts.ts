#!/usr/bin/env node
/**
 * `etcd-ts [flags]`: etcd 3.4.23's command line (flags, ETCD_* variables, --config-file) starting one
 * member. Exit codes as etcd's: 2 for flag syntax errors (with the usage text), 1 for a configuration
 * etcd would refuse or a start that fails, 0 after a clean shutdown on SIGTERM/SIGINT.
 *
 * Signals: the first SIGTERM or SIGINT logs etcd's "received signal; shutting down", stops accepting
 * clients, lets in-flight requests finish, flushes the WAL and the backend, and exits 0. (etcd 3.4 ends
 * by re-raising the signal, so a shell sees 143 or 130 from it; etcd-ts reports the clean shutdown as 0.)
 * A second signal ends the process at once by that signal (a shell sees 143 or 130, as from etcd). A
 * signal that arrives before the member is up does the same: nothing is lost, the WAL and the backend
 * are crash-safe.
 *
 * Exits that cannot be clean (a second signal, an uncaught exception, a failed shutdown) never go through
 * process.exit(): it waits for the worker threads and lmdb's exit cleanup, which block forever while the
 * backend writer is inside a batch transaction. A signal to ourselves cannot block.
 *
 * Runs from source with `node --import tsx src/bin/etcd-ts.ts`, or as dist/src/bin/etcd-ts.js once built.
 */
import { ConfigError } from "../config/errors.js";
import { type Environment, parseConfig } from "../config/parse.js";
import type { ConfigNote } from "../config/types.js";
import { createLogger, type LogFields, type Logger } from "../log/logger.js";
import { type Member, startMemberWithConfig } from "../server/member.js";

/** Go's os.Signal names, which etcd prints in "received signal; shutting down". */
const SIGNAL_NAMES: Readonly<Record<"SIGTERM" | "SIGINT", string>> = {
  SIGTERM: "terminated",
  SIGINT: "interrupt",
};
type HandledSignal = keyof typeof SIGNAL_NAMES;
const HANDLED_SIGNALS: readonly HandledSignal[] = ["SIGTERM", "SIGINT"];

/** Ends the process as `signal`'s default action would (etcd's setDflSignal + kill). */
function dieBySignal(signal: HandledSignal | "SIGKILL"): never {
  for (const handled of HANDLED_SIGNALS) process.removeAllListeners(handled);
  process.kill(process.pid, signal);
  // The signal is delivered before kill() returns to a single-threaded sender; this is never reached.
  throw new Error(`still alive after ${signal}`);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function logNotes(logger: Logger, notes: readonly ConfigNote[]): void {
  for (const note of notes) logger.log(note.level, note.msg, note.fields as LogFields);
}

/** Parses the command line; prints help/version/errors as etcd does and returns null when done. */
function configure(argv: readonly string[], env: Environment) {
  try {
    const parsed = parseConfig(argv, env);
    switch (parsed.kind) {
      case "version":
        process.stdout.write(parsed.text);
        return null;
      case "help":
        process.stderr.write(parsed.usage);
        process.stdout.write(parsed.text);
        return null;
      case "run":
        return parsed;
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.exitCode = error.exitCode;
    if (error.printUsage) {
      // Go's flag package: the error, then the usage text, both plain on stderr.
      process.stderr.write(`${error.message}\n`);
      process.stderr.write(parseHelpUsage());
      return null;
    }
    // The logging flags may be what failed, so these lines use the default logger (stderr).
    const logger = createLogger();
    logNotes(logger, error.notes);
    logger.warn("failed to verify flags", { error: error.message });
    if (error.message.startsWith("--advertise-client-urls is required")) {
      logger.warn("advertise client URLs are not set", { error: error.message });
    }
    return null;
  }
}

function parseHelpUsage(): string {
  const parsed = parseConfig(["--help"], {});
  return parsed.kind === "help" ? parsed.usage : "";
}

async function main(): Promise<void> {
  const parsed = configure(process.argv.slice(2), process.env);
  if (parsed === null) return;
  const { config, notes } = parsed;
  const logger = createLogger({ level: config.logLevel, outputs: config.logOutputs });

  let member: Member | null = null;
  let shuttingDown = false;
  const onSignal = (signal: HandledSignal): void => {
    if (member === null || shuttingDown) {
      // Before the member is up, or a second signal: go now, as the signal's default action would.
      if (shuttingDown) {
        logger.warn("received a second signal; exiting at once", { signal: SIGNAL_NAMES[signal] });
      }
      dieBySignal(signal);
    }
    shuttingDown = true;
    logger.info("received signal; shutting down", { signal: SIGNAL_NAMES[signal] });
    member.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.fatal("failed to shut down cleanly", { error: errorText(error) });
        dieBySignal("SIGKILL");
      },
    );
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, () => onSignal(signal));
  process.on("uncaughtException", (error) => {
    try {
      logger.fatal("etcd-ts stopped on an unexpected error", { error: error.stack ?? error.message });
    } catch {
      // stderr itself may be what failed (EPIPE once whoever read it is gone); stop all the same.
    }
    dieBySignal("SIGKILL");
  });

  try {
    member = await startMemberWithConfig(config, {
      logger,
      notes,
      // A member removed from its cluster stops; etcd exits with status 0 then.
      onRemoved: () => {
        if (shuttingDown || member === null) return;
        shuttingDown = true;
        member.close().then(
          () => process.exit(0),
          () => dieBySignal("SIGKILL"),
        );
      },
    });
  } catch (error) {
    // etcd's wording for a start that fails (etcdmain/etcd.go): a warning, then the fatal line.
    logger.warn("failed to start etcd", { error: errorText(error) });
    logger.fatal("discovery failed", { error: errorText(error) });
    // startMember closed what it had opened before rejecting, so a plain exit cannot block here.
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  createLogger().fatal("etcd-ts failed", { error: errorText(error) });
  process.exit(1);
});
