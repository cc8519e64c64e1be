import { assert } from "../../src/assert.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import type { ClusterTarget } from "../support/cluster.js";
import { nameOf, statuses } from "./observe.js";
import { BLACKHOLE, DROP, type Fault } from "./proxy.js";

/**
 * Random faults from a seed, one at a time: each is applied, held for a while, undone, and followed by a
 * quiet spell, so the cluster keeps getting chances to make progress between faults. The same seed gives
 * the same sequence of choices (what happens in the cluster still depends on timing).
 */

export type FaultKind =
  | "isolate-leader"
  | "isolate-member"
  | "partition-majority-minority"
  | "asymmetric"
  | "bridge"
  | "flapping-link"
  | "slow-links"
  | "pause-member"
  | "kill-restart";

export const ALL_FAULTS: readonly FaultKind[] = [
  "isolate-leader",
  "isolate-member",
  "partition-majority-minority",
  "asymmetric",
  "bridge",
  "flapping-link",
  "slow-links",
  "pause-member",
  "kill-restart",
];

export interface NemesisOptions {
  target: ClusterTarget;
  seed: number;
  durationMs: number;
  faults?: readonly FaultKind[];
  /** A fault is held uniform in [holdMsMin, holdMsMax]. */
  holdMsMin?: number;
  holdMsMax?: number;
  /** Quiet spell after each fault, uniform in [quietMsMin, quietMsMax]. */
  quietMsMin?: number;
  quietMsMax?: number;
  /** Force one kill -9 + restart as the n-th fault (0-based), whatever the dice say. */
  killAt?: number;
  log?: (line: string) => void;
}

export interface NemesisRun {
  /** What was done, with times since the start, for the report. */
  readonly actions: string[];
  /** Resolves when the schedule is over and everything is healed, resumed and restarted. */
  readonly done: Promise<void>;
}

/** How many faults one run may apply (a bound on the schedule loop). */
const FAULTS_MAX = 10_000;

export function runNemesis(options: NemesisOptions): NemesisRun {
  const actions: string[] = [];
  const startedMs = performance.now();
  const log = (line: string): void => {
    const entry = `${((performance.now() - startedMs) / 1000).toFixed(1).padStart(6)}s ${line}`;
    actions.push(entry);
    options.log?.(entry);
  };
  const done = schedule(options, log);
  return { actions, done };
}

async function schedule(options: NemesisOptions, log: (line: string) => void): Promise<void> {
  const { target } = options;
  const rng = new Xoshiro128(options.seed);
  const kinds = options.faults ?? ALL_FAULTS;
  assert(kinds.length > 0, "a nemesis needs faults to choose from");
  const between = (low: number, high: number): number => low + rng.nextInt(Math.max(1, high - low + 1));
  const deadlineMs = performance.now() + options.durationMs;
  for (let n = 0; n < FAULTS_MAX && performance.now() < deadlineMs; n++) {
    const kind = n === options.killAt ? "kill-restart" : (kinds[rng.nextInt(kinds.length)] as FaultKind);
    const holdMs = between(options.holdMsMin ?? 1_000, options.holdMsMax ?? 3_000);
    const undo = await apply(target, kind, rng, log);
    await sleep(holdMs);
    await undo();
    await sleep(between(options.quietMsMin ?? 500, options.quietMsMax ?? 1_500));
  }
  target.network.heal();
  for (const member of target.members) {
    if (target.state(member.name) === "paused") target.resume(member.name);
    if (target.state(member.name) === "exited") await target.restart(member.name);
  }
  log("healed: all links pass, all members running");
}

/** Applies one fault; resolves with its undo. */
async function apply(
  target: ClusterTarget,
  kind: FaultKind,
  rng: Xoshiro128,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  const names = target.members.map((m) => m.name);
  const pick = (from: readonly string[]): string => from[rng.nextInt(from.length)] as string;
  const cut = (): Fault => (rng.nextInt(2) === 0 ? DROP : BLACKHOLE);
  const network = target.network;
  const heal = async (): Promise<void> => {
    network.heal();
    log("heal");
  };
  switch (kind) {
    case "isolate-leader":
    case "isolate-member": {
      const victim = kind === "isolate-leader" ? ((await leaderName(target)) ?? pick(names)) : pick(names);
      const fault = cut();
      network.isolate(victim, fault);
      log(`${kind}: ${victim} (${fault.kind})`);
      return heal;
    }
    case "partition-majority-minority": {
      const shuffled = shuffle(names, rng);
      const minority = shuffled.slice(0, Math.floor((names.length - 1) / 2) || 1);
      const majority = shuffled.slice(minority.length);
      const fault = cut();
      network.partition([minority, majority], fault);
      log(`partition: [${minority}] | [${majority}] (${fault.kind})`);
      return heal;
    }
    case "asymmetric": {
      const from = pick(names);
      const to = pick(names.filter((n) => n !== from));
      network.cutOneWay(from, to, DROP);
      log(`asymmetric: ${from} -> ${to} cut`);
      return heal;
    }
    case "bridge": {
      const [left, bridge, ...right] = shuffle(names, rng) as [string, string, ...string[]];
      network.bridge([left], bridge, right);
      log(`bridge: ${left} <-> ${bridge} <-> ${right} (${left} and ${right} cut)`);
      return heal;
    }
    case "flapping-link": {
      const a = pick(names);
      const b = pick(names.filter((n) => n !== a));
      const periodMs = 150 + rng.nextInt(350);
      const flap = network.flap(a, b, periodMs);
      log(`flapping: ${a} <-> ${b} every ${periodMs} ms`);
      return async () => {
        flap.stop();
        await heal();
      };
    }
    case "slow-links": {
      const delayMs = 20 + rng.nextInt(130);
      for (const a of names)
        for (const b of names)
          if (a !== b) network.set(a, b, { kind: "delay", delayMs, jitterMs: delayMs / 2 });
      log(`slow links: ${delayMs} ms + jitter on every direction`);
      return heal;
    }
    case "pause-member": {
      const victim = pick(names.filter((n) => target.state(n) === "running"));
      target.pause(victim);
      log(`SIGSTOP ${victim}`);
      return async () => {
        target.resume(victim);
        log(`SIGCONT ${victim}`);
      };
    }
    case "kill-restart": {
      const victim = rng.nextInt(2) === 0 ? ((await leaderName(target)) ?? pick(names)) : pick(names);
      await target.kill9(victim);
      log(`kill -9 ${victim}`);
      return async () => {
        await target.restart(victim);
        log(`restarted ${victim}`);
      };
    }
  }
}

async function leaderName(target: ClusterTarget): Promise<string | undefined> {
  const list = await statuses(target);
  const votes = new Map<bigint, number>();
  for (const status of list)
    if (status.leader !== 0n) votes.set(status.leader, (votes.get(status.leader) ?? 0) + 1);
  let best: bigint | undefined;
  for (const [id, count] of votes) if (best === undefined || count > (votes.get(best) ?? 0)) best = id;
  return best === undefined ? undefined : nameOf(target, best);
}

function shuffle<T>(items: readonly T[], rng: Xoshiro128): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
