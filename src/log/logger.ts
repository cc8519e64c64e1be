/**
 * The server logger: JSON lines in etcd's zap shape,
 *   {"level":"info","ts":"2026-11-23T18:17:49.322Z","caller":"etcdserver","msg":"...", ...fields}
 * written synchronously (a member that is about to exit must not lose its last line) to stderr by
 * default, or to etcd's --log-outputs targets. Built on pino; one child per module names the
 * "caller" (etcd prints file:line; a module name costs nothing and says the same thing).
 *
 * A disabled level costs one integer comparison: pass fields as a function to also skip building
 * them (`log.debug("applied entry", () => ({ index }))`).
 */
import pino from "pino";
import type { ZapLevel } from "../config/types.js";
import { formatZapTime } from "./format.js";

/** Values zap would print: strings, numbers, bools, bigint ids, lists; Errors print their message (zap.Error). */
export type LogValue =
  | string
  | number
  | boolean
  | bigint
  | null
  | Error
  | readonly LogValue[]
  | { readonly [key: string]: LogValue };
export type LogFields = Readonly<Record<string, LogValue>>;
export type LazyFields = LogFields | (() => LogFields);

/** zap's level order; pino needs numbers. dpanic/panic/fatal only log here: exiting is the caller's decision. */
const LEVEL_VALUE: Readonly<Record<ZapLevel, number>> = {
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  dpanic: 55,
  panic: 58,
  fatal: 60,
};

export interface Logger {
  /** The module name printed as "caller". */
  readonly caller: string;
  isEnabled(level: ZapLevel): boolean;
  log(level: ZapLevel, msg: string, fields?: LazyFields): void;
  debug(msg: string, fields?: LazyFields): void;
  info(msg: string, fields?: LazyFields): void;
  warn(msg: string, fields?: LazyFields): void;
  error(msg: string, fields?: LazyFields): void;
  panic(msg: string, fields?: LazyFields): void;
  fatal(msg: string, fields?: LazyFields): void;
  /** A logger for one module; shares the level and outputs. */
  child(caller: string): Logger;
  /** Changes the level of this logger and all its relatives (etcd's PUT /config/local/log). */
  setLevel(level: ZapLevel): void;
  getLevel(): ZapLevel;
}

/** Where lines go: etcd's --log-outputs values ("default" and "stderr" are stderr, else a file appended to). */
export interface LoggerOptions {
  readonly level?: ZapLevel;
  readonly outputs?: readonly string[];
  /** The root module name. */
  readonly caller?: string;
  /** Tests: write here instead of the outputs. Must accept whole lines. */
  readonly destination?: { write(line: string): unknown };
  /** Tests: the clock for "ts". */
  readonly nowMs?: () => number;
}

type PinoLogger = pino.Logger<keyof typeof LEVEL_VALUE, boolean>;

/** One per root logger, shared by its children. */
interface SharedState {
  threshold: number;
  level: ZapLevel;
  /** The pino logger without a caller binding; every module's logger is its direct child. */
  readonly root: PinoLogger;
}

function destinationFor(output: string): pino.DestinationStream {
  switch (output) {
    case "default":
    case "stderr":
    // journald is not built; its lines go to stderr, which systemd captures anyway.
    case "systemd/journal":
      return pino.destination({ dest: 2, sync: true });
    case "stdout":
      return pino.destination({ dest: 1, sync: true });
    default:
      return pino.destination({ dest: output, sync: true, append: true, mkdir: false });
  }
}

function streamFor(options: LoggerOptions): pino.DestinationStream {
  if (options.destination !== undefined) return options.destination as pino.DestinationStream;
  const outputs = options.outputs ?? ["default"];
  if (outputs.length === 1) return destinationFor(outputs[0]!);
  return pino.multistream(
    outputs.map((output) => ({ stream: destinationFor(output), level: "debug" as const })),
    { levels: LEVEL_VALUE, dedupe: false },
  );
}

/** zap prints an error field as its message; everything else passes through. */
function toJsonValue(value: LogValue): unknown {
  if (value instanceof Error) return value.message;
  if (Array.isArray(value)) return value.map(toJsonValue);
  return value;
}

class ZapShapedLogger implements Logger {
  constructor(
    private readonly pinoLogger: PinoLogger,
    private readonly shared: SharedState,
    readonly caller: string,
  ) {}

  isEnabled(level: ZapLevel): boolean {
    return LEVEL_VALUE[level] >= this.shared.threshold;
  }

  log(level: ZapLevel, msg: string, fields?: LazyFields): void {
    if (LEVEL_VALUE[level] < this.shared.threshold) return;
    // "msg" goes first in the object so pino writes it right after "caller", where zap puts it.
    const line: Record<string, unknown> = { msg };
    const resolved = typeof fields === "function" ? fields() : fields;
    if (resolved !== undefined) {
      for (const key of Object.keys(resolved)) line[key] = toJsonValue(resolved[key]!);
    }
    this.pinoLogger[level](line);
  }

  debug(msg: string, fields?: LazyFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LazyFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LazyFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LazyFields): void {
    this.log("error", msg, fields);
  }
  panic(msg: string, fields?: LazyFields): void {
    this.log("panic", msg, fields);
  }
  fatal(msg: string, fields?: LazyFields): void {
    this.log("fatal", msg, fields);
  }

  child(caller: string): Logger {
    return new ZapShapedLogger(this.shared.root.child({ caller }), this.shared, caller);
  }

  setLevel(level: ZapLevel): void {
    this.shared.level = level;
    this.shared.threshold = LEVEL_VALUE[level];
  }

  getLevel(): ZapLevel {
    return this.shared.level;
  }
}

/** The root logger; create one per process (or per member in tests) and hand out children. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const nowMs = options.nowMs ?? Date.now;
  const root: PinoLogger = pino(
    {
      // pino filters nothing; the shared threshold does, so setLevel reaches every child at once.
      level: "debug",
      customLevels: LEVEL_VALUE,
      useOnlyCustomLevels: true,
      base: null,
      messageKey: "msg",
      timestamp: () => `,"ts":"${formatZapTime(nowMs())}"`,
      formatters: { level: (label: string) => ({ level: label }) },
    },
    streamFor(options),
  );
  const shared: SharedState = { threshold: LEVEL_VALUE[level], level, root };
  const caller = options.caller ?? "etcdmain";
  return new ZapShapedLogger(root.child({ caller }), shared, caller);
}
