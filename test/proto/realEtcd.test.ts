/**
 * Compatibility of our protos with a real etcd 3.4.23: a grpc-js client built only on src/proto talks
 * to the reference server and checks the answers field by field (so a wrong field number, type or
 * 64-bit representation shows up as a wrong value, not just a failed call).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  ClusterClient,
  callUnary,
  etcdserverpb,
  KVClient,
  KVService,
  LeaseClient,
  MaintenanceClient,
  makeClient,
  mvccpb,
  type PreEncodedClient,
  preEncodedService,
  WatchClient,
} from "../../src/proto/index.js";
import { type RealEtcd, startRealEtcd } from "../support/realEtcd.js";

/** Guard so a missing stream message fails the test instead of hanging it (not a timing assertion). */
const STREAM_WAIT_MS = 10_000;

const b = (s: string) => Buffer.from(s);
const str = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString();

describe("our protos against a real etcd 3.4.23", () => {
  let etcd: RealEtcd;
  let kv: KVClient;
  let watch: WatchClient;
  let lease: LeaseClient;
  let cluster: ClusterClient;
  let maintenance: MaintenanceClient;
  /** Store revision after the last write this test made; each write must add exactly one. */
  let revision = 0;

  before(async () => {
    etcd = await startRealEtcd();
    const creds = grpc.credentials.createInsecure();
    kv = new KVClient(etcd.endpoint, creds);
    watch = new WatchClient(etcd.endpoint, creds);
    lease = new LeaseClient(etcd.endpoint, creds);
    cluster = new ClusterClient(etcd.endpoint, creds);
    maintenance = new MaintenanceClient(etcd.endpoint, creds);
  });

  after(async () => {
    for (const c of [kv, watch, lease, cluster, maintenance]) c?.close();
    await etcd?.stop();
  });

  const put = async (key: string, value: string, extra: etcdserverpb.PutRequestInit = {}) => {
    const res = await callUnary(kv, kv.Put, { key: b(key), value: b(value), ...extra });
    assert.ok(res.header !== undefined);
    if (revision !== 0) assert.equal(res.header.revision, revision + 1, "one write, one revision");
    revision = res.header.revision;
    return res;
  };

  it("Status: version, db size, leader, raft index; ids keep all 64 bits", async () => {
    const status = await callUnary(maintenance, maintenance.Status, {});
    assert.equal(status.version, "3.4.23");
    assert.ok(status.dbSize > 0, `dbSize ${status.dbSize}`);
    assert.ok(status.header !== undefined);
    assert.equal(typeof status.header.clusterId, "bigint");
    assert.notEqual(status.header.clusterId, 0n);
    assert.equal(status.leader, status.header.memberId, "a single member leads itself");
    assert.ok(status.raftIndex > 0);
    assert.ok(status.raftTerm >= 1);
    assert.equal(status.header.raftTerm, status.raftTerm);
    assert.equal(status.isLearner, false);
    revision = status.header.revision;
  });

  it("MemberList: the one member, with its URLs and id", async () => {
    const res = await callUnary(cluster, cluster.MemberList, {});
    assert.equal(res.members.length, 1);
    const [member] = res.members;
    assert.ok(member !== undefined && res.header !== undefined);
    assert.equal(member.ID, res.header.memberId);
    assert.equal(member.name, "ref");
    assert.deepEqual(member.clientURLs, [etcd.clientUrl]);
    assert.equal(member.peerURLs.length, 1);
    assert.match(member.peerURLs[0] ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(member.isLearner, false);
  });

  it("Put then Range: revisions, versions, prefix range_end, limit, count, more", async () => {
    const first = await put("p/a", "1");
    const created = first.header?.revision ?? 0;
    await put("p/b", "2");
    await put("p/c", "3");
    const again = await put("p/a", "4", { prevKv: true });
    assert.equal(str(again.prevKv?.value ?? new Uint8Array()), "1");
    assert.equal(again.prevKv?.modRevision, created);

    const res = await callUnary(kv, kv.Range, { key: b("p/"), rangeEnd: b("p0"), limit: 2 });
    assert.equal(res.count, 3);
    assert.equal(res.more, true);
    assert.deepEqual(
      res.kvs.map((x) => str(x.key)),
      ["p/a", "p/b"],
    );
    const a = res.kvs[0];
    assert.ok(a !== undefined);
    assert.equal(str(a.value), "4");
    assert.equal(a.createRevision, created);
    assert.equal(a.modRevision, revision);
    assert.equal(a.version, 2);
    assert.equal(a.lease, 0n);
    assert.equal(res.header?.revision, revision);

    const counted = await callUnary(kv, kv.Range, { key: b("p/"), rangeEnd: b("p0"), countOnly: true });
    assert.equal(counted.count, 3);
    assert.equal(counted.kvs.length, 0);

    const sorted = await callUnary(kv, kv.Range, {
      key: b("p/"),
      rangeEnd: b("p0"),
      sortOrder: etcdserverpb.RangeRequest_SortOrder.DESCEND,
      sortTarget: etcdserverpb.RangeRequest_SortTarget.KEY,
      keysOnly: true,
    });
    assert.deepEqual(
      sorted.kvs.map((x) => str(x.key)),
      ["p/c", "p/b", "p/a"],
    );
    assert.equal(sorted.kvs[0]?.value.length, 0, "keys_only drops values");
  });

  it("Txn: compare on mod_revision picks success, a failing value compare picks failure", async () => {
    const current = await callUnary(kv, kv.Range, { key: b("p/b") });
    const modRevision = current.kvs[0]?.modRevision ?? 0;
    const ok = await callUnary(kv, kv.Txn, {
      compare: [
        {
          key: b("p/b"),
          target: etcdserverpb.Compare_CompareTarget.MOD,
          result: etcdserverpb.Compare_CompareResult.EQUAL,
          targetUnion: { case: "modRevision", value: modRevision },
        },
      ],
      success: [
        { request: { case: "requestPut", value: { key: b("p/b"), value: b("txn") } } },
        { request: { case: "requestRange", value: { key: b("p/b") } } },
      ],
      failure: [{ request: { case: "requestDeleteRange", value: { key: b("p/b") } } }],
    });
    assert.equal(ok.succeeded, true);
    assert.equal(ok.header?.revision, revision + 1);
    revision += 1;
    const [putOp, rangeOp] = ok.responses;
    assert.equal(putOp?.response?.case, "responsePut");
    assert.equal(rangeOp?.response?.case, "responseRange");
    if (rangeOp?.response?.case === "responseRange") {
      const kvAfter = rangeOp.response.value.kvs[0];
      assert.equal(str(kvAfter?.value ?? new Uint8Array()), "txn");
      assert.equal(kvAfter?.modRevision, revision);
    }

    const failed = await callUnary(kv, kv.Txn, {
      compare: [{ key: b("p/b"), target: 3, result: 0, targetUnion: { case: "value", value: b("nope") } }],
      success: [{ request: { case: "requestDeleteRange", value: { key: b("p/b") } } }],
      failure: [
        { request: { case: "requestRange", value: { key: b("p/"), rangeEnd: b("p0"), countOnly: true } } },
      ],
    });
    assert.equal(failed.succeeded, false);
    assert.equal(failed.header?.revision, revision, "a read-only branch makes no revision");
    const only = failed.responses[0]?.response;
    assert.equal(only?.case, "responseRange");
    if (only?.case === "responseRange") assert.equal(only.value.count, 3);
  });

  it("Watch: create, a PUT event with the put's revision, cancel", async () => {
    const stream = watch.Watch();
    const responses: etcdserverpb.WatchResponse[] = [];
    const streamErrors: grpc.ServiceError[] = [];
    // Our own cancel() at the end surfaces as CANCELLED; anything else is a failure.
    stream.on("error", (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) streamErrors.push(error);
    });
    let wake: (() => void) | undefined;
    stream.on("data", (r: etcdserverpb.WatchResponse) => {
      responses.push(r);
      wake?.();
    });
    const next = async (): Promise<etcdserverpb.WatchResponse> => {
      const deadline = Date.now() + STREAM_WAIT_MS;
      while (responses.length === 0) {
        if (Date.now() > deadline) throw new Error("no watch response");
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
      return responses.shift()!;
    };
    try {
      stream.write({
        requestUnion: { case: "createRequest", value: { key: b("w/"), rangeEnd: b("w0"), prevKv: true } },
      });
      const created = await next();
      assert.equal(created.created, true);
      const watchId = created.watchId;

      await put("w/1", "v1");
      const putRevision = revision;
      const event = await next();
      assert.equal(event.watchId, watchId);
      assert.equal(event.events.length, 1);
      const [e] = event.events;
      assert.equal(e?.type, mvccpb.Event_EventType.PUT);
      assert.equal(str(e?.kv?.key ?? new Uint8Array()), "w/1");
      assert.equal(str(e?.kv?.value ?? new Uint8Array()), "v1");
      assert.equal(e?.kv?.modRevision, putRevision);
      assert.equal(e?.kv?.createRevision, putRevision);
      assert.equal(e?.kv?.version, 1);
      assert.equal(event.header?.revision, putRevision);

      stream.write({ requestUnion: { case: "cancelRequest", value: { watchId } } });
      const canceled = await next();
      assert.equal(canceled.canceled, true);
      assert.equal(canceled.watchId, watchId);
      assert.deepEqual(streamErrors, []);
    } finally {
      stream.end();
      stream.cancel();
    }
  });

  it("LeaseGrant: TTL and id; a client-chosen id above 2^53 comes back exactly; keys carry it", async () => {
    const granted = await callUnary(lease, lease.LeaseGrant, { TTL: 60 });
    assert.equal(granted.TTL, 60);
    assert.equal(typeof granted.ID, "bigint");
    assert.ok(granted.ID > 0n);
    revision = granted.header?.revision ?? revision;

    const chosen = 0x7123456789abcdefn;
    const exact = await callUnary(lease, lease.LeaseGrant, { TTL: 30, ID: chosen });
    assert.equal(exact.ID, chosen);

    await put("l/1", "x", { lease: chosen });
    const got = await callUnary(kv, kv.Range, { key: b("l/1") });
    assert.equal(got.kvs[0]?.lease, chosen);

    const ttl = await callUnary(lease, lease.LeaseTimeToLive, { ID: chosen, keys: true });
    assert.equal(ttl.ID, chosen);
    assert.equal(ttl.grantedTTL, 30);
    assert.ok(ttl.TTL > 0 && ttl.TTL <= 30);
    assert.deepEqual(
      ttl.keys.map((k) => str(k)),
      ["l/1"],
    );
  });

  it("a pre-encoded PutRequest sent as raw bytes is applied like a normal one", async () => {
    const Raw = makeClient<PreEncodedClient<KVClient>>(preEncodedService(KVService), "etcdserverpb.KV");
    const raw = new Raw(etcd.endpoint, grpc.credentials.createInsecure());
    try {
      const bytes = etcdserverpb.PutRequest.encode({ key: b("raw"), value: b("bytes") });
      const first = await callUnary(raw, raw.Put, bytes);
      const second = await callUnary(raw, raw.Put, bytes);
      assert.equal(second.header?.revision, (first.header?.revision ?? 0) + 1);
      revision = second.header?.revision ?? revision;
      const got = await callUnary(kv, kv.Range, { key: b("raw") });
      assert.equal(str(got.kvs[0]?.value ?? new Uint8Array()), "bytes");
      assert.equal(got.kvs[0]?.version, 2);
    } finally {
      raw.close();
    }
  });

  it("an etcd error keeps etcd's code and text: Range with an empty key", async () => {
    await assert.rejects(callUnary(kv, kv.Range, { key: new Uint8Array() }), (error: grpc.ServiceError) => {
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(error.details, "etcdserver: key is not provided");
      return true;
    });
  });
});
