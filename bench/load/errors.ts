/**
 * Exit codes and typed errors of the bench CLI.
 *
 * The codes mirror etcdctl's (etcdctl/ctlv3/command/error.go in 3.4) so scripts written against
 * `etcdctl check perf` read ours the same way: 1 = error (and a FAIL verdict), 2 = cannot connect,
 * 3 = invalid input (the prefix already has keys), 4 = a valid flag with an unsupported value
 * (an unknown --load), 128 = bad arguments.
 */
export const ExitCode = {
  success: 0,
  error: 1,
  badConnection: 2,
  invalidInput: 3,
  badFeature: 4,
  badArgs: 128,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type BenchErrorCode =
  | "BENCH_BAD_ARGS"
  | "BENCH_UNKNOWN_LOAD"
  | "BENCH_PREFIX_NOT_EMPTY"
  | "BENCH_CONNECT"
  | "BENCH_RPC"
  | "BENCH_TARGET_START"
  | "BENCH_PROFILE";

const exitCodeOf: Record<BenchErrorCode, ExitCode> = {
  BENCH_BAD_ARGS: ExitCode.badArgs,
  BENCH_UNKNOWN_LOAD: ExitCode.badFeature,
  BENCH_PREFIX_NOT_EMPTY: ExitCode.invalidInput,
  BENCH_CONNECT: ExitCode.badConnection,
  BENCH_RPC: ExitCode.error,
  BENCH_TARGET_START: ExitCode.error,
  BENCH_PROFILE: ExitCode.error,
};

/**
 * An operating error (bad input, unreachable endpoint, a failed setup RPC): the CLI prints
 * `Error: <message>` on one line of stderr and exits with `exitCode`, never a stack trace.
 */
export class BenchError extends Error {
  override readonly name = "BenchError";
  readonly exitCode: ExitCode;

  constructor(
    readonly code: BenchErrorCode,
    message: string,
  ) {
    super(message);
    this.exitCode = exitCodeOf[code];
  }
}
