import type {
  Entry,
  MemoryStorage,
  Message,
  RawNode,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
} from "../raft/index.js";
import type { Wal } from "../wal/wal.js";

/**
 * Drives one raft node (etcd's raftNode): ticks it on a coarse clock, processes its Ready objects one at a
 * time in the order the Ready contract asks (src/raft/rawnode.ts), and hands committed entries to the
 * server's apply.
 *
 * Batching is the point: proposals made while a Ready is being persisted accumulate in raft's unstable
 * log, and the next Ready carries all of them to the WAL in one append and one fdatasync (group commit
 * at the raft level; the WAL worker batches again across appends). One Ready is in flight at a time, so
 * the batch size adapts to the load: the slower the disk, the larger the batch.
 *
 * Latency: committed entries that were already durable here before this Ready (on a leader, every one:
 * a leader counts its own copy only once persisted) are applied before this Ready's fsync is awaited, so
 * an acknowledged write waits for one fsync of its own, not two.
 */

export interface RaftLoopHooks {
  /** Applies committed entries, in order, synchronously. Throws only on a broken invariant. */
  apply(entries: readonly Entry[]): void;
  /** Persists a snapshot received from the leader (file + WAL marker) before its entries are saved. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /** Replaces the applied state with a snapshot's (after it was persisted). */
  applySnapshot(snapshot: Snapshot): Promise<void>;
  /** Leader or role changed. */
  softStateChanged(state: SoftState): void;
  /** Answers to readIndex() calls; the server serves them once applied >= their index. */
  readStates(states: readonly ReadState[]): void;
  /** Called after each processed Ready (e.g. to trigger a raft snapshot). */
  afterReady(): void;
  /** A persistence failure: the member must stop. */
  fatal(error: unknown): void;
}

/** Sends raft messages to peers; never blocks (a full or dead peer drops and reports unreachable). */
export interface RaftTransport {
  send(messages: readonly Message[]): void;
}

/** A transport for a single-member cluster: there is nobody to send to. */
export const NO_PEERS: RaftTransport = {
  send(messages) {
    if (messages.length > 0) throw new Error(`raft produced ${messages.length} messages with no peers`);
  },
};

export interface RaftLoopOptions {
  node: RawNode;
  storage: MemoryStorage;
  wal: Wal;
  transport: RaftTransport;
  hooks: RaftLoopHooks;
  /** Milliseconds per raft tick (etcd's --heartbeat-interval; one heartbeat per tick). */
  tickMs: number;
}

export class RaftLoop {
  private readonly node: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: Wal;
  private readonly transport: RaftTransport;
  private readonly hooks: RaftLoopHooks;
  private readonly tickMs: number;
  private ticker: NodeJS.Timeout | null = null;
  private running = false;
  private scheduled = false;
  private stopped = false;
  private paused = false;
  /** Settles when the Ready being processed (if any) is done; close() waits for it. */
  private idle: Promise<void> = Promise.resolve();
  private readonly runBound = (): void => {
    this.scheduled = false;
    if (this.running || this.stopped || this.paused) return;
    this.idle = this.run();
  };

  constructor(options: RaftLoopOptions) {
    this.node = options.node;
    this.storage = options.storage;
    this.wal = options.wal;
    this.transport = options.transport;
    this.hooks = options.hooks;
    this.tickMs = options.tickMs;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.node.tick();
      this.kick();
    }, this.tickMs);
    this.kick();
  }

  /** Schedules Ready processing for the end of this event-loop turn (so a turn's proposals batch). */
  kick(): void {
    if (this.scheduled || this.running || this.stopped || this.paused) return;
    this.scheduled = true;
    setImmediate(this.runBound);
  }

  /** Stops ticking and waits for the Ready in flight to finish; no Ready is started afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    await this.idle;
  }

  /**
   * Holds Ready processing (nothing is persisted or applied) until resume(); resolves once the Ready in
   * flight is done. Ticks go on. Defragmentation uses it: the backend takes no writes meanwhile.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await this.idle;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (!this.stopped && !this.paused && this.node.hasReady()) {
        await this.process(this.node.ready());
      }
    } catch (error) {
      this.stopped = true;
      if (this.ticker !== null) clearInterval(this.ticker);
      this.hooks.fatal(error);
    } finally {
      this.running = false;
    }
  }

  private async process(ready: Ready): Promise<void> {
    if (ready.softState !== null) this.hooks.softStateChanged(ready.softState);
    this.transport.send(ready.messages);

    // Committed entries already durable in this member's log can be applied before this Ready's own
    // fsync: committed entries never change, and these are on disk here already.
    const committed = ready.committedEntries;
    let early = 0;
    if (ready.snapshot === null) {
      const persistedLast = this.storage.lastIndex();
      while (early < committed.length && committed[early]!.index <= persistedLast) early++;
      if (early > 0) this.hooks.apply(early === committed.length ? committed : committed.slice(0, early));
    }

    if (ready.snapshot !== null) await this.hooks.saveSnapshot(ready.snapshot);
    if (ready.entries.length > 0 || ready.hardState !== null) {
      await this.wal.append(ready.hardState, ready.entries);
    }
    if (ready.snapshot !== null) this.storage.applySnapshot(ready.snapshot);
    if (ready.hardState !== null) this.storage.setHardState(ready.hardState);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    this.transport.send(ready.messagesAfterPersist);

    if (ready.snapshot !== null) await this.hooks.applySnapshot(ready.snapshot);
    if (early < committed.length) this.hooks.apply(early === 0 ? committed : committed.slice(early));
    if (ready.readStates.length > 0) this.hooks.readStates(ready.readStates);
    this.node.advance(ready);
    this.hooks.afterReady();
  }
}
