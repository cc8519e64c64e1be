import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  colorOf,
  niceTicks,
  ninesOf,
  percentileTicks,
  renderHtml,
  targetColors,
  throughputSteps,
} from "../../bench/report/html.js";
import {
  type BenchSummary,
  percentileCurve,
  type SeriesSummary,
  type TargetSummary,
} from "../../bench/report/summary.js";

function series(label: string, overrides: Partial<SeriesSummary> = {}): SeriesSummary {
  return {
    label,
    sent: 450,
    succeeded: 450,
    failed: 0,
    errors: {},
    statsSeconds: 3,
    requestsPerSecond: 150,
    latencyMs: { min: 1, mean: 2, stddev: 1, p50: 2, p90: 3, p99: 5, p999: 6, p9999: 6, max: 6 },
    percentileCurve: percentileCurve(450, (percentile) => 1 + percentile / 20),
    throughputPerSecond: [150, 150, 150],
    hgrmFile: `${label}.hgrm`,
    histogramBase64: "",
    ...overrides,
  };
}

function target(name: string, kind: string, entries: SeriesSummary[]): TargetSummary {
  return {
    name,
    kind,
    endpoints: ["127.0.0.1:1"],
    skipped: null,
    series: entries,
    verdict: null,
    server: {
      pid: 1,
      cpuSeconds: 1,
      cpuMicrosPerRequest: 100,
      peakRssBytes: 1 << 20,
      peakRssAfterCleanupBytes: 1 << 20,
      memory: null,
    },
    generator: { cpuMicrosPerRequest: 50, blocked: false },
    keyspace: { revisionBefore: "1", deleteRevision: "2", deleted: "1" },
    profile: null,
    cluster: null,
  };
}

function summaryOf(targets: TargetSummary[]): BenchSummary {
  return {
    tool: "etcd-ts bench",
    formatVersion: 1,
    startedAt: "2026-01-01T00:00:00.000Z",
    host: { cpus: 2, node: "v20", platform: "linux-x64" },
    workload: {
      name: "check-perf",
      load: "s",
      clients: 50,
      connections: 50,
      permitsPerSecond: 150,
      durationSeconds: 3,
      totalRequests: null,
      keySizeBytes: 256,
      valueSizeBytes: 1024,
      prefix: "/p/",
      transport: "http2",
      streams: null,
      watchersPerStream: null,
      clusterSize: null,
    },
    targets,
    comparison: [],
  };
}

/** The stroke colour of each polyline, in document order. */
function polylineStrokes(html: string): string[] {
  return [...html.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]{6})"/g)].map((match) => match[1]!);
}

describe("HTML report", () => {
  it("gives each kind of target its own fixed colour, whatever the order of the targets", () => {
    const kinds = ["etcd", "etcd-ts", "null", "external"];
    assert.equal(new Set(kinds.map((kind) => targetColors[kind])).size, 4, "four distinct colours");
    const forward = renderHtml(
      summaryOf([
        target("etcd", "etcd", [series("put")]),
        target("etcd-ts", "etcd-ts", [series("put")]),
        target("null", "null", [series("put")]),
      ]),
    );
    const backward = renderHtml(
      summaryOf([
        target("null", "null", [series("put")]),
        target("etcd-ts", "etcd-ts", [series("put")]),
        target("etcd", "etcd", [series("put")]),
      ]),
    );
    const etcd = targetColors.etcd!;
    const ours = targetColors["etcd-ts"]!;
    const noop = targetColors.null!;
    // Two charts (latency, throughput), each with one line per target.
    assert.deepEqual(polylineStrokes(forward), [etcd, ours, noop, etcd, ours, noop]);
    assert.deepEqual(polylineStrokes(backward), [noop, ours, etcd, noop, ours, etcd]);
    assert.equal(colorOf("something-new", 0), colorOf("something-new", 0));
    assert.ok(!Object.values(targetColors).includes(colorOf("something-new", 0)));
  });

  it("draws a target's second series dashed in the same colour, and names every line in a legend", () => {
    const summary = summaryOf([target("etcd", "etcd", [series("watch event"), series("put")])]);
    summary.workload = {
      ...summary.workload,
      name: "watch-latency",
      load: null,
      permitsPerSecond: 100,
      streams: 2,
      watchersPerStream: 5,
    };
    const html = renderHtml(summary);
    const dashed = [...html.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]{6})"[^>]*stroke-dasharray/g)];
    assert.equal(dashed.length, 1, "only the put series of the latency chart is dashed");
    assert.equal(dashed[0]![1], targetColors.etcd);
    assert.match(html, /class="legend">etcd \(watch event\)</);
    assert.match(html, /class="legend">etcd \(put\)</);
    // The throughput chart shows events: its reference is puts/s times the watchers.
    assert.match(html, />Watch events delivered per second</);
    assert.match(html, /class="legend">expected 1000\/s \(puts\/s × 10\)</);
    assert.match(html, /2 streams × 5 watchers, 100 puts\/s target/);
  });

  it("labels both axes of both charts and says which transport ran", () => {
    const html = renderHtml(summaryOf([target("etcd", "etcd", [series("put")])]));
    for (const label of ["percentile", "latency (ms)", "put/s"]) {
      assert.ok(html.includes(`>${label}</text>`), label);
    }
    assert.match(
      html,
      />seconds since the timed phase started \(a last part-second under 0\.5 s is not drawn\)</,
    );
    assert.match(html, /generator transport http2/);
    // check perf's requested rate and its 90% pass line are drawn on the throughput chart.
    assert.equal(html.match(/<line [^>]*class="reference"/g)?.length, 4, "two lines, two legend samples");
    assert.match(html, /class="legend">requested 150\/s</);
    assert.match(html, /class="legend">pass line 135\/s</);
    assert.doesNotMatch(html, /<script|<link|src=/);
  });

  it("ends the percentile axis at the nine that holds the last resolvable percentile", () => {
    // 450 samples resolve percentiles up to 1 - 1/450 (99.78%): the axis ends at 99.9%, not 99.999%.
    const html = renderHtml(summaryOf([target("etcd", "etcd", [series("put")])]));
    assert.match(html, />99\.9%</);
    assert.doesNotMatch(html, />99\.99%</);
    assert.deepEqual(
      percentileTicks(2).map((tick) => tick.label),
      ["0%", "50%", "90%", "99%"],
    );
    assert.ok(Math.abs(ninesOf(99.9) - 3) < 1e-9);
  });

  it("escapes names it did not write", () => {
    const html = renderHtml(summaryOf([target("<b>x</b>", "external", [series("put")])]));
    assert.doesNotMatch(html, /<b>x<\/b>/);
    assert.match(html, /&lt;b&gt;x&lt;\/b&gt;/);
  });
});

describe("chart data", () => {
  it("percentileCurve stops at 1 - 1/count, in even steps of nines before it", () => {
    const curve = percentileCurve(450, (percentile) => percentile);
    const last = curve[curve.length - 1]!;
    assert.ok(Math.abs(ninesOf(last[0]) - Math.log10(450)) < 1e-9, `last point at ${last[0]}`);
    assert.ok(curve.every(([percentile]) => ninesOf(percentile) <= Math.log10(450) + 1e-9));
    assert.deepEqual(curve[0], [0, 0]);
    // 20 points per nine: 0, 0.05, ..., 2.65 nines, then log10(450) = 2.653.
    assert.equal(curve.length, 54 + 1);
    assert.deepEqual(
      percentileCurve(0, () => 1),
      [],
    );
    // A million samples are cut at five nines, the most the report plots.
    assert.ok(Math.abs(ninesOf(percentileCurve(1_000_000, () => 1).at(-1)![0]) - 5) < 1e-9);
  });

  it("throughputSteps divides a partial last second by the part it covers, and leaves out a sliver", () => {
    assert.deepEqual(throughputSteps({ throughputPerSecond: [100, 120, 60], statsSeconds: 2.5 }), [
      [0, 100],
      [1, 100],
      [1, 120],
      [2, 120],
      [2, 120],
      [2.5, 120],
    ]);
    // 0.2 s after the last whole second: too short to be a rate, not drawn.
    assert.deepEqual(throughputSteps({ throughputPerSecond: [100, 500], statsSeconds: 1.2 }), [
      [0, 100],
      [1, 100],
    ]);
  });

  it("niceTicks steps by 1, 2 or 5 times a power of ten, with no float noise in labels", () => {
    assert.deepEqual(
      niceTicks(0.3, 3).map((tick) => tick.label),
      ["0.0", "0.1", "0.2", "0.3"],
    );
    assert.deepEqual(
      niceTicks(177.5).map((tick) => tick.value),
      [0, 50, 100, 150, 200],
    );
    // An empty chart still gets an axis from 0 to 1.
    assert.deepEqual(
      niceTicks(0).map((tick) => tick.label),
      ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"],
    );
  });
});
