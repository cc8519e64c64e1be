/**
 * Raft simulator soak:
 *   npm run sim -- --seeds N [--seed S] [--steps K] [--mood calm|normal|storm] [--bugs a,b] [--no-codec] [--trace]
 * Runs seeds S, S+1, ..., S+N-1 (default S = 1, N = 1, K = 300 ticks). A failing seed prints the one-line
 * command that replays it exactly; --trace prints the last events before the failure.
 */
import type { RaftBug } from "../../src/raft/raft.js";
import { replayCommand, runSeed, type SimMood, type SimOptions } from "./sim.js";

interface Args {
  seeds: number;
  seed: number;
  steps: number;
  bugs: Set<RaftBug>;
  codec: boolean;
  trace: boolean;
  mood: SimMood | undefined;
}

const KNOWN_BUGS: readonly RaftBug[] = [
  "commitByCounting",
  "voteBeforePersist",
  "skipLogMatching",
  "skipUpToDateCheck",
  "readIndexWithoutHeartbeat",
];

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    seeds: 1,
    seed: 1,
    steps: 300,
    bugs: new Set(),
    codec: true,
    trace: false,
    mood: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = () => {
      const v = Number(value());
      if (!Number.isSafeInteger(v)) throw new Error(`${flag} needs an integer`);
      return v;
    };
    switch (flag) {
      case "--seeds":
        args.seeds = int();
        break;
      case "--seed":
        args.seed = int();
        break;
      case "--steps":
        args.steps = int();
        break;
      case "--bugs":
        for (const b of value().split(",")) {
          if (!KNOWN_BUGS.includes(b as RaftBug))
            throw new Error(`unknown bug ${b}; known: ${KNOWN_BUGS.join(", ")}`);
          args.bugs.add(b as RaftBug);
        }
        break;
      case "--mood": {
        const m = value();
        if (m !== "calm" && m !== "normal" && m !== "storm")
          throw new Error("--mood is calm, normal or storm");
        args.mood = m;
        break;
      }
      case "--no-codec":
        args.codec = false;
        break;
      case "--trace":
        args.trace = true;
        break;
      default:
        throw new Error(`unknown flag ${flag}`);
    }
  }
  return args;
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const started = process.hrtime.bigint();
  let failures = 0;
  const totals = {
    committed: 0,
    elections: 0,
    writes: 0,
    reads: 0,
    confChanges: 0,
    snapshots: 0,
    crashes: 0,
  };
  for (let k = 0; k < args.seeds; k++) {
    const opts: SimOptions = {
      seed: args.seed + k,
      steps: args.steps,
      bugs: args.bugs.size > 0 ? args.bugs : undefined,
      codec: args.codec,
      trace: args.trace,
      mood: args.mood,
    };
    const { result, failure, trace } = runSeed(opts);
    if (failure !== undefined) {
      failures++;
      console.log(`FAIL ${failure.message}`);
      if (args.trace && trace !== undefined) for (const line of trace) console.log(`  ${line}`);
      console.log(`  replay: ${replayCommand(opts)}${args.trace ? "" : " --trace"}`);
      continue;
    }
    if (result === undefined) continue;
    totals.committed += result.committed;
    totals.elections += result.elections;
    totals.writes += result.writesAcked;
    totals.reads += result.reads;
    totals.confChanges += result.confChanges;
    totals.snapshots += result.snapshotsSent;
    totals.crashes += result.crashes;
    if (args.seeds === 1) console.log(JSON.stringify(result));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `${args.seeds} seeds, ${failures} failed, ${seconds.toFixed(1)} s; totals: ${JSON.stringify(totals)}`,
  );
  return failures === 0 ? 0 : 1;
}

process.exitCode = main();
