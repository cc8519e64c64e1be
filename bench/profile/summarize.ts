/**
 * Summarises .cpuprofile files (or every one in a directory) by category, whole profile:
 *
 *   node --import tsx bench/profile/summarize.ts <file.cpuprofile | dir> [...] [--requests n]
 *
 * `--requests n` adds µs per request (n requests served while the profile ran). `npm run bench --
 * --profile` does the same for its own timed phase; this is for profiles taken some other way.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseCpuProfile, summarizeCpuProfile } from "./cpuProfile.js";
import { categoryTable } from "./text.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function filesOf(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((name) => name.endsWith(".cpuprofile"))
    .sort()
    .map((name) => join(path, name));
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { requests: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const requests = values.requests === undefined ? 0 : Number(values.requests);
  if (!Number.isSafeInteger(requests) || requests < 0) throw new Error("--requests must be a whole number");
  if (positionals.length === 0)
    throw new Error("usage: summarize.ts <file.cpuprofile | dir> [...] [--requests n]");
  for (const path of positionals.flatMap(filesOf)) {
    const file = basename(path);
    const profile = parseCpuProfile(JSON.parse(readFileSync(path, "utf8")), file);
    const summary = summarizeCpuProfile(profile, { file, repoRoot, window: { startUs: null, endUs: null } });
    process.stdout.write(
      `${path}: thread ${summary.threadId ?? "?"}, ${summary.busyMs.toFixed(0)} ms busy, ` +
        `${summary.idleMs.toFixed(0)} ms idle, ${summary.samples} samples\n`,
    );
    process.stdout.write(
      `${categoryTable(summary, (selfMs) => (requests > 0 ? (selfMs * 1000) / requests : null)).join("\n")}\n\n`,
    );
  }
}

try {
  main();
} catch (error) {
  process.stderr.write(`Error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
