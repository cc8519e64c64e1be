import type { ConfigNote } from "./types.js";

/**
 * Stable codes for configuration errors (match on these, not on the text). The text follows etcd
 * 3.4.23's wording so that operators' searches and scripts keep working.
 */
export type ConfigErrorCode =
  /** Go flag package: "flag provided but not defined: -x" */
  | "CONFIG_UNKNOWN_FLAG"
  /** Go flag package: "bad flag syntax: ---x" */
  | "CONFIG_BAD_FLAG_SYNTAX"
  /** Go flag package: "flag needs an argument: -x" */
  | "CONFIG_FLAG_NEEDS_ARGUMENT"
  /** Go flag package: "invalid value ... for flag -x: ..." / "invalid boolean value ..." */
  | "CONFIG_INVALID_FLAG_VALUE"
  /** A word that is not a flag (etcd: "'x' is not a valid flag"). */
  | "CONFIG_NOT_A_FLAG"
  /** An ETCD_* variable whose value does not parse. */
  | "CONFIG_INVALID_ENV_VALUE"
  /** An ETCD_* variable for a flag also given on the command line (fatal in etcd 3.4). */
  | "CONFIG_ENV_SHADOWED"
  /** --config-file could not be read, is not YAML, or has a value of the wrong type. */
  | "CONFIG_FILE"
  /** Values that parse but break a rule (etcd's embed.Config.Validate and friends). */
  | "CONFIG_INVALID"
  /** A TLS/certificate/auth-token setting: etcd-ts refuses to start without the feature rather than run insecurely. */
  | "CONFIG_SECURITY_UNBUILT"
  /** A mode etcd-ts does not implement and cannot safely ignore (v2 proxy, discovery, force-new-cluster). */
  | "CONFIG_UNSUPPORTED"
  /** An etcd subcommand (gateway, grpc-proxy) that etcd-ts does not implement. */
  | "CONFIG_UNSUPPORTED_COMMAND";

/** Exit codes as etcd uses them: 2 for the flag package's syntax errors, 1 for everything after. */
const EXIT_CODE: Readonly<Record<ConfigErrorCode, 1 | 2>> = {
  CONFIG_UNKNOWN_FLAG: 2,
  CONFIG_BAD_FLAG_SYNTAX: 2,
  CONFIG_FLAG_NEEDS_ARGUMENT: 2,
  CONFIG_INVALID_FLAG_VALUE: 2,
  CONFIG_NOT_A_FLAG: 1,
  CONFIG_INVALID_ENV_VALUE: 1,
  CONFIG_ENV_SHADOWED: 1,
  CONFIG_FILE: 1,
  CONFIG_INVALID: 1,
  CONFIG_SECURITY_UNBUILT: 1,
  CONFIG_UNSUPPORTED: 1,
  CONFIG_UNSUPPORTED_COMMAND: 2,
};

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code: ConfigErrorCode;
  /** The process exit code etcd uses for this failure. */
  readonly exitCode: 1 | 2;
  /**
   * True for the flag package's errors: etcd prints the message and then its usage line on stderr
   * as plain text (no logger exists yet). Otherwise etcd logs "failed to verify flags" with the error.
   */
  readonly printUsage: boolean;
  /** Lines gathered before the failure (e.g. unrecognized ETCD_* variables) that should still be logged. */
  readonly notes: readonly ConfigNote[];

  constructor(code: ConfigErrorCode, message: string, notes: readonly ConfigNote[] = []) {
    super(message);
    this.code = code;
    this.exitCode = EXIT_CODE[code];
    this.printUsage = EXIT_CODE[code] === 2 && code !== "CONFIG_UNSUPPORTED_COMMAND";
    this.notes = notes;
  }
}
