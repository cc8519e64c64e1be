import { assert } from "../../src/assert.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import type { CasExpect, HistoryOp, OpInput, OpOutput } from "./history.js";

/**
 * A correct store simulated sequentially, and clients whose operations overlap at random: each op takes
 * effect at one instant inside its [invoke, complete] interval (its linearization point), against one
 * global revision counter, as a linearizable etcd would. Some ops lose their answer (unknown outcome):
 * such a write took effect or not (a coin decides), and its client moves on. Histories made this way
 * are linearizable by construction, which is what the checker's property test relies on; a mutation of
 * one answer then gives a history that is not.
 */

export interface SimulationOptions {
  seed: number;
  clients: number;
  keys: number;
  opsPerClient: number;
  /** Chance in [0, 1] that an op's answer is lost. */
  unknownRate: number;
  /** Op mix in percent: gets, then CAS; the rest are puts. */
  getPercent?: number;
  casPercent?: number;
  /** Each of the two halves of an op's latency is uniform in [0, latencyHalfNsMax]. */
  latencyHalfNsMax?: number;
  /** A client waits uniform [0, thinkNsMax] between ops. */
  thinkNsMax?: number;
}

type Event =
  | { kind: "invoke"; timeNs: number; client: number }
  | { kind: "apply"; timeNs: number; op: SimOp }
  | { kind: "complete"; timeNs: number; op: SimOp };

interface SimOp {
  op: HistoryOp;
  /** Whether it takes effect (false only for a lost write the coin dropped). */
  applies: boolean;
  /** Its answer will be lost. */
  lost: boolean;
  output: OpOutput | null;
}

interface ClientView {
  /** What the client last saw of each key (value and mod revision), for its next CAS. */
  seen: Map<string, { value: string | null; modRevision: number }>;
  done: number;
}

export function simulateHistory(options: SimulationOptions): HistoryOp[] {
  assert(options.clients > 0 && options.keys > 0, "a simulation needs clients and keys");
  const rng = new Xoshiro128(options.seed);
  const getPercent = options.getPercent ?? 40;
  const casPercent = options.casPercent ?? 25;
  const halfMax = options.latencyHalfNsMax ?? 1_000_000;
  const thinkMax = options.thinkNsMax ?? 500_000;
  const store = new Map<string, { value: string; modRevision: number }>();
  let revision = 1;
  const history: HistoryOp[] = [];
  const views: ClientView[] = Array.from({ length: options.clients }, () => ({ seen: new Map(), done: 0 }));
  const queue: Event[] = [];
  const schedule = (event: Event): void => {
    // Insertion keeps the queue sorted by time (ties: insertion order); queues here are short.
    let at = queue.length;
    while (at > 0 && (queue[at - 1] as Event).timeNs > event.timeNs) at--;
    queue.splice(at, 0, event);
  };
  for (let client = 0; client < options.clients; client++) {
    schedule({ kind: "invoke", timeNs: rng.nextInt(thinkMax + 1), client });
  }
  let nextId = 1;
  for (let event = queue.shift(); event !== undefined; event = queue.shift()) {
    switch (event.kind) {
      case "invoke": {
        const view = views[event.client] as ClientView;
        const key = `k${rng.nextInt(options.keys)}`;
        const input = chooseInput(rng, key, `c${event.client}.${view.done}`, view, getPercent, casPercent);
        const lost = rng.nextInt(1_000_000) < options.unknownRate * 1_000_000;
        const op: HistoryOp = {
          id: nextId++,
          client: event.client,
          input,
          invokeNs: event.timeNs,
          completeNs: null,
          output: null,
        };
        const simOp: SimOp = { op, applies: !lost || rng.nextInt(2) === 0, lost, output: null };
        const applyAt = event.timeNs + rng.nextInt(halfMax + 1);
        schedule({ kind: "apply", timeNs: applyAt, op: simOp });
        schedule({ kind: "complete", timeNs: applyAt + rng.nextInt(halfMax + 1), op: simOp });
        break;
      }
      case "apply": {
        if (!event.op.applies) break;
        const result = apply(store, revision, event.op.op.input);
        revision = result.revision;
        event.op.output = result.output;
        break;
      }
      case "complete": {
        const { op, lost, output } = event.op;
        const view = views[op.client] as ClientView;
        if (lost) {
          op.error = "simulated lost answer";
          if (op.input.kind !== "get") history.push(op);
        } else {
          assert(output !== null, "a kept op was applied");
          op.completeNs = event.timeNs;
          op.output = output;
          history.push(op);
          learn(view, op.input, output);
        }
        view.done++;
        if (view.done < options.opsPerClient) {
          schedule({
            kind: "invoke",
            timeNs: event.timeNs + 1 + rng.nextInt(thinkMax + 1),
            client: op.client,
          });
        }
        break;
      }
    }
  }
  return history.sort((a, b) => a.invokeNs - b.invokeNs || a.id - b.id);
}

function chooseInput(
  rng: Xoshiro128,
  key: string,
  value: string,
  view: ClientView,
  getPercent: number,
  casPercent: number,
): OpInput {
  const dice = rng.nextInt(100);
  if (dice < getPercent) return { kind: "get", key };
  if (dice < getPercent + casPercent) {
    const seen = view.seen.get(key) ?? { value: null, modRevision: 0 };
    const expect: CasExpect =
      seen.value !== null && rng.nextInt(2) === 0 ? { value: seen.value } : { modRevision: seen.modRevision };
    return { kind: "cas", key, expect, value };
  }
  return { kind: "put", key, value };
}

function apply(
  store: Map<string, { value: string; modRevision: number }>,
  revision: number,
  input: OpInput,
): { revision: number; output: OpOutput } {
  const current = store.get(input.key);
  switch (input.kind) {
    case "put":
      store.set(input.key, { value: input.value, modRevision: revision + 1 });
      return { revision: revision + 1, output: { kind: "put", revision: revision + 1 } };
    case "get":
      return {
        revision,
        output: {
          kind: "get",
          value: current?.value ?? null,
          modRevision: current?.modRevision ?? 0,
          revision,
        },
      };
    case "cas": {
      const holds =
        "value" in input.expect
          ? current !== undefined && current.value === input.expect.value
          : (current?.modRevision ?? 0) === input.expect.modRevision;
      if (!holds) return { revision, output: { kind: "cas", succeeded: false, revision } };
      store.set(input.key, { value: input.value, modRevision: revision + 1 });
      return { revision: revision + 1, output: { kind: "cas", succeeded: true, revision: revision + 1 } };
    }
  }
}

function learn(view: ClientView, input: OpInput, output: OpOutput): void {
  switch (output.kind) {
    case "get":
      view.seen.set(input.key, { value: output.value, modRevision: output.modRevision });
      break;
    case "put":
      if (input.kind === "put")
        view.seen.set(input.key, { value: input.value, modRevision: output.revision });
      break;
    case "cas":
      if (output.succeeded && input.kind === "cas") {
        view.seen.set(input.key, { value: input.value, modRevision: output.revision });
      }
      break;
  }
}

/**
 * Turns one completed read into a stale read, if the history has one that can be made provably stale:
 * a read G of key k, and two answered writes W1, W2 of k with W1 complete < W2 invoke and W2 complete <
 * G invoke. G then returns W1's value and revision, which no linearization allows (values are unique).
 * Returns the mutated history and G's id, or null when no such triple exists.
 */
export function injectStaleRead(
  history: readonly HistoryOp[],
  pick: number,
): { ops: HistoryOp[]; readId: number } | null {
  const candidates: { read: HistoryOp; stale: HistoryOp }[] = [];
  const writes = history.filter(
    (op) =>
      op.completeNs !== null &&
      (op.output?.kind === "put" || (op.output?.kind === "cas" && op.output.succeeded)),
  );
  for (const read of history) {
    if (read.input.kind !== "get" || read.completeNs === null) continue;
    const before = writes.filter(
      (w) => w.input.key === read.input.key && (w.completeNs as number) < read.invokeNs,
    );
    for (const w2 of before) {
      const w1 = before.find((w) => (w.completeNs as number) < w2.invokeNs);
      if (w1 !== undefined) {
        candidates.push({ read, stale: w1 });
        break;
      }
    }
  }
  if (candidates.length === 0) return null;
  const { read, stale } = candidates[pick % candidates.length] as { read: HistoryOp; stale: HistoryOp };
  const staleValue = (stale.input as { value: string }).value;
  const staleRevision = (stale.output as { revision: number }).revision;
  const ops = history.map((op) =>
    op.id !== read.id
      ? op
      : {
          ...op,
          output: {
            kind: "get" as const,
            value: staleValue,
            modRevision: staleRevision,
            revision: (op.output as { revision: number }).revision,
          },
        },
  );
  return { ops, readId: read.id };
}
