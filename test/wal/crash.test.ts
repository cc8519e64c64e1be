import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readWal } from "../../src/wal/reader.js";
import { compileWalChildren } from "./compile.js";
import { crashEntrySize, entryData, makeEntry, withTempDir } from "./support.js";

/**
 * Crash test: a child process appends with several appends in flight and prints each index the moment
 * the WAL reports it durable; we SIGKILL it at a random moment (sometimes while it starts, opens and
 * repairs, mostly while it appends), then read the WAL and check that every index ever reported durable
 * is present, intact and in order, and that nothing once present changes. Seeded: set WAL_CRASH_SEED
 * to replay a failing run (the seed is in the failure message).
 */
const ROUNDS = 24;
/** Share of rounds killed at a random time after spawn, ready or not (start-up, open, repair). */
const EARLY_KILL_SHARE = 0.2;
const EARLY_KILL_WINDOW_MS = 700;
/** Other rounds are killed this long at most after the child reports ready. */
const APPEND_KILL_WINDOW_MS = 150;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

interface RoundOutput {
  ready: number | null;
  durable: number[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

async function runRound(
  childPath: string,
  dir: string,
  term: number,
  random: () => number,
): Promise<RoundOutput> {
  const child = spawn(process.execPath, [childPath, dir, String(term)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: RoundOutput = { ready: null, durable: [], signal: null, code: null, stderr: "" };
  let pending = "";
  const early = random() < EARLY_KILL_SHARE;
  const delayMs = Math.floor(random() * (early ? EARLY_KILL_WINDOW_MS : APPEND_KILL_WINDOW_MS));
  let timer: NodeJS.Timeout | null = early ? setTimeout(() => child.kill("SIGKILL"), delayMs) : null;
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      const [word, value] = pending.slice(0, newline).split(" ");
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
      if (word === "ready") {
        out.ready = Number(value);
        timer ??= setTimeout(() => child.kill("SIGKILL"), delayMs);
      } else if (word === "durable") {
        out.durable.push(Number(value));
      }
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    out.stderr += chunk.toString();
  });
  await new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      out.code = code;
      out.signal = signal;
      resolve();
    }),
  );
  if (timer !== null) clearTimeout(timer);
  return out;
}

/** Fast check of an entry's payload against the generator (assert.deepEqual only on a mismatch). */
function sameBytes(data: Uint8Array, index: number, term: number): boolean {
  const expected = entryData(index, term, crashEntrySize(index));
  if (expected.length !== data.length) return false;
  for (let i = 0; i < data.length; i++) if (data[i] !== expected[i]) return false;
  return true;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe("WAL crash safety", () => {
  it(`keeps every record reported durable across ${ROUNDS} SIGKILLs at random moments`, async () => {
    const seed = Number(process.env.WAL_CRASH_SEED ?? Date.now() % 2 ** 31);
    const random = rng(seed);
    await withTempDir(async (base) => {
      const childPath = (await compileWalChildren(join(base, "js")))("test/wal/crashChild.ts");
      const dir = join(base, "wal");
      /** Terms of the entries present after the previous round: they must never change. */
      let known: number[] = [];
      let maxDurable = 0;
      let killedAppending = 0;
      for (let round = 1; round <= ROUNDS; round++) {
        const context = `seed ${seed}, round ${round}`;
        const t0 = performance.now();
        const out = await runRound(childPath, dir, round, random);
        const t1 = performance.now();
        assert.equal(
          out.signal,
          "SIGKILL",
          `${context}: the child died by itself (code ${out.code}): ${out.stderr}`,
        );
        if (out.ready !== null) {
          assert.equal(out.ready, known.length, `${context}: the child's open saw what the last check saw`);
        }
        for (let i = 1; i < out.durable.length; i++) {
          assert.ok(out.durable[i]! > out.durable[i - 1]!, `${context}: durable indexes grow`);
        }
        if (out.durable.length > 0) {
          killedAppending++;
          maxDurable = Math.max(maxDurable, out.durable.at(-1)!);
        }
        if (!(await exists(dir))) {
          assert.equal(maxDurable, 0, `${context}: the WAL vanished`);
          continue;
        }
        const { state } = await readWal(dir, { index: 0, term: 0 });
        const entries = state.entries;
        assert.ok(
          entries.length >= maxDurable,
          `${context}: ${entries.length} entries, ${maxDurable} reported durable`,
        );
        for (let i = 0; i < entries.length; i++) {
          const entry = entries[i]!;
          const term = i < known.length ? known[i]! : round;
          if (entry.term !== term || entry.index !== i + 1 || !sameBytes(entry.data, i + 1, term)) {
            assert.deepEqual(
              entry,
              makeEntry(i + 1, term, crashEntrySize(i + 1)),
              `${context}: entry ${i + 1} intact`,
            );
          }
        }
        if (process.env.WAL_CRASH_VERBOSE) {
          console.log(
            `${context}: ${entries.length} entries, ready ${out.ready}, ${out.durable.length} reports, run ${Math.round(t1 - t0)} ms, check ${Math.round(performance.now() - t1)} ms`,
          );
        }
        assert.ok(state.hardState.commit <= entries.length, `${context}: commit within the log`);
        known = entries.map((e) => e.term);
      }
      assert.ok(
        killedAppending >= ROUNDS / 2,
        `most rounds were killed while appending (${killedAppending})`,
      );
      assert.ok(maxDurable > 0);
    });
  });
});
