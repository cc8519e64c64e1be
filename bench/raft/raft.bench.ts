/**
 * Raft core throughput, in memory, on one thread (no codec, no I/O):
 *   1. a 3-voter cluster: committed proposals per second with 256-byte entries, proposals batched between
 *      Readys (the server's pattern: many requests arrive between two Ready loops);
 *   2. a single-voter group: µs per proposal for one proposal at a time (propose, persist, commit, apply).
 * Prints the median of several rounds with min and max. Usage:
 *   npm run bench:raft [-- --seconds S --batch B --rounds R]
 */
import { RawNode } from "../../src/raft/rawnode.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { Message } from "../../src/raft/types.js";

const ENTRY_BYTES = 256;
/** Keep this many applied entries in each log before compacting (bounds memory during the run). */
const LOG_KEEP_ENTRIES = 10_000;

interface Args {
  seconds: number;
  batch: number;
  rounds: number;
}

function parseArgs(): Args {
  const args: Args = { seconds: 1, batch: 256, rounds: 5 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bad value for ${argv[i]}`);
    if (argv[i] === "--seconds") args.seconds = v;
    else if (argv[i] === "--batch") args.batch = v;
    else if (argv[i] === "--rounds") args.rounds = v;
    else throw new Error(`unknown flag ${argv[i]}`);
  }
  return args;
}

interface BenchNode {
  id: bigint;
  storage: MemoryStorage;
  rn: RawNode;
  applied: number;
}

function makeNode(id: bigint, voters: bigint[]): BenchNode {
  const storage = new MemoryStorage();
  storage.applySnapshot({
    data: new Uint8Array(0),
    metadata: {
      index: 1,
      term: 1,
      confState: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    },
  });
  const rn = new RawNode({
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    rng: new Xoshiro128(Number(id)),
    maxInflightMessages: 256,
    maxSizePerMsgBytes: 1024 * 1024,
    maxCommittedSizePerReadyBytes: 64 * 1024 * 1024,
    checkQuorum: true,
    preVote: true,
  });
  return { id, storage, rn, applied: 1 };
}

/** One Ready loop on a node, delivering its messages into `outbox`. Returns entries applied. */
function processReady(node: BenchNode, outbox: Message[]): number {
  if (!node.rn.hasReady()) return 0;
  const rd = node.rn.ready();
  for (const m of rd.messages) outbox.push(m);
  if (rd.snapshot !== null) node.storage.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) node.storage.append(rd.entries);
  if (rd.hardState !== null) node.storage.setHardState(rd.hardState);
  for (const m of rd.messagesAfterPersist) outbox.push(m);
  const applied = rd.committedEntries.length;
  if (applied > 0) node.applied = rd.committedEntries[applied - 1]!.index;
  node.rn.advance(rd);
  const first = node.storage.firstIndex();
  if (node.applied - first > 2 * LOG_KEEP_ENTRIES) node.storage.compact(node.applied - LOG_KEEP_ENTRIES);
  return applied;
}

function pump(nodes: Map<bigint, BenchNode>, leader: BenchNode, outbox: Message[]): number {
  let applied = 0;
  for (let round = 0; round < 100; round++) {
    for (const n of nodes.values()) {
      const a = processReady(n, outbox);
      if (n === leader) applied += a;
    }
    if (outbox.length === 0) {
      let busy = false;
      for (const n of nodes.values()) busy ||= n.rn.hasReady();
      if (!busy) return applied;
      continue;
    }
    const batch = outbox.splice(0, outbox.length);
    for (const m of batch) nodes.get(m.to)!.rn.step(m);
  }
  return applied;
}

function threeVoters(args: Args): number[] {
  const ids = [1n, 2n, 3n];
  const nodes = new Map(ids.map((id) => [id, makeNode(id, ids)]));
  const leader = nodes.get(1n)!;
  const outbox: Message[] = [];
  leader.rn.campaign();
  pump(nodes, leader, outbox);
  if (!leader.rn.isLeader()) throw new Error("no leader");
  const payloads = Array.from({ length: args.batch }, (_, i) => new Uint8Array(ENTRY_BYTES).fill(i & 0xff));
  const rates: number[] = [];
  for (let r = 0; r < args.rounds; r++) {
    let committed = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(args.seconds * 1e9));
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < payloads.length; i++) leader.rn.propose(payloads[i]!);
      committed += pump(nodes, leader, outbox);
      now = process.hrtime.bigint();
    }
    rates.push(committed / (Number(now - start) / 1e9));
  }
  return rates;
}

function singleVoter(args: Args): number[] {
  const node = makeNode(1n, [1n]);
  const outbox: Message[] = [];
  const nodes = new Map([[1n, node]]);
  node.rn.campaign();
  pump(nodes, node, outbox);
  if (!node.rn.isLeader()) throw new Error("no leader");
  const payload = new Uint8Array(ENTRY_BYTES);
  const costs: number[] = [];
  for (let r = 0; r < args.rounds; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(args.seconds * 1e9));
    let now = start;
    while (now < deadline) {
      for (let k = 0; k < 100; k++) {
        node.rn.propose(payload);
        // Persist the entry (its self-ack commits it), then apply it.
        processReady(node, outbox);
        processReady(node, outbox);
        n++;
      }
      now = process.hrtime.bigint();
    }
    costs.push(Number(now - start) / 1e3 / n);
  }
  return costs;
}

function summary(values: number[], digits: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return `${median.toFixed(digits)} (min ${sorted[0]!.toFixed(digits)}, max ${sorted[sorted.length - 1]!.toFixed(digits)})`;
}

function main(): void {
  const args = parseArgs();
  console.log(
    `raft bench: ${ENTRY_BYTES}-byte entries, batch ${args.batch}, ${args.rounds} rounds x ${args.seconds}s`,
  );
  const rates = threeVoters(args);
  console.log(`3 voters, batched proposals: ${summary(rates, 0)} committed entries/s`);
  const costs = singleVoter(args);
  console.log(`1 voter, one proposal at a time: ${summary(costs, 2)} µs per proposal`);
}

main();
