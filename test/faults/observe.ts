import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { callUnary, MaintenanceClient } from "../../src/proto/index.js";
import type { Cluster } from "../support/cluster.js";

/**
 * What a fault test asks a cluster: who leads, whether members agree, and whether their stores are equal
 * (HashKV at one revision). Over the client API only (Maintenance.Status, Maintenance.HashKV, etcdctl), so
 * it works the same against real etcd and etcd-ts.
 */

const execFileAsync = promisify(execFile);
/** One status or hash call gets this long. */
const CALL_DEADLINE_MS = 2_000;
const POLL_MS = 100;

export interface MemberStatus {
  name: string;
  /** The leader this member believes in (0n: none). */
  leader: bigint;
  raftTerm: number;
  raftIndex: number;
  revision: number;
}

function client(endpoint: string): MaintenanceClient {
  return new MaintenanceClient(endpoint, grpc.credentials.createInsecure(), {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 500,
  });
}

/** Status of each running member that answers in time (paused or cut-off members may not). */
export async function statuses(target: Cluster, names?: readonly string[]): Promise<MemberStatus[]> {
  const wanted = target.members.filter(
    (m) => (names ?? [m.name]).includes(m.name) && target.state(m.name) === "running",
  );
  const answers = await Promise.all(
    wanted.map(async (member): Promise<MemberStatus | null> => {
      const maintenance = client(member.endpoint);
      try {
        const status = await callUnary(maintenance, maintenance.Status, {}, new grpc.Metadata(), {
          deadline: Date.now() + CALL_DEADLINE_MS,
        });
        return {
          name: member.name,
          leader: status.leader,
          raftTerm: status.raftTerm,
          raftIndex: status.raftIndex,
          revision: status.header?.revision ?? 0,
        };
      } catch {
        return null;
      } finally {
        maintenance.close();
      }
    }),
  );
  return answers.filter((status): status is MemberStatus => status !== null);
}

export function nameOf(target: Cluster, id: bigint): string | undefined {
  return target.members.find((m) => m.id === id)?.name;
}

/**
 * Waits until every member in `among` answers and names the same leader, itself one of `among` and not
 * `excluding`; resolves with its name.
 */
export async function waitForLeader(
  target: Cluster,
  options: { among?: readonly string[]; excluding?: string; timeoutMs: number },
): Promise<string> {
  const among = options.among ?? target.members.map((m) => m.name);
  const deadline = Date.now() + options.timeoutMs;
  let last: MemberStatus[] = [];
  for (;;) {
    last = await statuses(target, among);
    const leaders = new Set(last.map((s) => s.leader));
    const [leader] = leaders;
    const name = leader === undefined ? undefined : nameOf(target, leader);
    if (last.length === among.length && leaders.size === 1 && name !== undefined && among.includes(name)) {
      if (name !== options.excluding) return name;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `no agreed leader among ${among.join(",")} within ${options.timeoutMs} ms: ${describe(target, last)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function describe(target: Cluster, list: readonly MemberStatus[]): string {
  return list
    .map(
      (s) =>
        `${s.name}: leader ${nameOf(target, s.leader) ?? s.leader.toString(16)} term ${s.raftTerm} index ${s.raftIndex} rev ${s.revision}`,
    )
    .join("; ");
}

/**
 * Waits until every member answers with the same leader, raft index and revision (nothing in flight),
 * then resolves with that revision.
 */
export async function waitConverged(target: Cluster, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await statuses(target);
    const agreed =
      list.length === target.members.length &&
      new Set(list.map((s) => s.leader)).size === 1 &&
      (list[0]?.leader ?? 0n) !== 0n &&
      new Set(list.map((s) => s.raftIndex)).size === 1 &&
      new Set(list.map((s) => s.revision)).size === 1;
    if (agreed) return (list[0] as MemberStatus).revision;
    if (Date.now() > deadline)
      throw new Error(`members did not converge within ${timeoutMs} ms: ${describe(target, list)}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export interface EndpointHash {
  endpoint: string;
  hash: number;
  revision: number;
  compactRevision: number;
}

/** `etcdctl endpoint hashkv -w json` over every member (at `revision`, or each member's latest when 0). */
export async function etcdctlHashKV(target: Pick<Cluster, "members">, revision = 0): Promise<EndpointHash[]> {
  const { stdout } = await execFileAsync(
    "etcdctl",
    [
      `--endpoints=${target.members.map((m) => m.endpoint).join(",")}`,
      "endpoint",
      "hashkv",
      `--rev=${revision}`,
      "-w",
      "json",
    ],
    { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 20_000 },
  );
  const parsed = JSON.parse(stdout) as {
    Endpoint: string;
    HashKV: { header: { revision: number }; hash: number; compact_revision?: number };
  }[];
  return parsed.map((entry) => ({
    endpoint: entry.Endpoint,
    hash: entry.HashKV.hash,
    revision: entry.HashKV.header.revision,
    compactRevision: entry.HashKV.compact_revision ?? 0,
  }));
}
