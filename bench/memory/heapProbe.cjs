/**
 * A memory probe preloaded into a Node server with `node --require bench/memory/heapProbe.cjs`: every
 * thread (the main one and each worker: Node 20 runs --require preloads in workers, not --import ones)
 * writes its V8 heap statistics to $HEAP_PROBE_DIR/thread-<threadId>.json every 500 ms (a worker that
 * sleeps in Atomics.wait writes before it sleeps),
 * so a bench can split the process's RSS into isolates without changing the server (Node 20 has no
 * worker.getHeapStatistics()). The main thread adds process.memoryUsage(), its event loop utilisation,
 * and which module each worker thread runs (the Worker constructor is wrapped to record it).
 *
 * CommonJS because --require is the only preload workers inherit; without $HEAP_PROBE_DIR it does nothing.
 */
"use strict";
const { renameSync, unlinkSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");
const { syncBuiltinESMExports } = require("node:module");
const { performance } = require("node:perf_hooks");
const v8 = require("node:v8");
const workerThreads = require("node:worker_threads");

const probeDir = process.env.HEAP_PROBE_DIR;
/** How often each thread writes its figures: often enough for a bench's settle time of a few seconds. */
const intervalMs = 500;
/** Characters of a worker's eval source kept as its name (tsx bootstraps name their module inside). */
const workerNameCharsMax = 200;

if (probeDir !== undefined && probeDir !== "") {
  const threadId = workerThreads.threadId;
  /** threadId -> the module the worker runs (main thread only). */
  const workerModules = {};

  if (workerThreads.isMainThread) {
    const OriginalWorker = workerThreads.Worker;
    class ProbedWorker extends OriginalWorker {
      constructor(filename, options) {
        super(filename, options);
        const text = String(filename);
        workerModules[this.threadId] =
          options?.eval === true ? `eval: ${text.slice(0, workerNameCharsMax)}` : text;
      }
    }
    workerThreads.Worker = ProbedWorker;
    // ESM `import { Worker } from "node:worker_threads"` sees the wrapped class only after this.
    syncBuiltinESMExports();
  }

  const write = () => {
    const record = {
      threadId,
      isMainThread: workerThreads.isMainThread,
      atMs: Date.now(),
      heap: v8.getHeapStatistics(),
      spaces: v8.getHeapSpaceStatistics().map((space) => ({
        name: space.space_name,
        sizeBytes: space.space_size,
        usedBytes: space.space_used_size,
      })),
    };
    if (workerThreads.isMainThread) {
      record.gcCount = gcCount;
      record.memoryUsage = process.memoryUsage();
      record.eventLoopUtilization = performance.eventLoopUtilization().utilization;
      record.workerModules = workerModules;
    }
    const path = join(probeDir, `thread-${threadId}.json`);
    // Written whole, then renamed: a reader never sees half a record.
    writeFileSync(`${path}.tmp`, JSON.stringify(record));
    renameSync(`${path}.tmp`, path);
  };
  let lastWriteMs = 0;
  const writeIfDue = () => {
    const nowMs = Date.now();
    if (nowMs - lastWriteMs < intervalMs) return;
    lastWriteMs = nowMs;
    try {
      write();
    } catch {
      // the probe dir went away (the bench ended first): the server must not notice the probe
    }
  };
  const gcRequestPath = join(probeDir, "gc-request");
  /**
   * With node --expose-gc, a bench asks for a full GC in the main thread by creating "gc-request": it
   * tells garbage (an idle server never collects) from live memory. The record written after the GC
   * carries `gcDone`.
   */
  const collectIfAsked = () => {
    if (!workerThreads.isMainThread || typeof globalThis.gc !== "function") return;
    try {
      unlinkSync(gcRequestPath);
    } catch {
      return; // not asked
    }
    globalThis.gc();
    gcCount += 1;
    lastWriteMs = 0;
  };
  let gcCount = 0;
  setInterval(() => {
    collectIfAsked();
    writeIfDue();
  }, intervalMs).unref();
  if (!workerThreads.isMainThread) {
    // The writer workers sleep in Atomics.wait between batches, and a blocked thread runs no timers:
    // record before each wait instead (a blocked thread's heap does not change while it waits).
    const wait = Atomics.wait;
    Atomics.wait = function probedWait(typedArray, index, value, timeoutMs) {
      writeIfDue();
      return wait.call(Atomics, typedArray, index, value, timeoutMs);
    };
  }
}
