import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type * as grpc from "@grpc/grpc-js";
import { etcdClusterTarget, etcdTsClusterTarget } from "../cluster/cluster.js";
import { nodeProfileFlags, ProfileSession, profiledStopTimeoutMs } from "../profile/session.js";
import { profileLines } from "../profile/text.js";
import {
  type BenchSummary,
  type ClusterSummary,
  compareTargets,
  type MemberSummary,
  type MemorySummary,
  type SeriesSummary,
  seriesSummary,
  type TargetSummary,
} from "../report/summary.js";
import { comparisonTable, targetLines } from "../report/text.js";
import { checkPerfVerdict, type Verdict } from "../report/verdict.js";
import { fileStem, type WrittenReport, writeReports } from "../report/write.js";
import type { BenchConfig } from "./config.js";
import { closeConnections, openConnections } from "./connections.js";
import { Engine, type IssueRequest } from "./engine.js";
import { BenchError } from "./errors.js";
import { assertPrefixEmpty, type CleanupResult, cleanupPrefix } from "./keyspace.js";
import {
  processCpuSeconds,
  processPeakRssBytes,
  type RssSample,
  RssSampler,
  rssGrowthBytesPerRequest,
} from "./procStats.js";
import { TokenBucket } from "./rateLimiter.js";
import { initHistograms, LatencyRecorder } from "./recorder.js";
import { leaseKeepAliveWorkload, runWatchLatency } from "./streamWorkloads.js";
import {
  defaultStartOptions,
  etcdTarget,
  etcdTsTarget,
  externalTarget,
  nullTarget,
  type RunningCluster,
  type RunningTarget,
  type StartOptions,
  type Target,
} from "./targets.js";
import { type CompleteRequest, grpcJsSender, http2Sender, type UnarySender } from "./transport.js";
import { checkPerfIssuer, putIssuer, rangeIssuer, txnPutIssuer } from "./unaryWorkloads.js";

/** Where the run writes: stdout lines, and a live progress line when stderr is a TTY. */
export interface BenchIo {
  out: (line: string) => void;
  /** null when stderr is not a terminal: no progress line at all. */
  progress: ((line: string) => void) | null;
}

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Marks the start and end of the timed phase (the profile is cut to it); no-ops when not profiling. */
interface TimedPhase {
  begin(pid: number | null): void;
  end(): void;
}

const unmarkedPhase: TimedPhase = { begin: () => {}, end: () => {} };

/** When neither a duration nor a rate bounds the run, the throughput series is sized for this long. */
const plannedSecondsUnbounded = 3600;
const progressIntervalMs = 1000;

export function targetsFor(config: BenchConfig): Target[] {
  const compare = config.compareEtcd || config.compareNull || config.compareEtcdTs;
  const targets: Target[] = [];
  if (config.endpointsGiven || !compare) targets.push(externalTarget(config.endpoints));
  const size = config.clusterSize;
  if (config.compareEtcd) targets.push(size === null ? etcdTarget() : etcdClusterTarget(size));
  const fromSource = config.fromSource;
  if (config.compareEtcdTs) {
    targets.push(size === null ? etcdTsTarget(fromSource) : etcdTsClusterTarget(size, fromSource));
  }
  if (config.compareNull) targets.push(nullTarget(fromSource));
  return targets;
}

const seriesLabel: Record<BenchConfig["workload"], string> = {
  "check-perf": "put",
  put: "put",
  range: "range",
  "txn-put": "txn",
  "lease-keepalive": "keepalive",
  "watch-latency": "watch event",
};

interface SeriesRun {
  label: string;
  recorder: LatencyRecorder;
  sent: number;
  statsSeconds: number;
}

interface MeasuredRun {
  series: SeriesRun[];
  /** Requests the server acknowledged in the timed phase (the divisor of its CPU per request). */
  acknowledged: number;
  /** Requests the generator issued (the divisor of its own CPU). */
  issued: number;
  generatorBlocked: boolean;
  revisionBefore: number | null;
  cleanup: CleanupResult | null;
  serverCpuSeconds: number | null;
  generatorCpuSeconds: number;
  /** The server's RSS through the timed phase (empty for an external endpoint). */
  rssSamples: RssSample[];
  /** VmHWM when the timed phase ended, before the cleanup; null for an external endpoint. */
  peakRssBytes: number | null;
  /** --cluster: each member's CPU and peak RSS over the timed phase; null for a single server. */
  members: MemberReading[] | null;
  /** --cluster: the leader the members named when the timed phase ended (null: no agreement). */
  leaderAfter: string | null;
}

interface MemberReading {
  pid: number;
  cpuSeconds: number | null;
  peakRssBytes: number | null;
}

interface ServerReading {
  cpuSeconds: number | null;
  rssSamples: RssSample[];
  peakRssBytes: number | null;
  members: MemberReading[] | null;
}

/**
 * Server-side measurements around a timed phase: CPU seconds and RSS samples while it runs, and the
 * peak RSS when it ends (before the cleanup, which can cost a server more memory than the workload).
 * For a cluster the CPU is every member's (a write costs the leader and each follower), summed; RSS is
 * sampled on the leader, and each member's peak is read at the end.
 */
class ServerMeter {
  private readonly cpuBefore: number | null;
  private readonly sampler: RssSampler | null;
  private readonly memberCpuBefore: Array<number | null>;

  constructor(
    private readonly pid: number | null,
    private readonly cluster: RunningCluster | null,
  ) {
    this.memberCpuBefore = cluster?.members.map((member) => processCpuSeconds(member.pid)) ?? [];
    this.cpuBefore = pid === null ? null : processCpuSeconds(pid);
    this.sampler = pid === null ? null : new RssSampler(pid);
    this.sampler?.start();
  }

  stop(): ServerReading {
    const cpuAfter = this.pid === null ? null : processCpuSeconds(this.pid);
    const members =
      this.cluster?.members.map(
        (member, index): MemberReading => ({
          pid: member.pid,
          cpuSeconds: cpuDelta(this.memberCpuBefore[index] ?? null, processCpuSeconds(member.pid)),
          peakRssBytes: processPeakRssBytes(member.pid),
        }),
      ) ?? null;
    return {
      cpuSeconds: members === null ? cpuDelta(this.cpuBefore, cpuAfter) : clusterCpuSeconds(members),
      rssSamples: this.sampler?.stop() ?? [],
      peakRssBytes: this.pid === null ? null : processPeakRssBytes(this.pid),
      members,
    };
  }
}

/** The members' CPU seconds summed; null when a member's reading is missing (its process died). */
export function clusterCpuSeconds(members: ReadonlyArray<{ cpuSeconds: number | null }>): number | null {
  let total = 0;
  for (const member of members) {
    if (member.cpuSeconds === null) return null;
    total += member.cpuSeconds;
  }
  return total;
}

function plannedSeconds(config: BenchConfig): number {
  if (config.durationSeconds !== null) return config.durationSeconds;
  if (config.permitsPerSecond !== null && config.totalRequests !== null) {
    return config.totalRequests / config.permitsPerSecond;
  }
  return plannedSecondsUnbounded;
}

function startProgress(
  io: BenchIo,
  name: string,
  config: BenchConfig,
  startMs: number,
  read: () => string,
): () => void {
  const progress = io.progress;
  if (progress === null) return () => {};
  const timer = setInterval(() => {
    const elapsed = ((performance.now() - startMs) / 1000).toFixed(0);
    const of = config.durationSeconds === null ? "" : `/${config.durationSeconds}`;
    progress(`\r\x1b[K${name} ${elapsed}${of} s  ${read()}`);
  }, progressIntervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    progress("\r\x1b[K");
  };
}

/** Server CPU seconds between two readings, or null for a process we did not start. */
function cpuDelta(before: number | null, after: number | null): number | null {
  return before === null || after === null ? null : after - before;
}

/** Whether the timed phase's unary calls go over raw HTTP/2 (see transport.ts) instead of grpc-js. */
function usesHttp2(config: BenchConfig): boolean {
  return config.transport === "http2";
}

/** gRPC connections to open: all of them for grpc-js; one per endpoint (setup, cleanup) for http2. */
function grpcConnectionCount(config: BenchConfig, endpoints: number): number {
  // watch-latency puts on a connection of its own, apart from the watch streams.
  const wanted =
    config.workload === "watch-latency"
      ? config.connections + 1
      : usesHttp2(config)
        ? endpoints
        : config.connections;
  return Math.max(wanted, endpoints);
}

export function transportDescription(config: Pick<BenchConfig, "transport" | "workload">): string {
  if (config.workload === "watch-latency" || config.workload === "lease-keepalive")
    return "grpc-js (streams)";
  return config.transport === "http2"
    ? "http2 (timed unary calls on raw node:http2 sessions; setup and cleanup on grpc-js)"
    : "grpc-js";
}

/** The engine-driven workloads: every one but watch-latency. */
async function runEngineWorkload(
  target: RunningTarget,
  name: string,
  connections: readonly grpc.Client[],
  config: BenchConfig,
  io: BenchIo,
  phase: TimedPhase,
): Promise<MeasuredRun> {
  const usesPrefix = config.workload !== "lease-keepalive";
  const revisionBefore = usesPrefix ? await assertPrefixEmpty(connections[0]!, config.prefix) : null;
  let engine: Engine | null = null;
  const complete: CompleteRequest = (client, errorText) => engine!.complete(client, errorText);
  const keyed = {
    prefix: config.prefix,
    keySizeBytes: config.keySizeBytes,
    valueSizeBytes: config.valueSizeBytes,
    keySpaceSize: config.keySpaceSize,
    sequentialKeys: config.sequentialKeys,
  };
  let closeWorkload = async (): Promise<void> => {};
  let sender: UnarySender | null = null;
  if (config.workload !== "lease-keepalive") {
    sender = usesHttp2(config)
      ? await http2Sender(
          target.endpoints,
          config.connections,
          config.clients,
          config.dialTimeoutMs,
          complete,
        )
      : grpcJsSender(connections, config.clients, complete);
    const opened = sender;
    closeWorkload = async () => opened.close();
  }
  let issue: IssueRequest;
  switch (config.workload) {
    case "check-perf":
      issue = checkPerfIssuer(sender!, config.clients, config.prefix);
      break;
    case "put":
      issue = putIssuer(sender!, config.clients, keyed);
      break;
    case "range":
      issue = await rangeIssuer(sender!, connections, { ...keyed, consistency: config.consistency });
      break;
    case "txn-put":
      issue = txnPutIssuer(sender!, config.clients, { ...keyed, txnOps: config.txnOps });
      break;
    case "lease-keepalive": {
      const workload = await leaseKeepAliveWorkload(connections, config.clients, complete);
      issue = workload.issue;
      closeWorkload = workload.close;
      break;
    }
    case "watch-latency":
      throw new Error("watch-latency is not engine-driven");
  }
  phase.begin(target.pid);
  const meter = new ServerMeter(target.pid, target.cluster);
  const generatorCpuBefore = process.cpuUsage();
  const startMs = performance.now();
  const recorder = new LatencyRecorder(startMs, plannedSeconds(config));
  engine = new Engine({
    clients: config.clients,
    limiter: config.permitsPerSecond === null ? null : new TokenBucket(config.permitsPerSecond, 1),
    durationSeconds: config.durationSeconds,
    totalRequests: config.totalRequests,
    queueCapacity: config.clients,
    recorder,
    startMs,
  });
  const running = engine;
  const stopProgress = startProgress(io, name, config, startMs, () => {
    const seconds = (performance.now() - startMs) / 1000;
    return (
      `sent ${running.progress.sent}  ok ${recorder.successes}  failed ${recorder.failures}  ` +
      `${(recorder.successes / Math.max(seconds, 1e-3)).toFixed(0)}/s`
    );
  });
  const result = await engine.run(issue).finally(stopProgress);
  const generatorCpu = process.cpuUsage(generatorCpuBefore);
  const server = meter.stop();
  phase.end();
  const leaderAfter = (await target.cluster?.currentLeader()) ?? null;
  await closeWorkload();
  const cleanup = usesPrefix
    ? await cleanupPrefix(connections[0]!, config.prefix, {
        autoCompact: config.autoCompact,
        autoDefrag: config.autoDefrag,
        endpointClients: target.endpoints.map((endpoint, index) => ({
          endpoint,
          client: connections[index]!,
        })),
        print: io.out,
      })
    : null;
  return {
    series: [
      { label: seriesLabel[config.workload], recorder, sent: result.sent, statsSeconds: result.statsSeconds },
    ],
    acknowledged: result.succeeded,
    issued: result.sent,
    generatorBlocked: result.generatorBlocked,
    revisionBefore,
    cleanup,
    serverCpuSeconds: server.cpuSeconds,
    generatorCpuSeconds: (generatorCpu.user + generatorCpu.system) / 1_000_000,
    rssSamples: server.rssSamples,
    peakRssBytes: server.peakRssBytes,
    members: server.members,
    leaderAfter,
  };
}

async function runWatchWorkload(
  target: RunningTarget,
  connections: readonly grpc.Client[],
  config: BenchConfig,
  io: BenchIo,
  phase: TimedPhase,
): Promise<MeasuredRun> {
  const revisionBefore = await assertPrefixEmpty(connections[0]!, config.prefix);
  const key = Buffer.concat([Buffer.from(config.prefix), randomBytes(config.keySizeBytes)]);
  phase.begin(target.pid);
  const meter = new ServerMeter(target.pid, target.cluster);
  const generatorCpuBefore = process.cpuUsage();
  const startMs = performance.now();
  const eventRecorder = new LatencyRecorder(startMs, plannedSeconds(config));
  const putRecorder = new LatencyRecorder(startMs, plannedSeconds(config));
  const result = await runWatchLatency({
    putConnection: connections[connections.length - 1]!,
    watchConnections: connections.slice(0, Math.max(1, connections.length - 1)),
    streams: config.streams,
    watchersPerStream: config.watchersPerStream,
    key,
    value: randomBytes(config.valueSizeBytes),
    totalPuts: config.totalRequests,
    durationSeconds: config.durationSeconds,
    putsPerSecond: config.permitsPerSecond ?? 100,
    eventRecorder,
    putRecorder,
    startMs,
  });
  const generatorCpu = process.cpuUsage(generatorCpuBefore);
  const server = meter.stop();
  phase.end();
  const leaderAfter = (await target.cluster?.currentLeader()) ?? null;
  const cleanup = await cleanupPrefix(connections[0]!, config.prefix, {
    autoCompact: false,
    autoDefrag: false,
    endpointClients: [],
    print: io.out,
  });
  return {
    series: [
      {
        label: "watch event",
        recorder: eventRecorder,
        sent: result.eventsExpected,
        statsSeconds: result.statsSeconds,
      },
      { label: "put", recorder: putRecorder, sent: result.puts, statsSeconds: result.statsSeconds },
    ],
    acknowledged: putRecorder.successes,
    issued: result.puts,
    generatorBlocked: false,
    revisionBefore,
    cleanup,
    serverCpuSeconds: server.cpuSeconds,
    generatorCpuSeconds: (generatorCpu.user + generatorCpu.system) / 1_000_000,
    rssSamples: server.rssSamples,
    peakRssBytes: server.peakRssBytes,
    members: server.members,
    leaderAfter,
  };
}

interface TargetOutcome {
  summary: TargetSummary;
  hgrm: Map<string, string>;
}

function skippedSummary(target: Target, reason: string): TargetSummary {
  return {
    name: target.name,
    kind: target.kind,
    endpoints: [],
    skipped: reason,
    series: [],
    verdict: null,
    server: {
      pid: null,
      cpuSeconds: null,
      cpuMicrosPerRequest: null,
      peakRssBytes: null,
      peakRssAfterCleanupBytes: null,
      memory: null,
    },
    generator: { cpuMicrosPerRequest: 0, blocked: false },
    keyspace: { revisionBefore: null, deleteRevision: null, deleted: null },
    profile: null,
    cluster: null,
  };
}

/** Servers started and not yet stopped, so an interrupted run can stop them (see stopActiveTargets). */
const activeTargets = new Set<RunningTarget>();

/** Stops every server this run started and has not stopped yet (for SIGINT/SIGTERM). */
export async function stopActiveTargets(): Promise<void> {
  const running = [...activeTargets];
  activeTargets.clear();
  await Promise.all(running.map((target) => target.stop().catch(() => {})));
}

/** The profile session for `target`, or null when not profiling it (not asked, or not a Node server). */
function profileSessionFor(target: Target, config: BenchConfig, outDir: string): ProfileSession | null {
  if (!config.profile || !target.profilable) return null;
  const relativeDir = `${fileStem(target.name)}-profile`;
  return new ProfileSession(join(outDir, relativeDir), relativeDir);
}

async function runTarget(
  target: Target,
  config: BenchConfig,
  io: BenchIo,
  outDir: string,
): Promise<TargetOutcome> {
  const unsupported = target.unsupported(config.workload);
  if (unsupported !== null) return { summary: skippedSummary(target, unsupported), hgrm: new Map() };
  const session = profileSessionFor(target, config, outDir);
  const options: StartOptions =
    session === null
      ? { ...defaultStartOptions, nodeFlags: config.serverNodeFlags }
      : {
          nodeFlags: [...config.serverNodeFlags, ...nodeProfileFlags(session.dir)],
          stdoutLine: session.stdoutLine,
          stopTimeoutMs: profiledStopTimeoutMs,
        };
  const running = await target.start(options);
  activeTargets.add(running);
  if (running.entryLine !== null) io.out(running.entryLine);
  let outcome: TargetOutcome;
  let acknowledged = 0;
  try {
    const connections = await openConnections(
      running.endpoints,
      grpcConnectionCount(config, running.endpoints.length),
      config.dialTimeoutMs,
    );
    let measured: MeasuredRun;
    try {
      measured =
        config.workload === "watch-latency"
          ? await runWatchWorkload(running, connections, config, io, session ?? unmarkedPhase)
          : await runEngineWorkload(running, target.name, connections, config, io, session ?? unmarkedPhase);
    } finally {
      closeConnections(connections);
    }
    const peakRssAfterCleanupBytes = running.pid === null ? null : processPeakRssBytes(running.pid);
    const memberPeaksAfterCleanup =
      running.cluster?.members.map((member) => processPeakRssBytes(member.pid)) ?? [];
    acknowledged = measured.acknowledged;
    outcome = summarize(target, running, measured, peakRssAfterCleanupBytes, config);
    outcome.summary.cluster = clusterSummary(running.cluster, measured, memberPeaksAfterCleanup);
  } finally {
    activeTargets.delete(running);
    // SIGTERM: a profiled Node server writes its .cpuprofile files as it exits.
    await running.stop();
  }
  if (session !== null) outcome.summary.profile = session.finish(acknowledged, repoRoot);
  return outcome;
}

function summarize(
  target: Target,
  running: RunningTarget,
  measured: MeasuredRun,
  peakRssAfterCleanupBytes: number | null,
  config: BenchConfig,
): TargetOutcome {
  const hgrm = new Map<string, string>();
  const series: SeriesSummary[] = [];
  for (const run of measured.series) {
    const file = `${fileStem(measured.series.length > 1 ? `${target.name}-${run.label}` : target.name)}.hgrm`;
    const exported = run.recorder.exportHistogram();
    // Values are recorded in µs; scaling by 1000 writes the distribution in milliseconds.
    hgrm.set(file, exported.histogram.outputPercentileDistribution(5, 1000));
    series.push(seriesSummary(run.label, run.recorder, exported, run.sent, run.statsSeconds, file));
  }
  const primary = measured.series[0]!.recorder;
  let verdict: Verdict | null = null;
  if (config.workload === "check-perf" && config.permitsPerSecond !== null) {
    verdict = checkPerfVerdict(
      {
        requestsPerSecond: series[0]!.requestsPerSecond,
        slowestSeconds: primary.maxSeconds,
        stddevSeconds: primary.stddevSeconds,
        errors: primary.errors,
      },
      config.permitsPerSecond,
    );
  }
  for (const run of measured.series) run.recorder.destroy();
  const perRequestMicros = (seconds: number | null, count: number): number | null =>
    seconds === null || count === 0 ? null : (seconds * 1_000_000) / count;
  return {
    hgrm,
    summary: {
      name: target.name,
      kind: target.kind,
      endpoints: running.endpoints,
      skipped: null,
      series,
      verdict,
      server: {
        pid: running.pid,
        cpuSeconds: measured.serverCpuSeconds,
        cpuMicrosPerRequest: perRequestMicros(measured.serverCpuSeconds, measured.acknowledged),
        peakRssBytes: measured.peakRssBytes,
        peakRssAfterCleanupBytes,
        memory: memorySummary(measured.rssSamples, series[0]?.throughputPerSecond ?? []),
      },
      generator: {
        cpuMicrosPerRequest: perRequestMicros(measured.generatorCpuSeconds, measured.issued) ?? 0,
        blocked: measured.generatorBlocked,
      },
      keyspace: {
        revisionBefore: measured.revisionBefore?.toString() ?? null,
        deleteRevision: measured.cleanup?.deleteRevision.toString() ?? null,
        deleted: measured.cleanup?.deleted.toString() ?? null,
      },
      profile: null,
      cluster: null,
    },
  };
}

/** The per-member part of a cluster's summary: leader first, then the followers by name. */
export function clusterSummary(
  cluster: RunningCluster | null,
  measured: Pick<MeasuredRun, "members" | "leaderAfter" | "acknowledged">,
  peaksAfterCleanupBytes: ReadonlyArray<number | null>,
): ClusterSummary | null {
  if (cluster === null) return null;
  const leader = cluster.members.find((member) => member.leader);
  if (leader === undefined) throw new Error("a running cluster names its leader");
  const members = cluster.members.map((member, index): MemberSummary => {
    const reading = measured.members?.[index];
    const cpuSeconds = reading?.cpuSeconds ?? null;
    return {
      name: member.name,
      idHex: member.idHex,
      endpoint: member.endpoint,
      pid: member.pid,
      leader: member.leader,
      cpuSeconds,
      cpuMicrosPerRequest:
        cpuSeconds === null || measured.acknowledged === 0
          ? null
          : (cpuSeconds * 1_000_000) / measured.acknowledged,
      peakRssBytes: reading?.peakRssBytes ?? null,
      peakRssAfterCleanupBytes: peaksAfterCleanupBytes[index] ?? null,
    };
  });
  members.sort((a, b) => Number(b.leader) - Number(a.leader) || a.name.localeCompare(b.name));
  return { size: members.length, leader: leader.name, leaderAfter: measured.leaderAfter, members };
}

function memorySummary(samples: RssSample[], successesPerSecond: readonly number[]): MemorySummary | null {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined) return null;
  return {
    samples,
    startRssBytes: first[1],
    endRssBytes: last[1],
    growthBytesPerRequest: rssGrowthBytesPerRequest(samples, successesPerSecond),
  };
}

export interface BenchOutcome {
  summary: BenchSummary;
  report: WrittenReport;
  exitCode: 0 | 1;
}

/** Runs the workload on every target in turn, prints the verdicts and tables, writes the reports. */
export async function runBench(config: BenchConfig, outDir: string, io: BenchIo): Promise<BenchOutcome> {
  await initHistograms();
  const startedAt = new Date().toISOString();
  const targets = targetsFor(config);
  const multiple = targets.length > 1;
  const summaries: TargetSummary[] = [];
  const hgrm = new Map<string, string>();
  let pass = true;
  for (const target of targets) {
    if (multiple) io.out(`== ${target.name} ==`);
    let outcome: TargetOutcome;
    try {
      outcome = await runTarget(target, config, io, outDir);
    } catch (error) {
      // In a comparison, a target that cannot start or cannot run the workload (etcd-ts without
      // Watch yet) is reported and skipped so the others still run; the exit code says it failed.
      // A bench bug (not a BenchError) or a single-target run ends the run.
      if (!(multiple && error instanceof BenchError)) throw error;
      outcome = { summary: skippedSummary(target, error.message), hgrm: new Map() };
      pass = false;
    }
    summaries.push(outcome.summary);
    for (const [file, text] of outcome.hgrm) hgrm.set(file, text);
    if (outcome.summary.verdict !== null) {
      for (const line of outcome.summary.verdict.lines) io.out(line);
      pass &&= outcome.summary.verdict.pass;
      io.out("");
    }
    for (const line of targetLines(outcome.summary)) io.out(line);
    if (outcome.summary.profile !== null) {
      for (const line of profileLines(target.name, outcome.summary.profile)) io.out(line);
    } else if (config.profile && outcome.summary.skipped === null) {
      io.out(`no profile: ${target.name} is not a Node server the bench starts`);
    }
    io.out("");
  }
  const summary: BenchSummary = {
    tool: "etcd-ts bench",
    formatVersion: 1,
    startedAt,
    host: { cpus: cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
    workload: {
      name: config.workload,
      load: config.workload === "check-perf" ? config.load : null,
      clients: config.clients,
      connections: config.connections,
      permitsPerSecond: config.permitsPerSecond,
      durationSeconds: config.durationSeconds,
      totalRequests: config.totalRequests,
      keySizeBytes: config.keySizeBytes,
      valueSizeBytes: config.valueSizeBytes,
      prefix: config.prefix,
      transport: config.transport,
      streams: config.workload === "watch-latency" ? config.streams : null,
      watchersPerStream: config.workload === "watch-latency" ? config.watchersPerStream : null,
      clusterSize: config.clusterSize,
    },
    targets: summaries,
    comparison: compareTargets(summaries),
  };
  if (multiple) for (const line of comparisonTable(summary)) io.out(line);
  io.out(`generator transport: ${transportDescription(config)}`);
  const report = writeReports(outDir, summary, hgrm);
  io.out(`report: ${report.html}`);
  return { summary, report, exitCode: pass ? 0 : 1 };
}
