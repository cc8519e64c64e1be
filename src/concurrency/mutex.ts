import {
  Compare_CompareResult,
  Compare_CompareTarget,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
} from "../proto/gen/etcdserverpb.js";
import { Event_EventType } from "../proto/gen/mvccpb.js";
import type { etcdserverpb } from "../proto/index.js";
import { type Header, type MemberClient, prefixEnd, throwIfAborted } from "./client.js";

/**
 * etcd 3.4's clientv3/concurrency Mutex and the waits it shares with Election (key.go), as the v3lock
 * server runs them (spec §9.1): the waiter key `<name>/<lease hex>`, one txn to enqueue and read the
 * owner, then waits for every older waiter's key to be deleted.
 */

/** concurrency's defaultSessionTTL: the lease granted when a request names lease 0 (never kept alive). */
export const SESSION_TTL_SECONDS = 60;

/**
 * concurrency.NewSession as the servers use it: a request lease of 0 gets a fresh lease of 60 s (never
 * renewed: the servers orphan the session at once); any other id is used as given, unchecked.
 */
export async function sessionLease(client: MemberClient, lease: bigint): Promise<bigint> {
  return lease === 0n ? client.leaseGrant(SESSION_TTL_SECONDS) : lease;
}

/** The waiter/candidate key: Go's fmt "%s%x" of the prefix and the int64 lease (negative: "-1a"). */
export function sessionKey(prefix: Uint8Array, lease: bigint): Buffer {
  return Buffer.concat([prefix, Buffer.from(lease.toString(16), "latin1")]);
}

export function withSlash(name: Uint8Array): Buffer {
  return Buffer.concat([name, SLASH]);
}

const SLASH = Buffer.from("/");

/** clientv3.WithFirstCreate over the prefix: the oldest key by create revision. */
export function firstCreate(prefix: Uint8Array): etcdserverpb.RangeRequestInit {
  return {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    limit: 1,
    sortOrder: RangeRequest_SortOrder.ASCEND,
    sortTarget: RangeRequest_SortTarget.CREATE,
  };
}

export function createRevisionIs(key: Uint8Array, revision: number): etcdserverpb.CompareInit {
  return {
    key,
    result: Compare_CompareResult.EQUAL,
    target: Compare_CompareTarget.CREATE,
    targetUnion: { case: "createRevision", value: revision },
  };
}

export interface LockResult {
  header: Header;
  key: Buffer;
}

/** Mutex.Lock: resolves once `name`'s lock is held by `lease`'s key. */
export async function lock(
  client: MemberClient,
  name: Uint8Array,
  requestLease: bigint,
  signal: AbortSignal,
): Promise<LockResult> {
  const lease = await sessionLease(client, requestLease);
  throwIfAborted(signal);
  const prefix = withSlash(name);
  const key = sessionKey(prefix, lease);
  const owner = { request: { case: "requestRange" as const, value: firstCreate(prefix) } };
  const response = await client.txn({
    compare: [createRevisionIs(key, 0)],
    success: [{ request: { case: "requestPut", value: { key, value: new Uint8Array(0), lease } } }, owner],
    failure: [{ request: { case: "requestRange", value: { key } } }, owner],
  });
  throwIfAborted(signal);
  const header = response.header as Header;
  let myRevision = header.revision ?? 0;
  if (response.succeeded !== true) {
    myRevision = rangeOf(response, 0)[0]?.createRevision ?? 0;
  }
  const ownerKvs = rangeOf(response, 1);
  if (ownerKvs.length === 0 || ownerKvs[0]?.createRevision === myRevision) return { header, key };

  try {
    const waited = await waitDeletes(client, prefix, myRevision - 1, signal);
    return { header: waited, key };
  } catch (error) {
    // Mutex.Lock releases its key whenever the wait fails (cancelled call included), with the client's
    // own context: the delete is not tied to the call that went away.
    await client.deleteRange({ key }).catch(() => {});
    throw error;
  }
}

/** The kvs of the range at `index` of a txn's responses (empty when it is not a range). */
export function rangeOf(response: etcdserverpb.TxnResponseInit, index: number): readonly KeyValue[] {
  const op = response.responses?.[index]?.response;
  return op?.case === "responseRange" ? (op.value.kvs ?? []) : [];
}

type KeyValue = NonNullable<etcdserverpb.RangeResponseInit["kvs"]>[number];

/**
 * concurrency.waitDeletes: until no key under `prefix` has a create revision <= maxCreateRevision, wait
 * for the newest such key's deletion. Resolves with the header of the last (empty) read.
 */
export async function waitDeletes(
  client: MemberClient,
  prefix: Uint8Array,
  maxCreateRevision: number,
  signal: AbortSignal,
): Promise<Header> {
  const rangeEnd = prefixEnd(prefix);
  // Each round waits for one deletion, so the rounds are bounded by the keys ahead; each wait ends with
  // the call (signal) at the latest.
  for (;;) {
    throwIfAborted(signal);
    const response = await client.range({
      key: prefix,
      rangeEnd,
      limit: 1,
      sortOrder: RangeRequest_SortOrder.DESCEND,
      sortTarget: RangeRequest_SortTarget.CREATE,
      maxCreateRevision,
    });
    throwIfAborted(signal);
    const last = response.kvs?.[0];
    if (last === undefined) return response.header as Header;
    await waitDelete(client, last.key ?? new Uint8Array(0), response.header?.revision ?? 0, signal);
  }
}

/** concurrency.waitDelete: watch `key` from `revision` until a DELETE event. */
export async function waitDelete(
  client: MemberClient,
  key: Uint8Array,
  revision: number,
  signal: AbortSignal,
): Promise<void> {
  const watch = client.watch(key, new Uint8Array(0), revision);
  try {
    for (;;) {
      const response = await watch.next(signal);
      for (const event of response.events) if (event.type === Event_EventType.DELETE) return;
    }
  } finally {
    watch.close();
  }
}

/** Unlock: a plain delete of the key (no ownership check), as v3lock's Unlock. */
export async function unlock(client: MemberClient, key: Uint8Array): Promise<Header> {
  const response = await client.deleteRange({ key });
  return response.header as Header;
}
