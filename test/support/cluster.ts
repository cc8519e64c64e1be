import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assert } from "../../src/assert.js";
import { MemberProcess, type ProcessState } from "../faults/processes.js";
import { FaultNetwork, serverFromIdentifier } from "../faults/proxy.js";
import { etcdTsCommand } from "./etcdTs.js";
import { freePort } from "./ports.js";
import { etcdBinary } from "./realEtcd.js";

/**
 * Clusters of members on 127.0.0.1, each member a process with its own data dir and free ports: real
 * etcd 3.4.23 (`startRealEtcdCluster`) or the etcd-ts bin under tsx (`startEtcdTsCluster`). Both take
 * the same etcd flags and differ only in the command that runs a member (and the kind they report).
 *
 * By default every member's peer traffic goes through a FaultNetwork (test/faults/proxy.ts): each
 * member listens for peers on its own port and advertises its proxy's port, so every peer connection
 * passes a proxy that can delay, blackhole or drop it per direction. With `proxies: false` members
 * advertise their own peer port (no proxy in between; the cluster benchmark's setup).
 *
 * `ClusterTarget` is the seam fault tests drive (a cluster with proxies); `Cluster` is any of them,
 * with the membership helpers the end-to-end tests need: a new member planned (ports, data dir, proxy),
 * started with --initial-cluster-state=existing after `etcdctl member add`, and a removed one forgotten.
 */

export interface ClusterMember {
  readonly name: string;
  /**
   * The member id: for founding members, etcd's rule (sha1 of the sorted peer URLs and the cluster
   * token, first 8 bytes); for members added later, the id `member add` answered.
   */
  readonly id: bigint;
  /** host:port of the client URL, as etcdctl's --endpoints and grpc-js take it. */
  readonly endpoint: string;
  readonly clientUrl: string;
  /** The peer URL the member advertises (its proxy's, or its own without proxies). */
  readonly peerUrl: string;
  readonly dataDir: string;
}

/** A member whose ports, data dir (and proxy) exist but whose process has not started: what `member add` needs. */
export interface PlannedMember {
  readonly name: string;
  readonly endpoint: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

export type ClusterKind = "etcd" | "etcd-ts";

export interface Cluster {
  /** What runs the members, for reports ("etcd 3.4.23", "etcd-ts"). */
  readonly kind: string;
  /** The members this cluster runs now (founders, added ones; forgotten ones are gone). */
  readonly members: readonly ClusterMember[];
  /** The fault proxies, or null when started with `proxies: false`. */
  readonly network: FaultNetwork | null;
  member(name: string): ClusterMember;
  state(name: string): ProcessState;
  /** kill -9 and wait for the exit; the data dir stays for restart(). */
  kill9(name: string): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(name: string): void;
  resume(name: string): void;
  /** Starts a stopped or killed member again on its data dir and ports; resolves once it answers /health. */
  restart(name: string): Promise<void>;
  /** SIGTERM (SIGKILL if it lingers) and wait; the data dir stays. */
  stopMember(name: string): Promise<void>;
  /** Resolves with how a member's process ended once it exits by itself; rejects after `timeoutMs`. */
  waitExit(name: string, timeoutMs: number): Promise<string>;
  /** The tail of a member's stderr, for failure reports. */
  stderr(name: string): string;
  /** Ports, data dir and (with proxies) a proxy for a member to add; nothing runs yet. */
  planMember(name: string): Promise<PlannedMember>;
  /**
   * Starts a planned member with --initial-cluster-state=existing and the `ETCD_INITIAL_CLUSTER` that
   * `member add` printed; it joins the members list under `id`. Resolves once it answers /health
   * unless `waitHealthy` is false.
   */
  startPlanned(
    planned: PlannedMember,
    join: { id: bigint; initialCluster: string; waitHealthy?: boolean; flags?: readonly string[] },
  ): Promise<ClusterMember>;
  /**
   * `etcdctl member add` (through `via`, default every member's endpoint) + startPlanned. Resolves with
   * the member and etcdctl's output.
   */
  addMember(
    name: string,
    options?: {
      learner?: boolean;
      via?: readonly string[];
      waitHealthy?: boolean;
      /** Extra flags for this member only (after the shared ones: the last of a repeated flag wins). */
      flags?: readonly string[];
    },
  ): Promise<{ member: ClusterMember; output: string }>;
  /**
   * Without proxies only: a new free peer port for `name`, listened on from its next restart() (after
   * `etcdctl member update` moved its peer URL there); resolves with the new peer URL.
   */
  movePeerUrl(name: string): Promise<string>;
  /** Stops a member (kill -9) and drops it from `members` (after it was removed); its data dir goes too. */
  forget(name: string): Promise<void>;
  /** Stops every member and proxy; removes the data dirs unless kept. */
  stop(): Promise<void>;
}

/** A cluster behind the fault proxies: what the fault runs drive. */
export interface ClusterTarget extends Cluster {
  readonly network: FaultNetwork;
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
  /** Member names are `${namePrefix}1`, ...; default "m". */
  namePrefix?: string;
  /** Extra environment for every member. */
  env?: Record<string, string>;
}

/** Members of one cluster at most (etcd recommends up to 7; the tests use 3 and 5, plus joiners). */
const CLUSTER_MEMBERS_MAX = 9;
/** How long `addMember` retries a member add refused as "unhealthy cluster" (etcd's 5 s health interval, and some). */
const UNHEALTHY_RETRY_MS = 15_000;
/** How long an etcdctl call may take before it is killed (its own --command-timeout is shorter). */
const ETCDCTL_KILL_AFTER_MS = 60_000;

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

export interface EtcdctlResult {
  /** Exit code (0 on success). */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * etcdctl 3.4 (ETCDCTL_API=3), asynchronously (the proxies run in this process: blocking its event loop
 * would cut every link). Never throws for a non-zero exit: the caller asserts on code and stderr.
 */
export function etcdctl(endpoints: readonly string[], args: readonly string[]): Promise<EtcdctlResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.env.ETCDCTL_BIN ?? "etcdctl",
      [`--endpoints=${endpoints.join(",")}`, ...args],
      {
        env: { ...process.env, ETCDCTL_API: "3" },
        encoding: "utf8",
        timeout: ETCDCTL_KILL_AFTER_MS,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(new Error(`etcdctl ${args.join(" ")} did not run: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** What `etcdctl member add` prints: the new id, and the environment its member must start with. */
export interface MemberAddOutput {
  id: bigint;
  clusterId: bigint;
  initialCluster: string;
  initialClusterState: string;
}

export function parseMemberAdd(stdout: string): MemberAddOutput {
  const added = /Member\s+([0-9a-f]+) added to cluster\s+([0-9a-f]+)/.exec(stdout);
  const cluster = /^ETCD_INITIAL_CLUSTER="([^"]*)"$/m.exec(stdout);
  const state = /^ETCD_INITIAL_CLUSTER_STATE="([^"]*)"$/m.exec(stdout);
  if (added === null || cluster === null || state === null)
    throw new Error(`not etcdctl member add output:\n${stdout}`);
  return {
    id: BigInt(`0x${added[1]}`),
    clusterId: BigInt(`0x${added[2]}`),
    initialCluster: cluster[1] as string,
    initialClusterState: state[1] as string,
  };
}

/** How one kind of member is run: the command line for a member's etcd flags. */
interface MemberCommand {
  kind: string;
  command(flags: readonly string[]): { command: string; args: string[]; cwd?: string };
}

const COMMANDS: Record<ClusterKind, MemberCommand> = {
  etcd: {
    kind: "etcd 3.4.23",
    command: (flags) => ({ command: etcdBinary(), args: [...flags] }),
  },
  "etcd-ts": {
    kind: "etcd-ts",
    command: (flags) => etcdTsCommand(flags),
  },
};

interface Slot {
  member: ClusterMember;
  process: MemberProcess;
  /** How the process was made, to make it again on a moved peer port. */
  launch: { initialCluster: string; state: "new" | "existing"; extraFlags: readonly string[] };
}

class LocalCluster implements Cluster {
  readonly kind: string;
  private readonly slots = new Map<string, Slot>();
  private readonly peerPorts = new Map<string, number>();
  /** Peer ports a member moves to at its next restart (movePeerUrl). */
  private readonly movedPeerPorts = new Map<string, number>();
  /** Member ids by name for the proxies' X-Server-From identification (kept after forget: old links may linger). */
  private readonly ids = new Map<bigint, string>();
  /** Every data dir this cluster made, forgotten members' included. */
  private readonly dataDirs = new Set<string>();
  readonly network: FaultNetwork | null;
  private readonly startTimeoutMs: number;

  constructor(
    private readonly runner: MemberCommand,
    private readonly options: ClusterOptions,
    proxies: boolean,
    private readonly token: string,
  ) {
    this.kind = runner.kind;
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.network = proxies
      ? new FaultNetwork({ identify: serverFromIdentifier(this.ids), seed: options.seed ?? 1 })
      : null;
  }

  get members(): ClusterMember[] {
    return [...this.slots.values()].map((slot) => slot.member);
  }

  private slot(name: string): Slot {
    const found = this.slots.get(name);
    assert(found !== undefined, `no member ${name}`);
    return found;
  }

  member(name: string): ClusterMember {
    return this.slot(name).member;
  }

  async planMember(name: string): Promise<PlannedMember> {
    assert(!this.slots.has(name) && !this.peerPorts.has(name), `member ${name} planned twice`);
    assert(this.peerPorts.size < CLUSTER_MEMBERS_MAX, `at most ${CLUSTER_MEMBERS_MAX} members`);
    const clientPort = await freePort();
    const peerPort = await freePort();
    this.peerPorts.set(name, peerPort);
    const advertisedPort = this.network === null ? peerPort : await this.network.addMember(name, peerPort);
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const dataDir = mkdtempSync(join(tmpdir(), `etcd-cluster-${name}-`));
    this.dataDirs.add(dataDir);
    return {
      name,
      endpoint: `127.0.0.1:${clientPort}`,
      clientUrl,
      peerUrl: `http://127.0.0.1:${advertisedPort}`,
      dataDir,
    };
  }

  /** The process of a member with the flags every member shares. */
  private makeProcess(
    planned: PlannedMember,
    initialCluster: string,
    state: "new" | "existing",
    extraFlags: readonly string[],
  ): MemberProcess {
    const peerPort = this.peerPorts.get(planned.name);
    assert(peerPort !== undefined, `member ${planned.name} was not planned`);
    const flags = [
      `--name=${planned.name}`,
      `--data-dir=${planned.dataDir}`,
      `--listen-client-urls=${planned.clientUrl}`,
      `--advertise-client-urls=${planned.clientUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=${planned.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${this.token}`,
      `--initial-cluster-state=${state}`,
      `--heartbeat-interval=${this.options.heartbeatMs ?? 100}`,
      `--election-timeout=${this.options.electionMs ?? 1000}`,
      "--logger=zap",
      "--log-level=warn",
      ...(this.options.flags ?? []),
      ...extraFlags,
    ];
    const { command, args, cwd } = this.runner.command(flags);
    return new MemberProcess(planned.name, command, args, { ...process.env, ...this.options.env }, cwd);
  }

  /** Starts the founding members together; resolves once every one answers /health. */
  async bootstrap(names: readonly string[]): Promise<void> {
    const planned: PlannedMember[] = [];
    for (const name of names) planned.push(await this.planMember(name));
    const initialCluster = planned.map((p) => `${p.name}=${p.peerUrl}`).join(",");
    for (const p of planned) {
      const id = etcdMemberId([p.peerUrl], this.token);
      this.ids.set(id, p.name);
      this.slots.set(p.name, {
        member: { ...p, id },
        process: this.makeProcess(p, initialCluster, "new", []),
        launch: { initialCluster, state: "new", extraFlags: [] },
      });
    }
    for (const slot of this.slots.values()) slot.process.start();
    await Promise.all(
      this.members.map((m) =>
        waitHealthy(m.clientUrl, this.startTimeoutMs, () => this.stderr(m.name).slice(-4000)),
      ),
    );
  }

  async startPlanned(
    planned: PlannedMember,
    join: { id: bigint; initialCluster: string; waitHealthy?: boolean; flags?: readonly string[] },
  ): Promise<ClusterMember> {
    assert(!this.slots.has(planned.name), `member ${planned.name} already started`);
    this.ids.set(join.id, planned.name);
    const member: ClusterMember = { ...planned, id: join.id };
    const extraFlags = join.flags ?? [];
    const child = this.makeProcess(planned, join.initialCluster, "existing", extraFlags);
    this.slots.set(planned.name, {
      member,
      process: child,
      launch: { initialCluster: join.initialCluster, state: "existing", extraFlags },
    });
    child.start();
    if (join.waitHealthy !== false)
      await waitHealthy(member.clientUrl, this.startTimeoutMs, () => child.stderr().slice(-4000));
    return member;
  }

  async addMember(
    name: string,
    options: {
      learner?: boolean;
      via?: readonly string[];
      waitHealthy?: boolean;
      flags?: readonly string[];
    } = {},
  ): Promise<{ member: ClusterMember; output: string }> {
    const planned = await this.planMember(name);
    const via = options.via ?? this.members.map((m) => m.endpoint);
    const args = [
      "member",
      "add",
      name,
      `--peer-urls=${planned.peerUrl}`,
      ...(options.learner === true ? ["--learner"] : []),
    ];
    // etcd's strict reconfiguration check refuses a change ("etcdserver: unhealthy cluster") until
    // the leader has been connected to a quorum for 5 s (etcdserver.HealthInterval): a cluster just
    // started, or a member just restarted, must wait that out.
    const deadline = Date.now() + UNHEALTHY_RETRY_MS;
    let result = await etcdctl(via, args);
    while (result.code !== 0 && /unhealthy cluster/.test(result.stderr) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      result = await etcdctl(via, args);
    }
    if (result.code !== 0) throw new Error(`etcdctl member add ${name} failed: ${result.stderr}`);
    const added = parseMemberAdd(result.stdout);
    assert(added.initialClusterState === "existing", "member add says to join an existing cluster");
    const member = await this.startPlanned(planned, {
      id: added.id,
      initialCluster: added.initialCluster,
      ...(options.waitHealthy === undefined ? {} : { waitHealthy: options.waitHealthy }),
      ...(options.flags === undefined ? {} : { flags: options.flags }),
    });
    return { member, output: result.stdout };
  }

  state(name: string): ProcessState {
    return this.slot(name).process.state();
  }

  kill9(name: string): Promise<void> {
    return this.slot(name).process.kill9();
  }

  pause(name: string): void {
    this.slot(name).process.pause();
  }

  resume(name: string): void {
    this.slot(name).process.resume();
  }

  async restart(name: string): Promise<void> {
    const slot = this.slot(name);
    const moved = this.movedPeerPorts.get(name);
    if (moved !== undefined) {
      assert(slot.process.state() === "exited", `member ${name} must be stopped to move its peer port`);
      this.movedPeerPorts.delete(name);
      this.peerPorts.set(name, moved);
      slot.member = { ...slot.member, peerUrl: `http://127.0.0.1:${moved}` };
      const { initialCluster, state, extraFlags } = slot.launch;
      slot.process = this.makeProcess(slot.member, initialCluster, state, extraFlags);
    }
    const { member, process: child } = slot;
    child.start();
    await waitHealthy(member.clientUrl, this.startTimeoutMs, () => child.stderr().slice(-4000));
  }

  async movePeerUrl(name: string): Promise<string> {
    assert(this.network === null, "peer URLs move only without proxies");
    this.slot(name);
    const port = await freePort();
    this.movedPeerPorts.set(name, port);
    return `http://127.0.0.1:${port}`;
  }

  stopMember(name: string): Promise<void> {
    return this.slot(name).process.stop();
  }

  waitExit(name: string, timeoutMs: number): Promise<string> {
    return this.slot(name).process.waitExit(timeoutMs);
  }

  stderr(name: string): string {
    return this.slot(name).process.stderr();
  }

  async forget(name: string): Promise<void> {
    const slot = this.slot(name);
    await slot.process.kill9();
    this.slots.delete(name);
    if (this.options.keepDataDirs !== true) {
      rmSync(slot.member.dataDir, { recursive: true, force: true });
      this.dataDirs.delete(slot.member.dataDir);
    }
  }

  /**
   * kill -9 every member at once: a graceful stop of a leader whose followers are stopping too waits
   * for a leadership hand-over that cannot happen; nothing the tests check depends on a clean stop
   * here (they stop members themselves when it matters).
   */
  async stop(): Promise<void> {
    await Promise.all([...this.slots.values()].map((slot) => slot.process.kill9()));
    await this.network?.close();
    if (this.options.keepDataDirs !== true)
      for (const dir of this.dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

export type ClusterStartOptions = ClusterOptions & { proxies?: boolean };

async function startLocalCluster(kind: ClusterKind, options: ClusterStartOptions): Promise<LocalCluster> {
  const size = options.size ?? 3;
  assert(size >= 1 && size <= 7, "a cluster of 1 to 7 members");
  const token = options.token ?? `etcd-ts-cluster-${process.pid}-${Date.now()}`;
  const cluster = new LocalCluster(COMMANDS[kind], options, options.proxies !== false, token);
  const prefix = options.namePrefix ?? "m";
  try {
    await cluster.bootstrap(Array.from({ length: size }, (_unused, i) => `${prefix}${i + 1}`));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** A cluster of `kind` (with fault proxies unless `proxies: false`). */
export function startCluster(
  kind: ClusterKind,
  options: ClusterOptions & { proxies?: true },
): Promise<ClusterTarget>;
export function startCluster(kind: ClusterKind, options: ClusterStartOptions): Promise<Cluster>;
export async function startCluster(kind: ClusterKind, options: ClusterStartOptions): Promise<Cluster> {
  return startLocalCluster(kind, options);
}

/** A real etcd 3.4 cluster (Debian's etcd-server), every peer link behind a fault proxy unless `proxies: false`. */
export function startRealEtcdCluster(options?: ClusterOptions & { proxies?: true }): Promise<ClusterTarget>;
export function startRealEtcdCluster(options: ClusterStartOptions): Promise<Cluster>;
export async function startRealEtcdCluster(options: ClusterStartOptions = {}): Promise<Cluster> {
  return startLocalCluster("etcd", options);
}

/** An etcd-ts cluster (the bin under tsx, etcd's flags), every peer link behind a fault proxy unless `proxies: false`. */
export function startEtcdTsCluster(options?: ClusterOptions & { proxies?: true }): Promise<ClusterTarget>;
export function startEtcdTsCluster(options: ClusterStartOptions): Promise<Cluster>;
export async function startEtcdTsCluster(options: ClusterStartOptions = {}): Promise<Cluster> {
  return startLocalCluster("etcd-ts", options);
}
