import { assert } from "../assert.js";
import type { Backend } from "../backend/backend.js";
import { bytesToLatin1, latin1ToBytes } from "../backend/bytes.js";
import { EtcdError } from "../errors.js";
import type { KeyRange } from "../mvcc/keyRange.js";
import type { LeaseLookup } from "../mvcc/lease.js";
import type { MvccEvent } from "../mvcc/types.js";
import type { Clock } from "./clock.js";
import { decodeLeaseRow, encodeLeaseRow, isInt64, leaseIdFromKey, leaseIdKey } from "./codec.js";
import { IndexedHeap } from "./heap.js";

/**
 * The lessor (etcd's lease/lessor.go): owns every lease, its TTL and its attached keys, and on the leader
 * decides which leases have expired.
 *
 * Two kinds of callers:
 * - Apply side (every member, for committed raft entries, deterministic): `grant`, `revoke`, `checkpoint`.
 *   They change the `lease` table in the backend's current unit; the caller seals the unit with the
 *   entry's index. A client error (EtcdError) is raised before anything changes.
 * - Primary side (the raft leader only, not through raft): `promote`/`demote` on leadership changes,
 *   `renew` (KeepAlive), `expired` (what to propose for revocation), `dueCheckpoints`, `timeToLive`,
 *   `leases`. A follower holds every lease with an infinite expiry, so only the leader's clock matters,
 *   and a new leader gives every lease a fresh full TTL plus an extension (etcd's "promote").
 *
 * mvcc tells the lessor which keys are attached through `LeaseLookup` (attach/detach/exists); revoke
 * deletes them through the store's write txn (`TxnDelete`, an interface owned here, as etcd's lessor owns
 * its TxnDelete).
 *
 * No timers: the server calls `expired()` every EXPIRY_ROUND_INTERVAL_MS from its own clock. Memory is one
 * record per lease plus its keys; both heaps hold at most one entry per lease.
 */

/** etcd's MaxLeaseTTL: a larger granted TTL fails with "etcdserver: too large lease TTL". */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * etcd's leaseRevokeRate: the most leases expired per second. `expired()` hands out half of it per round
 * of EXPIRY_ROUND_INTERVAL_MS, and `promote` spreads expiries so that at most 3/4 of it fall in any second
 * (so a pile-up of leases does not use the whole revoke budget).
 */
export const LEASE_REVOKE_RATE_PER_SECOND_DEFAULT = 1000;

/** How often the server should call `expired()` (etcd's lessor runLoop ticker). */
export const EXPIRY_ROUND_INTERVAL_MS = 500;

/** etcd's maxPendingRevokes: the server keeps at most this many expiry revokes in flight through raft. */
export const REVOKES_IN_FLIGHT_MAX = 16;

/**
 * After `expired()` hands out a lease, it hands it out again only after this long if it is still there
 * (the revoke proposal was lost, e.g. in a leader change). etcd's server passes its request timeout,
 * 5 s + 2 x election timeout = 7 s with defaults.
 */
export const EXPIRED_RETRY_MS_DEFAULT = 7_000;

/** etcd's default --experimental-lease-checkpoint-interval. */
export const CHECKPOINT_INTERVAL_MS_DEFAULT = 5 * 60 * 1000;

/** etcd's maxLeaseCheckpointBatchSize: checkpoints per raft entry (LeaseCheckpointRequest). */
export const CHECKPOINT_BATCH_MAX = 1000;

/** What etcd reports as the remaining TTL of a lease with no deadline: math.MaxInt64 ns in seconds. */
export const FOREVER_REMAINING_SECONDS = 9_223_372_036;

/**
 * etcd's minimum lease TTL: ceil(1.5 election timeouts) in seconds, computed as etcd does from ticks
 * (the 3/2 is an integer division of the election ticks). 2 s with the defaults (10 ticks of 100 ms).
 */
export function minLeaseTtlSeconds(electionTicks: number, heartbeatMs: number): number {
  assert(Number.isSafeInteger(electionTicks) && electionTicks > 0, "election ticks are positive");
  assert(heartbeatMs > 0, "the heartbeat interval is positive");
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000);
}

/**
 * What revoke needs from the KV store: one write at one new revision that deletes single keys, then ends
 * and returns its events (mvcc's `WriteTxn` from `MvccStore.beginWrite()` fits as is). The caller of
 * `revoke` seals the backend unit afterwards.
 */
export interface TxnDelete {
  /** Deletes the keys live in `range` now (revoke passes single keys); returns how many. */
  deleteRange(range: KeyRange): number;
  /** Ends the write: the revision moves on only when something was deleted. */
  end(): MvccEvent[];
}

export type BeginTxnDelete = () => TxnDelete;

export interface LessorOptions {
  backend: Backend;
  clock: Clock;
  /** Granted TTLs below this are raised to it (see minLeaseTtlSeconds). */
  minTtlSeconds: number;
  /** Default LEASE_REVOKE_RATE_PER_SECOND_DEFAULT. */
  revokeRatePerSecond?: number;
  /** Default EXPIRED_RETRY_MS_DEFAULT; the server should pass its request timeout. */
  expiredRetryMs?: number;
  /**
   * etcd's --experimental-enable-lease-checkpoint (default off): the leader hands out, through
   * `dueCheckpoints`, the remaining TTLs of long leases every `checkpointIntervalMs`, so that a new leader
   * restarts them from there instead of from their full TTL.
   */
  checkpointEnabled?: boolean;
  /** Default CHECKPOINT_INTERVAL_MS_DEFAULT. */
  checkpointIntervalMs?: number;
  /**
   * etcd's --experimental-enable-lease-checkpoint-persist (default off; always on from 3.6): checkpointed
   * remaining TTLs are written to the lease table, so they also survive a restart.
   */
  checkpointPersist?: boolean;
}

export interface GrantResult {
  id: bigint;
  /** The effective TTL (raised to the minimum), echoed to the client. */
  ttlSeconds: number;
}

/**
 * The outcome of a keepalive on this member:
 * - renewed: the lease now expires TTL seconds from now. `clearCheckpoint`: the server should propose a
 *   LeaseCheckpoint {id, remaining 0} so that members forget the last checkpointed remaining TTL (only
 *   with checkpointing enabled; etcd does it before refreshing).
 * - notFound: reply TTL 0.
 * - notPrimary: this member is not the leader (any more): forward to the leader.
 * - expired: the deadline passed and the revoke is on its way; etcd answers only once it is applied.
 *   `revoked` resolves true when the lease was revoked (reply not found), false when this member was
 *   demoted or closed first (forward to the new leader). One promise per lease, shared by its waiters.
 */
export type RenewResult =
  | { kind: "renewed"; ttlSeconds: number; clearCheckpoint: boolean }
  | { kind: "notFound" }
  | { kind: "notPrimary" }
  | { kind: "expired"; revoked: Promise<boolean> };

const NOT_FOUND: RenewResult = { kind: "notFound" };
const NOT_PRIMARY: RenewResult = { kind: "notPrimary" };

export interface TimeToLiveResult {
  id: bigint;
  /** Remaining whole seconds, truncated; -1 for an unknown lease (not an error, as in etcd). */
  ttlSeconds: number;
  /** The granted TTL; 0 for an unknown lease. */
  grantedTtlSeconds: number;
  /** The attached keys when asked for (unspecified order), otherwise empty. Fresh arrays. */
  keys: Uint8Array[];
}

/** One entry of a LeaseCheckpointRequest. */
export interface LeaseCheckpoint {
  id: bigint;
  remainingTtlSeconds: number;
}

/** One lease. Positions and times for the two heaps live in the record, so the heaps allocate nothing. */
class Lease {
  /** Deadline on the primary; Infinity on a follower. */
  expiryMs = Number.POSITIVE_INFINITY;
  /** When `expired()` looks at this lease next: its expiry, or later once handed out for revocation. */
  expiryCheckMs = Number.POSITIVE_INFINITY;
  expiryHeapPosition = -1;
  /** When the next checkpoint of this lease is due (primary with checkpointing only). */
  checkpointAtMs = Number.POSITIVE_INFINITY;
  checkpointHeapPosition = -1;
  /** Attached keys as latin1 strings (bytewise order = string order). */
  readonly keys = new Set<string>();
  /** Created by the first keepalive that finds the lease expired; settled by revoke or demote. */
  revokeWaiter: { promise: Promise<boolean>; resolve: (revoked: boolean) => void } | undefined;

  constructor(
    readonly id: bigint,
    public ttlSeconds: number,
    public remainingTtlSeconds: number,
  ) {}

  /** etcd's getRemainingTTL: what a promotion restarts the lease from. */
  restartTtlSeconds(): number {
    return this.remainingTtlSeconds > 0 ? this.remainingTtlSeconds : this.ttlSeconds;
  }
}

function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Earliest expiry first, ties by id: a total order, so every round and listing is reproducible. */
function byExpiry(a: Lease, b: Lease): number {
  return a.expiryMs < b.expiryMs ? -1 : a.expiryMs > b.expiryMs ? 1 : compareIds(a.id, b.id);
}

export class Lessor implements LeaseLookup {
  private readonly backend: Backend;
  private readonly clock: Clock;
  readonly minTtlSeconds: number;
  private readonly revokeRatePerSecond: number;
  private readonly expiredRetryMs: number;
  private readonly checkpointEnabled: boolean;
  private readonly checkpointIntervalMs: number;
  private readonly checkpointPersist: boolean;
  private readonly leasesById = new Map<bigint, Lease>();
  private readonly expiryHeap = new IndexedHeap<Lease>({
    less: (a, b) => a.expiryCheckMs < b.expiryCheckMs || (a.expiryCheckMs === b.expiryCheckMs && a.id < b.id),
    position: (lease) => lease.expiryHeapPosition,
    setPosition: (lease, position) => {
      lease.expiryHeapPosition = position;
    },
  });
  private readonly checkpointHeap = new IndexedHeap<Lease>({
    less: (a, b) =>
      a.checkpointAtMs < b.checkpointAtMs || (a.checkpointAtMs === b.checkpointAtMs && a.id < b.id),
    position: (lease) => lease.checkpointHeapPosition,
    setPosition: (lease, position) => {
      lease.checkpointHeapPosition = position;
    },
  });
  private beginDelete: BeginTxnDelete | undefined;
  private primary = false;
  private closed = false;

  /** etcd_debugging_lease_granted_total, _renewed_total, _revoked_total. */
  grantedTotal = 0;
  renewedTotal = 0;
  revokedTotal = 0;
  /**
   * Attach calls naming a lease that does not exist. Only a store rebuilt against a lease table it does
   * not match can cause them (etcd logs "unexpected Attach error"); the server should log a non-zero count.
   */
  unknownAttachCount = 0;

  private constructor(options: LessorOptions) {
    this.backend = options.backend;
    this.clock = options.clock;
    this.minTtlSeconds = options.minTtlSeconds;
    this.revokeRatePerSecond = options.revokeRatePerSecond ?? LEASE_REVOKE_RATE_PER_SECOND_DEFAULT;
    this.expiredRetryMs = options.expiredRetryMs ?? EXPIRED_RETRY_MS_DEFAULT;
    this.checkpointEnabled = options.checkpointEnabled ?? false;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS_DEFAULT;
    this.checkpointPersist = options.checkpointPersist ?? false;
    assert(Number.isSafeInteger(this.minTtlSeconds) && this.minTtlSeconds > 0, "min TTL is positive");
    assert(this.revokeRatePerSecond >= 2, "the revoke rate allows at least one lease per round");
    assert(this.expiredRetryMs > 0, "a handed-out lease is retried later, not in the same round");
    assert(this.checkpointIntervalMs >= 1000, "the checkpoint interval is at least a second");
  }

  /**
   * Opens the lessor on a backend: every lease of the `lease` table, TTLs raised to today's minimum, with
   * no deadline (a follower) until `promote`. Keys are attached afterwards by the store (open the store
   * with this lessor, or call `store.setLeases(lessor)`), as etcd recovers the lessor before the KV.
   */
  static open(options: LessorOptions): Lessor {
    const lessor = new Lessor(options);
    lessor.restore();
    return lessor;
  }

  /**
   * After a raft snapshot replaced the backend's contents (a follower only): forgets every lease and reads
   * the lease table again. The store re-attaches keys afterwards (`store.setLeases(lessor)`).
   */
  reload(): void {
    this.checkOpen();
    assert(!this.primary, "only a follower installs a snapshot");
    this.leasesById.clear();
    this.expiryHeap.clear();
    this.checkpointHeap.clear();
    this.restore();
  }

  private restore(): void {
    this.backend.range("lease", new Uint8Array(0), null, (key, value) => {
      const row = decodeLeaseRow(value);
      assert(row.id === leaseIdFromKey(key), `lease row ${row.id} is stored under its own id`);
      assert(row.id !== 0n, "lease 0 is never stored");
      const ttlSeconds = Math.max(row.ttlSeconds, this.minTtlSeconds);
      this.leasesById.set(row.id, new Lease(row.id, ttlSeconds, row.remainingTtlSeconds));
      return true;
    });
  }

  /** How revoke deletes keys: `() => store.beginWrite()`. Set once the store is open. */
  setRangeDeleter(beginDelete: BeginTxnDelete): void {
    this.beginDelete = beginDelete;
  }

  get size(): number {
    return this.leasesById.size;
  }

  /** True between `promote` and `demote`: this member decides expiry and serves renewals. */
  get isPrimary(): boolean {
    return this.primary;
  }

  // ---------------------------------------------------------------------------------------------------
  // LeaseLookup (called by mvcc)

  exists(leaseId: bigint): boolean {
    return this.leasesById.has(leaseId);
  }

  attach(leaseId: bigint, key: Uint8Array): void {
    const lease = this.leasesById.get(leaseId);
    if (lease === undefined) {
      this.unknownAttachCount++;
      return;
    }
    lease.keys.add(bytesToLatin1(key));
  }

  detach(leaseId: bigint, key: Uint8Array): void {
    this.leasesById.get(leaseId)?.keys.delete(bytesToLatin1(key));
  }

  // ---------------------------------------------------------------------------------------------------
  // Apply side (committed raft entries; the caller seals the backend unit)

  /**
   * LeaseGrant with a server-chosen or client-chosen id (spec §8.1). Errors, in etcd's order: id 0 (the
   * server picks ids before proposing, so only a foreign entry has it) "lease not found", TTL above
   * MAX_LEASE_TTL_SECONDS "too large lease TTL", a used id "lease already exists". A TTL below the minimum
   * (zero and negative included) is raised to it.
   */
  grant(id: bigint, ttlSeconds: number): GrantResult {
    this.checkOpen();
    assert(isInt64(id), "a lease id is an int64");
    if (id === 0n) throw new EtcdError("LeaseNotFound");
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new EtcdError("LeaseTTLTooLarge");
    assert(Number.isInteger(ttlSeconds), "a lease TTL is a whole number of seconds");
    if (this.leasesById.has(id)) throw new EtcdError("LeaseExist");
    const lease = new Lease(id, Math.max(ttlSeconds, this.minTtlSeconds), 0);
    this.leasesById.set(id, lease);
    this.persist(lease);
    this.grantedTotal++;
    if (this.primary) {
      const nowMs = this.clock.nowMs();
      this.setExpiry(lease, nowMs + lease.ttlSeconds * 1000);
      this.expiryHeap.upsert(lease);
      this.scheduleCheckpoint(lease, nowMs);
    }
    return { id, ttlSeconds: lease.ttlSeconds };
  }

  /**
   * LeaseRevoke (spec §8.3): deletes every attached key in one write, in ascending key order (so every
   * member writes the same records), removes the lease row in the same backend unit, and returns the
   * write's events. No keys: no revision. Unknown id: "lease not found", before any change.
   */
  revoke(id: bigint): MvccEvent[] {
    this.checkOpen();
    const lease = this.leasesById.get(id);
    if (lease === undefined) throw new EtcdError("LeaseNotFound");
    assert(this.beginDelete !== undefined, "revoke needs the store's range deleter (setRangeDeleter)");
    // Latin1 strings compare like their bytes, so the default sort is etcd's bytewise key order.
    const keys = [...lease.keys].sort();
    const txn = this.beginDelete();
    for (const key of keys) {
      const deleted = txn.deleteRange({ start: key, end: null, single: true });
      assert(deleted === 1, "every attached key is live in the store");
    }
    assert(lease.keys.size === 0, "the store detached every key it deleted");
    this.leasesById.delete(id);
    this.expiryHeap.remove(lease);
    this.checkpointHeap.remove(lease);
    this.backend.delete("lease", leaseIdKey(id));
    const events = txn.end();
    lease.revokeWaiter?.resolve(true);
    lease.revokeWaiter = undefined;
    this.revokedTotal++;
    return events;
  }

  /**
   * One LeaseCheckpoint of a committed LeaseCheckpointRequest: remembers the remaining TTL a new leader
   * restarts the lease from (0 clears it). Unknown ids are ignored, as in etcd.
   */
  checkpoint(id: bigint, remainingTtlSeconds: number): void {
    this.checkOpen();
    assert(Number.isSafeInteger(remainingTtlSeconds), "a remaining TTL is a whole number of seconds");
    const lease = this.leasesById.get(id);
    if (lease === undefined) return;
    lease.remainingTtlSeconds = remainingTtlSeconds;
    if (this.checkpointPersist) this.persist(lease);
    if (this.primary) this.scheduleCheckpoint(lease, this.clock.nowMs());
  }

  private persist(lease: Lease): void {
    this.backend.put(
      "lease",
      leaseIdKey(lease.id),
      encodeLeaseRow({
        id: lease.id,
        ttlSeconds: lease.ttlSeconds,
        remainingTtlSeconds: lease.remainingTtlSeconds,
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------------
  // Primary side (leader only, not through raft)

  /**
   * Becomes the primary: every lease expires `extendMs` after its full TTL (or its checkpointed remaining
   * TTL) from now. The server calls it once the leader has applied the first entry of its term, with the
   * election timeout as `extendMs`: the old leader may have renewed a lease just before it lost its lead,
   * so every lease gets a fresh deadline with a margin. With at least `revokeRatePerSecond` leases the
   * expiries are spread so that no second holds more than 3/4 of that rate (a restart after a long
   * outage would otherwise expire them all at once).
   */
  promote(extendMs: number): void {
    this.checkOpen();
    assert(Number.isFinite(extendMs) && extendMs >= 0, "the promotion extension is a duration");
    const nowMs = this.clock.nowMs();
    this.primary = true;
    for (const lease of this.leasesById.values()) {
      this.setExpiry(lease, nowMs + extendMs + lease.restartTtlSeconds() * 1000);
    }
    if (this.leasesById.size >= this.revokeRatePerSecond) this.spreadExpiries(nowMs, extendMs);
    this.expiryHeap.rebuild(this.leasesById.values());
    this.checkpointHeap.clear();
    for (const lease of this.leasesById.values()) this.scheduleCheckpoint(lease, nowMs);
    // Keepalives still waiting on an expired lease retry: it has a fresh deadline now.
    this.settleWaiters();
  }

  /**
   * etcd's Promote pile-up rule: walk the leases by expiry in windows of one second; once a window holds
   * more than 3/4 of the revoke rate, each further lease moves to `base + n / target` seconds (n its
   * rank in the window), which also pushes the window end on, so piled-up leases leave at the target rate.
   */
  private spreadExpiries(nowMs: number, extendMs: number): void {
    const sorted = [...this.leasesById.values()].sort(byExpiry);
    const targetPerSecond = Math.floor((3 * this.revokeRatePerSecond) / 4);
    let baseMs = (sorted[0] as Lease).expiryMs - nowMs;
    let windowEndMs = baseMs + 1000;
    let inWindow = 0;
    for (const lease of sorted) {
      const remainingMs = lease.expiryMs - nowMs;
      if (remainingMs > windowEndMs) {
        baseMs = remainingMs;
        windowEndMs = baseMs + 1000;
        inWindow = 1;
        continue;
      }
      inWindow++;
      if (inWindow <= targetPerSecond) continue;
      const delayMs = (1000 * inWindow) / targetPerSecond - (remainingMs - baseMs);
      windowEndMs = baseMs + delayMs;
      this.setExpiry(lease, nowMs + delayMs + extendMs + lease.restartTtlSeconds() * 1000);
    }
  }

  /**
   * Stops being the primary (lost the lead): no lease expires on this member, pending keepalives on expired
   * leases learn to forward (their `revoked` resolves false).
   */
  demote(): void {
    this.checkOpen();
    this.primary = false;
    for (const lease of this.leasesById.values()) this.setExpiry(lease, Number.POSITIVE_INFINITY);
    this.expiryHeap.clear();
    this.checkpointHeap.clear();
    this.settleWaiters();
  }

  /** KeepAlive on the primary (spec §8.2): refresh to now + TTL. See RenewResult. */
  renew(id: bigint): RenewResult {
    this.checkOpen();
    if (!this.primary) return NOT_PRIMARY;
    const lease = this.leasesById.get(id);
    if (lease === undefined) return NOT_FOUND;
    const nowMs = this.clock.nowMs();
    if (lease.expiryMs <= nowMs) {
      // etcd: "an expired lease might be pending for revoking or going through quorum to be revoked", so
      // the renewal waits for the revoke instead of resurrecting a lease whose keys are going away.
      if (lease.revokeWaiter === undefined) {
        let resolve: (revoked: boolean) => void = () => {};
        const promise = new Promise<boolean>((r) => {
          resolve = r;
        });
        lease.revokeWaiter = { promise, resolve };
      }
      return { kind: "expired", revoked: lease.revokeWaiter.promise };
    }
    // A renewal restarts the full TTL; a checkpointed remaining TTL no longer applies. etcd clears it
    // through raft before refreshing; we refresh from the TTL at once and let the server propose the clear.
    const clearCheckpoint = this.checkpointEnabled && lease.remainingTtlSeconds > 0;
    this.setExpiry(lease, nowMs + lease.ttlSeconds * 1000);
    this.expiryHeap.upsert(lease);
    this.renewedTotal++;
    return { kind: "renewed", ttlSeconds: lease.ttlSeconds, clearCheckpoint };
  }

  /**
   * The leases to revoke now (primary only): expired ones, earliest deadline first, at most `limit` (by
   * default half the revoke rate: 500 per round of EXPIRY_ROUND_INTERVAL_MS). A lease handed out is not
   * handed out again for `expiredRetryMs` (its revoke should be committed by then); the server proposes a
   * LeaseRevoke for each id. Visits at most `limit` heap entries.
   */
  expired(limit = this.revokeRatePerSecond >> 1): bigint[] {
    this.checkOpen();
    assert(Number.isSafeInteger(limit) && limit > 0, "an expiry round takes at least one lease");
    const ids: bigint[] = [];
    if (!this.primary) return ids;
    const nowMs = this.clock.nowMs();
    while (ids.length < limit) {
      const lease = this.expiryHeap.peek();
      if (lease === undefined || lease.expiryCheckMs > nowMs) break;
      assert(lease.expiryMs <= nowMs, "a lease is looked at no earlier than its expiry");
      lease.expiryCheckMs = nowMs + this.expiredRetryMs;
      this.expiryHeap.upsert(lease);
      ids.push(lease.id);
    }
    return ids;
  }

  /**
   * Checkpoints due now (primary with checkpointing only), for one LeaseCheckpointRequest: the remaining
   * TTL, rounded up, of each lease whose checkpoint time came and that has less than its TTL left. The
   * server calls it after each expiry round while it returns a full batch (etcd: up to 500 batches).
   */
  dueCheckpoints(limit = CHECKPOINT_BATCH_MAX): LeaseCheckpoint[] {
    this.checkOpen();
    assert(Number.isSafeInteger(limit) && limit > 0, "a checkpoint batch holds at least one lease");
    const checkpoints: LeaseCheckpoint[] = [];
    if (!this.primary || !this.checkpointEnabled) return checkpoints;
    const nowMs = this.clock.nowMs();
    while (checkpoints.length < limit) {
      const lease = this.checkpointHeap.peek();
      if (lease === undefined || lease.checkpointAtMs > nowMs) break;
      this.checkpointHeap.remove(lease);
      if (lease.expiryMs <= nowMs) continue;
      const remainingTtlSeconds = Math.ceil((lease.expiryMs - nowMs) / 1000);
      if (remainingTtlSeconds >= lease.ttlSeconds) continue;
      checkpoints.push({ id: lease.id, remainingTtlSeconds });
    }
    return checkpoints;
  }

  /**
   * LeaseTimeToLive (spec §8.4), served by the primary: remaining whole seconds (truncated, so 99 right
   * after a grant of 100; FOREVER_REMAINING_SECONDS on a non-primary), the granted TTL and, when asked, the
   * keys. Unknown lease: TTL -1, granted 0, not an error.
   */
  timeToLive(id: bigint, withKeys: boolean): TimeToLiveResult {
    this.checkOpen();
    const lease = this.leasesById.get(id);
    if (lease === undefined) return { id, ttlSeconds: -1, grantedTtlSeconds: 0, keys: [] };
    return {
      id,
      ttlSeconds: this.remainingSeconds(lease),
      grantedTtlSeconds: lease.ttlSeconds,
      keys: withKeys ? [...lease.keys].map(latin1ToBytes) : [],
    };
  }

  /** LeaseLeases: every lease id, soonest expiry first (ties, e.g. on a follower, by id). */
  leases(): bigint[] {
    this.checkOpen();
    return [...this.leasesById.values()].sort(byExpiry).map((lease) => lease.id);
  }

  /** The keys attached to a lease (fresh arrays), or undefined: for the revoke permission check. */
  attachedKeys(id: bigint): Uint8Array[] | undefined {
    const lease = this.leasesById.get(id);
    return lease === undefined ? undefined : [...lease.keys].map(latin1ToBytes);
  }

  /** The granted TTL of a lease, or undefined. */
  ttlOf(id: bigint): number | undefined {
    return this.leasesById.get(id)?.ttlSeconds;
  }

  /**
   * Stops the lessor (server stop, or replaced after a raft snapshot install): pending keepalives on expired
   * leases learn to forward. Further calls fail.
   */
  close(): void {
    if (this.closed) return;
    this.settleWaiters();
    this.primary = false;
    this.closed = true;
  }

  /** For tests: both heaps are sound, and the expiry heap holds every lease exactly when primary. */
  checkInvariants(): void {
    this.expiryHeap.checkInvariants();
    this.checkpointHeap.checkInvariants();
    assert(this.expiryHeap.size === (this.primary ? this.leasesById.size : 0), "expiry heap size");
    for (const lease of this.leasesById.values()) {
      assert(this.expiryHeap.has(lease) === this.primary, "a primary tracks the expiry of every lease");
      assert(this.primary || lease.expiryMs === Number.POSITIVE_INFINITY, "a follower never expires a lease");
      assert(lease.expiryCheckMs >= lease.expiryMs, "a lease is looked at no earlier than its expiry");
      assert(this.checkpointEnabled || !this.checkpointHeap.has(lease), "no checkpoints when disabled");
    }
  }

  // ---------------------------------------------------------------------------------------------------

  private setExpiry(lease: Lease, expiryMs: number): void {
    lease.expiryMs = expiryMs;
    lease.expiryCheckMs = expiryMs;
  }

  private remainingSeconds(lease: Lease): number {
    if (lease.expiryMs === Number.POSITIVE_INFINITY) return FOREVER_REMAINING_SECONDS;
    // `+ 0` turns the -0 of a just-expired lease into 0.
    return Math.trunc((lease.expiryMs - this.clock.nowMs()) / 1000) + 0;
  }

  /** etcd's scheduleCheckpointIfNeeded: only leases longer than the interval are worth a checkpoint. */
  private scheduleCheckpoint(lease: Lease, nowMs: number): void {
    if (!this.checkpointEnabled) return;
    if (lease.restartTtlSeconds() <= Math.trunc(this.checkpointIntervalMs / 1000)) return;
    lease.checkpointAtMs = nowMs + this.checkpointIntervalMs;
    this.checkpointHeap.upsert(lease);
  }

  private settleWaiters(): void {
    for (const lease of this.leasesById.values()) {
      lease.revokeWaiter?.resolve(false);
      lease.revokeWaiter = undefined;
    }
  }

  private checkOpen(): void {
    assert(!this.closed, "the lessor is open");
  }
}
