import { profileCategories } from "../profile/cpuProfile.js";
import { cpuMicrosPerRequest } from "../profile/session.js";
import { profileLines } from "../profile/text.js";
import type { BenchSummary, SeriesSummary } from "./summary.js";
import { comparisonTable, targetLines } from "./text.js";

/**
 * A self-contained HTML report: inline CSS and inline SVG only (no CDN, no script), so it opens from
 * a CI artifact or a mail attachment. Plots: latency by percentile (the HdrHistogram plotter's log
 * "nines" axis), successful requests per second over time, and with --profile the server's CPU by
 * category; each kind of target keeps one colour.
 */

/**
 * One colour per kind of target, the same in every report, so runs can be compared at a glance:
 * etcd blue, etcd-ts orange, the no-op ceiling grey, an external endpoint green. A target's second
 * series (watch-latency's puts) is drawn dashed in its colour.
 */
export const targetColors: Readonly<Record<string, string>> = {
  etcd: "#1f77b4",
  "etcd-ts": "#e6550d",
  null: "#7f7f7f",
  external: "#2ca02c",
};
const fallbackColors = ["#9467bd", "#8c564b", "#e377c2", "#17becf"];
const secondaryDash = "7 4";

export function colorOf(kind: string, index: number): string {
  return targetColors[kind] ?? fallbackColors[index % fallbackColors.length]!;
}

const chartWidth = 960;
const chartHeight = 380;
/** The legend sits right of the plot, outside it, so it never hides a curve. */
const margin = { left: 72, right: 190, top: 32, bottom: 52 };

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
  dashed: boolean;
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
  for (let index = 0; index * step <= top + step * 0.999; index++) {
    // index * step, not a running sum, so 0.1 + 0.2 never prints as 0.30000000000000004.
    const value = index * step;
    ticks.push({ value, label: value.toFixed(digits) });
  }
  return ticks;
}

function svgOpen(width: number, height: number, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(title)}">\n` +
    `<text x="${margin.left}" y="20" class="title">${escapeHtml(title)}</text>`
  );
}

/** Legend entries: a series (solid or dashed in its colour) or a reference line (thin, dotted). */
interface LegendEntry {
  name: string;
  color: string;
  dashed: boolean;
  /** A reference line's dash pattern (drawn thin and grey), or undefined for a series. */
  referenceDash?: string;
}

function legend(entries: readonly LegendEntry[], x: number): string[] {
  return entries.flatMap((entry, index) => {
    const y = margin.top + 10 + index * 20;
    const style =
      entry.referenceDash !== undefined
        ? `class="reference" stroke-dasharray="${entry.referenceDash}"`
        : `stroke="${entry.color}" stroke-width="3"${entry.dashed ? ` stroke-dasharray="${secondaryDash}"` : ""}`;
    return [
      `<line x1="${x}" x2="${x + 26}" y1="${y}" y2="${y}" ${style}/>`,
      `<text x="${x + 32}" y="${y}" dominant-baseline="middle" class="legend">${escapeHtml(entry.name)}</text>`,
    ];
  });
}

/** A horizontal line across the plot with its label, e.g. the requested rate. */
interface ReferenceLine {
  value: number;
  label: string;
  /** SVG stroke-dasharray, so two reference lines can be told apart. */
  dash: string;
}

function lineChart(
  title: string,
  xAxis: Axis,
  yAxis: Axis,
  series: readonly ChartSeries[],
  references: readonly ReferenceLine[] = [],
): string {
  const plotWidth = chartWidth - margin.left - margin.right;
  const plotHeight = chartHeight - margin.top - margin.bottom;
  const xOf = (x: number): number =>
    margin.left + ((x - xAxis.min) / (xAxis.max - xAxis.min || 1)) * plotWidth;
  const yOf = (y: number): number =>
    margin.top +
    plotHeight -
    ((Math.min(y, yAxis.max) - yAxis.min) / (yAxis.max - yAxis.min || 1)) * plotHeight;
  const parts: string[] = [svgOpen(chartWidth, chartHeight, title)];
  for (const tick of yAxis.ticks) {
    const y = yOf(tick.value).toFixed(1);
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${y}" y2="${y}" class="grid"/>`,
      `<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  for (const tick of xAxis.ticks) {
    const x = xOf(tick.value).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${margin.top + plotHeight}" class="grid"/>`,
      `<text x="${x}" y="${margin.top + plotHeight + 16}" text-anchor="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  parts.push(
    `<text x="${margin.left + plotWidth / 2}" y="${chartHeight - 10}" text-anchor="middle" class="axis">${escapeHtml(xAxis.label)}</text>`,
    `<text transform="translate(18 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeHtml(yAxis.label)}</text>`,
    `<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" class="frame"/>`,
  );
  for (const entry of series) {
    if (entry.points.length === 0) continue;
    const points = entry.points.map(([x, y]) => `${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(" ");
    const dash = entry.dashed ? ` stroke-dasharray="${secondaryDash}"` : "";
    parts.push(
      `<polyline points="${points}" fill="none" stroke="${entry.color}" stroke-width="2" stroke-linejoin="round"${dash}/>`,
    );
  }
  for (const reference of references) {
    const y = yOf(reference.value).toFixed(1);
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${y}" y2="${y}" class="reference" stroke-dasharray="${reference.dash}"/>`,
    );
  }
  const referenceEntries = references.map((reference) => ({
    name: reference.label,
    color: "",
    dashed: false,
    referenceDash: reference.dash,
  }));
  parts.push(...legend([...series, ...referenceEntries], margin.left + plotWidth + 16));
  parts.push("</svg>");
  return parts.join("\n");
}

/** x = log10(1 / (1 - p)): 0 at 0%, 1 at 90%, 2 at 99%, ... (HdrHistogram's percentile axis). */
export function ninesOf(percentile: number): number {
  return Math.log10(1 / Math.max(1 - percentile / 100, 1e-9));
}

const ninesLabels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];

/** Ticks of the percentile axis: every nine up to `ninesMax`, plus the median. */
export function percentileTicks(ninesMax: number): Array<{ value: number; label: string }> {
  const ticks = Array.from({ length: ninesMax + 1 }, (_, nines) => ({
    value: nines,
    label: ninesLabels[nines] ?? `${nines} nines`,
  }));
  ticks.splice(1, 0, { value: ninesOf(50), label: "50%" });
  return ticks;
}

/** Each target's series in its colour; the second series of a target dashed. */
function chartSeries(
  summary: BenchSummary,
  points: (entry: SeriesSummary) => Array<[number, number]>,
  primaryOnly: boolean,
): ChartSeries[] {
  const series: ChartSeries[] = [];
  summary.targets.forEach((target, targetIndex) => {
    const entries = primaryOnly ? target.series.slice(0, 1) : target.series;
    entries.forEach((entry, seriesIndex) => {
      series.push({
        name: target.series.length > 1 && !primaryOnly ? `${target.name} (${entry.label})` : target.name,
        color: colorOf(target.kind, targetIndex),
        dashed: seriesIndex > 0,
        points: points(entry),
      });
    });
  });
  return series;
}

function latencyChart(summary: BenchSummary): string {
  const series = chartSeries(
    summary,
    (entry) => entry.percentileCurve.map(([percentile, ms]): [number, number] => [ninesOf(percentile), ms]),
    false,
  );
  let maxMs = 0;
  let maxNines = 1;
  for (const entry of series) {
    for (const [nines, ms] of entry.points) {
      maxMs = Math.max(maxMs, ms);
      maxNines = Math.max(maxNines, nines);
    }
  }
  const ninesMax = Math.ceil(maxNines - 1e-6);
  const yTicks = niceTicks(maxMs);
  return lineChart(
    "Latency by percentile (HdrHistogram's axis: each step right is one more nine)",
    { label: "percentile", min: 0, max: ninesMax, ticks: percentileTicks(ninesMax) },
    { label: "latency (ms)", min: 0, max: yTicks[yTicks.length - 1]!.value, ticks: yTicks },
    series,
  );
}

/** A last part-second shorter than this is not drawn (its completions still count in the totals). */
export const partialSecondDrawnMin = 0.5;

/**
 * Successes per second as steps, one per one-second bucket. The last bucket usually covers only
 * part of a second (the run ends at `statsSeconds`): plotted raw it shows a fall that never
 * happened, and divided by a sliver of a second it shows a spike (the backlog drains faster once
 * the generator stops sharing the CPU). So a part-second of at least `partialSecondDrawnMin` is
 * drawn as a rate over the part it covers, and a shorter one is left out.
 */
export function throughputSteps(
  entry: Pick<SeriesSummary, "throughputPerSecond" | "statsSeconds">,
): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  entry.throughputPerSecond.forEach((count, second) => {
    const covered = Math.min(1, entry.statsSeconds - second);
    if (covered < partialSecondDrawnMin) return;
    const rate = count / covered;
    points.push([second, rate], [second + covered, rate]);
  });
  return points;
}

function throughputChart(summary: BenchSummary): string {
  const series = chartSeries(summary, throughputSteps, true);
  let maxRate = 0;
  let maxSeconds = 1;
  for (const entry of series) {
    for (const [second, rate] of entry.points) {
      maxRate = Math.max(maxRate, rate);
      maxSeconds = Math.max(maxSeconds, second);
    }
  }
  const xTicks = niceTicks(maxSeconds, 6);
  // check perf's requested rate, and its pass line (throughput above 90% of it).
  const workload = summary.workload;
  const watch = workload.name === "watch-latency";
  // watch-latency's rate is puts/s; each put is one event per watcher.
  const watchers = (workload.streams ?? 0) * (workload.watchersPerStream ?? 0);
  const rate = workload.permitsPerSecond === null ? null : workload.permitsPerSecond * (watch ? watchers : 1);
  const references: ReferenceLine[] =
    rate === null || rate === 0
      ? []
      : [
          {
            value: rate,
            label: watch ? `expected ${rate}/s (puts/s × ${watchers})` : `requested ${rate}/s`,
            dash: "2 3",
          },
          ...(workload.name === "check-perf"
            ? [{ value: rate * 0.9, label: `pass line ${rate * 0.9}/s`, dash: "8 4" }]
            : []),
        ];
  const yTicks = niceTicks(Math.max(maxRate, rate ?? 0));
  const label =
    summary.targets.find((target) => target.series[0] !== undefined)?.series[0]?.label ?? "request";
  return lineChart(
    watch ? "Watch events delivered per second" : `Successful ${label} requests per second`,
    {
      label: `seconds since the timed phase started (a last part-second under ${partialSecondDrawnMin} s is not drawn)`,
      min: 0,
      max: xTicks[xTicks.length - 1]!.value,
      ticks: xTicks,
    },
    { label: `${label}/s`, min: 0, max: yTicks[yTicks.length - 1]!.value, ticks: yTicks },
    series,
    references,
  );
}

/**
 * Each started server's RSS over the timed phase (MiB), so retention (a line that climbs with every
 * request) is told from a working set (a line that levels off). Empty when no target has samples.
 */
export function rssChart(summary: BenchSummary): string {
  const series: ChartSeries[] = [];
  let maxMib = 0;
  let maxSeconds = 1;
  summary.targets.forEach((target, targetIndex) => {
    const samples = target.server.memory?.samples ?? [];
    if (samples.length === 0) return;
    const points = samples.map(([seconds, rssBytes]): [number, number] => [seconds, rssBytes / 1_048_576]);
    for (const [seconds, mib] of points) {
      maxMib = Math.max(maxMib, mib);
      maxSeconds = Math.max(maxSeconds, seconds);
    }
    series.push({ name: target.name, color: colorOf(target.kind, targetIndex), dashed: false, points });
  });
  if (series.length === 0) return "";
  const xTicks = niceTicks(maxSeconds, 6);
  const yTicks = niceTicks(maxMib);
  return lineChart(
    "Server RSS during the timed phase",
    {
      label: "seconds since the timed phase started",
      min: 0,
      max: xTicks[xTicks.length - 1]!.value,
      ticks: xTicks,
    },
    { label: "RSS (MiB)", min: 0, max: yTicks[yTicks.length - 1]!.value, ticks: yTicks },
    series,
  );
}

/**
 * --profile: server CPU by category in µs per acknowledged request, one bar per profiled target, so
 * etcd-ts's cost sits next to the no-op server's (the grpc-js floor) category by category.
 */
function profileChart(summary: BenchSummary): string {
  const profiled = summary.targets
    .map((target, index) => ({ target, index, main: target.profile?.main ?? null }))
    .filter((entry) => entry.main !== null && entry.target.profile!.acknowledged > 0);
  if (profiled.length === 0) return "";
  const microsOf = (entry: (typeof profiled)[number], category: string): number => {
    const cost = entry.main!.categories.find((item) => item.category === category);
    return cost === undefined ? 0 : (cpuMicrosPerRequest(entry.target.profile!, cost.selfMs) ?? 0);
  };
  const categories = profileCategories.filter((category) =>
    profiled.some((entry) => microsOf(entry, category) > 0),
  );
  const barHeight = 12;
  const rowHeight = profiled.length * barHeight + 10;
  const labelWidth = 120;
  const height = margin.top + categories.length * rowHeight + margin.bottom;
  const plotWidth = chartWidth - margin.left - labelWidth - margin.right;
  const left = margin.left + labelWidth;
  let maxMicros = 0;
  for (const entry of profiled)
    for (const category of categories) maxMicros = Math.max(maxMicros, microsOf(entry, category));
  const ticks = niceTicks(maxMicros, 6);
  const top = ticks[ticks.length - 1]!.value;
  const xOf = (micros: number): number => left + (micros / (top || 1)) * plotWidth;
  const parts: string[] = [
    svgOpen(
      chartWidth,
      height,
      "Server main-thread CPU by category, µs per acknowledged request (--profile)",
    ),
  ];
  const plotBottom = margin.top + categories.length * rowHeight;
  for (const tick of ticks) {
    const x = xOf(tick.value).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${plotBottom}" class="grid"/>`,
      `<text x="${x}" y="${plotBottom + 16}" text-anchor="middle">${escapeHtml(tick.label)}</text>`,
    );
  }
  categories.forEach((category, row) => {
    const y0 = margin.top + row * rowHeight + 5;
    parts.push(
      `<text x="${left - 8}" y="${y0 + (profiled.length * barHeight) / 2}" text-anchor="end" dominant-baseline="middle">${escapeHtml(category)}</text>`,
    );
    profiled.forEach((entry, bar) => {
      const micros = microsOf(entry, category);
      const y = y0 + bar * barHeight;
      parts.push(
        `<rect x="${left}" y="${y}" width="${(xOf(micros) - left).toFixed(1)}" height="${barHeight - 2}" fill="${colorOf(entry.target.kind, entry.index)}"/>`,
        `<text x="${(xOf(micros) + 4).toFixed(1)}" y="${y + barHeight / 2}" dominant-baseline="middle" class="small">${micros.toFixed(1)}</text>`,
      );
    });
  });
  parts.push(
    `<text x="${left + plotWidth / 2}" y="${height - 12}" text-anchor="middle" class="axis">CPU µs per acknowledged request (profile shares × main-thread CPU), timed phase only</text>`,
    `<line x1="${left}" x2="${left}" y1="${margin.top}" y2="${plotBottom}" class="frame"/>`,
  );
  parts.push(
    ...legend(
      profiled.map((entry) => ({
        name: entry.target.name,
        color: colorOf(entry.target.kind, entry.index),
        dashed: false,
      })),
      left + plotWidth + 16,
    ),
  );
  parts.push("</svg>");
  return parts.join("\n");
}

function pre(lines: readonly string[]): string {
  return `<pre>${escapeHtml(lines.join("\n"))}</pre>`;
}

export function renderHtml(summary: BenchSummary): string {
  const workload = summary.workload;
  const describe = [
    `workload ${workload.name}${workload.load === null ? "" : ` (load ${workload.load})`}`,
    workload.name === "watch-latency"
      ? `${workload.streams} streams × ${workload.watchersPerStream} watchers`
      : `${workload.clients} clients over ${workload.connections} connections`,
    workload.permitsPerSecond === null
      ? "unlimited rate"
      : `${workload.permitsPerSecond} ${workload.name === "watch-latency" ? "puts" : "requests"}/s target`,
    workload.durationSeconds === null
      ? `${workload.totalRequests} ${workload.name === "watch-latency" ? "puts" : "requests"}`
      : `${workload.durationSeconds} s`,
    `key ${workload.keySizeBytes} B after prefix ${JSON.stringify(workload.prefix)}, value ${workload.valueSizeBytes} B`,
    `generator transport ${workload.transport}`,
    ...(workload.clusterSize === null
      ? []
      : [`started servers run as ${workload.clusterSize}-member clusters, the load sent to each leader`]),
  ].join(", ");
  const sections = summary.targets.map((target) => {
    const verdict = target.verdict === null ? "" : `<h3>check perf verdict</h3>${pre(target.verdict.lines)}`;
    const profile =
      target.profile === null
        ? ""
        : `<h3>CPU profile (timed phase)</h3>${pre(profileLines(target.name, target.profile, false))}` +
          (target.profile.files.length === 0
            ? ""
            : `<p>.cpuprofile files (open in Chrome DevTools' Performance panel or speedscope): ${target.profile.files
                .map(
                  (file) =>
                    `<a href="${escapeHtml(`${target.profile!.dir}/${file}`)}">${escapeHtml(file)}</a>`,
                )
                .join(" ")}</p>`);
    const files = target.series
      .filter((entry) => entry.hgrmFile !== null)
      .map((entry) => `<a href="${escapeHtml(entry.hgrmFile!)}">${escapeHtml(entry.hgrmFile!)}</a>`)
      .join(" ");
    return (
      `<section><h2>${escapeHtml(target.name)} <small>${escapeHtml(target.kind)} ${escapeHtml(target.endpoints.join(", "))}</small></h2>` +
      `${verdict}<h3>details</h3>${pre(targetLines(target))}${files === "" ? "" : `<p>HDR percentile distributions: ${files}</p>`}${profile}</section>`
    );
  });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>etcd-ts bench: ${escapeHtml(workload.name)} ${escapeHtml(summary.startedAt)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
pre { background: #f6f6f6; padding: 8px 12px; overflow-x: auto; font-size: 12px; }
svg { display: block; margin: 12px 0; font: 12px system-ui, sans-serif; }
svg .grid { stroke: #e4e4e4; }
svg .frame { fill: none; stroke: #999; }
svg .title { font-weight: 600; font-size: 14px; }
svg .axis { font-size: 13px; }
svg .legend { font-size: 13px; }
svg .small { font-size: 10px; fill: #444; }
svg .reference { stroke: #555; stroke-width: 1.5; }
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
${rssChart(summary)}
${profileChart(summary)}
${sections.join("\n")}
</body>
</html>
`;
}
