import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { assert } from "../../src/assert.js";

/**
 * A history of concurrent clients against a key-value store: each operation with its invoke and
 * complete times (process.hrtime, monotonic, nanoseconds since the recorder's origin) and its outcome.
 *
 * An operation whose outcome is unknown (a timeout, a lost connection, any error on a write) has
 * `completeNs: null` and `output: null`: it may have taken effect at any moment after its invoke, or never
 * (the standard "pending forever" treatment). A read that failed has no effect and is dropped by the
 * recorder rather than kept as pending.
 *
 * Keys are assumed absent when the history starts (workloads write under a fresh prefix), and there is no
 * delete: the model's only absent state is the initial one.
 */

/** Compare-and-set through a txn: compare the value (absent never matches, as etcd's value compare) or the mod revision (absent is 0). */
export type CasExpect = { value: string } | { modRevision: number };

export type OpInput =
  | { kind: "put"; key: string; value: string }
  | { kind: "get"; key: string }
  | { kind: "cas"; key: string; expect: CasExpect; value: string };

/** `revision` is the response header's revision: for a write its own revision, for a read the store revision it read at. */
export type OpOutput =
  | { kind: "put"; revision: number }
  /** value null and modRevision 0: the key was absent. */
  | { kind: "get"; value: string | null; modRevision: number; revision: number }
  | { kind: "cas"; succeeded: boolean; revision: number };

export interface HistoryOp {
  /** Unique within the history. */
  id: number;
  /** The client (process) that ran it; for reports only: the checker relies on times alone. */
  client: number;
  input: OpInput;
  invokeNs: number;
  /** null: outcome unknown (pending forever). */
  completeNs: number | null;
  output: OpOutput | null;
  /** Why the outcome is unknown (the error text), for reports. */
  error?: string;
}

export interface HistoryHeader {
  format: typeof HISTORY_FORMAT;
  version: typeof HISTORY_VERSION;
  /** Free-form facts about the run (seed, target, command line), kept for whoever replays it. */
  [fact: string]: unknown;
}

export const HISTORY_FORMAT = "etcd-ts-history";
export const HISTORY_VERSION = 1;
/** A recorder refuses to grow past this many operations (a run that big should be split). */
export const HISTORY_OPS_MAX = 2_000_000;

/** A history file that does not parse; `line` is 1-based. */
export class HistoryFormatError extends Error {
  readonly code = "ERR_HISTORY_FORMAT";
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`history line ${line}: ${message}`);
  }
}

/**
 * Records operations as clients run them. One recorder per run; `now()` is monotonic and shared by all
 * clients, so invoke/complete times of different clients are comparable.
 */
export class HistoryRecorder {
  private readonly originNs = process.hrtime.bigint();
  private readonly recorded: HistoryOp[] = [];
  /** Ops invoked and not yet answered, by id. */
  private readonly open = new Map<number, HistoryOp>();
  private nextId = 1;

  now(): number {
    const ns = process.hrtime.bigint() - this.originNs;
    assert(ns < 2n ** 53n, "history clock past 2^53 ns");
    return Number(ns);
  }

  /** Marks the invocation of `input` by `client`; returns the op id to complete or fail. */
  invoke(client: number, input: OpInput): number {
    assert(
      this.recorded.length + this.open.size < HISTORY_OPS_MAX,
      `history longer than ${HISTORY_OPS_MAX} ops`,
    );
    const op: HistoryOp = {
      id: this.nextId++,
      client,
      input,
      invokeNs: this.now(),
      completeNs: null,
      output: null,
    };
    this.open.set(op.id, op);
    return op.id;
  }

  complete(id: number, output: OpOutput): void {
    const op = this.take(id);
    assert(op.input.kind === output.kind, `op ${id} is a ${op.input.kind}, answered as a ${output.kind}`);
    op.completeNs = this.now();
    op.output = output;
    this.recorded.push(op);
  }

  /** The op got no answer: a read is dropped (no effect), a write stays pending forever. */
  fail(id: number, error: string): void {
    const op = this.take(id);
    if (op.input.kind === "get") return;
    op.error = error;
    this.recorded.push(op);
  }

  /** Every op so far, plus the still-open ones as pending; ordered by invoke time. */
  ops(): HistoryOp[] {
    const all = [...this.recorded];
    for (const op of this.open.values())
      if (op.input.kind !== "get") all.push({ ...op, error: "still open" });
    return all.sort((a, b) => a.invokeNs - b.invokeNs || a.id - b.id);
  }

  private take(id: number): HistoryOp {
    const op = this.open.get(id);
    assert(op !== undefined, `op ${id} is not open`);
    this.open.delete(id);
    return op;
  }
}

/** Writes a history as JSON lines: one header line, then one op per line. */
export function writeHistory(
  path: string,
  ops: readonly HistoryOp[],
  facts: Record<string, unknown> = {},
): void {
  const header: HistoryHeader = { ...facts, format: HISTORY_FORMAT, version: HISTORY_VERSION };
  writeFileSync(path, `${JSON.stringify(header)}\n`);
  // In slices, so a long history never becomes one giant string.
  const SLICE_OPS = 10_000;
  for (let start = 0; start < ops.length; start += SLICE_OPS) {
    const lines = ops.slice(start, start + SLICE_OPS).map((op) => `${JSON.stringify(op)}\n`);
    appendFileSync(path, lines.join(""));
  }
}

export function readHistory(path: string): { header: HistoryHeader; ops: HistoryOp[] } {
  return parseHistory(readFileSync(path, "utf8"));
}

export function parseHistory(text: string): { header: HistoryHeader; ops: HistoryOp[] } {
  const lines = text.split("\n");
  let header: HistoryHeader | null = null;
  const ops: HistoryOp[] = [];
  const ids = new Set<number>();
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === "") continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      throw new HistoryFormatError(i + 1, `not JSON (${(error as Error).message})`);
    }
    if (header === null) {
      header = parseHeader(parsed, i + 1);
      continue;
    }
    const op = parseOp(parsed, i + 1);
    if (ids.has(op.id)) throw new HistoryFormatError(i + 1, `duplicate op id ${op.id}`);
    ids.add(op.id);
    ops.push(op);
  }
  if (header === null) throw new HistoryFormatError(1, "empty history (no header line)");
  return { header, ops };
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseHeader(value: unknown, line: number): HistoryHeader {
  if (!isObject(value) || value.format !== HISTORY_FORMAT) {
    throw new HistoryFormatError(line, `the first line must be a header with "format":"${HISTORY_FORMAT}"`);
  }
  if (value.version !== HISTORY_VERSION) {
    throw new HistoryFormatError(line, `unsupported history version ${String(value.version)}`);
  }
  return value as HistoryHeader;
}

function field<T>(object: Json, name: string, check: (v: unknown) => v is T, line: number, what: string): T {
  const value = object[name];
  if (!check(value))
    throw new HistoryFormatError(line, `"${name}" must be ${what}, got ${JSON.stringify(value)}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === "string";
const isJsonObject = (v: unknown): v is Json => isObject(v);

function parseOp(value: unknown, line: number): HistoryOp {
  if (!isObject(value)) throw new HistoryFormatError(line, "an op must be a JSON object");
  const id = field(value, "id", isCount, line, "a non-negative integer");
  const client = field(value, "client", isCount, line, "a non-negative integer");
  const invokeNs = field(value, "invokeNs", isCount, line, "a non-negative integer");
  const completeNs =
    value.completeNs === null ? null : field(value, "completeNs", isCount, line, "an integer or null");
  const input = parseInput(field(value, "input", isJsonObject, line, "an object"), line);
  const output =
    value.output === null
      ? null
      : parseOutput(field(value, "output", isJsonObject, line, "an object or null"), line);
  if ((completeNs === null) !== (output === null)) {
    throw new HistoryFormatError(line, "completeNs and output are both null (pending) or both set");
  }
  if (completeNs !== null && completeNs < invokeNs)
    throw new HistoryFormatError(line, "completes before it is invoked");
  if (output !== null && output.kind !== input.kind) {
    throw new HistoryFormatError(line, `a ${input.kind} answered as a ${output.kind}`);
  }
  if (output === null && input.kind === "get")
    throw new HistoryFormatError(line, "a pending get (drop it instead)");
  const op: HistoryOp = { id, client, input, invokeNs, completeNs, output };
  if (typeof value.error === "string") op.error = value.error;
  return op;
}

function parseInput(value: Json, line: number): OpInput {
  const key = field(value, "key", isString, line, "a string");
  switch (value.kind) {
    case "put":
      return { kind: "put", key, value: field(value, "value", isString, line, "a string") };
    case "get":
      return { kind: "get", key };
    case "cas": {
      const expect = field(value, "expect", isJsonObject, line, "an object");
      const newValue = field(value, "value", isString, line, "a string");
      if (typeof expect.value === "string")
        return { kind: "cas", key, expect: { value: expect.value }, value: newValue };
      const modRevision = field(expect, "modRevision", isCount, line, "a non-negative integer");
      return { kind: "cas", key, expect: { modRevision }, value: newValue };
    }
    default:
      throw new HistoryFormatError(line, `unknown op kind ${JSON.stringify(value.kind)}`);
  }
}

function parseOutput(value: Json, line: number): OpOutput {
  const revision = field(value, "revision", isCount, line, "a non-negative integer");
  switch (value.kind) {
    case "put":
      return { kind: "put", revision };
    case "get":
      return {
        kind: "get",
        value: field(value, "value", isNullableString, line, "a string or null"),
        modRevision: field(value, "modRevision", isCount, line, "a non-negative integer"),
        revision,
      };
    case "cas":
      return { kind: "cas", succeeded: field(value, "succeeded", isBoolean, line, "a boolean"), revision };
    default:
      throw new HistoryFormatError(line, `unknown output kind ${JSON.stringify(value.kind)}`);
  }
}
