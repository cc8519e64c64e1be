/**
 * `etcd-ts [flags]` as etcd 3.4.23's etcdmain parses it: Go flag syntax, then --help/--version,
 * then either the config file (which makes flags and ETCD_* variables ignored) or the command line
 * plus ETCD_* variables for flags not given, then etcd's validation.
 */
import { ConfigError } from "./errors.js";
import { loadConfigFile } from "./file.js";
import { FLAGS, flagToEnv } from "./flags.js";
import { FlagSet } from "./flagset.js";
import { goQuote } from "./goparse.js";
import { helpText, USAGE_LINE } from "./help.js";
import { finishConfig } from "./member.js";
import type { ConfigNote, MemberConfig } from "./types.js";
import { versionText } from "./version.js";

export type ParseResult =
  /** Start a member with this configuration; log `notes` first. */
  | { readonly kind: "run"; readonly config: MemberConfig; readonly notes: readonly ConfigNote[] }
  /** Print `text` on stdout and exit 0. */
  | { readonly kind: "version"; readonly text: string }
  /** Print `usage` on stderr and `text` on stdout, exit 0 (etcd's -h/--help). */
  | { readonly kind: "help"; readonly text: string; readonly usage: string };

export type Environment = Readonly<Record<string, string | undefined>>;

/** etcd subcommands that run something other than a member. */
const SUBCOMMANDS = ["gateway", "grpc-proxy"];
const ENV_PREFIX = "ETCD_";

/**
 * Parses the command line (without the program name) and environment. Throws ConfigError with
 * etcd's message and exit code (2 for flag syntax, 1 for the rest).
 */
export function parseConfig(argv: readonly string[], env: Environment): ParseResult {
  const first = argv[0];
  if (first !== undefined && SUBCOMMANDS.includes(first)) {
    throw new ConfigError("CONFIG_UNSUPPORTED_COMMAND", `etcd-ts does not implement 'etcd ${first}'`);
  }
  const fs = new FlagSet();
  const parsed = fs.parse(argv);
  if (parsed === "help") return { kind: "help", text: helpText(), usage: USAGE_LINE };
  const stray = parsed.rest[0];
  if (stray !== undefined)
    throw new ConfigError("CONFIG_NOT_A_FLAG", `'${stray}' is not a valid flag`, fs.notes);
  if (fs.bool("version")) return { kind: "version", text: versionText() };

  const configFile = fs.string("config-file") || (env[flagToEnv("config-file")] ?? "");
  if (configFile !== "") {
    const { config, notes } = loadConfigFile(configFile);
    // Flags given alongside the file still ran their Set (ignored flags warn in etcd too).
    return { kind: "run", config, notes: [...fs.notes, ...notes] };
  }
  applyEnvironment(fs, env);
  const { config, notes } = finishConfig(fs, "flags", "");
  return { kind: "run", config, notes };
}

/**
 * etcd's flags.SetFlagsFromEnv + verifyEnv: each flag not given on the command line takes a
 * non-empty ETCD_<NAME>; a variable for a flag that was given is fatal; other ETCD_* are warned about.
 */
function applyEnvironment(fs: FlagSet, env: Environment): void {
  const givenOnCommandLine = new Set([...fs.actual].map(flagToEnv));
  const used = new Set<string>();
  let failure: string | undefined;
  // etcd visits flags in name order; when several are bad, the last one is reported.
  const byName = [...FLAGS].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const spec of byName) {
    if (givenOnCommandLine.has(spec.env)) continue;
    const value = env[spec.env];
    if (value === undefined || value === "") continue;
    used.add(spec.env);
    const outcome = fs.set(spec, value);
    if (!outcome.ok) {
      failure = `invalid value ${goQuote(value)} for ${spec.env}: ${outcome.error}`;
      continue;
    }
    fs.notes.push({
      level: "info",
      msg: "recognized and used environment variable",
      fields: { "variable-name": spec.env, "variable-value": value },
    });
  }
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || used.has(key)) continue;
    if (givenOnCommandLine.has(key)) {
      throw new ConfigError(
        "CONFIG_ENV_SHADOWED",
        `conflicting environment variable ${goQuote(key)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
        fs.notes,
      );
    }
    if (key.startsWith(ENV_PREFIX)) {
      fs.notes.push({
        level: "warn",
        msg: "unrecognized environment variable",
        fields: { "environment-variable": `${key}=${value}` },
      });
    }
  }
  if (failure !== undefined) throw new ConfigError("CONFIG_INVALID_ENV_VALUE", failure, fs.notes);
}
