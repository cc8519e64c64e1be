/**
 * etcd's --config-file: YAML converted to JSON and decoded into Go structs (sigs.k8s.io/yaml over
 * go-yaml v2, so YAML 1.1 scalars: `on`/`yes` are booleans, 0x10 is 16). Types are strict the JSON
 * way: `snapshot-count: "100"` is an error, durations are integers of nanoseconds, unknown keys are
 * ignored, keys match case-insensitively. Other flags and ETCD_* variables are ignored in this mode.
 */
import { readFileSync } from "node:fs";
import { type Document, isScalar, parseAllDocuments, visit } from "yaml";
import { ConfigError } from "./errors.js";
import { FLAGS, type FlagSpec } from "./flags.js";
import { FlagSet, newUrls } from "./flagset.js";
import { goQuote } from "./goparse.js";
import { finishConfig, type ResolvedConfig, urlListValue } from "./member.js";
import type { ConfigNote } from "./types.js";

/** A JSON-shaped value after YAML conversion (integers stay exact as bigint). */
type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly JsonValue[]
  | { [key: string]: JsonValue };

const GO_TYPE: Readonly<Record<string, string>> = {
  uint: "uint",
  uint64: "uint64",
  int: "int",
  int64: "int64",
  uint32: "uint32",
  duration: "time.Duration",
};

const TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp";

/** Keys of Go fields without a json tag that carry TLS settings (ClientTLSInfo.CertFile, ...). */
const UNTAGGED_TLS_KEYS = ["clienttlsinfo", "peertlsinfo"];

function fileError(message: string, notes: readonly ConfigNote[] = []): ConfigError {
  return new ConfigError("CONFIG_FILE", message, notes);
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file or directory"
        : code === "EACCES"
          ? "permission denied"
          : code === "EISDIR"
            ? "is a directory"
            : String((error as Error).message);
    throw fileError(`${code === "EISDIR" ? "read" : "open"} ${path}: ${why}`);
  }
}

/** YAML text -> JSON-shaped value the way sigs.k8s.io/yaml does it (first document only). */
export function yamlToJson(text: string): JsonValue {
  const documents = parseAllDocuments(text, {
    version: "1.1",
    intAsBigInt: true,
    merge: true,
    // go-yaml v2 leaves timestamps as strings when decoding into interface{}.
    customTags: (tags) =>
      tags.filter((tag) => tag !== "timestamp" && !(typeof tag === "object" && tag.tag === TIMESTAMP_TAG)),
  });
  const first = (Array.isArray(documents) ? documents[0] : documents) as Document | undefined;
  if (first === undefined) return null;
  const problem = first.errors[0];
  if (problem !== undefined) {
    throw fileError(`error converting YAML to JSON: yaml: ${problem.message.split("\n")[0]}`);
  }
  // sigs.k8s.io/yaml turns non-string map keys into their text.
  visit(first, {
    Pair(_, pair) {
      if (isScalar(pair.key) && typeof pair.key.value !== "string") pair.key.value = String(pair.key.value);
    },
  });
  return first.toJS({ maxAliasCount: 100 }) as JsonValue;
}

function jsonKind(value: JsonValue): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "bigint" || typeof value === "number") return "number";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "string";
  return "object";
}

function typeError(
  value: JsonValue,
  structName: string,
  path: string,
  goType: string,
  withNumber: boolean,
): ConfigError {
  const kind = jsonKind(value);
  const shown = withNumber && kind === "number" ? `number ${jsonNumberText(value as number | bigint)}` : kind;
  return fileError(
    `error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${shown} into Go struct field ${structName}.${path} of type ${goType}`,
  );
}

function jsonNumberText(value: number | bigint): string {
  return typeof value === "bigint" ? value.toString() : JSON.stringify(value);
}

const INTEGER_RANGE: Readonly<Record<string, readonly [bigint, bigint]>> = {
  uint: [0n, (1n << 64n) - 1n],
  uint64: [0n, (1n << 64n) - 1n],
  uint32: [0n, (1n << 32n) - 1n],
  int: [-(1n << 63n), (1n << 63n) - 1n],
  int64: [-(1n << 63n), (1n << 63n) - 1n],
  duration: [-(1n << 63n), (1n << 63n) - 1n],
};

/** Decodes one JSON value into a flag the way encoding/json would; null leaves the default (or empties a list). */
function decodeInto(fs: FlagSet, spec: FlagSpec, value: JsonValue, structName: string, path: string): void {
  if (value === null) {
    if (spec.yamlType === "stringList") fs.setTyped(spec, Object.freeze([]));
    return;
  }
  switch (spec.yamlType) {
    case "string":
      if (typeof value !== "string") throw typeError(value, structName, path, "string", false);
      storeString(fs, spec, value);
      return;
    case "bool":
      if (typeof value !== "boolean") throw typeError(value, structName, path, "bool", false);
      fs.setTyped(spec, value);
      return;
    case "integer":
    case "duration": {
      const goType = GO_TYPE[spec.kind] ?? "int64";
      if (typeof value !== "number" && typeof value !== "bigint")
        throw typeError(value, structName, path, goType, false);
      if (typeof value === "number" && (!Number.isInteger(value) || Math.abs(value) >= 1e21)) {
        throw typeError(value, structName, path, goType, true);
      }
      const integer = BigInt(value);
      const [min, max] = INTEGER_RANGE[spec.kind]!;
      if (integer < min || integer > max) throw typeError(value, structName, path, goType, true);
      fs.setTyped(spec, integer);
      return;
    }
    case "stringList": {
      if (!Array.isArray(value)) throw typeError(value, structName, path, "[]string", false);
      const items: string[] = [];
      for (const item of value as readonly JsonValue[]) {
        if (typeof item !== "string") throw typeError(item, structName, path, "string", false);
        items.push(item);
      }
      fs.setTyped(spec, Object.freeze(items));
      return;
    }
  }
}

/** String keys whose text etcd re-parses after decoding (URL lists, CORS, host whitelist). */
function storeString(fs: FlagSet, spec: FlagSpec, value: string): void {
  switch (spec.kind) {
    case "urls": {
      if (value === "") return;
      const urls = newUrls(value.split(","));
      // etcd's message for advertise-client-urls says "advertise-peer-urls"; kept as etcd prints it.
      const shownName = spec.name === "advertise-client-urls" ? "advertise-peer-urls" : spec.name;
      if ("error" in urls) throw fileError(`unexpected error setting up ${shownName}: ${urls.error}`);
      fs.setTyped(spec, urlListValue(urls));
      return;
    }
    case "corsUrls": {
      if (value === "") return;
      if (value === "*") {
        fs.setTyped(spec, { texts: new Set(["*"]), urls: [] });
        return;
      }
      const urls = newUrls(value.split(","));
      if ("error" in urls) throw fileError(`unexpected error setting up cors: ${urls.error}`);
      fs.setTyped(spec, urlListValue(urls));
      return;
    }
    case "uniqueStrings":
      if (value !== "") fs.setTyped(spec, new Set(value.split(",")));
      return;
    default:
      fs.setTyped(spec, value);
  }
}

/** Go's encoding/json field lookup: an exact key first, else a case-insensitive one. */
function findSpec(candidates: readonly FlagSpec[], key: string, depth: number): FlagSpec | undefined {
  const at = (spec: FlagSpec) => spec.yamlKey![depth]!;
  return (
    candidates.find((spec) => at(spec) === key) ??
    candidates.find((spec) => at(spec).toLowerCase() === key.toLowerCase())
  );
}

function isObject(value: JsonValue): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function decodeStruct(
  fs: FlagSet,
  top: { [key: string]: JsonValue },
  structName: "configYAML" | "configProxy",
  notes: ConfigNote[],
): void {
  const direct = FLAGS.filter((spec) => spec.yamlKey?.length === 1 && spec.yamlStruct === structName);
  const sections = new Map<string, FlagSpec[]>();
  if (structName === "configYAML") {
    for (const spec of FLAGS) {
      if (spec.yamlStruct !== "securityConfig" || spec.yamlKey === null) continue;
      const section = spec.yamlKey[0]!;
      sections.set(section, [...(sections.get(section) ?? []), spec]);
    }
  }
  for (const [key, value] of Object.entries(top)) {
    const spec = findSpec(direct, key, 0);
    if (spec !== undefined) {
      decodeInto(fs, spec, value, structName, spec.yamlKey![0]!);
      continue;
    }
    const section =
      [...sections.keys()].find((name) => name === key) ??
      [...sections.keys()].find((name) => name.toLowerCase() === key.toLowerCase());
    if (section !== undefined) {
      decodeSecurity(fs, sections.get(section)!, section, value);
      continue;
    }
    if (structName === "configYAML" && UNTAGGED_TLS_KEYS.includes(key.toLowerCase()) && value !== null) {
      throw new ConfigError(
        "CONFIG_SECURITY_UNBUILT",
        `etcd-ts does not implement TLS yet; refusing to start rather than ignore ${goQuote(key)} in the config file`,
        notes,
      );
    }
  }
}

function decodeSecurity(fs: FlagSet, specs: readonly FlagSpec[], section: string, value: JsonValue): void {
  if (value === null) return;
  if (!isObject(value)) throw typeError(value, "configYAML", section, "embed.securityConfig", false);
  for (const [key, inner] of Object.entries(value)) {
    const spec = findSpec(specs, key, 1);
    if (spec !== undefined) decodeInto(fs, spec, inner, "securityConfig", `${section}.${spec.yamlKey![1]}`);
  }
}

/** configFromFile's second pass (etcdmain's configProxy) and its checks, run after Validate as etcd does. */
function decodeProxySection(fs: FlagSet, top: { [key: string]: JsonValue }, notes: ConfigNote[]): void {
  decodeStruct(fs, top, "configProxy", notes);
  for (const [name, label] of [
    ["discovery-fallback", "discovery-fallback flag"],
    ["proxy", "proxyFlag"],
  ] as const) {
    const spec = FLAGS.find((candidate) => candidate.name === name)!;
    const value = fs.string(name);
    if (!spec.choices.includes(value))
      throw fileError(`unexpected error setting up ${label}: invalid value`, notes);
  }
}

/** Reads etcd's YAML config file into a MemberConfig; `notes` starts with etcd's "loaded" line. */
export function loadConfigFile(path: string): ResolvedConfig {
  const fs = new FlagSet();
  fs.notes.push({
    level: "info",
    msg: "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
    fields: { path },
  });
  try {
    const json = yamlToJson(readConfigText(path));
    if (json !== null && !isObject(json)) {
      throw fileError(
        `error unmarshaling JSON: while decoding JSON: json: cannot unmarshal ${jsonKind(json)} into Go value of type embed.configYAML`,
      );
    }
    const top = json ?? {};
    decodeStruct(fs, top, "configYAML", fs.notes);
    return finishConfig(fs, "file", path, () => decodeProxySection(fs, top, fs.notes));
  } catch (error: unknown) {
    // Errors raised before the notes existed still carry the "loaded" line etcd prints first.
    if (error instanceof ConfigError) throw new ConfigError(error.code, error.message, [...fs.notes]);
    throw error;
  }
}
