import type { Histogram } from "hdr-histogram-js";
import type { LatencyRecorder } from "../load/recorder.js";
import type { TransportKind } from "../load/transport.js";
import type { ProfileReport } from "../profile/session.js";
import type { Verdict } from "./verdict.js";

/**
 * The report model: plain data built from the recorders once a run ends, so the text, JSON and HTML
 * reports are pure functions of it (and testable without a server). Latencies are milliseconds.
 */

export interface LatencySummaryMs {
  min: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  p9999: number;
  max: number;
}

export interface SeriesSummary {
  /** What one sample is: "put", "range", "txn", "keepalive", "watch event". */
  label: string;
  sent: number;
  succeeded: number;
  failed: number;
  errors: Record<string, number>;
  /** The divisor of requestsPerSecond: from the start to the last completion. */
  statsSeconds: number;
  requestsPerSecond: number;
  latencyMs: LatencySummaryMs;
  /** [percentile (0..100), latency ms] points, log-spaced towards the tail, for the plot. */
  percentileCurve: Array<[number, number]>;
  throughputPerSecond: number[];
  /** The .hgrm file name in the report directory, or null if not written. */
  hgrmFile: string | null;
  /** The whole histogram (µs), HdrHistogram's compressed base64 encoding, for merging or re-plotting. */
  histogramBase64: string;
}

export interface TargetSummary {
  name: string;
  kind: string;
  endpoints: string[];
  /** Why the workload did not run on this target, or null. */
  skipped: string | null;
  series: SeriesSummary[];
  verdict: Verdict | null;
  server: {
    pid: number | null;
    cpuSeconds: number | null;
    /** Server CPU per acknowledged request (per write, for the write workloads), in µs; null if external. */
    cpuMicrosPerRequest: number | null;
    /** Peak RSS (VmHWM) at the end of the timed phase: start-up plus the workload, not the cleanup. */
    peakRssBytes: number | null;
    /**
     * Peak RSS once the cleanup (check perf's DeleteRange of every key written) is done; a server that
     * builds the whole delete in memory peaks here, not in the timed phase.
     */
    peakRssAfterCleanupBytes: number | null;
    /** RSS over the timed phase; null for an external endpoint. */
    memory: MemorySummary | null;
  };
  generator: {
    cpuMicrosPerRequest: number;
    /** The rate-limited generator found the queue full at least once: the server fell behind. */
    blocked: boolean;
  };
  keyspace: {
    revisionBefore: string | null;
    deleteRevision: string | null;
    deleted: string | null;
  };
  /** --profile: where the server's CPU went in the timed phase; null when not profiled. */
  profile: ProfileReport | null;
  /**
   * --cluster: the members. Then `server.cpuSeconds` and `server.cpuMicrosPerRequest` are summed over
   * every member's process (all threads), and `server.pid`, `server.peakRssBytes` and `server.memory`
   * are the leader's (the member the load reached). Null for a single server.
   */
  cluster: ClusterSummary | null;
}

export interface ClusterSummary {
  size: number;
  /** The leader when the timed phase began (the load went to it). */
  leader: string;
  /** The leader the members named when the timed phase ended; null when they did not agree then. */
  leaderAfter: string | null;
  /** Leader first, then the followers in name order. */
  members: MemberSummary[];
}

export interface MemberSummary {
  name: string;
  /** Member id in hex, as etcdctl prints it. */
  idHex: string;
  endpoint: string;
  pid: number;
  leader: boolean;
  /** CPU seconds (user + system, all threads) in the timed phase; null when the process was gone. */
  cpuSeconds: number | null;
  /** This member's CPU per request the cluster acknowledged, in µs. */
  cpuMicrosPerRequest: number | null;
  /** VmHWM at the end of the timed phase, and after the cleanup. */
  peakRssBytes: number | null;
  peakRssAfterCleanupBytes: number | null;
}

/** A started server's RSS through the timed phase (see bench/load/procStats.ts RssSampler). */
export interface MemorySummary {
  /** [seconds since the timed phase began, RSS bytes, anonymous bytes, file-backed bytes], ~1 per second. */
  samples: Array<[number, number, number, number]>;
  startRssBytes: number;
  endRssBytes: number;
  /**
   * RSS growth per acknowledged request over the second half of the timed phase (past warm-up): steady
   * retention per request, or ~0 for a working set. Null when too short to tell.
   */
  growthBytesPerRequest: number | null;
}

export interface WorkloadSummary {
  name: string;
  load: string | null;
  clients: number;
  connections: number;
  permitsPerSecond: number | null;
  durationSeconds: number | null;
  totalRequests: number | null;
  keySizeBytes: number;
  valueSizeBytes: number;
  prefix: string;
  /** How the timed phase's unary calls were sent (stream workloads always use grpc-js). */
  transport: TransportKind;
  /** watch-latency's watch streams and watchers per stream; null for the other workloads. */
  streams: number | null;
  watchersPerStream: number | null;
  /** --cluster: members per started cluster; null when single servers ran. */
  clusterSize: number | null;
}

export interface BenchSummary {
  tool: "etcd-ts bench";
  formatVersion: 1;
  startedAt: string;
  host: { cpus: number; node: string; platform: string };
  workload: WorkloadSummary;
  targets: TargetSummary[];
  /** Ratios of each target to the reference (etcd when it ran, else the first target). */
  comparison: ComparisonRow[];
}

export interface ComparisonRow {
  target: string;
  reference: string;
  requestsPerSecondRatio: number | null;
  p99Ratio: number | null;
  cpuPerRequestRatio: number | null;
}

/** Points of the percentile plot: 0% .. 99.999% in steps even on the 1/(1-p) log axis. */
export const percentileCurveNinesMax = 5;
const percentileCurveStepsPerNine = 20;

/**
 * The plotted curve: [percentile, ms] points, evenly spaced in "nines" (log10(1/(1-p))) up to the
 * last percentile the sample count can resolve (1 - 1/count: with 450 samples, p99.78), then one
 * point there. Beyond it every percentile is the maximum, and drawing that flat line out to p99.999
 * would claim a tail that was never measured. `atMs` is clamped to the exact maximum because
 * HdrHistogram reports a bucket's upper equivalent value, which can exceed the largest sample.
 */
export function percentileCurve(
  count: number,
  atMs: (percentile: number) => number,
): Array<[number, number]> {
  const curve: Array<[number, number]> = [];
  if (count === 0) return curve;
  const ninesResolved = Math.min(Math.log10(count), percentileCurveNinesMax);
  const steps = Math.floor(ninesResolved * percentileCurveStepsPerNine + 1e-9);
  for (let step = 0; step <= steps; step++) {
    const percentile = 100 * (1 - 10 ** (-step / percentileCurveStepsPerNine));
    curve.push([percentile, atMs(percentile)]);
  }
  const lastNines = steps / percentileCurveStepsPerNine;
  if (ninesResolved - lastNines > 1e-9) {
    const percentile = 100 * (1 - 10 ** -ninesResolved);
    curve.push([percentile, atMs(percentile)]);
  }
  return curve;
}

/** `histogram` is the recorder's exported plain-JS copy (see LatencyRecorder.exportHistogram). */
export function seriesSummary(
  label: string,
  recorder: LatencyRecorder,
  exported: { histogram: Histogram; base64: string },
  sent: number,
  statsSeconds: number,
  hgrmFile: string | null,
): SeriesSummary {
  const histogram = exported.histogram;
  const maxMs = recorder.maxSeconds * 1000;
  const atMs = (percentile: number): number =>
    recorder.successes === 0 ? 0 : Math.min(histogram.getValueAtPercentile(percentile) / 1000, maxMs);
  const curve = percentileCurve(recorder.successes, atMs);
  return {
    label,
    sent,
    succeeded: recorder.successes,
    failed: recorder.failures,
    errors: Object.fromEntries(recorder.errors),
    statsSeconds,
    requestsPerSecond: statsSeconds > 0 ? recorder.successes / statsSeconds : 0,
    latencyMs: {
      min: recorder.successes === 0 ? 0 : recorder.minSeconds * 1000,
      mean: recorder.meanLatencySeconds * 1000,
      stddev: recorder.stddevSeconds * 1000,
      p50: atMs(50),
      p90: atMs(90),
      p99: atMs(99),
      p999: atMs(99.9),
      p9999: atMs(99.99),
      max: maxMs,
    },
    percentileCurve: curve,
    throughputPerSecond: recorder.throughputSeries(),
    hgrmFile,
    histogramBase64: exported.base64,
  };
}

function ratio(value: number | null | undefined, reference: number | null | undefined): number | null {
  if (value === null || value === undefined || reference === null || reference === undefined) return null;
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return null;
  return value / reference;
}

/** Each target against etcd (if it ran) or else the first target that ran. */
export function compareTargets(targets: readonly TargetSummary[]): ComparisonRow[] {
  const ran = targets.filter((target) => target.skipped === null && target.series.length > 0);
  const reference = ran.find((target) => target.kind === "etcd") ?? ran[0];
  if (reference === undefined) return [];
  const referenceSeries = reference.series[0]!;
  return ran.map((target) => {
    const series = target.series[0]!;
    return {
      target: target.name,
      reference: reference.name,
      requestsPerSecondRatio: ratio(series.requestsPerSecond, referenceSeries.requestsPerSecond),
      p99Ratio: ratio(series.latencyMs.p99, referenceSeries.latencyMs.p99),
      cpuPerRequestRatio: ratio(target.server.cpuMicrosPerRequest, reference.server.cpuMicrosPerRequest),
    };
  });
}
