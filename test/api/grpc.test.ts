import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HealthService } from "../../src/api/health.js";
import { grpcGoOversizeText } from "../../src/api/oversize.js";
import {
  AuthClient,
  ClusterClient,
  callUnary,
  etcdserverpb,
  KVClient,
  LeaseClient,
  MaintenanceClient,
  makeClient,
  WatchClient,
} from "../../src/proto/index.js";
import { type RunningStoreServer, startStoreServer } from "./storeServer.js";

const b = (s: string) => Buffer.from(s);
const str = (u: Uint8Array | undefined) => Buffer.from(u ?? []).toString();

async function rejects(promise: Promise<unknown>, code: number, details: string): Promise<void> {
  await assert.rejects(promise, (error: grpc.ServiceError) => {
    assert.equal(error.details, details);
    assert.equal(error.code, code);
    return true;
  });
}

describe("gRPC API over the store double", () => {
  let running: RunningStoreServer;
  let kv: KVClient;
  let maintenance: MaintenanceClient;
  let cluster: ClusterClient;
  const creds = grpc.credentials.createInsecure();

  before(async () => {
    running = await startStoreServer();
    kv = new KVClient(running.endpoint, creds);
    maintenance = new MaintenanceClient(running.endpoint, creds);
    cluster = new ClusterClient(running.endpoint, creds);
  });

  after(async () => {
    kv.close();
    maintenance.close();
    cluster.close();
    await running.stop();
  });

  it("fills headers as etcd: member ids and term from the server, revision from the store", async () => {
    const put = await callUnary(kv, kv.Put, { key: b("h1"), value: b("v") });
    const { server } = running;
    assert.deepEqual(put.header, {
      clusterId: server.clusterId,
      memberId: server.memberId,
      revision: server.store.revision,
      raftTerm: 2,
    });
    const counted = await callUnary(kv, kv.Range, {
      key: b("h"),
      rangeEnd: b("i"),
      countOnly: true,
      limit: 1,
    });
    assert.deepEqual([counted.count, counted.kvs.length, counted.more], [1, 0, false]);
    const range = await callUnary(kv, kv.Range, { key: b("h1") });
    assert.equal(range.header?.revision, server.store.revision);
    assert.equal(str(range.kvs[0]?.value), "v");
    const list = await callUnary(cluster, cluster.MemberList, {});
    assert.deepEqual(list.header, {
      clusterId: server.clusterId,
      memberId: server.memberId,
      revision: 0,
      raftTerm: 2,
    });
    assert.equal(list.members[0]?.ID, server.memberId);
    assert.deepEqual(list.members[0]?.clientURLs, [`http://${running.endpoint}`]);
  });

  it("runs txns with both branches, nested txns and op responses", async () => {
    await callUnary(kv, kv.Put, { key: b("t1"), value: b("a") });
    const response = await callUnary(kv, kv.Txn, {
      compare: [{ key: b("t1"), target: 3, result: 0, targetUnion: { case: "value", value: b("a") } }],
      success: [
        { request: { case: "requestPut", value: { key: b("t2"), value: b("b") } } },
        { request: { case: "requestRange", value: { key: b("t1"), rangeEnd: b("t3") } } },
        {
          request: {
            case: "requestTxn",
            value: { success: [{ request: { case: "requestDeleteRange", value: { key: b("t1") } } }] },
          },
        },
      ],
    });
    assert.equal(response.succeeded, true);
    const [put, range, nested] = response.responses;
    assert.equal(put?.response?.case, "responsePut");
    assert.ok(range?.response?.case === "responseRange");
    assert.deepEqual(
      range.response.value.kvs.map((kv) => str(kv.key)),
      ["t1", "t2"],
    );
    // Op headers carry only the revision.
    assert.equal(range.response.value.header?.memberId, 0n);
    assert.ok(nested?.response?.case === "responseTxn");
    assert.deepEqual(nested.response.value.header, { clusterId: 0n, memberId: 0n, revision: 0, raftTerm: 0 });
  });

  it("rejects bad requests with etcd's codes and texts before the store runs them", async () => {
    const INVALID = grpc.status.INVALID_ARGUMENT;
    await rejects(callUnary(kv, kv.Range, { key: b("") }), INVALID, "etcdserver: key is not provided");
    await rejects(callUnary(kv, kv.Put, { key: b("") }), INVALID, "etcdserver: key is not provided");
    await rejects(callUnary(kv, kv.DeleteRange, {}), INVALID, "etcdserver: key is not provided");
    await rejects(
      callUnary(kv, kv.Put, { key: b("k"), value: b("v"), ignoreValue: true }),
      INVALID,
      "etcdserver: value is provided",
    );
    await rejects(
      callUnary(kv, kv.Put, { key: b("k"), lease: 5n, ignoreLease: true }),
      INVALID,
      "etcdserver: lease is provided",
    );
    await rejects(
      callUnary(kv, kv.Range, { key: b("k"), sortTarget: 9 as etcdserverpb.RangeRequest_SortTarget }),
      INVALID,
      "etcdserver: invalid sort option",
    );
    await rejects(callUnary(kv, kv.Txn, { success: [{}] }), INVALID, "etcdserver: key not found");
    const put = (key: string) => ({ request: { case: "requestPut" as const, value: { key: b(key) } } });
    await rejects(
      callUnary(kv, kv.Txn, { success: [put("d"), put("d")] }),
      INVALID,
      "etcdserver: duplicate key given in txn request",
    );
    await rejects(
      callUnary(kv, kv.Txn, { success: Array.from({ length: 129 }, (_, i) => put(`k${i}`)) }),
      INVALID,
      "etcdserver: too many operations in txn request",
    );
    await rejects(
      callUnary(kv, kv.Range, { key: b("k"), revision: 1e6 }),
      grpc.status.OUT_OF_RANGE,
      "etcdserver: mvcc: required revision is a future revision",
    );
    await rejects(
      callUnary(kv, kv.Put, { key: b("k"), lease: 42n }),
      grpc.status.NOT_FOUND,
      "etcdserver: requested lease not found",
    );
    await rejects(
      callUnary(kv, kv.Put, { key: b("big"), value: Buffer.alloc(1.5 * 1024 * 1024) }),
      INVALID,
      "etcdserver: request is too large",
    );
  });

  it("compacts, then refuses reads below the compaction", async () => {
    const { header } = await callUnary(kv, kv.Put, { key: b("c1"), value: b("1") });
    const revision = header?.revision ?? 0;
    await callUnary(kv, kv.Put, { key: b("c1"), value: b("2") });
    const compacted = await callUnary(kv, kv.Compact, { revision, physical: true });
    assert.equal(compacted.header?.revision, running.server.store.revision);
    await rejects(
      callUnary(kv, kv.Range, { key: b("c1"), revision: revision - 1 }),
      grpc.status.OUT_OF_RANGE,
      "etcdserver: mvcc: required revision has been compacted",
    );
    await rejects(
      callUnary(kv, kv.Compact, { revision }),
      grpc.status.OUT_OF_RANGE,
      "etcdserver: mvcc: required revision has been compacted",
    );
  });

  it("answers Maintenance Status, Hash, HashKV, Alarm and Defragment (no header on the last two)", async () => {
    const status = await callUnary(maintenance, maintenance.Status, {});
    assert.equal(status.version, "3.4.23");
    assert.equal(status.leader, running.server.memberId);
    assert.equal(status.header?.revision, running.server.store.revision);
    const hash = await callUnary(maintenance, maintenance.HashKV, { revision: 0 });
    assert.equal(hash.header?.memberId, running.server.memberId);
    assert.equal(typeof (await callUnary(maintenance, maintenance.Hash, {})).hash, "number");
    const alarm = await callUnary(maintenance, maintenance.Alarm, {});
    assert.deepEqual(alarm, { header: undefined, alarms: [] });
    assert.deepEqual(await callUnary(maintenance, maintenance.Defragment, {}), { header: undefined });
  });

  it("answers unserved RPCs as grpc-go does for an unregistered service or method", async () => {
    const UNIMPLEMENTED = grpc.status.UNIMPLEMENTED;
    const lease = new LeaseClient(running.endpoint, creds);
    const auth = new AuthClient(running.endpoint, creds);
    await rejects(
      callUnary(lease, lease.LeaseGrant, { TTL: 5 }),
      UNIMPLEMENTED,
      "unknown service etcdserverpb.Lease",
    );
    await rejects(callUnary(auth, auth.AuthStatus, {}), UNIMPLEMENTED, "unknown service etcdserverpb.Auth");
    await rejects(
      callUnary(cluster, cluster.MemberAdd, { peerURLs: ["http://127.0.0.1:1"] }),
      UNIMPLEMENTED,
      "unknown method MemberAdd for service etcdserverpb.Cluster",
    );
    await rejects(
      callUnary(maintenance, maintenance.MoveLeader, {}),
      UNIMPLEMENTED,
      "unknown method MoveLeader for service etcdserverpb.Maintenance",
    );
    const snapshot = maintenance.Snapshot({});
    await new Promise<void>((resolve) => {
      snapshot.on("data", () => assert.fail("no snapshot data expected"));
      snapshot.on("error", (error: grpc.ServiceError) => {
        assert.equal(error.code, UNIMPLEMENTED);
        assert.equal(error.details, "unknown method Snapshot for service etcdserverpb.Maintenance");
        resolve();
      });
    });
    const watch = new WatchClient(running.endpoint, creds);
    const stream = watch.Watch();
    await new Promise<void>((resolve) => {
      stream.on("data", () => assert.fail("no watch data expected"));
      stream.on("error", (error: grpc.ServiceError) => {
        assert.equal(error.code, UNIMPLEMENTED);
        assert.equal(error.details, "unknown service etcdserverpb.Watch");
        resolve();
      });
      stream.write({ requestUnion: { case: "createRequest", value: { key: b("w") } } });
    });
    lease.close();
    auth.close();
    watch.close();
  });

  it("fails at once with no leader when the client asks for one (hasleader metadata)", async () => {
    running.server.leader = 0n;
    try {
      const metadata = new grpc.Metadata();
      metadata.set("hasleader", "true");
      await rejects(
        callUnary(kv, kv.Range, { key: b("k") }, metadata),
        grpc.status.UNAVAILABLE,
        "etcdserver: no leader",
      );
      // Without the metadata the call is served.
      await callUnary(kv, kv.Range, { key: b("k") });
    } finally {
      running.server.leader = running.server.memberId;
    }
  });

  it("serves grpc.health.v1.Health: SERVING for the empty name, NOT_FOUND otherwise", async () => {
    const Health = makeClient<grpc.Client & Record<string, unknown>>(HealthService, "grpc.health.v1.Health");
    const client = new Health(running.endpoint, creds);
    const check = (service: string) =>
      new Promise<number>((resolve, reject) => {
        client.makeUnaryRequest(
          HealthService.Check.path,
          encodeHealthCheckRequest,
          decodeHealthCheckResponse,
          { service },
          (error, response) => (error ? reject(error) : resolve(response?.status ?? -1)),
        );
      });
    assert.equal(await check(""), 1);
    await rejects(check("etcdserverpb.KV"), grpc.status.NOT_FOUND, "unknown service");
    client.close();
  });

  it("refuses a message over max-request-bytes + 512 KiB with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const error = await callUnary(kv, kv.Put, {
      key: b("huge"),
      value: Buffer.alloc(2 * 1024 * 1024 + 10),
    }).then(
      () => assert.fail("an oversized request must fail"),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED);
    // grpc-go's text, as etcd sends it (src/api/oversize.ts), not grpc-js's "Received message ... (N vs M)".
    assert.match(error.details, /^grpc: received message larger than max \(\d+ vs\. 2097152\)$/);
    await callUnary(kv, kv.Put, { key: b("after-huge"), value: b("ok") });
  });

  it("answers malformed protobuf with grpc-go's INTERNAL text and keeps serving", async () => {
    const Raw = makeClient<grpc.Client>(
      {
        Put: { ...KVClient.service.Put, requestSerialize: (bytes: Buffer) => bytes },
      } as grpc.ServiceDefinition,
      "etcdserverpb.KV",
    );
    const raw = new Raw(running.endpoint, creds);
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      raw.makeUnaryRequest(
        "/etcdserverpb.KV/Put",
        (bytes: Buffer) => bytes,
        etcdserverpb.PutResponse.decode,
        Buffer.from([0x0a, 0x7f, 0x01]),
        (e) => resolve(e as grpc.ServiceError),
      );
    });
    assert.equal(error.code, grpc.status.INTERNAL);
    assert.equal(error.details, "grpc: error unmarshalling request: unexpected EOF");
    raw.close();
    await callUnary(kv, kv.Put, { key: b("after-bad-proto"), value: b("ok") });
  });

  it("survives a client that disconnects mid-request and garbage on the port", async () => {
    const port = running.port.address().port;
    // Half an HTTP/2 preface, then a hang-up; then an HTTP/2 preface followed by garbage frames.
    for (const bytes of [
      Buffer.from("PRI * HTTP/2.0\r\n"),
      Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.alloc(64, 0xff)]),
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, "127.0.0.1", () => socket.end(bytes));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
      });
    }
    // A call whose client goes away before the answer.
    const call = kv.Put({ key: b("abandoned"), value: Buffer.alloc(100_000) }, () => {});
    call.cancel();
    await callUnary(kv, kv.Put, { key: b("still-serving"), value: b("ok") });
  });
});

describe("grpc-go's oversize text", () => {
  it("rewrites only grpc-js's oversize message", () => {
    assert.equal(
      grpcGoOversizeText("Received message larger than max (2726307 vs 2097152)"),
      "grpc: received message larger than max (2726307 vs. 2097152)",
    );
    assert.equal(grpcGoOversizeText("Received message larger than max (1 vs 2) and more"), null);
    assert.equal(grpcGoOversizeText("Error deserializing request"), null);
  });
});
