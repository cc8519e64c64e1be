import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { checkHistory, formatResult } from "./checker.js";
import { injectStaleRead, simulateHistory } from "./simulate.js";

/**
 * The checker against a correct sequential simulation (simulate.ts): whatever the overlap, the number of
 * clients and keys and the share of lost answers, a history a linearizable store produced is accepted;
 * and the same history with one read made stale is always rejected, on that read's key, with that read
 * in the reported sub-history.
 */

const simulation = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  clients: fc.integer({ min: 1, max: 6 }),
  keys: fc.integer({ min: 1, max: 4 }),
  opsPerClient: fc.integer({ min: 1, max: 40 }),
  unknownRate: fc.constantFrom(0, 0.05, 0.2),
  getPercent: fc.integer({ min: 10, max: 60 }),
  casPercent: fc.integer({ min: 0, max: 40 }),
  // From nearly sequential (short ops, long pauses) to heavily overlapping.
  latencyHalfNsMax: fc.constantFrom(10_000, 1_000_000, 20_000_000),
  thinkNsMax: fc.constantFrom(0, 100_000, 5_000_000),
});

const RUNS = 150;

describe("checker properties", () => {
  it("every history of a correct store is linearizable", () => {
    fc.assert(
      fc.property(simulation, (options) => {
        const history = simulateHistory(options);
        const result = checkHistory(history);
        assert.equal(result.verdict, "linearizable", `${JSON.stringify(options)}\n${formatResult(result)}`);
      }),
      { numRuns: RUNS, seed: 20240610 },
    );
  });

  it("one read made stale is always caught, by the per-key search alone", () => {
    let injected = 0;
    fc.assert(
      fc.property(simulation, fc.nat(), (options, pick) => {
        const mutated = injectStaleRead(
          simulateHistory({ ...options, opsPerClient: options.opsPerClient + 10 }),
          pick,
        );
        fc.pre(mutated !== null);
        injected++;
        const read = mutated.ops.find((op) => op.id === mutated.readId);
        const result = checkHistory(mutated.ops, { revisionOrder: false });
        assert.equal(result.verdict, "violation", JSON.stringify(options));
        const violation = result.violations.find((v) => v.key === read?.input.key);
        assert.ok(violation !== undefined, formatResult(result));
        assert.ok(
          violation.ops.some((op) => op.id === mutated.readId),
          `the stale read ${mutated.readId} is in the sub-history\n${formatResult(result)}`,
        );
        // The full check (with revisions across keys) rejects it too.
        assert.equal(checkHistory(mutated.ops, { shrink: false }).verdict, "violation");
      }),
      { numRuns: RUNS, seed: 20240611 },
    );
    assert.ok(injected >= RUNS / 2, `only ${injected} of ${RUNS} runs had a read to make stale`);
  });
});
