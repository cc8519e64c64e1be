import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { assert } from "../../src/assert.js";
import { clusterMembersMax } from "../load/config.js";
import { closeConnections, methods, openConnections, unaryCall } from "../load/connections.js";
import { BenchError } from "../load/errors.js";
import {
  etcdBinary,
  etcdTsEntry,
  freePort,
  type ManagedChild,
  manage,
  nodeArgsFor,
  type RunningCluster,
  type RunningMember,
  type RunningTarget,
  type StartOptions,
  type Target,
  targetStartTimeoutMs,
  waitHealthy,
} from "../load/targets.js";
import { readStatusResponse, type StatusSummary } from "../load/wire.js";

/**
 * `--cluster N`: an N-member etcd or etcd-ts cluster on loopback, started by the bench itself (each
 * member a process of its own with its own temp data dir, peers talking directly, no fault proxy in
 * between), so the bench can read every member's /proc for CPU and RSS and pass node flags (--profile)
 * to etcd-ts members. The load goes to the leader, found with Maintenance.Status, as `etcdctl check
 * perf` against a cluster reaches the leader through its first endpoint when that is the leader.
 */

/** Deadline of one Status call while looking for the leader. */
const statusTimeoutMs = 1_000;
/** Pause between two rounds of Status calls while the members elect a leader. */
const leaderPollIntervalMs = 100;
/** Dial deadline of the Status connections (the members already answered /health). */
const statusDialTimeoutMs = 2_000;
/**
 * Consecutive Status rounds that must name the same leader before the load starts: a member that just
 * joined can still call an election, and the load must reach the member that stays leader.
 */
export const leaderStableRounds = 3;

export interface MemberPlan {
  name: string;
  clientUrl: string;
  peerUrl: string;
  /** host:port of the client URL, as grpc-js takes it. */
  endpoint: string;
  dataDir: string;
}

/** Member names as etcd's docs write them: infra1, infra2, ... */
export function memberNames(size: number): string[] {
  assert(Number.isSafeInteger(size) && size >= 1 && size <= clusterMembersMax, `cluster size ${size}`);
  return Array.from({ length: size }, (_unused, index) => `infra${index + 1}`);
}

/**
 * Each member's flags for a new cluster (etcd's static bootstrap; etcd-ts takes the same flags). The
 * heartbeat and election timeouts stay at etcd's defaults (100 ms, 1 s): the bench measures what a
 * user would run.
 */
export function clusterMemberFlags(members: readonly MemberPlan[], token: string): string[][] {
  assert(members.length >= 1, "a cluster has at least one member");
  const initialCluster = members.map((member) => `${member.name}=${member.peerUrl}`).join(",");
  return members.map((member) => [
    `--name=${member.name}`,
    `--data-dir=${member.dataDir}`,
    `--listen-client-urls=${member.clientUrl}`,
    `--advertise-client-urls=${member.clientUrl}`,
    `--listen-peer-urls=${member.peerUrl}`,
    `--initial-advertise-peer-urls=${member.peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    `--initial-cluster-token=${token}`,
    "--initial-cluster-state=new",
    "--log-level=error",
  ]);
}

/** A member's Status answer, or null when it did not answer. */
export interface NamedStatus {
  name: string;
  status: StatusSummary | null;
}

/**
 * The leader's name when every member answered, all name the same non-zero leader, and that leader is
 * one of them (its own header carries that id); else null: an election is still going on, or a member
 * lags behind a new term.
 */
export function pickLeader(statuses: readonly NamedStatus[]): string | null {
  let leaderId: bigint | null = null;
  for (const { status } of statuses) {
    if (status === null || status.leaderId === 0n) return null;
    if (leaderId === null) leaderId = status.leaderId;
    else if (status.leaderId !== leaderId) return null;
  }
  const leader = statuses.find(({ status }) => status !== null && status.memberId === leaderId);
  return leader === undefined ? null : leader.name;
}

/** One Status round over every member; a member that fails to answer counts as null. */
async function statusRound(clients: ReadonlyMap<string, grpc.Client>): Promise<NamedStatus[]> {
  return Promise.all(
    [...clients].map(async ([name, client]): Promise<NamedStatus> => {
      try {
        const response = await unaryCall(client, methods.status, Buffer.alloc(0), statusTimeoutMs);
        return { name, status: readStatusResponse(response) };
      } catch {
        return { name, status: null };
      }
    }),
  );
}

/** How a cluster's members are run: the etcd binary, or node on the etcd-ts entry point. */
interface MemberCommand {
  file: string;
  /** Arguments before the member's etcd flags. */
  args: (options: StartOptions) => string[];
  /** Whether the member is a Node process (takes node flags, writes --trace-gc lines on stdout). */
  node: boolean;
  /** Which etcd-ts code the members run (compiled build or sources), for the bench's output; null for etcd. */
  entryLine: string | null;
}

interface ClusterSpec {
  name: string;
  kind: "etcd" | "etcd-ts";
  size: number;
  command: () => MemberCommand;
}

/**
 * Stops the members one at a time, whichever is leader first. A leader asked to stop hands its
 * leadership to a follower before it exits (etcd's graceful stop; etcd-ts does the same) and waits
 * for that up to etcd's request timeout (7 s with the default 1 s election timeout): stopped together
 * with its followers it waits the whole time for peers that are gone, each run, for each cluster.
 * Stopped while its followers run, it hands over at once. `clients` (Status connections by member
 * name) are null when the start failed before they were opened: then the members stop in order.
 */
async function stopMembers(
  names: readonly string[],
  managed: readonly ManagedChild[],
  clients: ReadonlyMap<string, grpc.Client> | null,
): Promise<void> {
  const remaining = names.map((_name, index) => index);
  while (remaining.length > 0) {
    let next = 0;
    if (clients !== null && remaining.length > 1) {
      const asked = new Map(remaining.map((index) => [names[index]!, clients.get(names[index]!)!]));
      const leader = pickLeader(await statusRound(asked));
      next = Math.max(
        0,
        remaining.findIndex((index) => names[index] === leader),
      );
    }
    const [index] = remaining.splice(next, 1);
    await managed[index!]!.stop();
  }
}

async function planMembers(spec: ClusterSpec): Promise<MemberPlan[]> {
  const plans: MemberPlan[] = [];
  for (const name of memberNames(spec.size)) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    plans.push({
      name,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
      endpoint: `127.0.0.1:${clientPort}`,
      dataDir: mkdtempSync(join(tmpdir(), `${spec.kind}-${name}-bench-`)),
    });
  }
  return plans;
}

/**
 * Polls Status on every member until they agree on the same leader `leaderStableRounds` rounds in a
 * row, or fails after the start timeout.
 */
async function awaitLeader(spec: ClusterSpec, clients: ReadonlyMap<string, grpc.Client>): Promise<string> {
  const deadline = Date.now() + targetStartTimeoutMs;
  let candidate: string | null = null;
  let rounds = 0;
  for (;;) {
    const leader = pickLeader(await statusRound(clients));
    rounds = leader !== null && leader === candidate ? rounds + 1 : 1;
    candidate = leader;
    if (candidate !== null && rounds >= leaderStableRounds) return candidate;
    if (Date.now() > deadline) {
      throw new BenchError(
        "BENCH_TARGET_START",
        `${spec.name}: the members did not agree on a leader within ${targetStartTimeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, leaderPollIntervalMs));
  }
}

async function startCluster(spec: ClusterSpec, options: StartOptions): Promise<RunningTarget> {
  const command = spec.command();
  const plans = await planMembers(spec);
  const flags = clusterMemberFlags(plans, `${spec.kind}-bench-${process.pid}-${Date.now()}`);
  // Only the leader's --trace-gc lines reach the profile session; it is known once all are up.
  let leaderName: string | null = null;
  const stdoutLine = options.stdoutLine;
  const managed: ManagedChild[] = [];
  // A bench that exits while members run (an interrupt during the start, a crash) must not leave
  // them behind: the stop() path below covers every orderly end.
  const killOnExit = (): void => {
    for (const { child } of managed) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    for (const plan of plans) rmSync(plan.dataDir, { recursive: true, force: true });
  };
  process.once("exit", killOnExit);
  let clients: Map<string, grpc.Client> | null = null;
  const stopAll = async (): Promise<void> => {
    await stopMembers(
      plans.map((plan) => plan.name),
      managed,
      clients,
    );
    if (clients !== null) closeConnections([...clients.values()]);
    process.off("exit", killOnExit);
  };
  for (const [index, plan] of plans.entries()) {
    const child = spawn(command.file, [...command.args(options), ...flags[index]!], {
      stdio: ["ignore", command.node && stdoutLine !== null ? "pipe" : "ignore", "pipe"],
    });
    const memberOptions: StartOptions = {
      ...options,
      stdoutLine:
        stdoutLine === null || !command.node
          ? null
          : (line) => {
              if (leaderName === plan.name) stdoutLine(line);
            },
    };
    managed.push(manage(child, memberOptions, () => rmSync(plan.dataDir, { recursive: true, force: true })));
  }
  try {
    await new Promise((resolve) => setImmediate(resolve));
    const missing = managed.findIndex((member) => member.child.pid === undefined);
    if (missing !== -1) {
      throw new BenchError("BENCH_TARGET_START", `cannot start ${command.file} for ${spec.name}`);
    }
    // Members of a new cluster wait for each other: they become healthy together, once a leader exists.
    await Promise.all(
      plans.map((plan, index) => waitHealthy(`${spec.name} ${plan.name}`, managed[index]!, plan.clientUrl)),
    );
    const opened = new Map<string, grpc.Client>();
    clients = opened;
    for (const plan of plans) {
      const [client] = await openConnections([plan.endpoint], 1, statusDialTimeoutMs);
      opened.set(plan.name, client!);
    }
    leaderName = await awaitLeader(spec, opened);
    const statuses = await statusRound(opened);
    const members: RunningMember[] = plans.map((plan, index) => ({
      name: plan.name,
      idHex: statuses.find((entry) => entry.name === plan.name)?.status?.memberId.toString(16) ?? "",
      endpoint: plan.endpoint,
      pid: managed[index]!.child.pid!,
      leader: plan.name === leaderName,
    }));
    const leader = members.find((member) => member.leader)!;
    const cluster: RunningCluster = {
      members,
      currentLeader: async () => pickLeader(await statusRound(opened)),
    };
    return {
      endpoints: [leader.endpoint],
      pid: leader.pid,
      cluster,
      stop: stopAll,
      entryLine: command.entryLine,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** The target's name in reports: "etcd x3". */
export function clusterTargetName(kind: "etcd" | "etcd-ts", size: number): string {
  return `${kind} x${size}`;
}

/** A real etcd cluster of `size` members (etcd from PATH or $ETCD_BIN). */
export function etcdClusterTarget(size: number): Target {
  const spec: ClusterSpec = {
    name: clusterTargetName("etcd", size),
    kind: "etcd",
    size,
    command: () => ({ file: etcdBinary(), args: () => [], node: false, entryLine: null }),
  };
  return {
    name: spec.name,
    kind: "etcd",
    profilable: false,
    unsupported: () => null,
    start: (options) => startCluster(spec, options),
  };
}

/**
 * An etcd-ts cluster of `size` members. With --profile every member runs under --cpu-prof (the leader
 * is known only once they are up); the report reads the leader's profile.
 */
export function etcdTsClusterTarget(size: number, fromSource = false): Target {
  const spec: ClusterSpec = {
    name: clusterTargetName("etcd-ts", size),
    kind: "etcd-ts",
    size,
    command: () => {
      const entry = etcdTsEntry(fromSource);
      return {
        file: process.execPath,
        args: (options) => [...options.nodeFlags, ...nodeArgsFor(entry.entryPath)],
        node: true,
        entryLine: entry.line,
      };
    },
  };
  return {
    name: spec.name,
    kind: "etcd-ts",
    profilable: true,
    unsupported: () => null,
    start: (options) => startCluster(spec, options),
  };
}
