import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkPerfVerdict, formatGoFloat, type VerdictInput } from "../../bench/report/verdict.js";

function input(overrides: Partial<VerdictInput>): VerdictInput {
  return {
    requestsPerSecond: 150.2,
    slowestSeconds: 0.0135,
    stddevSeconds: 0.00023,
    errors: new Map(),
    ...overrides,
  };
}

describe("check perf verdict lines (etcdctl 3.4.23 check.go)", () => {
  const cases: Array<{ name: string; input: VerdictInput; rate: number; lines: string[]; pass: boolean }> = [
    {
      name: "the observed load s pass",
      input: input({}),
      rate: 150,
      lines: [
        "PASS: Throughput is 151 writes/s",
        "PASS: Slowest request took 0.013500s",
        "PASS: Stddev is 0.000230s",
        "PASS",
      ],
      pass: true,
    },
    {
      name: "throughput at exactly 90% of the rate fails (<= 0.9)",
      input: input({ requestsPerSecond: 135 }),
      rate: 150,
      lines: [
        "FAIL: Throughput too low: 136 writes/s",
        "PASS: Slowest request took 0.013500s",
        "PASS: Stddev is 0.000230s",
        "FAIL",
      ],
      pass: false,
    },
    {
      name: "throughput just above 90% passes; the figure is int(RPS)+1",
      input: input({ requestsPerSecond: 7200.4 }),
      rate: 8000,
      lines: [
        "PASS: Throughput is 7201 writes/s",
        "PASS: Slowest request took 0.013500s",
        "PASS: Stddev is 0.000230s",
        "PASS",
      ],
      pass: true,
    },
    {
      name: "slowest and stddev over their limits, printed without a FAIL prefix",
      input: input({ requestsPerSecond: 5301.7, slowestSeconds: 0.7123456, stddevSeconds: 0.1000001 }),
      rate: 8000,
      lines: [
        "FAIL: Throughput too low: 5302 writes/s",
        "Slowest request took too long: 0.712346s",
        "Stddev too high: 0.100000s",
        "FAIL",
      ],
      pass: false,
    },
    {
      name: "slowest exactly 0.5 s and stddev exactly 0.1 s still pass (strict >)",
      input: input({ slowestSeconds: 0.5, stddevSeconds: 0.1 }),
      rate: 150,
      lines: [
        "PASS: Throughput is 151 writes/s",
        "PASS: Slowest request took 0.500000s",
        "PASS: Stddev is 0.100000s",
        "PASS",
      ],
      pass: true,
    },
    {
      name: "errors come first, most frequent first",
      input: input({
        errors: new Map([
          ["etcdserver: request timed out", 2],
          ["etcdserver: too many requests", 7],
        ]),
      }),
      rate: 150,
      lines: [
        "FAIL: too many errors",
        "FAIL: ERROR(etcdserver: too many requests) -> 7",
        "FAIL: ERROR(etcdserver: request timed out) -> 2",
        "PASS: Throughput is 151 writes/s",
        "PASS: Slowest request took 0.013500s",
        "PASS: Stddev is 0.000230s",
        "FAIL",
      ],
      pass: false,
    },
    {
      name: "no successes at all: Go's NaN stddev passes its comparison, throughput does not",
      input: input({
        requestsPerSecond: 0,
        slowestSeconds: 0,
        stddevSeconds: Number.NaN,
        errors: new Map([["x", 1]]),
      }),
      rate: 150,
      lines: [
        "FAIL: too many errors",
        "FAIL: ERROR(x) -> 1",
        "FAIL: Throughput too low: 1 writes/s",
        "PASS: Slowest request took 0.000000s",
        "PASS: Stddev is NaNs",
        "FAIL",
      ],
      pass: false,
    },
  ];
  for (const testCase of cases) {
    it(testCase.name, () => {
      const verdict = checkPerfVerdict(testCase.input, testCase.rate);
      assert.deepEqual(verdict.lines, testCase.lines);
      assert.equal(verdict.pass, testCase.pass);
    });
  }

  it("formats like Go's %f", () => {
    assert.equal(formatGoFloat(0.0135), "0.013500");
    assert.equal(formatGoFloat(1.23456789), "1.234568");
    assert.equal(formatGoFloat(Number.NaN), "NaN");
    assert.equal(formatGoFloat(Number.POSITIVE_INFINITY), "+Inf");
  });
});
