import type { HistoryOp, OpInput, OpOutput } from "./history.js";
import { describeState } from "./model.js";
import { checkRevisions, type RevisionProblem } from "./revisions.js";
import { explain, searchKey } from "./search.js";
import { shrinkViolation } from "./shrink.js";

/**
 * The linearizability checker: a history of put / get / compare-and-set ops on many keys is split by key
 * (P-compositionality), each key's ops are searched (search.ts), a violation is shrunk to a short
 * offending sub-history (shrink.ts), and the revisions of all ops are checked across keys against real
 * time (revisions.ts). A key whose search runs out of budget makes the verdict "undecided": reported,
 * never a pass.
 */

export interface CheckOptions {
  /** Search iterations allowed per key before the key is "undecided". */
  stepBudgetPerKey?: number;
  /** Check revisions across keys (revisions.ts). Default true. */
  revisionOrder?: boolean;
  /** Shrink each violation to a short sub-history. Default true. */
  shrink?: boolean;
  /** Searches the shrinking of one violation may run. */
  shrinkChecksMax?: number;
}

export const STEP_BUDGET_PER_KEY_DEFAULT = 20_000_000;
const SHRINK_CHECKS_MAX_DEFAULT = 3_000;
/** A shrinking search gets a smaller budget than the main one: sub-histories are small. */
const SHRINK_STEP_BUDGET = 2_000_000;
/** Steps for explaining a shrunk sub-history (a handful of ops). */
const EXPLAIN_STEP_BUDGET = 1_000_000;

export interface KeyViolation {
  key: string;
  /** How many ops the key has in the whole history. */
  keyOps: number;
  /** The offending sub-history, by invoke time. */
  ops: HistoryOp[];
  /** True when no single op could be removed from `ops` (see shrink.ts). */
  minimal: boolean;
  /** Why it is illegal: the longest legal order of `ops` and what could not follow it. */
  explanation: string;
}

export interface UndecidedKey {
  key: string;
  ops: number;
  steps: number;
}

export interface CheckResult {
  verdict: "linearizable" | "violation" | "undecided";
  ops: number;
  pending: number;
  keys: number;
  violations: KeyViolation[];
  revisionProblems: RevisionProblem[];
  undecided: UndecidedKey[];
  /** Search iterations in total (not counting shrinking). */
  steps: number;
  elapsedMs: number;
}

export function checkHistory(history: readonly HistoryOp[], options: CheckOptions = {}): CheckResult {
  const startedMs = performance.now();
  const budget = options.stepBudgetPerKey ?? STEP_BUDGET_PER_KEY_DEFAULT;
  const byKey = partitionByKey(history);
  const violations: KeyViolation[] = [];
  const undecided: UndecidedKey[] = [];
  let steps = 0;
  for (const [key, ops] of byKey) {
    const result = searchKey(ops, budget);
    steps += result.steps;
    if (result.kind === "undecided") undecided.push({ key, ops: ops.length, steps: result.steps });
    if (result.kind === "violation") violations.push(describeViolation(key, ops, options));
  }
  const revisionProblems = options.revisionOrder === false ? [] : checkRevisions(history);
  const verdict =
    violations.length > 0 || revisionProblems.length > 0
      ? "violation"
      : undecided.length > 0
        ? "undecided"
        : "linearizable";
  return {
    verdict,
    ops: history.length,
    pending: history.filter((op) => op.completeNs === null).length,
    keys: byKey.size,
    violations,
    revisionProblems,
    undecided,
    steps,
    elapsedMs: performance.now() - startedMs,
  };
}

/** Ops per key, each list in invoke order. */
export function partitionByKey(history: readonly HistoryOp[]): Map<string, HistoryOp[]> {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }
  for (const list of byKey.values()) list.sort((a, b) => a.invokeNs - b.invokeNs || a.id - b.id);
  return byKey;
}

function describeViolation(key: string, ops: HistoryOp[], options: CheckOptions): KeyViolation {
  const shrunk =
    options.shrink === false
      ? { ops, minimal: false }
      : shrinkViolation(ops, {
          checksMax: options.shrinkChecksMax ?? SHRINK_CHECKS_MAX_DEFAULT,
          stepBudget: SHRINK_STEP_BUDGET,
        });
  const sorted = [...shrunk.ops].sort((a, b) => a.invokeNs - b.invokeNs || a.id - b.id);
  return { key, keyOps: ops.length, ops: sorted, minimal: shrunk.minimal, explanation: explainOps(sorted) };
}

function explainOps(ops: readonly HistoryOp[]): string {
  if (ops.length > 200) return "(sub-history too long to explain step by step)";
  const { result, deepest } = explain(ops, EXPLAIN_STEP_BUDGET);
  if (result.kind === "undecided") return "(explanation ran out of budget)";
  const order = deepest.order.map(
    ({ op, state }) => `op ${(ops[op] as HistoryOp).id} -> ${describeState(state)}`,
  );
  const stuck = deepest.unplaced.map((i) => `op ${(ops[i] as HistoryOp).id}`);
  const last = deepest.order[deepest.order.length - 1];
  const state = last === undefined ? "absent" : describeState(last.state);
  return (
    `longest legal order: ${order.length === 0 ? "(none)" : order.join(", ")}; ` +
    `then ${stuck.join(", ")} cannot take effect from ${state} before ${stuck.length === 1 ? "its" : "their"} return, ` +
    `nor can any other order place them`
  );
}

// ---------------------------------------------------------------------------------------------------
// Reports

export function formatInput(input: OpInput): string {
  switch (input.kind) {
    case "put":
      return `put ${JSON.stringify(input.value)}`;
    case "get":
      return "get";
    case "cas": {
      const expect =
        "value" in input.expect
          ? `value=${JSON.stringify(input.expect.value)}`
          : `mod=${input.expect.modRevision}`;
      return `cas ${expect} -> ${JSON.stringify(input.value)}`;
    }
  }
}

export function formatOutput(output: OpOutput | null, error?: string): string {
  if (output === null) return `unknown (${error ?? "no answer"})`;
  switch (output.kind) {
    case "put":
      return `ok rev ${output.revision}`;
    case "get":
      return `${output.value === null ? "absent" : `${JSON.stringify(output.value)}@${output.modRevision}`} (rev ${output.revision})`;
    case "cas":
      return `${output.succeeded ? "succeeded" : "failed"} rev ${output.revision}`;
  }
}

function ms(ns: number): string {
  return (ns / 1e6).toFixed(3).padStart(11);
}

export function formatOp(op: HistoryOp): string {
  const complete = op.completeNs === null ? "        ...  " : ms(op.completeNs);
  return `  op ${String(op.id).padStart(6)}  client ${String(op.client).padStart(3)}  [${ms(op.invokeNs)} ms -> ${complete} ms]  ${op.input.key}  ${formatInput(op.input).padEnd(40)} => ${formatOutput(op.output, op.error)}`;
}

export function formatResult(result: CheckResult): string {
  const lines = [
    `${result.verdict.toUpperCase()}: ${result.ops} ops (${result.pending} with unknown outcome) on ${result.keys} keys, ` +
      `${result.steps} search steps, ${result.elapsedMs.toFixed(0)} ms`,
  ];
  for (const violation of result.violations) {
    lines.push(
      `key ${JSON.stringify(violation.key)} is not linearizable; ${violation.minimal ? "shortest" : "a short (budget ran out before minimal)"} offending sub-history: ${violation.ops.length} of the key's ${violation.keyOps} ops:`,
    );
    for (const op of violation.ops) lines.push(formatOp(op));
    lines.push(`  ${violation.explanation}`);
  }
  for (const problem of result.revisionProblems) {
    lines.push(`revision order: ${problem.message}`);
    for (const op of problem.ops) lines.push(formatOp(op));
  }
  for (const key of result.undecided) {
    lines.push(
      `key ${JSON.stringify(key.key)} UNDECIDED: ${key.ops} ops, search budget of ${key.steps - 1} steps used up`,
    );
  }
  return lines.join("\n");
}
