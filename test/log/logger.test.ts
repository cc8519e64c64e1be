import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { formatDurationMs, formatId, formatZapTime, humanizeBytes } from "../../src/log/format.js";
import { createLogger, type Logger } from "../../src/log/logger.js";

const ETCD_TS_FORMAT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$/;
const FIXED_NOW_MS = Date.UTC(2026, 10, 23, 18, 17, 48, 615);

/** A logger writing into an array; `raw` fills as it logs, `lines` parses it when called. */
function capture(level?: "debug" | "info" | "warn" | "error"): {
  log: Logger;
  lines: () => Record<string, unknown>[];
  raw: string[];
} {
  const raw: string[] = [];
  const log = createLogger({
    ...(level === undefined ? {} : { level }),
    destination: { write: (line: string) => raw.push(line) },
    nowMs: () => FIXED_NOW_MS,
  });
  return { log, raw, lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe("zap's value formats", () => {
  it("ts is zap's ISO8601 in local time", () => {
    assert.equal(formatZapTime(FIXED_NOW_MS, 0), "2026-11-23T18:17:48.615Z");
    assert.equal(formatZapTime(FIXED_NOW_MS, 60), "2026-11-23T19:17:48.615+0100");
    assert.equal(formatZapTime(FIXED_NOW_MS, -330), "2026-11-23T12:47:48.615-0530");
    assert.match(formatZapTime(Date.now()), ETCD_TS_FORMAT);
  });
  it("etcd's own ts values have that format", () => {
    const text = readFileSync(new URL("./testdata/etcd-3.4.23-single-member.jsonl", import.meta.url), "utf8");
    for (const line of text.trim().split("\n"))
      assert.match((JSON.parse(line) as { ts: string }).ts, ETCD_TS_FORMAT);
  });
  it("durations, sizes and ids print as etcd prints them", () => {
    assert.equal(formatDurationMs(100), "100ms");
    assert.equal(formatDurationMs(1000), "1s");
    assert.equal(formatDurationMs(900), "900ms");
    assert.equal(formatDurationMs(7000), "7s");
    assert.equal(formatDurationMs(30_000), "30s");
    assert.equal(formatDurationMs(0.885093), "885.093\u00b5s");
    assert.equal(humanizeBytes(2147483648), "2.1 GB");
    assert.equal(humanizeBytes(8 * 1024 * 1024 * 1024), "8.6 GB");
    assert.equal(humanizeBytes(100_000_000), "100 MB");
    assert.equal(humanizeBytes(5), "5 B");
    assert.equal(formatId(0xbdae9bbc11dd390dn), "bdae9bbc11dd390d");
    assert.equal(formatId(0x35f3781129ca454n), "35f3781129ca454");
  });
});

describe("the logger", () => {
  it("writes one JSON line in etcd's shape: level, ts, caller, msg, then fields", () => {
    const { log, raw, lines } = capture();
    log.child("etcdserver").info("published local member to cluster through raft", {
      "local-member-id": "bdae9bbc11dd390d",
      "publish-timeout": formatDurationMs(7000),
    });
    assert.equal(raw.length, 1);
    assert.ok(raw[0]!.endsWith("\n"));
    assert.deepEqual(Object.keys(lines()[0]!), [
      "level",
      "ts",
      "caller",
      "msg",
      "local-member-id",
      "publish-timeout",
    ]);
    assert.deepEqual(lines()[0], {
      level: "info",
      ts: formatZapTime(FIXED_NOW_MS),
      caller: "etcdserver",
      msg: "published local member to cluster through raft",
      "local-member-id": "bdae9bbc11dd390d",
      "publish-timeout": "7s",
    });
  });

  it("uses zap's level names and honours the level", () => {
    const { log, lines } = capture("warn");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    log.panic("p");
    log.fatal("f");
    assert.deepEqual(
      lines().map((l) => [l["level"], l["msg"]]),
      [
        ["warn", "w"],
        ["error", "e"],
        ["panic", "p"],
        ["fatal", "f"],
      ],
    );
  });

  it("does not build lazy fields for a disabled level", () => {
    const { log, lines } = capture("info");
    let built = 0;
    const fields = () => {
      built += 1;
      return { index: 1 };
    };
    log.debug("skipped", fields);
    assert.equal(built, 0);
    assert.equal(log.isEnabled("debug"), false);
    log.info("kept", fields);
    assert.equal(built, 1);
    assert.equal(lines()[0]?.["index"], 1);
  });

  it("setLevel reaches every module's logger", () => {
    const { log, lines } = capture("info");
    const raft = log.child("raft");
    raft.debug("before");
    log.setLevel("debug");
    raft.debug("after");
    assert.equal(raft.getLevel(), "debug");
    assert.deepEqual(
      lines().map((l) => l["msg"]),
      ["after"],
    );
  });

  it("a child of a child names only its own module", () => {
    const { log, raw } = capture();
    log.child("a").child("b").info("x");
    assert.equal(raw[0]!.match(/"caller"/g)?.length, 1);
    assert.match(raw[0]!, /"caller":"b"/);
  });

  it("prints errors as their message and 64-bit ids exactly", () => {
    const { log, raw, lines } = capture();
    log.warn("failed to verify flags", { error: new Error("boom"), big: 18446744073709551615n, list: ["a"] });
    assert.equal(lines()[0]?.["error"], "boom");
    assert.match(raw[0]!, /"big":18446744073709551615/);
    assert.deepEqual(lines()[0]?.["list"], ["a"]);
  });
});

describe("log outputs", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-log-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("appends to files named in --log-outputs, one line each", () => {
    const first = join(dir, "a.log");
    const second = join(dir, "b.log");
    const log = createLogger({ outputs: [first, second] });
    log.info("one");
    log.child("m").warn("two");
    for (const path of [first, second]) {
      const lines = readFileSync(path, "utf8").trimEnd().split("\n");
      assert.deepEqual(
        lines.map((line) => (JSON.parse(line) as { msg: string }).msg),
        ["one", "two"],
      );
    }
  });

  it("writes to stderr by default, nothing to stdout", () => {
    const script =
      "import { createLogger } from './src/log/logger.ts'; createLogger().info('ready to serve client requests');";
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("../../", import.meta.url),
      encoding: "utf8",
    });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, "");
    const line = JSON.parse(child.stderr.trim()) as Record<string, unknown>;
    assert.equal(line["msg"], "ready to serve client requests");
    assert.equal(line["caller"], "etcdmain");
    assert.match(String(line["ts"]), ETCD_TS_FORMAT);
  });
});
