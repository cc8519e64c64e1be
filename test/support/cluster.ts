import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assert } from "../../src/assert.js";
import { MemberProcess, type ProcessState } from "../faults/processes.js";
import { FaultNetwork, serverFromIdentifier } from "../faults/proxy.js";
import { freePort } from "./ports.js";
import { etcdBinary } from "./realEtcd.js";

/**
 * A cluster of members on 127.0.0.1 whose peer traffic goes through a FaultNetwork (test/faults/proxy.ts):
 * each member listens for peers on its own port and advertises its proxy's port, so every peer
 * connection passes a proxy that can delay, blackhole or drop it per direction.
 *
 * `ClusterTarget` is the seam fault tests drive: today `startRealEtcdCluster` (etcd 3.4.23), later an
 * etcd-ts cluster implementing the same interface (the lead wires it once members form clusters).
 */

export interface ClusterMember {
  readonly name: string;
  /** The member id etcd derives (sha1 of the sorted peer URLs and the cluster token, first 8 bytes). */
  readonly id: bigint;
  /** host:port of the client URL, as etcdctl's --endpoints and grpc-js take it. */
  readonly endpoint: string;
  readonly clientUrl: string;
  /** The peer URL the member advertises (its proxy's). */
  readonly peerUrl: string;
  readonly dataDir: string;
}

export interface ClusterTarget {
  /** What runs the members, for reports ("etcd 3.4.23", "etcd-ts"). */
  readonly kind: string;
  readonly members: readonly ClusterMember[];
  readonly network: FaultNetwork;
  state(name: string): ProcessState;
  /** kill -9 and wait for the exit; the data dir stays for restart(). */
  kill9(name: string): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(name: string): void;
  resume(name: string): void;
  /** Starts a stopped or killed member again on its data dir and ports; resolves once it answers /health. */
  restart(name: string): Promise<void>;
  /** The tail of a member's stderr, for failure reports. */
  stderr(name: string): string;
  /** Stops every member and proxy; removes the data dirs unless kept. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  size?: number;
  /** --initial-cluster-token (also feeds the member ids). */
  token?: string;
  heartbeatMs?: number;
  electionMs?: number;
  /** Extra flags for every member. */
  flags?: string[];
  /** Keep the data dirs after stop() (to inspect a failure). */
  keepDataDirs?: boolean;
  /** Seeds the proxies' delay jitter. */
  seed?: number;
  startTimeoutMs?: number;
}

/** etcd's member id rule (membership.computeMemberID without a time): sha1(sorted peer URLs joined + token)[0:8]. */
export function etcdMemberId(peerUrls: readonly string[], token: string): bigint {
  const digest = createHash("sha1")
    .update([...peerUrls].sort().join("") + token)
    .digest();
  return digest.readBigUInt64BE(0);
}

/** Resolves once `clientUrl`/health says true; throws after `timeoutMs`. */
export async function waitHealthy(
  clientUrl: string,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await response.json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not up yet, or no leader yet
    }
    if (Date.now() > deadline)
      throw new Error(`${clientUrl} not healthy within ${timeoutMs} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A real etcd 3.4 cluster (Debian's etcd-server) with every peer link behind a fault proxy. */
export async function startRealEtcdCluster(options: ClusterOptions = {}): Promise<ClusterTarget> {
  const size = options.size ?? 3;
  assert(size >= 1 && size <= 7, "a cluster of 1 to 7 members");
  const token = options.token ?? `etcd-ts-faults-${process.pid}-${Date.now()}`;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const names = Array.from({ length: size }, (_unused, i) => `m${i + 1}`);
  const plan = [];
  for (const name of names) {
    plan.push({ name, clientPort: await freePort(), peerPort: await freePort() });
  }
  const ids = new Map<bigint, string>();
  const network = new FaultNetwork({ identify: serverFromIdentifier(ids), seed: options.seed ?? 1 });
  const members: ClusterMember[] = [];
  for (const { name, clientPort, peerPort } of plan) {
    const proxyPort = await network.addMember(name, peerPort);
    const peerUrl = `http://127.0.0.1:${proxyPort}`;
    const id = etcdMemberId([peerUrl], token);
    ids.set(id, name);
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    members.push({
      name,
      id,
      endpoint: `127.0.0.1:${clientPort}`,
      clientUrl,
      peerUrl,
      dataDir: mkdtempSync(join(tmpdir(), `etcd-cluster-${name}-`)),
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const processes = new Map<string, MemberProcess>();
  for (const [i, member] of members.entries()) {
    const peerPort = (plan[i] as { peerPort: number }).peerPort;
    const args = [
      `--name=${member.name}`,
      `--data-dir=${member.dataDir}`,
      `--listen-client-urls=${member.clientUrl}`,
      `--advertise-client-urls=${member.clientUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=${member.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${token}`,
      "--initial-cluster-state=new",
      `--heartbeat-interval=${options.heartbeatMs ?? 100}`,
      `--election-timeout=${options.electionMs ?? 1000}`,
      "--logger=zap",
      "--log-level=warn",
      ...(options.flags ?? []),
    ];
    processes.set(member.name, new MemberProcess(member.name, etcdBinary(), args));
  }
  const processOf = (name: string): MemberProcess => {
    const found = processes.get(name);
    assert(found !== undefined, `no member ${name}`);
    return found;
  };
  const memberOf = (name: string): ClusterMember => members.find((m) => m.name === name) as ClusterMember;
  const stop = async (): Promise<void> => {
    await Promise.all([...processes.values()].map((p) => p.stop()));
    await network.close();
    if (options.keepDataDirs !== true)
      for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
  };
  try {
    for (const p of processes.values()) p.start();
    await Promise.all(
      members.map((m) =>
        waitHealthy(m.clientUrl, startTimeoutMs, () => processOf(m.name).stderr().slice(-4000)),
      ),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    kind: "etcd 3.4.23",
    members,
    network,
    state: (name) => processOf(name).state(),
    kill9: (name) => processOf(name).kill9(),
    pause: (name) => processOf(name).pause(),
    resume: (name) => processOf(name).resume(),
    restart: async (name) => {
      const p = processOf(name);
      p.start();
      await waitHealthy(memberOf(name).clientUrl, startTimeoutMs, () => p.stderr().slice(-4000));
    },
    stderr: (name) => processOf(name).stderr(),
    stop,
  };
}
