import type { BenchSummary, ClusterSummary, SeriesSummary, TargetSummary } from "./summary.js";

/** Plain-text tables for stdout: the percentile table per target and all targets side by side. */

function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return value >= 100 ? value.toFixed(1) : value >= 10 ? value.toFixed(2) : value.toFixed(3);
}

const mebibyte = 1_048_576;

function formatNumber(value: number | null, digits: number): string {
  return value === null || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

function formatRatio(value: number | null): string {
  return value === null ? "n/a" : `${value.toFixed(2)}x`;
}

/** Left-aligns the first column, right-aligns the rest. */
export function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!)))
      .join("  ")
      .trimEnd(),
  );
}

export function percentileTable(series: readonly SeriesSummary[]): string[] {
  const rows: string[][] = [["latency ms", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "stddev"]];
  for (const entry of series) {
    const latency = entry.latencyMs;
    rows.push([
      entry.label,
      ...[
        latency.p50,
        latency.p90,
        latency.p99,
        latency.p999,
        latency.p9999,
        latency.max,
        latency.mean,
        latency.stddev,
      ].map(formatMs),
    ]);
  }
  return alignColumns(rows);
}

export function countsLine(series: SeriesSummary): string {
  return (
    `${series.label}: ${series.sent} sent, ${series.succeeded} succeeded, ${series.failed} failed, ` +
    `${series.requestsPerSecond.toFixed(1)}/s over ${series.statsSeconds.toFixed(3)} s`
  );
}

export function targetLines(target: TargetSummary): string[] {
  if (target.skipped !== null) return [`skipped: ${target.skipped}`];
  const lines = target.series.map(countsLine);
  lines.push(...percentileTable(target.series));
  const cluster = target.cluster;
  const cpu =
    target.server.cpuMicrosPerRequest === null
      ? cluster === null
        ? "server CPU n/a (external endpoint)"
        : "server CPU n/a (a member's process was gone when the timed phase ended)"
      : `server CPU ${target.server.cpuMicrosPerRequest.toFixed(1)} µs per acknowledged request` +
        (cluster === null ? "" : ` (all ${cluster.size} members' processes, all threads)`);
  const rss =
    target.server.peakRssBytes === null
      ? ""
      : `, ${cluster === null ? "" : "leader's "}peak RSS ${(target.server.peakRssBytes / mebibyte).toFixed(1)} MiB`;
  lines.push(`${cpu}${rss}; generator CPU ${target.generator.cpuMicrosPerRequest.toFixed(1)} µs per request`);
  const memory = memoryLine(target);
  if (memory !== null) lines.push(cluster === null ? memory : memory.replace(/^server RSS/, "leader's RSS"));
  if (cluster !== null) lines.push(...clusterLines(cluster));
  if (target.profile !== null) {
    lines.push("note: profiled run (--cpu-prof): the server CPU above includes the profiler's overhead");
    if (cluster !== null) {
      lines.push(
        `note: every member ran under --cpu-prof; the profile below is the leader's (${cluster.leader}), the followers' files are beside it`,
      );
    }
  }
  if (target.generator.blocked) {
    lines.push("note: the generator's queue filled up at times (the target fell behind the requested rate)");
  }
  return lines;
}

/** A cluster's leader (and whether it kept the lead) and its members' CPU and peak RSS. */
export function clusterLines(cluster: ClusterSummary): string[] {
  const leader = cluster.members.find((member) => member.leader);
  const where = leader === undefined ? cluster.leader : `${cluster.leader} (${leader.endpoint})`;
  const kept =
    cluster.leaderAfter === cluster.leader
      ? "it was still the leader when the timed phase ended"
      : cluster.leaderAfter === null
        ? "WARNING: the members did not agree on a leader when the timed phase ended"
        : `WARNING: the leader changed to ${cluster.leaderAfter} during the timed phase`;
  const rows: string[][] = [
    ["member", "id", "role", "pid", "CPU s", "µs/req", "peak RSS MiB", "after cleanup MiB"],
  ];
  for (const member of cluster.members) {
    rows.push([
      member.name,
      member.idHex,
      member.leader ? "leader" : "follower",
      String(member.pid),
      formatNumber(member.cpuSeconds, 2),
      formatNumber(member.cpuMicrosPerRequest, 1),
      formatNumber(member.peakRssBytes === null ? null : member.peakRssBytes / mebibyte, 1),
      formatNumber(
        member.peakRssAfterCleanupBytes === null ? null : member.peakRssAfterCleanupBytes / mebibyte,
        1,
      ),
    ]);
  }
  return [
    `cluster of ${cluster.size} members; load sent to the leader ${where}; ${kept}`,
    ...alignColumns(rows),
  ];
}

/** Each member's peak RSS in MiB, leader first ("93.1/80.2/79.9"); a single server's peak. */
function peakRssCell(target: TargetSummary): string {
  if (target.cluster === null) {
    const peak = target.server.peakRssBytes;
    return formatNumber(peak === null ? null : peak / mebibyte, 1);
  }
  return target.cluster.members
    .map((member) => formatNumber(member.peakRssBytes === null ? null : member.peakRssBytes / mebibyte, 1))
    .join("/");
}

/**
 * RSS from the start to the end of the timed phase with its slope per request (retention shows as a
 * steady slope), and the peak the cleanup reached when it is above the timed phase's.
 */
export function memoryLine(target: TargetSummary): string | null {
  const memory = target.server.memory;
  if (memory === null) return null;
  const growth = memory.growthBytesPerRequest;
  const slope =
    growth === null
      ? ""
      : ` (${growth >= 0 ? "+" : ""}${(growth / 1024).toFixed(2)} KiB per acknowledged request in its second half)`;
  const afterCleanup = target.server.peakRssAfterCleanupBytes;
  const peak = target.server.peakRssBytes ?? 0;
  const cleanup =
    afterCleanup !== null && afterCleanup > peak
      ? `; the cleanup raised the peak to ${(afterCleanup / mebibyte).toFixed(1)} MiB`
      : "";
  return (
    `server RSS in the timed phase: ${(memory.startRssBytes / mebibyte).toFixed(1)} MiB at its start, ` +
    `${(memory.endRssBytes / mebibyte).toFixed(1)} MiB at its end${slope}${cleanup}`
  );
}

function growthKibPerRequest(target: TargetSummary): number | null {
  const growth = target.server.memory?.growthBytesPerRequest ?? null;
  return growth === null ? null : growth / 1024;
}

/** All targets side by side, with each one's ratio to the reference (etcd when it ran). */
export function comparisonTable(summary: BenchSummary): string[] {
  const reference = summary.comparison[0]?.reference ?? "reference";
  const rows: string[][] = [
    [
      "target",
      "req/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "errors",
      "server µs/req",
      "peak RSS MiB",
      "RSS KiB/req",
      "gen µs/req",
      `req/s vs ${reference}`,
      `p99 vs ${reference}`,
      `CPU vs ${reference}`,
    ],
  ];
  for (const target of summary.targets) {
    const series = target.series[0];
    if (target.skipped !== null || series === undefined) {
      rows.push([target.name, "skipped"]);
      continue;
    }
    const comparison = summary.comparison.find((row) => row.target === target.name);
    rows.push([
      target.name,
      series.requestsPerSecond.toFixed(0),
      formatMs(series.latencyMs.p50),
      formatMs(series.latencyMs.p99),
      formatMs(series.latencyMs.max),
      String(series.failed),
      formatNumber(target.server.cpuMicrosPerRequest, 1),
      peakRssCell(target),
      formatNumber(growthKibPerRequest(target), 2),
      target.generator.cpuMicrosPerRequest.toFixed(1),
      formatRatio(comparison?.requestsPerSecondRatio ?? null),
      formatRatio(comparison?.p99Ratio ?? null),
      formatRatio(comparison?.cpuPerRequestRatio ?? null),
    ]);
  }
  const table = alignColumns(rows);
  if (summary.targets.some((target) => target.cluster !== null)) {
    table.push(
      "clusters: server µs/req is every member's CPU summed per acknowledged request; peak RSS per member, leader first",
    );
  }
  return table;
}
