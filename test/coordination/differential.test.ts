/**
 * The same Lock/Unlock/Campaign/Proclaim/Leader/Resign/Observe sequence, over raw gRPC, against a real
 * etcd 3.4.23 and against etcd-ts, both starting empty: the answers must be equal once lease ids are
 * numbered by first appearance (keys carry them in hex) and member/cluster ids dropped. Revisions are
 * compared as they are. Error cases ride along: unknown lease, empty key/name, wrong leader key, missing
 * leader, no leader; a waiter cancelled while waiting (its key is deleted), a waiter whose lease is
 * revoked while it waits.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import type { etcdserverpb, v3electionpb, v3lockpb } from "../../src/proto/index.js";
import { type EtcdTs, startEtcdTs } from "../support/etcdTs.js";
import { type RealEtcd, startRealEtcd } from "../support/realEtcd.js";
import {
  b,
  type Clients,
  connect,
  Normaliser,
  settle,
  startObserve,
  str,
  unary,
  waitFor,
} from "./support.js";

type Transcript = [string, unknown][];

/** A Lock deadline that passes while it waits (the waiter queues within it on any sane machine). */
const DEADLINE_MS = 1000;

async function keyExists(c: Clients, key: string): Promise<boolean> {
  const r = await unary(c.kv, c.kv.Range, { key: b(key) });
  return r.kvs.length > 0;
}

function prefixRange(prefix: string): etcdserverpb.RangeRequestInit {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  return { key: b(prefix), rangeEnd: end };
}

/** Lock that can be cancelled: the call object and its settled outcome. */
function cancellableLock(c: Clients, request: v3lockpb.LockRequestInit) {
  let call: grpc.ClientUnaryCall | undefined;
  const done = new Promise<unknown>((resolve) => {
    call = c.lock.Lock(request, (error: grpc.ServiceError | null, response?: v3lockpb.LockResponse) => {
      resolve(error !== null ? { error: { code: error.code, details: error.details } } : response);
    });
  });
  return { call: call as grpc.ClientUnaryCall, done };
}

async function scenario(c: Clients): Promise<Transcript> {
  const t: Transcript = [];
  const rec = (label: string, value: unknown): void => {
    t.push([label, value]);
  };
  const grant = () => unary(c.lease, c.lease.LeaseGrant, { TTL: 60 });
  const A = await grant();
  const B = await grant();
  const C = await grant();
  const C2 = await grant();
  rec("grant", [A, B, C, C2]);
  const hex = (id: bigint) => id.toString(16);
  const lock = (name: string, lease: bigint) => settle(unary(c.lock, c.lock.Lock, { name: b(name), lease }));
  const unlock = (key: string) => settle(unary(c.lock, c.lock.Unlock, { key: b(key) }));

  // Lock, re-lock with the same lease (same key), a second waiter served after the unlock.
  rec("lock A", await lock("lk", A.ID));
  rec("lock A again", await lock("lk", A.ID));
  const waitingB = lock("lk", B.ID);
  await waitFor(() => keyExists(c, `lk/${hex(B.ID)}`), "B's waiter key");
  rec("lk/ while B waits", await unary(c.kv, c.kv.Range, prefixRange("lk/")));
  rec("unlock A", await unlock(`lk/${hex(A.ID)}`));
  rec("lock B after wait", await waitingB);

  // A waiter whose lease is revoked while it waits still returns once the keys ahead are gone.
  const waitingC = lock("lk", C.ID);
  await waitFor(() => keyExists(c, `lk/${hex(C.ID)}`), "C's waiter key");
  rec("revoke C", await unary(c.lease, c.lease.LeaseRevoke, { ID: C.ID }));
  rec("unlock B", await unlock(`lk/${hex(B.ID)}`));
  rec("lock C after its lease went", await waitingC);
  rec("unlock again (idempotent)", await unlock(`lk/${hex(B.ID)}`));

  // A cancelled waiter deletes its key.
  rec("lock lk2 A", await lock("lk2", A.ID));
  const cancelled = cancellableLock(c, { name: b("lk2"), lease: B.ID });
  await waitFor(() => keyExists(c, `lk2/${hex(B.ID)}`), "the cancellable waiter's key");
  cancelled.call.cancel();
  rec("cancelled lock", ((await cancelled.done) as { error: { code: number } }).error.code);
  await waitFor(async () => !(await keyExists(c, `lk2/${hex(B.ID)}`)), "the cancelled waiter's key deletion");
  rec("lk2/ after cancel", await unary(c.kv, c.kv.Range, prefixRange("lk2/")));

  // A waiter whose deadline passes deletes its key too (whether or not it was queued by then).
  const deadlined = await settle(
    unary(c.lock, c.lock.Lock, { name: b("lk2"), lease: C2.ID }, { deadline: Date.now() + DEADLINE_MS }),
  );
  rec("lock past its deadline", (deadlined as { error: { code: number } }).error.code);
  await waitFor(
    async () => !(await keyExists(c, `lk2/${hex(C2.ID)}`)),
    "the deadlined waiter's key deletion",
  );
  rec("lk2/ after deadline", (await unary(c.kv, c.kv.Range, prefixRange("lk2/"))).kvs);

  // Errors and edge cases of Lock.
  rec("lock unknown lease", await lock("lk3", 0x7777n));
  rec("lock lease 0", await lock("lk3", 0n));
  rec("lock empty name", await lock("", A.ID));
  rec("unlock empty key", await unlock(""));

  // Election.
  const e = c.election;
  const leader = (name: string) => settle(unary(e, e.Leader, { name: b(name) }));
  rec("leader none", await leader("el"));
  const campaignA = (await unary(e, e.Campaign, {
    name: b("el"),
    lease: A.ID,
    value: b("v1"),
  })) as v3electionpb.CampaignResponse;
  rec("campaign A", campaignA);
  const leaderA = campaignA.leader as v3electionpb.LeaderKey;
  rec("leader A", await leader("el"));
  rec("proclaim v2", await settle(unary(e, e.Proclaim, { leader: leaderA, value: b("v2") })));
  const observation = startObserve(e, "el");
  await waitFor(() => observation.responses.length >= 1, "observe's first leader");
  rec(
    "campaign A again, new value",
    await settle(unary(e, e.Campaign, { name: b("el"), lease: A.ID, value: b("v3") })),
  );
  const waitingCampaign = settle(unary(e, e.Campaign, { name: b("el"), lease: B.ID, value: b("w1") }));
  await waitFor(() => keyExists(c, `el/${hex(B.ID)}`), "B's candidate key");
  rec("leader while B waits", await leader("el"));
  rec(
    "proclaim wrong rev",
    await settle(unary(e, e.Proclaim, { leader: { ...leaderA, rev: 1 }, value: b("x") })),
  );
  rec(
    "proclaim wrong key",
    await settle(unary(e, e.Proclaim, { leader: { ...leaderA, key: b("el/nope") }, value: b("x") })),
  );
  rec(
    "proclaim empty key",
    await settle(unary(e, e.Proclaim, { leader: { ...leaderA, key: b("") }, value: b("x") })),
  );
  rec("proclaim no leader", await settle(unary(e, e.Proclaim, { value: b("x") })));
  rec("resign wrong rev", await settle(unary(e, e.Resign, { leader: { ...leaderA, rev: 1 } })));
  rec("resign no leader", await settle(unary(e, e.Resign, {})));
  rec("resign A", await settle(unary(e, e.Resign, { leader: leaderA })));
  const campaignB = (await waitingCampaign) as v3electionpb.CampaignResponse;
  rec("campaign B after wait", campaignB);
  await waitFor(() => observation.responses.length >= 3, "observe's second leader");
  rec("proclaim B w2", await settle(unary(e, e.Proclaim, { leader: campaignB.leader, value: b("w2") })));
  // Lease 0 in a LeaderKey: the server's session grants a fresh 60 s lease and the put takes it.
  rec(
    "proclaim with lease 0",
    await settle(unary(e, e.Proclaim, { leader: { ...campaignB.leader, lease: 0n }, value: b("w3") })),
  );
  rec("leader after lease-0 proclaim", await leader("el"));
  rec("resign B", await settle(unary(e, e.Resign, { leader: campaignB.leader })));
  await waitFor(() => observation.responses.length >= 5, "observe's proclamations");
  rec("resign B again", await settle(unary(e, e.Resign, { leader: campaignB.leader })));
  rec(
    "campaign unknown lease",
    await settle(unary(e, e.Campaign, { name: b("el"), lease: 0x7777n, value: b("z") })),
  );

  // Observe of a name without a leader: the first PUT under it.
  const observation2 = startObserve(e, "el2");
  const campaignC2 = await settle(unary(e, e.Campaign, { name: b("el2"), lease: B.ID, value: b("first") }));
  await waitFor(() => observation2.responses.length >= 1, "observe2's first leader");
  rec("campaign el2", campaignC2);
  observation.cancel();
  observation2.cancel();
  rec("observed el", observation.responses.slice(0, 5));
  rec("observed el2", observation2.responses.slice(0, 1));
  rec("keyspace", await unary(c.kv, c.kv.Range, { key: b("\0"), rangeEnd: b("\0") }));
  rec("lease list", (await unary(c.lease, c.lease.LeaseLeases, {})).leases.length);
  return t;
}

function normalise(transcript: Transcript): unknown[] {
  const n = new Normaliser();
  return transcript.map(([label, value]) => [label, n.value(value)]);
}

describe("Lock and Election: etcd-ts answers as etcd 3.4.23", () => {
  let real: RealEtcd;
  let ours: EtcdTs;

  before(async () => {
    [real, ours] = await Promise.all([startRealEtcd(), startEtcdTs()]);
  });
  after(async () => {
    await Promise.all([real?.stop(), ours?.stop()]);
  });

  it("gives the same answers, revisions included", async () => {
    const realClients = connect(real.endpoint);
    const ourClients = connect(ours.endpoint);
    try {
      const expected = normalise(await scenario(realClients));
      const actual = normalise(await scenario(ourClients));
      for (let i = 0; i < expected.length; i++) {
        assert.deepEqual(
          actual[i],
          expected[i],
          `step ${i}: ${JSON.stringify((expected[i] as unknown[])[0])}`,
        );
      }
      assert.equal(actual.length, expected.length);
      // Spot checks on etcd's own answers, so a shared mistake in the scenario cannot pass unseen.
      const byLabel = new Map(expected.map((entry) => entry as [string, unknown]));
      assert.deepEqual(byLabel.get("lock unknown lease"), {
        error: { code: 2, details: "etcdserver: requested lease not found" },
      });
      assert.deepEqual(byLabel.get("proclaim wrong rev"), {
        error: { code: 2, details: "election: not leader" },
      });
      assert.deepEqual(byLabel.get("leader none"), { error: { code: 2, details: "election: no leader" } });
      assert.equal(str(b("x")), "x");
    } finally {
      realClients.close();
      ourClients.close();
    }
  });
});
