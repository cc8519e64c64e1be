import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newUrls } from "../../src/config/flagset.js";
import {
  formatGoDuration,
  type IntRange,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
  parseGoUrl,
  splitHostPort,
} from "../../src/config/goparse.js";

const U64: IntRange = { signed: false, bits: 64 };
const I64: IntRange = { signed: true, bits: 64 };
const U32: IntRange = { signed: false, bits: 32 };

describe("parseGoInt (strconv with base 0)", () => {
  const cases: ReadonlyArray<readonly [string, IntRange, bigint | "syntax" | "range"]> = [
    ["0", U64, 0n],
    ["100000", U64, 100000n],
    ["0x10", U64, 16n],
    ["0X1f", U64, 31n],
    ["010", U64, 8n],
    ["0o17", U64, 15n],
    ["0b101", U64, 5n],
    ["1_000", U64, 1000n],
    ["0x_1f", U64, 31n],
    ["1__0", U64, "syntax"],
    ["_1", U64, "syntax"],
    ["1_", U64, "syntax"],
    ["", U64, "syntax"],
    ["0x", U64, "syntax"],
    ["09", U64, "syntax"],
    ["abc", U64, "syntax"],
    ["1.5", U64, "syntax"],
    [" 1", U64, "syntax"],
    ["-1", U64, "syntax"],
    ["+1", U64, "syntax"],
    ["18446744073709551615", U64, 18446744073709551615n],
    ["18446744073709551616", U64, "range"],
    ["4294967295", U32, 4294967295n],
    ["4294967296", U32, "range"],
    ["-1", I64, -1n],
    ["+7", I64, 7n],
    ["-0x10", I64, -16n],
    ["9223372036854775807", I64, 9223372036854775807n],
    ["9223372036854775808", I64, "range"],
    ["-9223372036854775808", I64, -9223372036854775808n],
    ["-9223372036854775809", I64, "range"],
    ["-", I64, "syntax"],
  ];
  for (const [text, range, expected] of cases) {
    it(`${JSON.stringify(text)} as ${range.signed ? "int" : "uint"}${range.bits} -> ${String(expected)}`, () => {
      assert.equal(parseGoInt(text, range), expected);
    });
  }
});

describe("parseGoBool (strconv.ParseBool)", () => {
  for (const text of ["1", "t", "T", "TRUE", "true", "True"])
    it(`${text} is true`, () => assert.equal(parseGoBool(text), true));
  for (const text of ["0", "f", "F", "FALSE", "false", "False"]) {
    it(`${text} is false`, () => assert.equal(parseGoBool(text), false));
  }
  for (const text of ["yes", "on", "tRue", "", " true"]) {
    it(`${JSON.stringify(text)} is not a bool`, () => assert.equal(parseGoBool(text), undefined));
  }
});

describe("parseGoDuration (time.ParseDuration)", () => {
  const cases: ReadonlyArray<readonly [string, bigint | string]> = [
    ["0", 0n],
    ["-0", 0n],
    ["5s", 5_000_000_000n],
    ["100ms", 100_000_000n],
    ["1.5h", 5_400_000_000_000n],
    ["1h2m3s", 3_723_000_000_000n],
    ["2h", 7_200_000_000_000n],
    ["10us", 10_000n],
    ["10\u00b5s", 10_000n],
    ["10\u03bcs", 10_000n],
    ["7ns", 7n],
    [".5s", 500_000_000n],
    ["1.s", 1_000_000_000n],
    ["-1m", -60_000_000_000n],
    ["5", 'time: missing unit in duration "5"'],
    ["5x", 'time: unknown unit "x" in duration "5x"'],
    ["", 'time: invalid duration ""'],
    ["abc", 'time: invalid duration "abc"'],
    [".s", 'time: invalid duration ".s"'],
    ["1h-2m", 'time: unknown unit "h-" in duration "1h-2m"'],
    ["9999999999h", 'time: invalid duration "9999999999h"'],
  ];
  for (const [text, expected] of cases) {
    it(`${JSON.stringify(text)} -> ${String(expected)}`, () => {
      const parsed = parseGoDuration(text);
      if (typeof expected === "bigint") assert.equal(parsed, expected);
      else assert.deepEqual(parsed, { error: expected });
    });
  }
});

describe("formatGoDuration (time.Duration.String)", () => {
  const cases: ReadonlyArray<readonly [bigint, string]> = [
    [0n, "0s"],
    [7n, "7ns"],
    [885_093n, "885.093\u00b5s"],
    [100_000_000n, "100ms"],
    [1_000_000_000n, "1s"],
    [1_500_000_000n, "1.5s"],
    [90_000_000_000n, "1m30s"],
    [7_200_000_000_000n, "2h0m0s"],
    [-1_000_000_000n, "-1s"],
  ];
  for (const [nanoseconds, expected] of cases) {
    it(`${nanoseconds}ns -> ${expected}`, () => assert.equal(formatGoDuration(nanoseconds), expected));
  }
});

describe("splitHostPort (net.SplitHostPort)", () => {
  it("splits host and port", () =>
    assert.deepEqual(splitHostPort("127.0.0.1:2379"), { host: "127.0.0.1", port: "2379" }));
  it("unwraps IPv6", () => assert.deepEqual(splitHostPort("[::1]:2379"), { host: "::1", port: "2379" }));
  it("accepts an empty port", () => assert.deepEqual(splitHostPort("h:"), { host: "h", port: "" }));
  it("needs a port", () =>
    assert.deepEqual(splitHostPort("h"), { error: "address h: missing port in address" }));
  it("refuses bare IPv6", () =>
    assert.deepEqual(splitHostPort("::1:2"), { error: "address ::1:2: too many colons in address" }));
});

describe("etcd's types.NewURLs", () => {
  const accepted: ReadonlyArray<readonly [string, readonly string[]]> = [
    ["http://127.0.0.1:2379", ["http://127.0.0.1:2379"]],
    ["http://b:1,http://a:1", ["http://a:1", "http://b:1"]],
    [" http://a:1 ", ["http://a:1"]],
    ["HTTP://a:1", ["http://a:1"]],
    ["unix://localhost:1234", ["unix://localhost:1234"]],
    ["https://[::1]:2379", ["https://[::1]:2379"]],
    ["http://a:1?x=y", ["http://a:1"]],
  ];
  for (const [text, expected] of accepted) {
    it(`accepts ${text}`, () => {
      const urls = newUrls(text.split(","));
      assert.ok(!("error" in urls));
      assert.deepEqual(
        urls.map((u) => u.text),
        expected,
      );
    });
  }
  const refused: ReadonlyArray<readonly [string, string]> = [
    ["notaurl", "URL scheme must be http, https, unix, or unixs: notaurl"],
    ["ftp://a:1", "URL scheme must be http, https, unix, or unixs: ftp://a:1"],
    ["http://a", 'URL address does not have the form "host:port": http://a'],
    ["http://a:1/", "URL must not contain a path: http://a:1/"],
    ["http:a:1", 'URL address does not have the form "host:port": http:a:1'],
    ["http://a b:1", 'parse "http://a b:1": invalid character " " in host name'],
    ["http://a:x", 'parse "http://a:x": invalid port ":x" after host'],
    ["://a:1", 'parse "://a:1": missing protocol scheme'],
    ["", "URL scheme must be http, https, unix, or unixs: "],
  ];
  for (const [text, expected] of refused) {
    it(`refuses ${JSON.stringify(text)}`, () => assert.deepEqual(newUrls([text]), { error: expected }));
  }
  it("keeps Go's opaque form for scheme:rest", () => {
    const parsed = parseGoUrl("http:x");
    assert.ok(!("error" in parsed));
    assert.equal(parsed.opaque, "x");
  });
});
