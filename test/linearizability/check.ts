import { parseArgs } from "node:util";
import { checkHistory, formatResult, STEP_BUDGET_PER_KEY_DEFAULT } from "./checker.js";
import { HistoryFormatError, readHistory } from "./history.js";

/**
 * Replays a recorded history through the checker:
 *
 *   node --import tsx test/linearizability/check.ts <history.jsonl> [--budget N] [--no-shrink] [--no-revisions]
 *
 * Exit codes: 0 linearizable, 1 violation, 2 undecided (a key's search ran out of budget: not a pass),
 * 3 the file is unreadable or malformed.
 */

const EXIT_LINEARIZABLE = 0;
const EXIT_VIOLATION = 1;
const EXIT_UNDECIDED = 2;
const EXIT_BAD_INPUT = 3;

function main(): number {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      budget: { type: "string" },
      "no-shrink": { type: "boolean", default: false },
      "no-revisions": { type: "boolean", default: false },
    },
  });
  const path = positionals[0];
  if (path === undefined || positionals.length > 1) {
    process.stderr.write(
      "usage: check.ts <history.jsonl> [--budget steps-per-key] [--no-shrink] [--no-revisions]\n",
    );
    return EXIT_BAD_INPUT;
  }
  const budget = values.budget === undefined ? STEP_BUDGET_PER_KEY_DEFAULT : Number(values.budget);
  if (!Number.isSafeInteger(budget) || budget <= 0) {
    process.stderr.write(`--budget must be a positive integer, got ${values.budget}\n`);
    return EXIT_BAD_INPUT;
  }
  let history: ReturnType<typeof readHistory>;
  try {
    history = readHistory(path);
  } catch (error) {
    if (error instanceof HistoryFormatError || (error as NodeJS.ErrnoException).code !== undefined) {
      process.stderr.write(`${path}: ${(error as Error).message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw error;
  }
  const { format: _format, version: _version, ...facts } = history.header;
  if (Object.keys(facts).length > 0) process.stdout.write(`run: ${JSON.stringify(facts)}\n`);
  const result = checkHistory(history.ops, {
    stepBudgetPerKey: budget,
    shrink: !values["no-shrink"],
    revisionOrder: !values["no-revisions"],
  });
  process.stdout.write(`${formatResult(result)}\n`);
  switch (result.verdict) {
    case "linearizable":
      return EXIT_LINEARIZABLE;
    case "violation":
      return EXIT_VIOLATION;
    case "undecided":
      return EXIT_UNDECIDED;
  }
}

process.exitCode = main();
