/**
 * The pass/fail criteria of `etcdctl check perf` (etcdctl/ctlv3/command/check.go in etcd 3.4.23),
 * with its exact thresholds and output lines, as a pure function of the run's statistics.
 */

/** Throughput must exceed this share of the load's target rate. */
export const throughputRatioMin = 0.9;
/** The slowest successful request must not exceed this, in seconds. */
export const slowestSecondsMax = 0.5;
/** The population standard deviation of successful latencies must not exceed this, in seconds. */
export const stddevSecondsMax = 0.1;

export interface VerdictInput {
  /** Successful requests per second of the stats collector's wall time (etcd's report.Stats.RPS). */
  requestsPerSecond: number;
  slowestSeconds: number;
  stddevSeconds: number;
  /** Error text -> count, over failed requests only. */
  errors: ReadonlyMap<string, number>;
}

export interface Verdict {
  lines: string[];
  pass: boolean;
}

/** Go's `%f`: six decimals, and NaN/Inf spelled as Go spells them. */
export function formatGoFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return value.toFixed(6);
}

/** Go's `int(x) + 1` for the writes/s figure (int() truncates toward zero). */
function goIntPlusOne(value: number): number {
  return (Number.isFinite(value) ? Math.trunc(value) : 0) + 1;
}

/**
 * The verdict lines in etcdctl's order. etcdctl prints the error lines in Go map order (random);
 * we print them by count, most frequent first, so runs compare line by line.
 */
export function checkPerfVerdict(input: VerdictInput, targetPermitsPerSecond: number): Verdict {
  const lines: string[] = [];
  let pass = true;
  if (input.errors.size !== 0) {
    lines.push("FAIL: too many errors");
    const sorted = [...input.errors].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [message, count] of sorted) lines.push(`FAIL: ERROR(${message}) -> ${count}`);
    pass = false;
  }
  const writesPerSecond = goIntPlusOne(input.requestsPerSecond);
  if (input.requestsPerSecond / targetPermitsPerSecond <= throughputRatioMin) {
    lines.push(`FAIL: Throughput too low: ${writesPerSecond} writes/s`);
    pass = false;
  } else {
    lines.push(`PASS: Throughput is ${writesPerSecond} writes/s`);
  }
  if (input.slowestSeconds > slowestSecondsMax) {
    lines.push(`Slowest request took too long: ${formatGoFloat(input.slowestSeconds)}s`);
    pass = false;
  } else {
    lines.push(`PASS: Slowest request took ${formatGoFloat(input.slowestSeconds)}s`);
  }
  if (input.stddevSeconds > stddevSecondsMax) {
    lines.push(`Stddev too high: ${formatGoFloat(input.stddevSeconds)}s`);
    pass = false;
  } else {
    lines.push(`PASS: Stddev is ${formatGoFloat(input.stddevSeconds)}s`);
  }
  lines.push(pass ? "PASS" : "FAIL");
  return { lines, pass };
}
