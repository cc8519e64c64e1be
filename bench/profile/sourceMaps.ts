import { readFileSync } from "node:fs";
import { SourceMap, type SourceMapPayload } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildCacheDirName } from "../build/compiled.js";
import type { CallFrame } from "./cpuProfile.js";

/**
 * The benches run etcd-ts compiled (bench/build/compiled.ts), so a profile's frames name
 * `<repo>/node_modules/.cache/etcd-ts-bench/b-.../src/x.js` at compiled lines. This maps such a frame
 * back to the TypeScript source (`<repo>/src/x.ts`, line and column from tsc's .js.map beside it), so
 * summaries read as before: categories, "project code", and locations an editor opens. Frames of any
 * other file pass through unchanged; a frame whose map is missing keeps its compiled url and line.
 */
export class BuildFrameMapper {
  /** Source maps read so far, by compiled file (null: none or unreadable); one per compiled file. */
  private readonly maps = new Map<string, SourceMap | null>();
  private readonly buildPattern: RegExp;

  constructor(repoRoot: string) {
    const cache = join(repoRoot, buildCacheDirName).replaceAll("\\", "/");
    const escaped = cache.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    this.buildPattern = new RegExp(`^${escaped}/b-[^/]+/`);
  }

  map(frame: CallFrame): CallFrame {
    if (!frame.url.startsWith("file://")) return frame;
    const path = fileURLToPath(frame.url);
    if (!this.buildPattern.test(path)) return frame;
    const sourceMap = this.sourceMapOf(path);
    if (sourceMap === null) return frame;
    const entry = sourceMap.findEntry(frame.lineNumber, Math.max(0, frame.columnNumber));
    if (!("originalSource" in entry)) return frame;
    // tsc writes sources relative to the map's directory ("../../../src/x.ts" for a build outside src/).
    const source = entry.originalSource.startsWith("file://")
      ? fileURLToPath(entry.originalSource)
      : resolve(dirname(path), entry.originalSource);
    return {
      functionName: frame.functionName,
      url: pathToFileURL(source).href,
      lineNumber: entry.originalLine,
      columnNumber: entry.originalColumn,
    };
  }

  private sourceMapOf(path: string): SourceMap | null {
    let sourceMap = this.maps.get(path);
    if (sourceMap === undefined) {
      try {
        sourceMap = new SourceMap(JSON.parse(readFileSync(`${path}.map`, "utf8")) as SourceMapPayload);
      } catch {
        sourceMap = null;
      }
      this.maps.set(path, sourceMap);
    }
    return sourceMap;
  }
}
