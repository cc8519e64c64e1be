import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { callUnary, KVClient } from "../../src/proto/index.js";
import { type FaultKind, runNemesis } from "../faults/nemesis.js";
import { type EndpointHash, etcdctlHashKV, statuses, waitConverged } from "../faults/observe.js";
import type { ClusterTarget } from "../support/cluster.js";
import { type CheckResult, checkHistory, formatResult } from "./checker.js";
import { type HistoryOp, HistoryRecorder, writeHistory } from "./history.js";
import { isAnsweredWrite } from "./revisions.js";
import { prefixEnd, startWatcher, startWorkload, type WatchedEvent } from "./workload.js";

/**
 * A fault run: concurrent clients under random faults (test/faults/nemesis.ts), then heal, then proof:
 *
 * 1. the recorded history is linearizable (checker.ts; "undecided" fails the run too);
 * 2. every acknowledged write is in the cluster's write log (a watcher from the run's first revision),
 *    at its acknowledged revision, and nothing is in the log that no client wrote;
 * 3. the watcher's revisions run without a gap or a duplicate up to the final revision;
 * 4. every member reports the same HashKV (`etcdctl endpoint hashkv`) at the same revision, and answers
 *    each key (a serializable read, its own state) with the log's last value.
 *
 * The cluster is a `ClusterTarget` (test/support/cluster.ts): real etcd today, etcd-ts members later.
 */

export interface FaultRunOptions {
  target: ClusterTarget;
  seed: number;
  durationMs: number;
  clients?: number;
  keys?: number;
  faults?: readonly FaultKind[];
  /** Force one kill -9 + restart as the n-th fault. */
  killAt?: number;
  /** Clean operation after the faults end (proves the cluster serves again). */
  tailMs?: number;
  /** Where the history file goes; it is kept when the run fails (or always with keepHistory). */
  historyDir: string;
  keepHistory?: boolean;
  /** Serializable gets: for showing the checker catches stale local reads, never for a passing run. */
  serializableReads?: boolean;
  opDeadlineMs?: number;
  /** A client waits uniform [0, thinkMsMax] ms between ops (default 4). */
  thinkMsMax?: number;
  log?: (line: string) => void;
}

export interface FaultRunReport {
  seed: number;
  ok: boolean;
  problems: string[];
  check: CheckResult;
  ops: number;
  acknowledgedWrites: number;
  unknownOutcomes: number;
  watchEvents: number;
  startRevision: number;
  finalRevision: number;
  hashes: EndpointHash[];
  actions: string[];
  clientErrors: number;
  clientErrorSamples: string[];
  watchRestarts: string[];
  historyPath: string | null;
  elapsedMs: number;
}

const CONVERGE_TIMEOUT_MS = 30_000;
const WATCH_CATCH_UP_TIMEOUT_MS = 20_000;
const CALL_DEADLINE_MS = 5_000;

export async function runFaultRun(options: FaultRunOptions): Promise<FaultRunReport> {
  const startedMs = performance.now();
  const { target, seed } = options;
  const log = options.log ?? ((): void => {});
  const prefix = `linz/${seed}.${Date.now()}/`;
  const keys = Array.from({ length: options.keys ?? 6 }, (_unused, i) => `${prefix}k${i}`);
  const endpoints = target.members.map((m) => m.endpoint);
  const [first] = await statuses(target);
  if (first === undefined) throw new Error("no member answers Status before the run");
  const startRevision = first.revision + 1;
  const watcher = startWatcher(endpoints, prefix, startRevision);
  const recorder = new HistoryRecorder();
  const workload = startWorkload({
    endpoints,
    recorder,
    keys,
    clients: options.clients ?? 6,
    seed,
    ...(options.opDeadlineMs === undefined ? {} : { opDeadlineMs: options.opDeadlineMs }),
    ...(options.serializableReads === undefined ? {} : { serializableReads: options.serializableReads }),
    ...(options.thinkMsMax === undefined ? {} : { thinkMsMax: options.thinkMsMax }),
  });
  log(
    `fault run seed ${seed} on ${target.kind}: ${options.clients ?? 6} clients, ${keys.length} keys, ${options.durationMs} ms of faults`,
  );
  const problems: string[] = [];
  const nemesis = runNemesis({
    target,
    seed,
    durationMs: options.durationMs,
    ...(options.faults === undefined ? {} : { faults: options.faults }),
    ...(options.killAt === undefined ? {} : { killAt: options.killAt }),
    log,
  });
  let finalRevision = 0;
  let hashes: EndpointHash[] = [];
  try {
    await nemesis.done;
    await sleep(options.tailMs ?? 2_000);
  } finally {
    await workload.stop();
  }
  try {
    finalRevision = await waitConverged(target, CONVERGE_TIMEOUT_MS);
    await watcher.waitFor(finalRevision, WATCH_CATCH_UP_TIMEOUT_MS);
    hashes = await etcdctlHashKV(target, finalRevision);
    if (new Set(hashes.map((h) => h.hash)).size !== 1 || new Set(hashes.map((h) => h.revision)).size !== 1) {
      problems.push(`members disagree on HashKV at revision ${finalRevision}: ${JSON.stringify(hashes)}`);
    }
  } catch (error) {
    problems.push(`no convergence after healing: ${(error as Error).message}`);
  } finally {
    watcher.close();
  }
  const history = recorder.ops();
  const check = checkHistory(history);
  if (check.verdict !== "linearizable") problems.push(`history is ${check.verdict}:\n${formatResult(check)}`);
  problems.push(...watcher.problems);
  problems.push(...checkWriteLog(history, watcher.events, startRevision, finalRevision));
  if (finalRevision > 0) problems.push(...(await checkFinalValues(target, prefix, watcher.events)));
  const ok = problems.length === 0;
  mkdirSync(options.historyDir, { recursive: true });
  const historyPath = join(options.historyDir, `history-seed${seed}.jsonl`);
  writeHistory(historyPath, history, {
    seed,
    target: target.kind,
    durationMs: options.durationMs,
    clients: options.clients ?? 6,
    keys: keys.length,
    startRevision,
    finalRevision,
    faults: nemesis.actions,
  });
  const kept = !ok || options.keepHistory === true;
  if (!kept) rmSync(historyPath, { force: true });
  const errors = workload.errors();
  return {
    seed,
    ok,
    problems,
    check,
    ops: history.length,
    acknowledgedWrites: history.filter(isAnsweredWrite).length,
    unknownOutcomes: history.filter((op) => op.completeNs === null).length,
    watchEvents: watcher.events.length,
    startRevision,
    finalRevision,
    hashes,
    actions: nemesis.actions,
    clientErrors: errors.count,
    clientErrorSamples: errors.samples,
    watchRestarts: watcher.restarts,
    historyPath: kept ? historyPath : null,
    elapsedMs: performance.now() - startedMs,
  };
}

/** Problems with the write log the watcher saw: gaps, duplicates, lost acknowledged writes, invented writes. */
/**
 * For the checker's teeth: short runs with seeds `options.seed`, +1, ... (at most `attempts`) until one is
 * reported as a violation. Every run here is expected to fail, so the histories they keep are deleted.
 * Returns the violating report (null if none) and the verdicts of all runs, for the failure message.
 */
export async function firstViolation(
  options: FaultRunOptions,
  attempts: number,
): Promise<{ report: FaultRunReport | null; verdicts: string[] }> {
  const verdicts: string[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const report = await runFaultRun({ ...options, seed: options.seed + attempt });
    verdicts.push(report.check.verdict);
    if (report.historyPath !== null) rmSync(report.historyPath, { force: true });
    if (report.check.verdict === "violation") return { report, verdicts };
  }
  return { report: null, verdicts };
}

export function checkWriteLog(
  history: readonly HistoryOp[],
  events: readonly WatchedEvent[],
  startRevision: number,
  finalRevision: number,
): string[] {
  const problems: string[] = [];
  const REPORTED_MAX = 20;
  const report = (text: string): void => {
    if (problems.length < REPORTED_MAX) problems.push(text);
  };
  let expected = startRevision;
  const byRevision = new Map<number, WatchedEvent>();
  for (const event of events) {
    if (event.revision !== expected) {
      report(
        event.revision > expected
          ? `watch gap: revisions ${expected}..${event.revision - 1} never arrived`
          : `watch duplicate or reorder: revision ${event.revision} after ${expected - 1}`,
      );
    }
    expected = Math.max(expected, event.revision + 1);
    byRevision.set(event.revision, event);
  }
  if (finalRevision > 0 && expected !== finalRevision + 1) {
    report(`watch ended at revision ${expected - 1}, the cluster at ${finalRevision}`);
  }
  const writerOf = new Map<string, HistoryOp>();
  for (const op of history)
    if (op.input.kind !== "get") writerOf.set(`${op.input.key}\u0000${op.input.value}`, op);
  for (const op of history) {
    if (!isAnsweredWrite(op) || op.input.kind === "get") continue;
    const revision = (op.output as { revision: number }).revision;
    const event = byRevision.get(revision);
    if (event === undefined || event.key !== op.input.key || event.value !== op.input.value) {
      report(
        `acknowledged write lost: op ${op.id} ${op.input.key}=${op.input.value} at revision ${revision}, the log has ${event === undefined ? "nothing" : `${event.key}=${event.value}`} there`,
      );
    }
  }
  for (const event of events) {
    const writer = event.value === null ? undefined : writerOf.get(`${event.key}\u0000${event.value}`);
    if (writer === undefined) {
      report(`invented write: ${event.key}=${event.value} at revision ${event.revision} was never sent`);
      continue;
    }
    const output = writer.output;
    if (output !== null && output.kind === "cas" && !output.succeeded) {
      report(`a failed compare-and-set took effect: op ${writer.id} at revision ${event.revision}`);
    }
  }
  return problems;
}

/** Each member's own (serializable) view of every key against the last value the write log shows. */
async function checkFinalValues(
  target: ClusterTarget,
  prefix: string,
  events: readonly WatchedEvent[],
): Promise<string[]> {
  const expected = new Map<string, string | null>();
  for (const event of events) expected.set(event.key, event.value);
  const problems: string[] = [];
  for (const member of target.members) {
    const kv = new KVClient(member.endpoint, grpc.credentials.createInsecure());
    try {
      const response = await callUnary(
        kv,
        kv.Range,
        { key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), serializable: true },
        new grpc.Metadata(),
        { deadline: Date.now() + CALL_DEADLINE_MS },
      );
      const actual = new Map(
        response.kvs.map((entry) => [Buffer.from(entry.key).toString(), Buffer.from(entry.value).toString()]),
      );
      for (const [key, value] of expected) {
        if ((actual.get(key) ?? null) !== value) {
          problems.push(
            `${member.name} holds ${key}=${actual.get(key) ?? "(absent)"}, the write log ends with ${value}`,
          );
        }
      }
    } catch (error) {
      problems.push(`${member.name} did not answer the final read: ${(error as Error).message}`);
    } finally {
      kv.close();
    }
  }
  return problems;
}

export function formatReport(report: FaultRunReport): string {
  const lines = [
    `${report.ok ? "PASS" : "FAIL"} fault run seed ${report.seed}: ${report.ops} ops (${report.acknowledgedWrites} acknowledged writes, ${report.unknownOutcomes} unknown outcomes), ` +
      `revisions ${report.startRevision}..${report.finalRevision}, ${report.watchEvents} watch events, ${report.actions.length} nemesis actions, ` +
      `${report.clientErrors} client errors, ${(report.elapsedMs / 1000).toFixed(1)} s`,
    `checker: ${report.check.verdict}, ${report.check.keys} keys, ${report.check.steps} steps, ${report.check.elapsedMs.toFixed(0)} ms`,
    `HashKV at ${report.finalRevision}: ${report.hashes.map((h) => `${h.endpoint}=${h.hash}`).join(" ")}`,
    "faults:",
    ...report.actions.map((action) => `  ${action}`),
  ];
  if (report.problems.length > 0) lines.push("problems:", ...report.problems.map((p) => `  ${p}`));
  if (report.historyPath !== null) {
    lines.push(
      `history kept: ${report.historyPath}`,
      `replay: node --import tsx test/linearizability/check.ts ${report.historyPath}`,
    );
  }
  return lines.join("\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
