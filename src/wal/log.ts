import { writeSync } from "node:fs";

/**
 * The logger the WAL writes to. Shaped like pino's (`logger.warn(fields, msg)`) so the server can pass
 * its own; the default writes one JSON line per call to stderr.
 */
export interface WalLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export type WalLogLevel = "info" | "warn" | "error";

function writeLine(level: string, fields: Record<string, unknown>, msg: string): void {
  // Synchronous on purpose: the line must be out before a fatal exit.
  writeSync(2, `${JSON.stringify({ level, ts: new Date().toISOString(), msg, ...fields })}\n`);
}

export const stderrLogger: WalLogger = {
  info: (fields, msg) => writeLine("info", fields, msg),
  warn: (fields, msg) => writeLine("warn", fields, msg),
  error: (fields, msg) => writeLine("error", fields, msg),
};

/** Drops everything; for tests that assert on behaviour, not on log output. */
export const silentLogger: WalLogger = {
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** The default fatal handler's line: `{"level":"fatal","msg":...}` on stderr. */
export function writeFatalLine(msg: string, fields: Record<string, unknown>): void {
  writeLine("fatal", fields, msg);
}
