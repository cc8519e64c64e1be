import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { buildCacheDirName } from "../../bench/build/compiled.js";
import { BuildFrameMapper } from "../../bench/profile/sourceMaps.js";

/*
 * A profile of the compiled build names .js files under the bench's build cache; summaries must read
 * as the .ts sources (category by src/ directory, project code, editor lines). A real tsc source map
 * (transpileModule) on a fake repository checks the mapping.
 */

const source = [
  "interface Shape {", // 0: erased by tsc, so compiled lines differ from source lines
  "  sides: number;",
  "}",
  "",
  "export function area(shape: Shape): number {", // 4
  "  return shape.sides * 2;",
  "}",
  "",
].join("\n");

let repoRoot: string;
let compiledFile: string;

before(() => {
  repoRoot = mkdtempSync(join(tmpdir(), "bench-source-maps-"));
  const buildDir = join(repoRoot, buildCacheDirName, "b-1-1");
  mkdirSync(join(buildDir, "src", "api"), { recursive: true });
  mkdirSync(join(repoRoot, "src", "api"), { recursive: true });
  writeFileSync(join(repoRoot, "src", "api", "area.ts"), source);
  compiledFile = join(buildDir, "src", "api", "area.js");
  const output = ts.transpileModule(source, {
    fileName: join(repoRoot, "src", "api", "area.ts"),
    compilerOptions: { sourceMap: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  // tsc -p writes sources relative to the map, as the real build does.
  const map = JSON.parse(output.sourceMapText as string) as { sources: string[] };
  map.sources = ["../../../../../../src/api/area.ts"];
  writeFileSync(compiledFile, output.outputText);
  writeFileSync(`${compiledFile}.map`, JSON.stringify(map));
});

after(() => rmSync(repoRoot, { recursive: true, force: true }));

describe("profile frames of the compiled build, mapped back to the sources", () => {
  it("maps a compiled function's url and line to its .ts file and line", () => {
    const mapper = new BuildFrameMapper(repoRoot);
    // transpiled: line 0 "export function area(shape) {"
    const frame = {
      functionName: "area",
      url: pathToFileURL(compiledFile).href,
      lineNumber: 0,
      columnNumber: 0,
    };
    const mapped = mapper.map(frame);
    assert.equal(mapped.url, pathToFileURL(join(repoRoot, "src", "api", "area.ts")).href);
    assert.equal(mapped.lineNumber, 4);
    assert.equal(mapped.functionName, "area");
  });

  it("leaves frames outside the build alone", () => {
    const mapper = new BuildFrameMapper(repoRoot);
    for (const url of [
      "",
      "node:internal/http2/core",
      pathToFileURL(join(repoRoot, "src", "api", "area.ts")).href,
    ]) {
      const frame = { functionName: "f", url, lineNumber: 3, columnNumber: 1 };
      assert.deepEqual(mapper.map(frame), frame);
    }
  });

  it("keeps the compiled location when the map is missing", () => {
    const mapper = new BuildFrameMapper(repoRoot);
    const url = pathToFileURL(join(repoRoot, buildCacheDirName, "b-1-1", "src", "api", "gone.js")).href;
    const frame = { functionName: "g", url, lineNumber: 2, columnNumber: 0 };
    assert.deepEqual(mapper.map(frame), frame);
  });
});
