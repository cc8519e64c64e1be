/**
 * The few pieces of Go's standard library whose exact behaviour etcd's command line depends on:
 * strconv's integer and bool syntax, time.ParseDuration, net.SplitHostPort, the parts of net/url.Parse
 * that etcd's URL flags hit, and %q quoting for error messages. Deployment configs written for etcd
 * must be accepted or refused the same way here, so these follow Go 1.19 (what etcd 3.4.23 is built
 * with) rule by rule rather than using JavaScript's looser parsers (Number("0x10"), new URL(...)).
 */

/** Go's strconv errors, which the flag package maps to "parse error" / "value out of range". */
export type NumError = "syntax" | "range";

export interface IntRange {
  readonly signed: boolean;
  readonly bits: 32 | 64;
}

/**
 * strconv.ParseInt / ParseUint with base 0: optional sign (signed only), 0x/0o/0b/0 prefixes,
 * underscores only between digits or after a prefix. Returns a bigint because uint64 exceeds 2^53.
 */
export function parseGoInt(text: string, range: IntRange): bigint | NumError {
  if (text === "") return "syntax";
  if (!range.signed) return parseGoUint(text, range.bits);
  let s = text;
  let negative = false;
  if (s[0] === "+" || s[0] === "-") {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  const magnitude = parseGoUint(s, 64);
  if (magnitude === "syntax") return "syntax";
  const cutoff = 1n << BigInt(range.bits - 1);
  if (magnitude === "range") return "range";
  if (!negative && magnitude >= cutoff) return "range";
  if (negative && magnitude > cutoff) return "range";
  return negative ? -magnitude : magnitude;
}

/** strconv.ParseUint(s, 0, bits), digit by digit as Go does (so overflow is reported where Go reports it). */
function parseGoUint(text: string, bits: 32 | 64): bigint | NumError {
  if (text === "") return "syntax";
  let s = text;
  let base = 10;
  if (s[0] === "0") {
    const prefix = s.length >= 3 ? s[1]!.toLowerCase() : "";
    if (prefix === "b" || prefix === "o" || prefix === "x") {
      base = prefix === "b" ? 2 : prefix === "o" ? 8 : 16;
      s = s.slice(2);
    } else {
      // A leading zero means octal; "0" alone leaves no digits and is zero.
      base = 8;
      s = s.slice(1);
    }
  }
  const max = (1n << BigInt(bits)) - 1n;
  const bigBase = BigInt(base);
  let value = 0n;
  let underscores = false;
  for (const ch of s) {
    if (ch === "_") {
      underscores = true;
      continue;
    }
    const digit = digitValue(ch);
    if (digit < 0 || digit >= base) return "syntax";
    value = value * bigBase + BigInt(digit);
    if (value > max) return "range";
  }
  if (underscores && !underscoresOk(text)) return "syntax";
  return value;
}

function digitValue(ch: string): number {
  const c = ch.charCodeAt(0);
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 122) return c - 97 + 10;
  if (c >= 65 && c <= 90) return c - 65 + 10;
  return -1;
}

/** Go's underscoreOK: underscores must separate digits (or follow a base prefix); sign already removed. */
function underscoresOk(s: string): boolean {
  let saw = "^";
  let i = 0;
  let hex = false;
  if (s.length >= 2 && s[0] === "0") {
    const p = s[1]!.toLowerCase();
    if (p === "x" || p === "o" || p === "b") {
      hex = p === "x";
      i = 2;
      saw = "0";
    }
  }
  for (; i < s.length; i++) {
    const ch = s[i]!;
    const isDigit = ch >= "0" && ch <= "9";
    const isHex = hex && /[a-fA-F]/.test(ch);
    if (isDigit || isHex) {
      saw = "0";
      continue;
    }
    if (ch === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** strconv.ParseBool. */
export function parseGoBool(text: string): boolean | undefined {
  switch (text) {
    case "1":
    case "t":
    case "T":
    case "TRUE":
    case "true":
    case "True":
      return true;
    case "0":
    case "f":
    case "F":
    case "FALSE":
    case "false":
    case "False":
      return false;
    default:
      return undefined;
  }
}

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n], // U+00B5 micro sign
  ["\u03bcs", 1_000n], // U+03BC Greek mu
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);
const INT64_MAX = (1n << 63n) - 1n;

/**
 * time.ParseDuration: "[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+", or "0". Returns nanoseconds, or Go's error
 * text (which etcd shows for --auto-compaction-retention; the flag package replaces it with "parse error").
 */
export function parseGoDuration(text: string): bigint | { error: string } {
  const invalid = { error: `time: invalid duration ${goQuote(text)}` };
  let s = text;
  let negative = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") return invalid;
  let total = 0n;
  while (s !== "") {
    if (!(s[0] === "." || (s[0]! >= "0" && s[0]! <= "9"))) return invalid;
    const intMatch = /^[0-9]*/.exec(s)![0];
    s = s.slice(intMatch.length);
    let fraction = "";
    if (s[0] === ".") {
      s = s.slice(1);
      fraction = /^[0-9]*/.exec(s)![0];
      s = s.slice(fraction.length);
    }
    if (intMatch === "" && fraction === "") return invalid;
    let unitEnd = 0;
    while (unitEnd < s.length && s[unitEnd] !== "." && !(s[unitEnd]! >= "0" && s[unitEnd]! <= "9")) unitEnd++;
    if (unitEnd === 0) return { error: `time: missing unit in duration ${goQuote(text)}` };
    const unitName = s.slice(0, unitEnd);
    s = s.slice(unitEnd);
    const unit = NS_PER_UNIT.get(unitName);
    if (unit === undefined) {
      return { error: `time: unknown unit ${goQuote(unitName)} in duration ${goQuote(text)}` };
    }
    const whole = intMatch === "" ? 0n : BigInt(intMatch);
    let part = whole * unit;
    if (fraction !== "") {
      // Go keeps at most the digits that still matter and truncates toward zero.
      const scale = 10n ** BigInt(fraction.length);
      part += (BigInt(fraction) * unit) / scale;
    }
    total += part;
    if (total > INT64_MAX + (negative ? 1n : 0n)) return invalid;
  }
  return negative ? -total : total;
}

/** Go's time.Duration.String(), e.g. 100ms, 1s, 1m30s, 2h0m0s, 885.093µs — the shape zap logs durations in. */
export function formatGoDuration(nanoseconds: bigint): string {
  if (nanoseconds === 0n) return "0s";
  const negative = nanoseconds < 0n;
  let u = negative ? -nanoseconds : nanoseconds;
  const sign = negative ? "-" : "";
  if (u < 1_000_000_000n) {
    let unit: string;
    let div: bigint;
    if (u < 1_000n) return `${sign}${u}ns`;
    if (u < 1_000_000n) {
      unit = "\u00b5s";
      div = 1_000n;
    } else {
      unit = "ms";
      div = 1_000_000n;
    }
    return `${sign}${fixed(u, div)}${unit}`;
  }
  const hours = u / 3_600_000_000_000n;
  u -= hours * 3_600_000_000_000n;
  const minutes = u / 60_000_000_000n;
  u -= minutes * 60_000_000_000n;
  const seconds = fixed(u, 1_000_000_000n);
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function fixed(value: bigint, div: bigint): string {
  const whole = value / div;
  const rest = value % div;
  if (rest === 0n) return whole.toString();
  const width = div.toString().length - 1;
  return `${whole}.${rest.toString().padStart(width, "0").replace(/0+$/, "")}`;
}

/** Go's %q for the strings that reach error messages (JSON escaping is the same for printable ASCII). */
export function goQuote(text: string): string {
  return JSON.stringify(text);
}

/** net.SplitHostPort; returns Go's error text on failure. */
export function splitHostPort(hostport: string): { host: string; port: string } | { error: string } {
  const fail = (why: string) => ({ error: `address ${hostport}: ${why}` });
  let host: string;
  let j = 0;
  let k = 0;
  const i = hostport.lastIndexOf(":");
  if (i < 0) return fail("missing port in address");
  if (hostport[0] === "[") {
    const end = hostport.indexOf("]");
    if (end < 0) return fail("missing ']' in address");
    if (end + 1 === hostport.length) return fail("missing port in address");
    if (end + 1 !== i)
      return fail(hostport[end + 1] === ":" ? "too many colons in address" : "missing port in address");
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(":")) return fail("too many colons in address");
  }
  if (hostport.indexOf("[", j) >= 0) return fail("unexpected '[' in address");
  if (hostport.indexOf("]", k) >= 0) return fail("unexpected ']' in address");
  return { host, port: hostport.slice(i + 1) };
}

/** The parts of a URL etcd looks at, as Go's net/url.Parse splits them. */
export interface GoUrl {
  readonly scheme: string;
  readonly opaque: string;
  readonly host: string;
  readonly path: string;
  /** url.URL.String() for the simple URLs etcd accepts (used to sort and compare, as etcd does). */
  readonly text: string;
}

/** net/url.Parse, the subset that decides acceptance of etcd's URL flags; returns Go's error text. */
export function parseGoUrl(raw: string): GoUrl | { error: string } {
  const wrap = (why: string) => ({ error: `parse ${goQuote(raw)}: ${why}` });
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return wrap("net/url: invalid control character in URL");
  }
  const hashAt = raw.indexOf("#");
  let rest = hashAt >= 0 ? raw.slice(0, hashAt) : raw;
  let scheme = "";
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i]!;
    if (/[a-zA-Z]/.test(ch)) continue;
    if (/[0-9+.-]/.test(ch)) {
      if (i === 0) break;
      continue;
    }
    if (ch === ":") {
      if (i === 0) return wrap("missing protocol scheme");
      scheme = rest.slice(0, i).toLowerCase();
      rest = rest.slice(i + 1);
    }
    break;
  }
  const queryAt = rest.indexOf("?");
  if (queryAt >= 0) rest = rest.slice(0, queryAt);
  if (!rest.startsWith("/")) {
    if (scheme !== "") return { scheme, opaque: rest, host: "", path: "", text: `${scheme}:${rest}` };
    if (rest.slice(0, rest.indexOf("/") >= 0 ? rest.indexOf("/") : rest.length).includes(":")) {
      return wrap("first path segment in URL cannot contain colon");
    }
  }
  let host = "";
  if (rest.startsWith("//")) {
    const slashAt = rest.indexOf("/", 2);
    let authority = slashAt >= 0 ? rest.slice(2, slashAt) : rest.slice(2);
    rest = slashAt >= 0 ? rest.slice(slashAt) : "";
    const at = authority.lastIndexOf("@");
    if (at >= 0) authority = authority.slice(at + 1);
    const hostError = checkGoHost(authority);
    if (hostError !== undefined) return wrap(hostError);
    host = authority;
  }
  const path = rest;
  const text = scheme === "" ? `${host === "" ? "" : `//${host}`}${path}` : `${scheme}://${host}${path}`;
  return { scheme, opaque: "", host, path, text };
}

function checkGoHost(host: string): string | undefined {
  let colonPort = "";
  if (host.startsWith("[")) {
    const end = host.lastIndexOf("]");
    if (end < 0) return "missing ']' in host";
    colonPort = host.slice(end + 1);
  } else {
    const i = host.lastIndexOf(":");
    if (i >= 0) colonPort = host.slice(i);
  }
  if (colonPort !== "" && !/^:[0-9]*$/.test(colonPort))
    return `invalid port ${goQuote(colonPort)} after host`;
  for (const ch of host) {
    if (ch.charCodeAt(0) >= 0x80) continue;
    if (/[a-zA-Z0-9\-_.~!$&'()*+,;=:[\]<>"%]/.test(ch)) continue;
    return `invalid character ${goQuote(ch)} in host name`;
  }
  return undefined;
}
