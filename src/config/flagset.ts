/**
 * A flag set with Go's `flag` package semantics as etcdmain uses it: `-f`, `--f`, `-f=v`, `-f v`
 * (not for bools), bools as `-f` or `-f=false`, `--` ends flags, parsing stops at the first
 * non-flag word, the last occurrence wins. Each flag's value follows its etcd flag.Value type.
 */
import { assert } from "../assert.js";
import { ConfigError } from "./errors.js";
import { FLAGS, type FlagSpec, lookupFlag } from "./flags.js";
import {
  type GoUrl,
  goQuote,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
  parseGoUrl,
  splitHostPort,
} from "./goparse.js";
import type { ConfigNote } from "./types.js";

/** flags.UniqueURLs: the set of accepted strings plus the parsed, sorted URL list. */
export interface UrlListValue {
  readonly texts: ReadonlySet<string>;
  readonly urls: readonly GoUrl[];
}

export type FlagValue =
  | string
  | boolean
  | bigint
  | UrlListValue
  | ReadonlySet<string>
  | readonly string[]
  | null;

export type SetOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

const OK: SetOutcome = Object.freeze({ ok: true });

/** etcd's types.NewURLs: every comma-separated part must be scheme://host:port with no path; sorted. */
export function newUrls(parts: readonly string[]): readonly GoUrl[] | { error: string } {
  if (parts.length === 0) return { error: "no valid URLs given" };
  const urls: GoUrl[] = [];
  for (const part of parts) {
    const text = part.trim();
    const url = parseGoUrl(text);
    if ("error" in url) return url;
    if (url.scheme !== "http" && url.scheme !== "https" && url.scheme !== "unix" && url.scheme !== "unixs") {
      return { error: `URL scheme must be http, https, unix, or unixs: ${text}` };
    }
    if ("error" in splitHostPort(url.host)) {
      return { error: `URL address does not have the form "host:port": ${text}` };
    }
    if (url.path !== "") return { error: `URL must not contain a path: ${text}` };
    urls.push(url);
  }
  urls.sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  return urls;
}

/** The flag.Value.Set of each kind; returns etcd's error text. Mutates `values`. */
function setValue(
  spec: FlagSpec,
  text: string,
  values: Map<string, FlagValue>,
  notes: ConfigNote[],
): SetOutcome {
  const fail = (error: string): SetOutcome => ({ ok: false, error });
  switch (spec.kind) {
    case "string":
      values.set(spec.name, text);
      return OK;
    case "bool": {
      const parsed = parseGoBool(text);
      if (parsed === undefined) return fail("parse error");
      values.set(spec.name, parsed);
      return OK;
    }
    case "uint":
    case "uint64":
    case "int":
    case "int64": {
      const signed = spec.kind === "int" || spec.kind === "int64";
      const parsed = parseGoInt(text, { signed, bits: 64 });
      if (parsed === "syntax") return fail("parse error");
      if (parsed === "range") return fail("value out of range");
      values.set(spec.name, parsed);
      return OK;
    }
    case "uint32": {
      // etcd's own uint32Value returns strconv's error unchanged.
      const parsed = parseGoInt(text, { signed: false, bits: 32 });
      if (parsed === "syntax") return fail(`strconv.ParseUint: parsing ${goQuote(text)}: invalid syntax`);
      if (parsed === "range") return fail(`strconv.ParseUint: parsing ${goQuote(text)}: value out of range`);
      values.set(spec.name, parsed);
      return OK;
    }
    case "duration": {
      const parsed = parseGoDuration(text);
      if (typeof parsed !== "bigint") return fail("parse error");
      values.set(spec.name, parsed);
      return OK;
    }
    case "urls":
    case "corsUrls":
      return setUrlList(spec, text, values);
    case "uniqueStrings":
      values.set(spec.name, new Set(text.split(",")));
      return OK;
    case "strings":
      values.set(spec.name, Object.freeze(text.split(",")));
      return OK;
    case "select":
      if (!spec.choices.includes(text)) return fail("invalid value");
      values.set(spec.name, text);
      return OK;
    case "ignored":
      notes.push({
        level: "warn",
        msg: "flag is no longer supported - ignoring",
        fields: { "flag-name": spec.name },
      });
      return OK;
  }
}

/** UniqueURLs.Set, quirks included: re-setting a known string or an allowed exception keeps the list. */
function setUrlList(spec: FlagSpec, text: string, values: Map<string, FlagValue>): SetOutcome {
  const current = values.get(spec.name) as UrlListValue | undefined;
  if (current?.texts.has(text)) return OK;
  const exception = spec.kind === "corsUrls" ? "*" : "";
  if (text === exception) {
    const texts = new Set(current?.texts ?? []);
    texts.add(text);
    values.set(spec.name, { texts, urls: current?.urls ?? [] });
    return OK;
  }
  const urls = newUrls(text.split(","));
  if ("error" in urls) return { ok: false, error: urls.error };
  values.set(spec.name, { texts: new Set(urls.map((u) => u.text)), urls });
  return OK;
}

export class FlagSet {
  readonly values = new Map<string, FlagValue>();
  /** Flags given on the command line (Go's FlagSet.actual); env-set flags are added later. */
  readonly actual = new Set<string>();
  readonly notes: ConfigNote[] = [];

  constructor() {
    for (const spec of FLAGS) {
      if (spec.kind === "ignored") continue;
      const outcome = setValue(spec, spec.defaultText, this.values, []);
      assert(outcome.ok, `default of --${spec.name} must parse`);
    }
  }

  /** FlagSet.Set: used for env vars and library options; marks the flag as set. */
  set(spec: FlagSpec, text: string): SetOutcome {
    const outcome = setValue(spec, text, this.values, this.notes);
    if (outcome.ok) this.actual.add(spec.name);
    return outcome;
  }

  /** Sets a value that does not come from text (the config file's typed values). */
  setTyped(spec: FlagSpec, value: FlagValue): void {
    this.values.set(spec.name, value);
  }

  isSet(name: string): boolean {
    return this.actual.has(name);
  }

  string(name: string): string {
    const value = this.values.get(name);
    assert(typeof value === "string", `--${name} holds a string`);
    return value;
  }

  bool(name: string): boolean {
    const value = this.values.get(name);
    assert(typeof value === "boolean", `--${name} holds a bool`);
    return value;
  }

  integer(name: string): bigint {
    const value = this.values.get(name);
    assert(typeof value === "bigint", `--${name} holds an integer`);
    return value;
  }

  urlList(name: string): UrlListValue {
    const value = this.values.get(name);
    assert(typeof value === "object" && value !== null && "urls" in value, `--${name} holds URLs`);
    return value;
  }

  /**
   * A string-list flag's values: a UniqueStringsValue set reads back sorted (as etcd's
   * UniqueStringsFromFlag does); a list from the config file keeps its order.
   */
  strings(name: string): readonly string[] {
    const value = this.values.get(name);
    if (value instanceof Set) return [...value].sort();
    assert(Array.isArray(value), `--${name} holds strings`);
    return value;
  }

  /**
   * Go's FlagSet.Parse over argv; returns the words left after the flags. Throws ConfigError with
   * the flag package's message (exit code 2), or returns "help" for an undefined -h/-help.
   */
  parse(argv: readonly string[]): { readonly rest: readonly string[] } | "help" {
    let args = argv;
    // Bounded by argv: every pass consumes at least one word.
    for (;;) {
      const arg = args[0];
      if (arg === undefined) return { rest: [] };
      if (arg.length < 2 || arg[0] !== "-") return { rest: args };
      let minuses = 1;
      if (arg[1] === "-") {
        minuses = 2;
        if (arg.length === 2) return { rest: args.slice(1) };
      }
      let name = arg.slice(minuses);
      if (name.length === 0 || name[0] === "-" || name[0] === "=") {
        throw new ConfigError("CONFIG_BAD_FLAG_SYNTAX", `bad flag syntax: ${arg}`, this.notes);
      }
      args = args.slice(1);
      let value: string | undefined;
      const equals = name.indexOf("=", 1);
      if (equals > 0) {
        value = name.slice(equals + 1);
        name = name.slice(0, equals);
      }
      const spec = lookupFlag(name);
      if (spec === undefined) {
        if (name === "help" || name === "h") return "help";
        throw new ConfigError("CONFIG_UNKNOWN_FLAG", `flag provided but not defined: -${name}`, this.notes);
      }
      if (spec.kind === "bool" || spec.kind === "ignored") {
        const outcome = this.set(spec, value ?? "true");
        if (!outcome.ok) {
          throw new ConfigError(
            "CONFIG_INVALID_FLAG_VALUE",
            `invalid boolean value ${goQuote(value ?? "true")} for -${name}: ${outcome.error}`,
            this.notes,
          );
        }
        continue;
      }
      if (value === undefined) {
        value = args[0];
        if (value === undefined) {
          throw new ConfigError("CONFIG_FLAG_NEEDS_ARGUMENT", `flag needs an argument: -${name}`, this.notes);
        }
        args = args.slice(1);
      }
      const outcome = this.set(spec, value);
      if (!outcome.ok) {
        throw new ConfigError(
          "CONFIG_INVALID_FLAG_VALUE",
          `invalid value ${goQuote(value)} for flag -${name}: ${outcome.error}`,
          this.notes,
        );
      }
    }
  }
}
