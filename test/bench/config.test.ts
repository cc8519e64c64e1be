import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig, parseDurationMs } from "../../bench/load/config.js";
import { BenchError, ExitCode } from "../../bench/load/errors.js";

function rejects(argv: string[], code: BenchError["code"], message: RegExp): void {
  assert.throws(
    () => parseConfig(argv),
    (error: unknown) => error instanceof BenchError && error.code === code && message.test(error.message),
  );
}

describe("bench CLI configuration", () => {
  it("defaults to etcdctl check perf's load s", () => {
    const config = parseConfig([]);
    assert.equal(config.workload, "check-perf");
    assert.deepEqual(config.endpoints, ["127.0.0.1:2379"]);
    assert.equal(config.endpointsGiven, false);
    assert.equal(config.clients, 50);
    assert.equal(config.connections, 50);
    assert.equal(config.permitsPerSecond, 150);
    assert.equal(config.durationSeconds, 60);
    assert.equal(config.totalRequests, null);
    assert.equal(config.prefix, "/etcdctl-check-perf/");
    assert.equal(config.keySizeBytes, 256);
    assert.equal(config.valueSizeBytes, 1024);
    assert.equal(config.dialTimeoutMs, 2000);
    assert.equal(config.transport, "http2", "check perf sends on raw HTTP/2 by default");
  });

  it("keeps grpc-js as the default of the other workloads and takes --transport grpc for it", () => {
    assert.equal(parseConfig(["put"]).transport, "grpc-js");
    assert.equal(parseConfig(["range"]).transport, "grpc-js");
    assert.equal(parseConfig(["--transport", "grpc"]).transport, "grpc-js");
    assert.equal(parseConfig(["--transport", "grpc-js"]).transport, "grpc-js");
    assert.equal(parseConfig(["put", "--transport", "http2"]).transport, "http2");
    assert.equal(parseConfig(["watch-latency"]).transport, "grpc-js");
    rejects(
      ["--transport", "quic"],
      "BENCH_BAD_ARGS",
      /--transport must be http2 or grpc-js \(grpc\), got "quic"/,
    );
    rejects(["watch-latency", "--transport", "http2"], "BENCH_BAD_ARGS", /applies to the unary workloads/);
  });

  const loads: Array<[string, number, number]> = [
    ["s", 50, 150],
    ["small", 50, 150],
    ["m", 200, 1000],
    ["medium", 200, 1000],
    ["l", 500, 8000],
    ["large", 500, 8000],
    ["xl", 1000, 15000],
    ["xLarge", 1000, 15000],
  ];
  for (const [load, clients, rate] of loads) {
    it(`--load ${load} is ${clients} connections at ${rate}/s for 60 s`, () => {
      const config = parseConfig(["--load", load]);
      assert.equal(config.clients, clients);
      assert.equal(config.connections, clients);
      assert.equal(config.permitsPerSecond, rate);
      assert.equal(config.durationSeconds, 60);
    });
  }

  it("an unknown load is etcdctl's error with its exit code 4", () => {
    rejects(["--load", "huge"], "BENCH_UNKNOWN_LOAD", /^unknown load option huge$/);
    try {
      parseConfig(["--load=XL"]);
      assert.fail("expected a BenchError");
    } catch (error) {
      assert.ok(error instanceof BenchError);
      assert.equal(error.exitCode, ExitCode.badFeature);
    }
  });

  it("takes --duration, --prefix, --endpoints and --out", () => {
    const config = parseConfig([
      "--duration",
      "3",
      "--prefix=/p/",
      "--endpoints",
      "127.0.0.1:1,http://[::1]:2379",
      "--out",
      "/tmp/x",
    ]);
    assert.equal(config.durationSeconds, 3);
    assert.equal(config.prefix, "/p/");
    assert.deepEqual(config.endpoints, ["127.0.0.1:1", "[::1]:2379"]);
    assert.equal(config.endpointsGiven, true);
    assert.equal(config.outDir, "/tmp/x");
  });

  it("takes the workload as a word or as --workload, with etcd benchmark's defaults", () => {
    const put = parseConfig(["put", "--clients", "10", "--conns", "2", "--rate", "500"]);
    assert.equal(put.workload, "put");
    assert.equal(put.clients, 10);
    assert.equal(put.connections, 2);
    assert.equal(put.permitsPerSecond, 500);
    assert.equal(put.totalRequests, 10_000);
    assert.equal(put.keySizeBytes, 8);
    assert.equal(put.prefix, "/etcd-ts-bench/");
    const range = parseConfig(["--workload", "range", "--consistency", "s", "--duration", "2"]);
    assert.equal(range.consistency, "s");
    assert.equal(range.totalRequests, null, "a duration replaces the default total");
    assert.equal(range.permitsPerSecond, null, "rate 0 / absent is unlimited");
    assert.equal(parseConfig(["watch-latency"]).permitsPerSecond, 100);
  });

  const bad: Array<[string[], RegExp]> = [
    [["--clients", "5"], /does not apply to check-perf/],
    [["put", "--load", "s"], /applies to check-perf only/],
    [["put", "--clients", "2", "--conns", "3"], /must not exceed --clients/],
    [["put", "--clients", "0"], /--clients must be an integer/],
    [["--duration=-1"], /--duration must be a positive number/],
    [["--duration", "0"], /--duration must be a positive number/],
    [["--endpoints", "localhost"], /is not host:port/],
    [["--prefix", ""], /must not be empty/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["frobnicate"], /unknown workload "frobnicate"/],
    [["range", "--consistency", "x"], /--consistency must be l/],
    [["txn-put", "--txn-ops", "3", "--key-space-size", "2"], /--txn-ops \(3\) must not exceed/],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(" ")}`, () => rejects(argv, "BENCH_BAD_ARGS", message));
  }

  it("reads Go-style durations for --dial-timeout", () => {
    assert.equal(parseDurationMs("dial-timeout", "2s"), 2000);
    assert.equal(parseDurationMs("dial-timeout", "500ms"), 500);
    assert.equal(parseDurationMs("dial-timeout", "1m"), 60_000);
    assert.equal(parseDurationMs("dial-timeout", "3"), 3000);
    assert.throws(() => parseDurationMs("dial-timeout", "soon"), BenchError);
  });
});
