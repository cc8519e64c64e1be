import type { OpInput, OpOutput } from "./history.js";

/**
 * The sequential specification of one key, as etcd keeps it: a value (or absent) and the mod revision of
 * the write that produced it. Histories are checked key by key (P-compositionality: a history is
 * linearizable iff every key's sub-history is), so this model never sees another key.
 *
 * A write whose outcome is unknown got no revision back. Its state then has `revisionKnown: false` and
 * `modRevision` is a strict lower bound: the write's real revision is some number above it. A later
 * read that shows the value pins the revision again. This keeps revisions checkable (a read must show
 * the revision of the write it sees; a write's revision only grows) without guessing numbers.
 *
 * A value that no op of the history ever reads or compares against is `hidden` (the searcher sets it,
 * see search.ts): such values cannot be told apart by anything that follows, so states that differ only
 * in them are one state, which keeps the search from exploring every order of unread writes.
 */
export interface KeyState {
  readonly value: string | null;
  /** The value is one no op observes (value is then meaningless and kept only for reports). */
  readonly hidden: boolean;
  readonly modRevision: number;
  readonly revisionKnown: boolean;
}

export const ABSENT: KeyState = { value: null, hidden: false, modRevision: 0, revisionKnown: true };

/** The same state with its value marked as one nobody observes. */
export function hideValue(state: KeyState): KeyState {
  return {
    value: state.value,
    hidden: true,
    modRevision: state.modRevision,
    revisionKnown: state.revisionKnown,
  };
}

const NO_STATES: readonly KeyState[] = [];

/** A short string equal for equal states (the memo key's state part). */
export function stateKey(state: KeyState): string {
  const revision = `${state.revisionKnown ? "r" : ">"}${state.modRevision}`;
  if (state.hidden) return `${revision}?`;
  return state.value === null ? revision : `${revision}=${state.value}`;
}

export function describeState(state: KeyState): string {
  if (state.value === null) return "absent";
  const revision = state.revisionKnown ? `${state.modRevision}` : `>${state.modRevision}`;
  // A hidden state still carries the value of the write that made it (equal states merge in the memo only).
  return `${JSON.stringify(state.value)}@${revision}`;
}

/**
 * The states `input` can lead to from `state` when it answered `output` (null: unknown outcome, and
 * only the "it was applied" states are listed: "never applied" is the checker's choice not to
 * linearize it). An empty list: the answer is impossible in this state.
 */
export function step(state: KeyState, input: OpInput, output: OpOutput | null): readonly KeyState[] {
  switch (input.kind) {
    case "put":
      if (output === null) return [written(input.value, state.modRevision, false)];
      return output.revision > state.modRevision ? [written(input.value, output.revision, true)] : NO_STATES;
    case "get": {
      if (output === null || output.kind !== "get") return NO_STATES;
      if (state.hidden || output.value !== state.value) return NO_STATES;
      if (state.revisionKnown) return output.modRevision === state.modRevision ? [state] : NO_STATES;
      return output.modRevision > state.modRevision
        ? [written(state.value, output.modRevision, true)]
        : NO_STATES;
    }
    case "cas": {
      const holds = compareHolds(state, input);
      if (output === null)
        return holds === null ? NO_STATES : [written(input.value, holds.modRevision, false)];
      if (output.kind !== "cas") return NO_STATES;
      if (!output.succeeded) return compareCanFail(state, input) ? [state] : NO_STATES;
      if (holds === null || output.revision <= holds.modRevision) return NO_STATES;
      return [written(input.value, output.revision, true)];
    }
  }
}

function written(value: string | null, modRevision: number, revisionKnown: boolean): KeyState {
  return { value, hidden: false, modRevision, revisionKnown };
}

/**
 * null when the compare cannot hold; otherwise the state as the compare saw it (an unknown revision
 * compared equal to N is pinned: it was N).
 */
function compareHolds(state: KeyState, input: OpInput & { kind: "cas" }): KeyState | null {
  const { expect } = input;
  if ("value" in expect)
    return !state.hidden && state.value !== null && state.value === expect.value ? state : null;
  if (state.revisionKnown) return state.modRevision === expect.modRevision ? state : null;
  // An unknown write's revision is above the bound, so it may equal anything larger (never 0: it exists).
  if (expect.modRevision <= state.modRevision) return null;
  return { value: state.value, hidden: state.hidden, modRevision: expect.modRevision, revisionKnown: true };
}

function compareCanFail(state: KeyState, input: OpInput & { kind: "cas" }): boolean {
  const { expect } = input;
  if ("value" in expect) return state.hidden || state.value === null || state.value !== expect.value;
  // With an unknown revision, any expected revision may differ from the real one.
  return !state.revisionKnown || state.modRevision !== expect.modRevision;
}

/** The values a history's ops observe: what reads returned and what compares expected. */
export function observedValues(inputs: Iterable<{ input: OpInput; output: OpOutput | null }>): Set<string> {
  const observed = new Set<string>();
  for (const { input, output } of inputs) {
    if (output !== null && output.kind === "get" && output.value !== null) observed.add(output.value);
    if (input.kind === "cas" && "value" in input.expect) observed.add(input.expect.value);
  }
  return observed;
}

/** The value a write op leaves (for dependency tracking); null for a read. */
export function writtenValue(input: OpInput): string | null {
  return input.kind === "get" ? null : input.value;
}
