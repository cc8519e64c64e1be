import * as hdr from "hdr-histogram-js";
import { assert } from "../../src/assert.js";

/** Latencies are recorded in whole microseconds: 1 µs resolution is far below any RPC's latency. */
export const histogramLowestMicros = 1;
/** One hour: anything slower is clamped (and the exact maximum is still kept beside the histogram). */
export const histogramHighestMicros = 3_600_000_000;
/** Three significant digits: 0.1% value resolution, the HdrHistogram default. */
const histogramSignificantDigits = 3;
/** Throughput-over-time buckets beyond the planned duration, for the drain after the deadline. */
export const throughputSlackSeconds = 600;
/** Distinct error texts kept; later new texts are counted under one overflow entry. */
export const errorTextsMax = 64;
const errorOverflowText = "(other errors)";

let wasmReady = false;

/** Loads hdr-histogram-js's WebAssembly build once (15 ns per record against 87 ns for the JS build). */
export async function initHistograms(): Promise<void> {
  if (wasmReady) return;
  await hdr.initWebAssembly();
  wasmReady = true;
}

/**
 * Everything the run keeps per target, recorded from completion callbacks with no allocation per
 * success: the HDR histogram (µs), the exact moments etcd's report uses (count, mean, population
 * stddev via Welford's update, min, max, all in seconds), successes per second since the start, and
 * the error distribution (allocation only on errors).
 */
export class LatencyRecorder {
  readonly histogram: hdr.Histogram;
  successes = 0;
  failures = 0;
  private meanSeconds = 0;
  private squaredDeviationSumSeconds = 0;
  minSeconds = Number.POSITIVE_INFINITY;
  maxSeconds = 0;
  readonly errors = new Map<string, number>();
  /** Successes completed in second i after `startMs`. */
  readonly successesPerSecond: Uint32Array;
  private readonly startMs: number;

  constructor(startMs: number, plannedSeconds: number) {
    assert(wasmReady, "initHistograms() must run before a LatencyRecorder is built");
    this.histogram = hdr.build({
      useWebAssembly: true,
      autoResize: false,
      lowestDiscernibleValue: histogramLowestMicros,
      highestTrackableValue: histogramHighestMicros,
      numberOfSignificantValueDigits: histogramSignificantDigits,
    });
    this.startMs = startMs;
    const buckets = Math.ceil(Math.min(plannedSeconds, 366 * 86_400)) + throughputSlackSeconds;
    this.successesPerSecond = new Uint32Array(buckets);
  }

  /** A successful request that started at `startMs` and ended at `endMs` (performance.now() times). */
  recordSuccess(startMs: number, endMs: number): void {
    const seconds = (endMs - startMs) / 1000;
    this.successes++;
    const delta = seconds - this.meanSeconds;
    this.meanSeconds += delta / this.successes;
    this.squaredDeviationSumSeconds += delta * (seconds - this.meanSeconds);
    if (seconds < this.minSeconds) this.minSeconds = seconds;
    if (seconds > this.maxSeconds) this.maxSeconds = seconds;
    let micros = Math.round(seconds * 1_000_000);
    if (micros < histogramLowestMicros) micros = histogramLowestMicros;
    else if (micros > histogramHighestMicros) micros = histogramHighestMicros;
    this.histogram.recordValue(micros);
    let bucket = Math.floor((endMs - this.startMs) / 1000);
    if (bucket < 0) bucket = 0;
    else if (bucket >= this.successesPerSecond.length) bucket = this.successesPerSecond.length - 1;
    this.successesPerSecond[bucket]! += 1;
  }

  recordFailure(text: string): void {
    this.failures++;
    const key = this.errors.has(text) || this.errors.size < errorTextsMax ? text : errorOverflowText;
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }

  get meanLatencySeconds(): number {
    return this.successes === 0 ? Number.NaN : this.meanSeconds;
  }

  /** Population standard deviation, as etcd's pkg/report computes it (NaN with no successes, as Go's). */
  get stddevSeconds(): number {
    return this.successes === 0 ? Number.NaN : Math.sqrt(this.squaredDeviationSumSeconds / this.successes);
  }

  /** Per-second successes up to (and including) the last non-empty second. */
  throughputSeries(): number[] {
    let last = this.successesPerSecond.length - 1;
    while (last >= 0 && this.successesPerSecond[last] === 0) last--;
    return Array.from(this.successesPerSecond.subarray(0, last + 1));
  }

  /**
   * The histogram as a plain-JS copy plus its compressed base64 form (HdrHistogram's interchange
   * encoding). Reports read the copy: hdr-histogram-js 3.0.1's WebAssembly build mis-formats values in
   * outputPercentileDistribution (1.003 printed as 1.300), its JS build does not.
   */
  exportHistogram(): { histogram: hdr.Histogram; base64: string } {
    const base64 = hdr.encodeIntoCompressedBase64(this.histogram);
    return { histogram: hdr.decodeFromCompressedBase64(base64, 32, false), base64 };
  }

  /** Frees the WebAssembly memory; the recorder is unusable afterwards. */
  destroy(): void {
    this.histogram.destroy();
  }
}
