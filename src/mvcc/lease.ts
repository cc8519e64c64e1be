/**
 * What mvcc needs from the lessor (the consumer owns the interface, as etcd's lease.TxnDelete does the
 * other way round): whether a lease exists when a put names it, and notice of which keys are attached to
 * which lease, so that revoking a lease can delete its keys.
 *
 * mvcc calls `attach` after a put with a non-zero lease, `detach` when a key leaves its lease (a put with
 * another lease or none, a delete), and `attach` for every leased key when it rebuilds its index at open.
 */
export interface LeaseLookup {
  exists(leaseId: bigint): boolean;
  attach(leaseId: bigint, key: Uint8Array): void;
  detach(leaseId: bigint, key: Uint8Array): void;
}

/**
 * The default when no lessor is wired: only "no lease" (0) is accepted, so no write can attach a key;
 * attachments found when the index is rebuilt (a store written with a lessor, opened without one, e.g. by
 * a tool) are ignored.
 */
export const noLeases: LeaseLookup = {
  exists: () => false,
  attach: () => {},
  detach: () => {},
};
