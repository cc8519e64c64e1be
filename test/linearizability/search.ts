import { assert } from "../../src/assert.js";
import type { HistoryOp } from "./history.js";
import { ABSENT, hideValue, type KeyState, observedValues, stateKey, step } from "./model.js";

/**
 * Wing & Gong's linearizability search over the operations of one key, with the optimisations of
 * Lowe ("Testing for linearizability", 2017) that Porcupine uses:
 *
 * - The history is a doubly linked list of call and return entries in time order. The search walks it
 *   from the head: a call entry whose op can take a step from the current state is "lifted" (its call
 *   and return leave the list) and pushed on a stack; reaching a return entry means the op it closes was
 *   due and none of the ops before it could be placed, so the search backtracks (pops, unlifts, tries the
 *   next candidate).
 * - Memoisation: a (set of linearized ops, model state) pair seen once is never explored again; the set
 *   is a bitset with an incremental Zobrist hash, and entries are compared exactly on a hash hit, so a
 *   collision costs time, never a wrong verdict.
 * - Ops with an unknown outcome have no return entry: they may be lifted (applied) anywhere after their
 *   call, or never, and the search succeeds once every op that completed is linearized.
 *
 * Two more keep histories with many unknown outcomes (a fault run's) from exploding:
 * - Subsumption: lifting an unknown op is optional, so a node that linearized the same completed ops,
 *   reached the same state and used up a superset of the unknown ops can do nothing the first could not:
 *   the memo matches on the completed ops and the state, and prunes when a seen node's unknown ops are a
 *   subset of the current node's.
 * - Values nobody reads are one value (model.ts `hidden`): the states after any of many unread lost
 *   writes are equal, so subsumption applies to them.
 * - An unknown write W is lifted only right before an op that needs it. Take any legal order and the
 *   state s0 before W. If the op X right after W is a put, or a write that leaves the same state from s0
 *   as from W's state, W can be dropped (a put overwrites value and revision alike: its revision must
 *   exceed the bound either way). If X changes nothing (a read, a failed compare) and is legal from s0,
 *   X can move before W. Repeating this gives an equally legal order in which every applied unknown
 *   write is followed by an op that is illegal, or ends elsewhere, without it; the search tries only
 *   those orders. The memo key carries s0 while this restriction is on.
 * - Unknown puts of unread values are interchangeable: each leaves "an unread value" whatever the state,
 *   and one invoked earlier can stand wherever a later one stands. So they are lifted only in invoke
 *   order (the next one is always the earliest not yet lifted), which turns their subsets into counts.
 *
 * The search is bounded: past `stepBudget` iterations it answers "undecided", which callers report and
 * never count as a pass.
 */

export type SearchResult =
  | { kind: "linearizable"; steps: number }
  | { kind: "violation"; steps: number }
  | { kind: "undecided"; steps: number };

/** The deepest legal order the search found, for explaining a violation (see `explain`). */
export interface PartialOrder {
  /** Op indices (into the searched array) in their linearized order, and the state after each. */
  order: { op: number; state: KeyState }[];
  /** Completed ops that never fitted after that order. */
  unplaced: number[];
}

const NIL = -1;
const NO_STATES: readonly KeyState[] = [];

/** A search stack frame: the lifted call, the state before it, and which next state was taken. */
interface Frame {
  call: number;
  before: KeyState;
  /** The restriction in force before this op was lifted (see `beforeUnknown`). */
  beforeUnknownThen: KeyState | null;
  nextStates: readonly KeyState[];
  taken: number;
}

export function searchKey(ops: readonly HistoryOp[], stepBudget: number): SearchResult {
  return new KeySearch(ops, false).run(stepBudget);
}

/** Runs the search remembering the deepest order reached (costlier: meant for small sub-histories). */
export function explain(
  ops: readonly HistoryOp[],
  stepBudget: number,
): { result: SearchResult; deepest: PartialOrder } {
  const search = new KeySearch(ops, true);
  const result = search.run(stepBudget);
  return { result, deepest: search.deepest() };
}

class KeySearch {
  private readonly count: number;
  /** Entries 0..count-1 are calls (entry i is op i's call), count..2*count-1 returns, 2*count the head. */
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly head: number;
  private readonly completed: Uint8Array;
  /** Bit masks of the completed ops and of the unknown-outcome ops, per 32-op word. */
  private readonly completedMask: Uint32Array;
  private readonly pendingMask: Uint32Array;
  private readonly linearized: Uint32Array;
  /** Values some op reads or compares against; other written values are hidden. */
  private readonly observed: Set<string>;
  private readonly zobristLow: Uint32Array;
  private readonly zobristHigh: Uint32Array;
  private hashLow = 0;
  private hashHigh = 0;
  /** Memo: hash of the linearized completed ops and state key -> the linearized sets seen with them. */
  private readonly seen = new Map<string, Uint32Array[]>();
  private readonly stack: Frame[] = [];
  /**
   * When the last lifted op had an unknown outcome: the state before it. The next op must need that
   * write (see the class comment); null otherwise.
   */
  private beforeUnknown: KeyState | null = null;
  /** Unknown puts of unread values, by invoke time, and how many of them are lifted (always the first ones). */
  private readonly hiddenPuts: number[] = [];
  private hiddenPutsLifted = 0;
  /** Per op: its index in hiddenPuts, or -1. */
  private readonly hiddenPutRank: Int32Array;
  private deepestOrder: { op: number; state: KeyState }[] = [];

  constructor(
    private readonly ops: readonly HistoryOp[],
    private readonly trackDeepest: boolean,
  ) {
    const count = ops.length;
    this.count = count;
    this.head = 2 * count;
    this.next = new Int32Array(2 * count + 1).fill(NIL);
    this.prev = new Int32Array(2 * count + 1).fill(NIL);
    this.completed = new Uint8Array(count);
    this.completedMask = new Uint32Array(Math.ceil(count / 32));
    this.pendingMask = new Uint32Array(Math.ceil(count / 32));
    this.linearized = new Uint32Array(Math.ceil(count / 32));
    this.observed = observedValues(ops);
    this.hiddenPutRank = new Int32Array(count).fill(-1);
    this.zobristLow = new Uint32Array(count);
    this.zobristHigh = new Uint32Array(count);
    let seed = 0x2545f491;
    for (let i = 0; i < count; i++) {
      seed = splitmix32(seed);
      this.zobristLow[i] = seed;
      seed = splitmix32(seed);
      this.zobristHigh[i] = seed;
    }
    this.link();
    for (let i = 0; i < count; i++) {
      const op = ops[i] as HistoryOp;
      if (op.completeNs === null && op.input.kind === "put" && !this.observed.has(op.input.value))
        this.hiddenPuts.push(i);
    }
    this.hiddenPuts.sort((a, b) => (ops[a] as HistoryOp).invokeNs - (ops[b] as HistoryOp).invokeNs || a - b);
    this.hiddenPuts.forEach((op, rank) => {
      this.hiddenPutRank[op] = rank;
    });
  }

  /** Builds the entry list in time order; at equal times calls come first (the ops count as overlapping). */
  private link(): void {
    const entries: { entry: number; time: number; isCall: boolean }[] = [];
    for (let i = 0; i < this.count; i++) {
      const op = this.ops[i] as HistoryOp;
      entries.push({ entry: i, time: op.invokeNs, isCall: true });
      if (op.completeNs !== null) {
        assert(op.output !== null, `op ${op.id} completed without an output`);
        this.completed[i] = 1;
        this.completedMask[i >>> 5] = (this.completedMask[i >>> 5] as number) | (1 << (i & 31));
        entries.push({ entry: this.count + i, time: op.completeNs, isCall: false });
      }
    }
    for (let i = 0; i < this.count; i++) {
      if (this.completed[i] === 0)
        this.pendingMask[i >>> 5] = (this.pendingMask[i >>> 5] as number) | (1 << (i & 31));
    }
    entries.sort(
      (a, b) => a.time - b.time || (a.isCall === b.isCall ? a.entry - b.entry : a.isCall ? -1 : 1),
    );
    let last = this.head;
    for (const { entry } of entries) {
      this.next[last] = entry;
      this.prev[entry] = last;
      last = entry;
    }
  }

  run(stepBudget: number): SearchResult {
    let remaining = 0;
    for (let i = 0; i < this.count; i++) remaining += this.completed[i] as number;
    let state = ABSENT;
    let entry = this.next[this.head] as number;
    let steps = 0;
    while (remaining > 0) {
      if (++steps > stepBudget) return { kind: "undecided", steps };
      // A return entry always follows its call, so while completed ops remain the walk meets one.
      assert(entry !== NIL, "walked past the last entry with completed ops left");
      if (entry < this.count) {
        const op = this.ops[entry] as HistoryOp;
        const rank = this.hiddenPutRank[entry] as number;
        if (rank !== -1 && rank !== this.hiddenPutsLifted) {
          entry = this.next[entry] as number;
          continue;
        }
        const nextStates = this.needing(op, this.hideUnobserved(step(state, op.input, op.output)));
        const frame = this.tryLift(entry, state, nextStates, 0);
        if (frame === null) {
          entry = this.next[entry] as number;
          continue;
        }
        state = frame;
        if (this.completed[entry] === 1) remaining--;
        entry = this.next[this.head] as number;
        continue;
      }
      // A return whose op is not linearized yet: nothing before it fits; undo the last choice.
      const top = this.stack.pop();
      if (top === undefined) return { kind: "violation", steps };
      state = top.before;
      this.beforeUnknown = top.beforeUnknownThen;
      this.unlift(top.call);
      if (this.completed[top.call] === 1) remaining++;
      const retried = this.tryLift(top.call, state, top.nextStates, top.taken + 1);
      if (retried === null) {
        entry = this.next[top.call] as number;
        continue;
      }
      state = retried;
      if (this.completed[top.call] === 1) remaining--;
      entry = this.next[this.head] as number;
    }
    return { kind: "linearizable", steps };
  }

  /**
   * Lifts `call` into the first of `nextStates` (from `from`) not already explored with the resulting
   * linearized set; returns that state, or null (nothing new: the call stays in the list).
   */
  private tryLift(
    call: number,
    before: KeyState,
    nextStates: readonly KeyState[],
    from: number,
  ): KeyState | null {
    if (from >= nextStates.length) return null;
    this.flip(call);
    const beforeUnknownAfter = this.completed[call] === 0 ? before : null;
    for (let taken = from; taken < nextStates.length; taken++) {
      const after = nextStates[taken] as KeyState;
      if (!this.remember(after, beforeUnknownAfter)) continue;
      this.stack.push({ call, before, beforeUnknownThen: this.beforeUnknown, nextStates, taken });
      this.beforeUnknown = beforeUnknownAfter;
      this.lift(call);
      if (this.trackDeepest && this.stack.length > this.deepestOrder.length) {
        this.deepestOrder = this.stack.map((frame, i) => ({
          op: frame.call,
          state: i + 1 < this.stack.length ? (this.stack[i + 1] as Frame).before : after,
        }));
      }
      return after;
    }
    this.flip(call);
    return null;
  }

  /**
   * Right after an unknown write, keeps only the next states of `op` that need it: none for a put; for a
   * read or failed compare, none if it was legal before the write; for a write, those it could not reach
   * from the state before the unknown write.
   */
  private needing(op: HistoryOp, nextStates: readonly KeyState[]): readonly KeyState[] {
    const before = this.beforeUnknown;
    if (before === null || nextStates.length === 0) return nextStates;
    if (op.input.kind === "put") return NO_STATES;
    const withoutIt = this.hideUnobserved(step(before, op.input, op.output));
    if (withoutIt.length === 0) return nextStates;
    const changesNothing =
      op.output !== null && (op.output.kind === "get" || (op.output.kind === "cas" && !op.output.succeeded));
    if (changesNothing) return NO_STATES;
    const reachable = new Set(withoutIt.map(stateKey));
    return nextStates.filter((state) => !reachable.has(stateKey(state)));
  }

  private hideUnobserved(states: readonly KeyState[]): readonly KeyState[] {
    let hidden: KeyState[] | null = null;
    for (let i = 0; i < states.length; i++) {
      const state = states[i] as KeyState;
      if (state.hidden || state.value === null || this.observed.has(state.value)) continue;
      hidden ??= [...states];
      hidden[i] = hideValue(state);
    }
    return hidden ?? states;
  }

  /** Toggles op `call` in the linearized set, and in the hash when it is a completed op. */
  private flip(call: number): void {
    const word = call >>> 5;
    this.linearized[word] = (this.linearized[word] as number) ^ (1 << (call & 31));
    if (this.completed[call] === 0) return;
    this.hashLow = (this.hashLow ^ (this.zobristLow[call] as number)) >>> 0;
    this.hashHigh = (this.hashHigh ^ (this.zobristHigh[call] as number)) >>> 0;
  }

  /** Records (linearized set, state); false when a node that subsumes it was seen before. */
  private remember(state: KeyState, beforeUnknown: KeyState | null): boolean {
    const restriction = beforeUnknown === null ? "" : `!${stateKey(beforeUnknown)}`;
    const key = `${this.hashLow}.${this.hashHigh}.${stateKey(state)}${restriction}`;
    const bucket = this.seen.get(key);
    if (bucket === undefined) {
      this.seen.set(key, [this.linearized.slice()]);
      return true;
    }
    for (const bits of bucket) if (this.subsumes(bits)) return false;
    bucket.push(this.linearized.slice());
    return true;
  }

  /** `seen` has the same completed ops as the current set and a subset of its unknown ops. */
  private subsumes(seen: Uint32Array): boolean {
    const current = this.linearized;
    for (let w = 0; w < current.length; w++) {
      const a = seen[w] as number;
      const b = current[w] as number;
      if (((a ^ b) & (this.completedMask[w] as number)) !== 0) return false;
      if ((a & ~b & (this.pendingMask[w] as number)) !== 0) return false;
    }
    return true;
  }

  private lift(call: number): void {
    const { next, prev } = this;
    if (this.hiddenPutRank[call] !== -1) this.hiddenPutsLifted++;
    next[prev[call] as number] = next[call] as number;
    if (next[call] !== NIL) prev[next[call] as number] = prev[call] as number;
    if (this.completed[call] === 1) {
      const ret = this.count + call;
      next[prev[ret] as number] = next[ret] as number;
      if (next[ret] !== NIL) prev[next[ret] as number] = prev[ret] as number;
    }
  }

  /** The exact inverse of lift (entries keep their own prev/next while lifted). */
  private unlift(call: number): void {
    const { next, prev } = this;
    if (this.hiddenPutRank[call] !== -1) this.hiddenPutsLifted--;
    if (this.completed[call] === 1) {
      const ret = this.count + call;
      next[prev[ret] as number] = ret;
      if (next[ret] !== NIL) prev[next[ret] as number] = ret;
    }
    next[prev[call] as number] = call;
    if (next[call] !== NIL) prev[next[call] as number] = call;
    this.flip(call);
  }

  deepest(): PartialOrder {
    const placed = new Set(this.deepestOrder.map((entry) => entry.op));
    const unplaced: number[] = [];
    for (let i = 0; i < this.count; i++) if (this.completed[i] === 1 && !placed.has(i)) unplaced.push(i);
    return { order: this.deepestOrder, unplaced };
  }
}

function splitmix32(seed: number): number {
  let t = (seed + 0x9e3779b9) | 0;
  t ^= t >>> 16;
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return t >>> 0;
}
