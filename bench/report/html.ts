import type { BenchSummary } from "./summary.js";
import { comparisonTable, targetLines } from "./text.js";

/**
 * A self-contained HTML report: inline CSS and inline SVG only (no CDN, no script), so it opens from
 * a CI artifact or a mail attachment. Two plots: latency by percentile (the HdrHistogram plotter's
 * log "nines" axis) and successful requests per second over time, every target in one colour.
 */

const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"];
const chartWidth = 760;
const chartHeight = 360;
const margin = { left: 64, right: 16, top: 28, bottom: 48 };

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

interface ChartSeries {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

interface Axis {
  label: string;
  min: number;
  max: number;
  ticks: Array<{ value: number; label: string }>;
}

/** Round tick steps (1, 2, 5 × 10^n) for a linear axis from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): Array<{ value: number; label: string }> {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const rough = top / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= rough)!;
  const ticks: Array<{ value: number; label: string }> = [];
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let value = 0; value <= top + step * 0.999; value += step) {
    ticks.push({ value, label: value.toFixed(digits) });
  }
  return ticks;
}

function lineChart(title: string, xAxis: Axis, yAxis: Axis, series: readonly ChartSeries[]): string {
  const plotWidth = chartWidth - margin.left - margin.right;
  const plotHeight = chartHeight - margin.top - margin.bottom;
  const xOf = (x: number): number =>
    margin.left + ((x - xAxis.min) / (xAxis.max - xAxis.min || 1)) * plotWidth;
  const yOf = (y: number): number =>
    margin.top + plotHeight - ((y - yAxis.min) / (yAxis.max - yAxis.min || 1)) * plotHeight;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${chartWidth}" height="${chartHeight}" viewBox="0 0 ${chartWidth} ${chartHeight}" role="img" aria-label="${escapeHtml(title)}">`,
  );
  parts.push(
    `<text x="${chartWidth / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(title)}</text>`,
  );
  for (const tick of yAxis.ticks) {
    const y = yOf(tick.value).toFixed(1);
    parts.push(
      `<line x1="${margin.left}" x2="${chartWidth - margin.right}" y1="${y}" y2="${y}" class="grid"/>`,
    );
    parts.push(
      `<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  for (const tick of xAxis.ticks) {
    const x = xOf(tick.value).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${margin.top + plotHeight}" class="grid"/>`);
    parts.push(
      `<text x="${x}" y="${margin.top + plotHeight + 16}" text-anchor="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  parts.push(
    `<text x="${margin.left + plotWidth / 2}" y="${chartHeight - 8}" text-anchor="middle">${escapeHtml(xAxis.label)}</text>`,
  );
  parts.push(
    `<text transform="translate(14 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(yAxis.label)}</text>`,
  );
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" class="frame"/>`,
  );
  for (const entry of series) {
    if (entry.points.length === 0) continue;
    const points = entry.points.map(([x, y]) => `${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(" ");
    parts.push(`<polyline points="${points}" fill="none" stroke="${entry.color}" stroke-width="2"/>`);
  }
  series.forEach((entry, index) => {
    const y = margin.top + 14 + index * 16;
    const x = margin.left + 10;
    parts.push(`<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${entry.color}"/>`);
    parts.push(`<text x="${x + 18}" y="${y + 1}">${escapeHtml(entry.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** x = log10(1 / (1 - p)): 0 at p50's left edge (0%), 1 at 90%, 2 at 99%, ... */
function ninesOf(percentile: number): number {
  return Math.log10(1 / Math.max(1 - percentile / 100, 1e-9));
}

function latencyChart(summary: BenchSummary): string {
  const series: ChartSeries[] = [];
  let maxMs = 0;
  let maxNines = 1;
  summary.targets.forEach((target, targetIndex) => {
    target.series.forEach((entry, seriesIndex) => {
      const points = entry.percentileCurve.map(([percentile, ms]): [number, number] => [
        ninesOf(percentile),
        ms,
      ]);
      for (const [nines, ms] of points) {
        maxMs = Math.max(maxMs, ms);
        maxNines = Math.max(maxNines, nines);
      }
      series.push({
        name: target.series.length > 1 ? `${target.name} (${entry.label})` : target.name,
        color: palette[(targetIndex * 2 + seriesIndex) % palette.length]!,
        points,
      });
    });
  });
  const ninesMax = Math.ceil(maxNines - 1e-9);
  const labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
  const xTicks = Array.from({ length: ninesMax + 1 }, (_, nines) => ({
    value: nines,
    label: labels[nines] ?? "",
  }));
  const yTicks = niceTicks(maxMs);
  return lineChart(
    "Latency by percentile",
    { label: "percentile", min: 0, max: ninesMax, ticks: xTicks },
    { label: "latency (ms)", min: 0, max: yTicks[yTicks.length - 1]!.value, ticks: yTicks },
    series,
  );
}

function throughputChart(summary: BenchSummary): string {
  const series: ChartSeries[] = [];
  let maxRate = 0;
  let maxSeconds = 1;
  summary.targets.forEach((target, index) => {
    const entry = target.series[0];
    if (entry === undefined) return;
    // Each point sits at the middle of its one-second bucket.
    const points = entry.throughputPerSecond.map((count, second): [number, number] => [second + 0.5, count]);
    for (const [second, count] of points) {
      maxRate = Math.max(maxRate, count);
      maxSeconds = Math.max(maxSeconds, second + 0.5);
    }
    series.push({ name: target.name, color: palette[(index * 2) % palette.length]!, points });
  });
  const xTicks = niceTicks(maxSeconds, 6);
  const yTicks = niceTicks(maxRate);
  return lineChart(
    "Successful requests per second",
    { label: "seconds since start", min: 0, max: xTicks[xTicks.length - 1]!.value, ticks: xTicks },
    { label: "requests/s", min: 0, max: yTicks[yTicks.length - 1]!.value, ticks: yTicks },
    series,
  );
}

function pre(lines: readonly string[]): string {
  return `<pre>${escapeHtml(lines.join("\n"))}</pre>`;
}

export function renderHtml(summary: BenchSummary): string {
  const workload = summary.workload;
  const describe = [
    `workload ${workload.name}${workload.load === null ? "" : ` (load ${workload.load})`}`,
    `${workload.clients} clients over ${workload.connections} connections`,
    workload.permitsPerSecond === null ? "unlimited rate" : `${workload.permitsPerSecond} requests/s target`,
    workload.durationSeconds === null
      ? `${workload.totalRequests} requests`
      : `${workload.durationSeconds} s`,
    `key ${workload.keySizeBytes} B after prefix ${JSON.stringify(workload.prefix)}, value ${workload.valueSizeBytes} B`,
  ].join(", ");
  const sections = summary.targets.map((target) => {
    const verdict = target.verdict === null ? "" : `<h3>check perf verdict</h3>${pre(target.verdict.lines)}`;
    const files = target.series
      .filter((entry) => entry.hgrmFile !== null)
      .map((entry) => `<a href="${escapeHtml(entry.hgrmFile!)}">${escapeHtml(entry.hgrmFile!)}</a>`)
      .join(" ");
    return (
      `<section><h2>${escapeHtml(target.name)} <small>${escapeHtml(target.kind)} ${escapeHtml(target.endpoints.join(", "))}</small></h2>` +
      `${verdict}<h3>details</h3>${pre(targetLines(target))}${files === "" ? "" : `<p>HDR percentile distributions: ${files}</p>`}</section>`
    );
  });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>etcd-ts bench: ${escapeHtml(workload.name)} ${escapeHtml(summary.startedAt)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
pre { background: #f6f6f6; padding: 8px 12px; overflow-x: auto; }
svg { display: block; margin: 12px 0; font: 12px system-ui, sans-serif; }
svg .grid { stroke: #e4e4e4; }
svg .frame { fill: none; stroke: #999; }
svg .title { font-weight: 600; font-size: 14px; }
small { color: #666; font-weight: normal; }
</style>
</head>
<body>
<h1>etcd-ts bench</h1>
<p>${escapeHtml(describe)}.<br>Started ${escapeHtml(summary.startedAt)} on ${summary.host.cpus} CPUs, Node ${escapeHtml(summary.host.node)} (${escapeHtml(summary.host.platform)}).</p>
<h2>All targets</h2>
${pre(comparisonTable(summary))}
${latencyChart(summary)}
${throughputChart(summary)}
${sections.join("\n")}
</body>
</html>
`;
}
