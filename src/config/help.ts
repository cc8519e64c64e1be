/** `etcd-ts --help`, generated from the flag table so it cannot drift from what is accepted. */
import { FLAGS, type FlagGroup, type FlagSpec } from "./flags.js";

/** What etcd prints on stderr after a flag error (its `usageline`), adapted to etcd-ts. */
export const USAGE_LINE = `Usage:

  etcd-ts [flags]
    Start an etcd-ts server (an etcd v3 API member).

  etcd-ts --version
    Show the version of etcd-ts and of the etcd API it implements.

  etcd-ts -h | --help
    Show the help information about etcd-ts.

  etcd-ts --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
`;

const GROUP_TITLES: ReadonlyArray<readonly [FlagGroup, string]> = [
  ["member", "Member"],
  ["clustering", "Clustering"],
  ["security", "Security"],
  ["auth", "Auth"],
  ["profiling", "Profiling and Monitoring"],
  ["logging", "Logging"],
  ["proxy", "v2 Proxy (not implemented by etcd-ts)"],
  ["experimental", "Experimental feature"],
  ["unsafe", "Unsafe feature"],
];

function statusLine(spec: FlagSpec): string | undefined {
  switch (spec.status) {
    case "unbuilt":
      return "[etcd-ts] accepted but not implemented yet: a non-default value logs a warning.";
    case "security":
      return "[etcd-ts] not implemented yet: a non-default value refuses to start.";
    case "unsupported":
      return "[etcd-ts] not implemented: a non-default value refuses to start.";
    case "supported":
    case "ignored":
      return undefined;
  }
}

/** The full help text (stdout for --help), grouped like etcd's. */
export function helpText(): string {
  const lines: string[] = [USAGE_LINE];
  for (const [group, title] of GROUP_TITLES) {
    lines.push(`${title}:`);
    for (const spec of FLAGS) {
      if (spec.group !== group || spec.hidden) continue;
      lines.push(`  --${spec.name} '${spec.helpDefault}'`, `    ${spec.usage}`);
      const status = statusLine(spec);
      if (status !== undefined) lines.push(`    ${status}`);
    }
    lines.push("");
  }
  lines.push(
    "Every ETCD_<FLAG> environment variable (upper case, dashes as underscores) sets the flag of that name",
    "when it is not given on the command line, as in etcd.",
    "",
  );
  return lines.join("\n");
}
