import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker thread from a module that sits beside the caller.
 *
 * `entry` is a path relative to `callerUrl` without extension, e.g. `./walWorker`. When the caller runs
 * from TypeScript source (tests and benches run under tsx), the worker's entry is TypeScript too, and
 * Node 20 does not apply `--import tsx` to a worker's entry module: the worker is then started from a
 * two-line bootstrap that registers tsx first. From the compiled build, the `.js` file is loaded as is.
 */
export function spawnWorker(callerUrl: string, entry: string, options: WorkerOptions = {}): Worker {
  const fromSource = callerUrl.endsWith(".ts");
  const url = new URL(entry + (fromSource ? ".ts" : ".js"), callerUrl);
  if (!fromSource) return new Worker(url, options);
  const bootstrap = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
