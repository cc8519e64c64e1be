import { bytesEqual } from "../backend/bytes.js";
import { EtcdError, isEtcdError } from "../errors.js";
import { Event_EventType } from "../proto/gen/mvccpb.js";
import type { etcdserverpb, v3electionpb } from "../proto/index.js";
import { type Header, type MemberClient, prefixEnd, throwIfAborted } from "./client.js";
import { CoordinationError } from "./errors.js";
import {
  createRevisionIs,
  firstCreate,
  rangeOf,
  sessionKey,
  sessionLease,
  waitDeletes,
  withSlash,
} from "./mutex.js";

/**
 * etcd 3.4's clientv3/concurrency Election as the v3election server runs it (spec §9.2). Campaign and
 * Observe wait; Proclaim, Resign and Leader are one call each.
 */

type KeyValue = NonNullable<etcdserverpb.RangeResponseInit["kvs"]>[number];

/** Election.Campaign: resolves once `lease`'s key under `name/` is the oldest. */
export async function campaign(
  client: MemberClient,
  request: v3electionpb.CampaignRequest,
  signal: AbortSignal,
): Promise<v3electionpb.CampaignResponseInit> {
  const lease = await sessionLease(client, request.lease);
  throwIfAborted(signal);
  const prefix = withSlash(request.name);
  const key = sessionKey(prefix, lease);
  const response = await client.txn({
    compare: [createRevisionIs(key, 0)],
    success: [{ request: { case: "requestPut", value: { key, value: request.value, lease } } }],
    failure: [{ request: { case: "requestRange", value: { key } } }],
  });
  throwIfAborted(signal);
  let leaderRevision = response.header?.revision ?? 0;
  if (response.succeeded !== true) {
    const kv = rangeOf(response, 0)[0];
    leaderRevision = kv?.createRevision ?? 0;
    if (!bytesEqual(kv?.value ?? new Uint8Array(0), request.value)) {
      try {
        await proclaimAs(client, key, leaderRevision, lease, request.value);
      } catch (error) {
        // Election.Proclaim forgets the key when it is not the leader, so Campaign's Resign then has no
        // key to delete; otherwise it resigns with the same guard.
        if (!isEtcdError(error, "ElectionNotLeader")) {
          await resignAs(client, key, leaderRevision).catch(() => {});
        }
        throw error;
      }
    }
  }
  try {
    await waitDeletes(client, prefix, leaderRevision - 1, signal);
  } catch (error) {
    // Only a cancelled call resigns (Campaign's ctx.Done case); another failure leaves the key.
    if (signal.aborted) await resignAs(client, key, leaderRevision).catch(() => {});
    throw error;
  }
  return {
    header: response.header as Header,
    leader: { name: request.name, key, rev: leaderRevision, lease },
  };
}

export async function proclaim(
  client: MemberClient,
  request: v3electionpb.ProclaimRequest,
): Promise<v3electionpb.ProclaimResponseInit> {
  const leader = request.leader;
  if (leader === undefined) throw new EtcdError("ElectionLeaderMissing");
  const lease = await sessionLease(client, leader.lease);
  const header = await proclaimAs(client, leader.key, leader.rev, lease, request.value);
  return { header };
}

/** Election.Proclaim: put the value while the key keeps its create revision. */
async function proclaimAs(
  client: MemberClient,
  key: Uint8Array,
  revision: number,
  lease: bigint,
  value: Uint8Array,
): Promise<Header> {
  const response = await client.txn({
    compare: [createRevisionIs(key, revision)],
    success: [{ request: { case: "requestPut", value: { key, value, lease } } }],
  });
  if (response.succeeded !== true) throw new EtcdError("ElectionNotLeader");
  return response.header as Header;
}

export async function resign(
  client: MemberClient,
  request: v3electionpb.ResignRequest,
): Promise<v3electionpb.ResignResponseInit> {
  const leader = request.leader;
  if (leader === undefined) throw new EtcdError("ElectionLeaderMissing");
  // The server's session grants a lease here too when the request names lease 0 (unused by the delete).
  await sessionLease(client, leader.lease);
  return { header: await resignAs(client, leader.key, leader.rev) };
}

/** Election.Resign: delete the key while it keeps its create revision; silent when it does not. */
async function resignAs(client: MemberClient, key: Uint8Array, revision: number): Promise<Header> {
  const response = await client.txn({
    compare: [createRevisionIs(key, revision)],
    success: [{ request: { case: "requestDeleteRange", value: { key } } }],
  });
  return response.header as Header;
}

export async function leader(
  client: MemberClient,
  request: v3electionpb.LeaderRequest,
): Promise<v3electionpb.LeaderResponseInit> {
  const response = await client.range(firstCreate(withSlash(request.name)));
  const kv = response.kvs?.[0];
  if (kv === undefined) throw new EtcdError("ElectionNoLeader");
  return { header: response.header as Header, kv };
}

/**
 * Election.Observe: `send` gets the current leader (or, when there is none, the first PUT under the
 * prefix), then every PUT of that leader's key until it is deleted, then the next leader, and so on.
 * Resolves when the observation ends: the call was cancelled, `send` rejected, or a read or watch failed
 * (etcd then closes the channel and the stream ends with status OK). `send` resolving is the
 * back-pressure: nothing more is read from the watch until the previous response was taken.
 */
export async function observe(
  client: MemberClient,
  name: Uint8Array,
  signal: AbortSignal,
  send: (response: v3electionpb.LeaderResponseInit) => Promise<void>,
): Promise<void> {
  const prefix = withSlash(name);
  try {
    // Each round follows one leader until its key is deleted; the rounds end with the call.
    for (;;) {
      throwIfAborted(signal);
      const current = await client.range(firstCreate(prefix));
      throwIfAborted(signal);
      const found = current.kvs?.[0];
      const first =
        found !== undefined
          ? { header: current.header as Header, kv: found }
          : await firstPut(client, prefix, current.header?.revision ?? 0, signal);
      await send(first);
      await followKey(client, first.kv, (first.header.revision ?? 0) + 1, signal, send);
    }
  } catch (error) {
    // etcd closes the observe channel on any read or watch error: the stream ends with OK.
    if (error instanceof EtcdError || error instanceof CoordinationError) return;
    throw error;
  }
}

/** The first PUT under `prefix` from `revision`; its header's revision is that PUT's mod revision. */
async function firstPut(
  client: MemberClient,
  prefix: Uint8Array,
  revision: number,
  signal: AbortSignal,
): Promise<{ header: Header; kv: KeyValue }> {
  const watch = client.watch(prefix, prefixEnd(prefix), revision);
  try {
    for (;;) {
      const response = await watch.next(signal);
      for (const event of response.events) {
        if (event.type === Event_EventType.PUT && event.kv !== undefined) {
          return { header: { ...response.header, revision: event.kv.modRevision }, kv: event.kv };
        }
      }
    }
  } finally {
    watch.close();
  }
}

/** Sends every PUT of the leader's key from `revision` until a DELETE of it. */
async function followKey(
  client: MemberClient,
  kv: KeyValue,
  revision: number,
  signal: AbortSignal,
  send: (response: v3electionpb.LeaderResponseInit) => Promise<void>,
): Promise<void> {
  const watch = client.watch(kv.key ?? new Uint8Array(0), new Uint8Array(0), revision);
  try {
    for (;;) {
      const response = await watch.next(signal);
      for (const event of response.events) {
        if (event.type === Event_EventType.DELETE) return;
        await send({ header: response.header ?? null, kv: event.kv ?? null });
      }
    }
  } finally {
    watch.close();
  }
}
