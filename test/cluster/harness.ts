import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { etcdctlHashKV, waitConverged, waitForLeader } from "../faults/observe.js";
import {
  type Cluster,
  type ClusterKind,
  type ClusterStartOptions,
  type EtcdctlResult,
  etcdctl,
  startCluster,
} from "../support/cluster.js";

/**
 * Shared pieces of the cluster end-to-end tests (test/cluster/*.test.ts): the targets each file runs
 * against, etcdctl with the error text etcd prints, leader lookup, and the HashKV agreement check.
 *
 * Every file runs the same assertions against a real etcd 3.4.23 cluster (to keep them honest about
 * etcd's behaviour) and an etcd-ts cluster. CLUSTER_TARGETS=etcd or CLUSTER_TARGETS=etcd-ts narrows a
 * local run to one of them.
 */

export const HEARTBEAT_MS = 50;
export const ELECTION_MS = 500;
/** A bound on waiting for an election after a fault: many election timeouts, never reached when healthy. */
export const ELECTION_WAIT_MS = 20 * ELECTION_MS;
/** A bound on members agreeing on one raft index and revision after a fault heals. */
export const CONVERGE_WAIT_MS = 30_000;
/** How long a reconfiguration refused as "unhealthy cluster" (etcd's 5 s health interval) is retried. */
const RECONFIG_RETRY_MS = 15_000;
const RECONFIG_RETRY_PAUSE_MS = 250;

export interface TargetSpec {
  kind: ClusterKind;
  label: string;
}

const ALL_TARGETS: readonly TargetSpec[] = [
  { kind: "etcd", label: "real etcd 3.4.23" },
  { kind: "etcd-ts", label: "etcd-ts" },
];

/** The targets a file registers its suites for (both unless CLUSTER_TARGETS names one). */
export function clusterTargets(): TargetSpec[] {
  const wanted = process.env.CLUSTER_TARGETS;
  if (wanted === undefined || wanted === "") return [...ALL_TARGETS];
  const names = wanted.split(",");
  return ALL_TARGETS.filter((t) => names.includes(t.kind));
}

/** A cluster for the end-to-end tests: no fault proxies, quick timeouts. */
export function startTestCluster(kind: ClusterKind, options: ClusterStartOptions = {}): Promise<Cluster> {
  return startCluster(kind, {
    proxies: false,
    heartbeatMs: HEARTBEAT_MS,
    electionMs: ELECTION_MS,
    ...options,
  });
}

/** etcdctl's own error line ("Error: ..."), without the client library's JSON warnings. */
export function errorLine(result: EtcdctlResult): string {
  return result.stderr
    .split("\n")
    .filter((line) => line.startsWith("Error:"))
    .join("\n");
}

/** etcdctl that must succeed; resolves with stdout. */
export async function ctl(endpoints: readonly string[], ...args: string[]): Promise<string> {
  const result = await etcdctl(endpoints, ["--command-timeout=10s", ...args]);
  assert.equal(result.code, 0, `etcdctl ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

/** etcdctl that must fail with exactly etcd's error line. */
export async function ctlFails(
  endpoints: readonly string[],
  expected: string,
  ...args: string[]
): Promise<void> {
  const result = await etcdctl(endpoints, ["--command-timeout=10s", ...args]);
  assert.notEqual(result.code, 0, `etcdctl ${args.join(" ")} succeeded: ${result.stdout}`);
  assert.equal(errorLine(result), `Error: ${expected}`, result.stderr);
}

/**
 * A membership change through etcdctl, retried while etcd refuses it as "unhealthy cluster": its
 * strict reconfiguration check wants the member that takes the request to have been connected to its
 * peers for 5 s, which is not yet so right after a start or a restart.
 */
export async function reconfigure(endpoints: readonly string[], ...args: string[]): Promise<EtcdctlResult> {
  const deadline = Date.now() + RECONFIG_RETRY_MS;
  for (;;) {
    const result = await etcdctl(endpoints, ["--command-timeout=10s", ...args]);
    if (result.code === 0 || !/unhealthy cluster/.test(result.stderr) || Date.now() > deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, RECONFIG_RETRY_PAUSE_MS));
  }
}

/** Parses etcdctl's JSON keeping 64-bit numbers exact (as decimal strings). */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(text.replace(/(":\s*)(\d{16,})/g, '$1"$2"'));
}

/** The name of the member every live member names as leader. */
export function leaderName(cluster: Cluster, among?: readonly string[]): Promise<string> {
  return waitForLeader(cluster, {
    timeoutMs: ELECTION_WAIT_MS,
    ...(among === undefined ? {} : { among }),
  });
}

export function endpoints(cluster: Cluster, names?: readonly string[]): string[] {
  return cluster.members.filter((m) => names === undefined || names.includes(m.name)).map((m) => m.endpoint);
}

/**
 * Waits until every member has applied the same raft index and revision, then asserts that
 * `etcdctl endpoint hashkv` gives one hash at that revision on every member (or on the members named
 * in `hashOn`: a learner refuses HashKV, "rpc not supported for learner"); resolves with the revision.
 */
export async function assertSameHashKV(cluster: Cluster, hashOn?: readonly string[]): Promise<number> {
  const revision = await waitConverged(cluster, CONVERGE_WAIT_MS);
  const hashes = await etcdctlHashKV(
    { members: cluster.members.filter((m) => hashOn === undefined || hashOn.includes(m.name)) },
    revision,
  );
  assert.equal(hashes.length, hashOn?.length ?? cluster.members.length);
  assert.equal(new Set(hashes.map((h) => h.hash)).size, 1, `HashKV differ: ${JSON.stringify(hashes)}`);
  assert.equal(new Set(hashes.map((h) => h.revision)).size, 1, JSON.stringify(hashes));
  return revision;
}

/** An etcd3 npm client on one member (no retries on other hosts: the member under test answers). */
export function client(endpoint: string): Etcd3 {
  return new Etcd3({ hosts: `http://${endpoint}`, dialTimeout: 5_000 });
}

/** Hex member id as etcdctl prints it. */
export function hex(id: bigint): string {
  return id.toString(16);
}
