import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderHtml } from "./html.js";
import type { BenchSummary } from "./summary.js";

export interface WrittenReport {
  dir: string;
  summaryJson: string;
  html: string;
  hgrm: string[];
}

/** A file-name-safe form of a target or series name. */
export function fileStem(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "target";
}

/** The default report directory name: a UTC timestamp that sorts and has no ':' (Windows-safe). */
export function timestampDirName(date: Date): string {
  return date
    .toISOString()
    .replace(/[:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

/**
 * Writes summary.json, report.html and one .hgrm per series (HdrHistogram's percentile distribution
 * format, values in milliseconds, readable by HdrHistogram's plotter) into `dir`.
 */
export function writeReports(
  dir: string,
  summary: BenchSummary,
  hgrmTexts: ReadonlyMap<string, string>,
): WrittenReport {
  mkdirSync(dir, { recursive: true });
  const hgrm: string[] = [];
  for (const [name, text] of hgrmTexts) {
    const path = join(dir, name);
    writeFileSync(path, text);
    hgrm.push(path);
  }
  const summaryJson = join(dir, "summary.json");
  writeFileSync(summaryJson, `${JSON.stringify(summary, null, 2)}\n`);
  const html = join(dir, "report.html");
  writeFileSync(html, renderHtml(summary));
  return { dir, summaryJson, html, hgrm };
}
