import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig, parseNodeFlags } from "../../bench/load/config.js";
import {
  parseRssStatus,
  processRss,
  type RssReading,
  RssSampler,
  rssGrowthBytesPerRequest,
  rssSamplesMax,
} from "../../bench/load/procStats.js";
import { profileOfProcess } from "../../bench/profile/session.js";
import { rssChart } from "../../bench/report/html.js";
import type { BenchSummary, TargetSummary } from "../../bench/report/summary.js";
import { memoryLine } from "../../bench/report/text.js";

const mib = 1_048_576;

const statusText = `Name:\tnode
VmPeak:\t 2000000 kB
VmHWM:\t  952168 kB
VmRSS:\t  913000 kB
RssAnon:\t  749684 kB
RssFile:\t  163316 kB
RssShmem:\t       0 kB
Threads:\t16
`;

describe("server RSS from /proc", () => {
  it("reads VmRSS, RssAnon, RssFile and VmHWM in bytes", () => {
    assert.deepEqual(parseRssStatus(statusText), {
      rssBytes: 913000 * 1024,
      anonBytes: 749684 * 1024,
      fileBytes: 163316 * 1024,
      peakBytes: 952168 * 1024,
    });
    assert.equal(parseRssStatus("Name:\tzombie\nState:\tZ (zombie)\n"), null);
  });

  it("reads this process's own RSS, and null for a pid that does not exist", () => {
    const own = processRss(process.pid);
    assert.ok(own !== null && own.rssBytes > 0 && own.peakBytes >= own.rssBytes);
    assert.equal(processRss(2 ** 30), null);
  });

  it("takes a sample at start and stop, seconds since start, and skips a gone process", () => {
    let nowMs = 1000;
    let rss = 100 * mib;
    let gone = false;
    const read = (): RssReading | null =>
      gone ? null : { rssBytes: rss, anonBytes: rss - mib, fileBytes: mib, peakBytes: rss };
    const sampler = new RssSampler(42, read, () => nowMs);
    sampler.start();
    nowMs += 2500;
    rss = 150 * mib;
    sampler.sample();
    gone = true;
    nowMs += 500;
    sampler.sample();
    gone = false;
    nowMs += 1000;
    rss = 160 * mib;
    const samples = sampler.stop();
    assert.deepEqual(samples, [
      [0, 100 * mib, 99 * mib, mib],
      [2.5, 150 * mib, 149 * mib, mib],
      [4, 160 * mib, 159 * mib, mib],
    ]);
  });

  it("keeps at most rssSamplesMax samples, halving the resolution of a long run", () => {
    let nowMs = 0;
    const sampler = new RssSampler(
      1,
      () => ({ rssBytes: nowMs, anonBytes: 0, fileBytes: 0, peakBytes: nowMs }),
      () => nowMs,
    );
    sampler.start();
    for (let i = 0; i < rssSamplesMax * 3; i++) {
      nowMs += 1000;
      sampler.sample();
    }
    assert.ok(sampler.samples.length <= rssSamplesMax);
    assert.equal(sampler.samples[0]![0], 0, "the first sample stays");
    const times = sampler.samples.map((sample) => sample[0]);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, "still in time order");
  });

  it("gives the RSS slope per request over the second half of the phase, past warm-up", () => {
    const samples: Array<[number, number, number, number]> = [
      [0, 100 * mib, 0, 0],
      [2, 180 * mib, 0, 0], // warm-up: connections, JIT
      [5, 200 * mib, 0, 0],
      [7.5, 250 * mib, 0, 0],
      [10, 300 * mib, 0, 0],
    ];
    const perSecond = Array.from({ length: 10 }, () => 1000);
    // From 5 s to 10 s: 5,000 requests for 100 MiB.
    assert.equal(rssGrowthBytesPerRequest(samples, perSecond), (100 * mib) / 5000);
    // A part-second counts pro rata: from 7.5 s to 10 s, 2,500 requests for 50 MiB.
    assert.equal(rssGrowthBytesPerRequest(samples.slice(3), perSecond), (50 * mib) / 2500);
    assert.equal(rssGrowthBytesPerRequest(samples.slice(0, 1), perSecond), null);
    assert.equal(rssGrowthBytesPerRequest(samples, []), null);
  });
});

function targetWithMemory(
  name: string,
  kind: string,
  memory: TargetSummary["server"]["memory"],
): TargetSummary {
  return {
    name,
    kind,
    endpoints: ["127.0.0.1:1"],
    skipped: null,
    series: [],
    verdict: null,
    server: {
      pid: 1,
      cpuSeconds: 1,
      cpuMicrosPerRequest: 100,
      peakRssBytes: 610 * mib,
      peakRssAfterCleanupBytes: 930 * mib,
      memory,
    },
    generator: { cpuMicrosPerRequest: 50, blocked: false },
    keyspace: { revisionBefore: null, deleteRevision: null, deleted: null },
    profile: null,
    cluster: null,
  };
}

describe("RSS in the reports", () => {
  const memory = {
    samples: [
      [0, 230 * mib, 180 * mib, 50 * mib],
      [10, 600 * mib, 500 * mib, 100 * mib],
    ] as Array<[number, number, number, number]>,
    startRssBytes: 230 * mib,
    endRssBytes: 600 * mib,
    growthBytesPerRequest: 5.5 * 1024,
  };

  it("prints RSS at the start and end of the timed phase, the slope, and a peak the cleanup raised", () => {
    assert.equal(
      memoryLine(targetWithMemory("etcd-ts", "etcd-ts", memory)),
      "server RSS in the timed phase: 230.0 MiB at its start, 600.0 MiB at its end " +
        "(+5.50 KiB per acknowledged request in its second half); the cleanup raised the peak to 930.0 MiB",
    );
    const quietCleanup = targetWithMemory("etcd", "etcd", memory);
    quietCleanup.server.peakRssAfterCleanupBytes = 610 * mib;
    assert.doesNotMatch(memoryLine(quietCleanup)!, /cleanup/);
    assert.equal(memoryLine(targetWithMemory("endpoint", "external", null)), null);
  });

  it("draws one RSS line per target with samples, and nothing when none has any", () => {
    const summary = {
      targets: [
        targetWithMemory("etcd-ts", "etcd-ts", memory),
        targetWithMemory("endpoint", "external", null),
      ],
    } as unknown as BenchSummary;
    const svg = rssChart(summary);
    assert.match(svg, /Server RSS during the timed phase/);
    assert.equal(svg.match(/<polyline /g)?.length, 1);
    assert.match(svg, />etcd-ts</);
    assert.equal(
      rssChart({ targets: [targetWithMemory("e", "external", null)] } as unknown as BenchSummary),
      "",
    );
  });
});

describe("--server-node-flags", () => {
  it("splits node options and passes them to the Node servers the bench starts", () => {
    assert.deepEqual(parseNodeFlags(" --max-semi-space-size=32   --trace-gc "), [
      "--max-semi-space-size=32",
      "--trace-gc",
    ]);
    assert.deepEqual(parseNodeFlags(""), []);
    assert.deepEqual(
      parseConfig(["--compare-etcd-ts", "--server-node-flags=--max-old-space-size=512"]).serverNodeFlags,
      ["--max-old-space-size=512"],
    );
    assert.deepEqual(parseConfig(["--compare-null"]).serverNodeFlags, []);
  });

  it("refuses words that are not options, and a run that starts no Node server", () => {
    assert.throws(() => parseNodeFlags("--trace-gc evil.js"), /"evil.js" is not a node option/);
    assert.throws(() => parseNodeFlags("-e"), /is not a node option/);
    assert.throws(
      () => parseConfig(["--compare-etcd", "--server-node-flags=--trace-gc"]),
      /--compare-etcd-ts or --compare-null/,
    );
  });
});

describe("--profile files of this run only", () => {
  it("matches a .cpuprofile to the process that wrote it", () => {
    const file = "CPU.20261123.191133.25168.0.001.cpuprofile";
    assert.equal(profileOfProcess(file, 25168), true);
    assert.equal(profileOfProcess(file, 25552), false);
    assert.equal(profileOfProcess(file, 2516), false);
    assert.equal(profileOfProcess(file, null), true);
  });
});
