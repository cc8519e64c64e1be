import type { AutoCompaction } from "../config/types.js";
import { isEtcdError } from "../errors.js";
import type { Logger } from "../log/logger.js";

/**
 * Auto compaction (etcd's --auto-compaction-mode/--auto-compaction-retention, spec §14.4), run on the
 * leader through the ordinary Compact request:
 * - periodic: the current revision is sampled every min(retention, 1 h) / 10; once a full retention
 *   period has passed since start, the store is compacted to the revision sampled one retention period
 *   earlier, then again every min(retention, 1 h); a failure is retried at the sampling interval;
 * - revision: every 5 minutes, compact to current - retention when positive and not done already.
 * "Already compacted" counts as success, as in etcd.
 */

export interface CompactorHost {
  /** True while this member leads (only the leader compacts). */
  isLeader(): boolean;
  currentRevision(): number;
  compact(revision: number): Promise<unknown>;
}

const HOUR_MS = 60 * 60 * 1000;
/** etcd's revision-mode interval. */
export const REVISION_COMPACTION_INTERVAL_MS = 5 * 60 * 1000;

export class Compactor {
  private timer: NodeJS.Timeout | null = null;
  /** Periodic mode: revisions sampled, oldest first; at most retention / interval + 1 of them. */
  private readonly samples: number[] = [];
  private samplesMax = 0;
  private lastCompacted = 0;
  private elapsedMs = 0;
  private sinceCompactionMs = 0;
  private running = false;

  constructor(
    private readonly mode: AutoCompaction,
    private readonly host: CompactorHost,
    private readonly log: Logger,
    private readonly revisionIntervalMs = REVISION_COMPACTION_INTERVAL_MS,
  ) {}

  /** Starts the timer; nothing happens when retention is 0 (disabled). */
  start(): void {
    if (this.mode.mode === "periodic") {
      if (this.mode.retentionMs <= 0) return;
      const periodMs = Math.min(this.mode.retentionMs, HOUR_MS);
      const intervalMs = Math.max(1, Math.floor(periodMs / 10));
      this.samplesMax = Math.ceil(this.mode.retentionMs / intervalMs) + 1;
      this.timer = setInterval(() => this.periodicTick(intervalMs, periodMs), intervalMs);
    } else {
      if (this.mode.retentionRevisions <= 0) return;
      this.timer = setInterval(() => this.revisionTick(), this.revisionIntervalMs);
    }
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private periodicTick(intervalMs: number, periodMs: number): void {
    if (this.mode.mode !== "periodic") return;
    this.samples.push(this.host.currentRevision());
    if (this.samples.length > this.samplesMax) this.samples.shift();
    this.elapsedMs += intervalMs;
    this.sinceCompactionMs += intervalMs;
    if (this.elapsedMs < this.mode.retentionMs || this.sinceCompactionMs < periodMs) return;
    // The sample taken one retention period ago is the oldest one kept.
    const target = this.samples[0]!;
    this.run(target, () => {
      this.sinceCompactionMs = 0;
    });
  }

  private revisionTick(): void {
    if (this.mode.mode !== "revision") return;
    const target = this.host.currentRevision() - this.mode.retentionRevisions;
    if (target <= 0 || target === this.lastCompacted) return;
    this.run(target, () => {});
  }

  private run(revision: number, onSuccess: () => void): void {
    if (this.running || !this.host.isLeader() || revision <= this.lastCompacted) return;
    this.running = true;
    this.log.info("starting auto revision compaction", { revision });
    this.host
      .compact(revision)
      .then(
        () => {
          this.lastCompacted = revision;
          onSuccess();
          this.log.info("completed auto revision compaction", { revision });
        },
        (error: unknown) => {
          if (isEtcdError(error, "Compacted")) {
            this.lastCompacted = revision;
            onSuccess();
            return;
          }
          this.log.warn("failed auto revision compaction", { revision, error: String(error) });
        },
      )
      .finally(() => {
        this.running = false;
      });
  }
}
