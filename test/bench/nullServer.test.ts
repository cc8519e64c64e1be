import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { methods } from "../../bench/load/connections.js";
import { defaultStartOptions, nullTarget, type RunningTarget } from "../../bench/load/targets.js";
import {
  type CompleteRequest,
  grpcJsSender,
  http2Sender,
  type UnarySender,
} from "../../bench/load/transport.js";
import { encodePutRequest, FramedMessage } from "../../bench/load/wire.js";
import { callUnary, KVClient, LeaseClient } from "../../src/proto/index.js";

describe("the no-op gRPC KV server (bench/null), in its own process", () => {
  let running: RunningTarget;
  let kv: KVClient;
  let lease: LeaseClient;

  before(async () => {
    running = await nullTarget().start(defaultStartOptions);
    kv = new KVClient(running.endpoints[0]!, grpc.credentials.createInsecure());
    lease = new LeaseClient(running.endpoints[0]!, grpc.credentials.createInsecure());
  });

  after(async () => {
    kv.close();
    lease.close();
    await running.stop();
  });

  it("runs as a separate process we can measure", () => {
    assert.equal(typeof running.pid, "number");
    assert.notEqual(running.pid, process.pid);
    assert.match(running.endpoints[0]!, /^127\.0\.0\.1:\d+$/);
  });

  it("answers Put with a ResponseHeader whose revision advances by one per put, storing nothing", async () => {
    const key = Buffer.from("/null/a");
    const first = await callUnary(kv, kv.Put, { key, value: Buffer.alloc(1024) });
    const second = await callUnary(kv, kv.Put, { key, value: Buffer.from("v") });
    assert.ok(first.header !== undefined && first.header !== null);
    assert.ok(second.header !== undefined && second.header !== null);
    assert.equal(second.header.revision, first.header.revision + 1);
    assert.notEqual(first.header.clusterId, 0n);
    const range = await callUnary(kv, kv.Range, { key, rangeEnd: Buffer.from("/null0") });
    assert.equal(range.kvs.length, 0, "nothing was stored");
    assert.equal(range.header?.revision, second.header.revision, "Range reports the current revision");
  });

  it("answers check perf's cleanup DeleteRange and Compact", async () => {
    const deleted = await callUnary(kv, kv.DeleteRange, {
      key: Buffer.from("/p/"),
      rangeEnd: Buffer.from("/p0"),
    });
    assert.equal(deleted.deleted, 0);
    const compacted = await callUnary(kv, kv.Compact, { revision: 1, physical: true });
    assert.ok(compacted.header !== null && compacted.header !== undefined);
  });

  it("grants leases and answers keepalives with their id", async () => {
    const granted = await callUnary(lease, lease.LeaseGrant, { TTL: 100 });
    assert.notEqual(granted.ID, 0n);
    assert.equal(granted.TTL, 100);
    const stream = lease.LeaseKeepAlive();
    const answer = new Promise<bigint>((resolve, reject) => {
      stream.once("data", (response: { ID: bigint }) => resolve(response.ID));
      stream.once("error", reject);
    });
    stream.write({ ID: granted.ID });
    assert.equal(await answer, granted.ID);
    stream.end();
  });

  it("says UNIMPLEMENTED for what it does not fake", async () => {
    await assert.rejects(callUnary(lease, lease.LeaseTimeToLive, { ID: 1n }), (error: grpc.ServiceError) => {
      assert.equal(error.code, grpc.status.UNIMPLEMENTED);
      return true;
    });
  });
});

describe("both transports against the no-op server report the same outcomes", () => {
  let running: RunningTarget;
  let connection: grpc.Client;

  before(async () => {
    running = await nullTarget().start(defaultStartOptions);
    connection = new grpc.Client(running.endpoints[0]!, grpc.credentials.createInsecure());
  });

  after(async () => {
    connection.close();
    await running.stop();
  });

  async function outcomes(
    sender: (complete: CompleteRequest) => Promise<UnarySender>,
  ): Promise<(string | null)[]> {
    const results: (string | null)[] = [];
    let notify: (() => void) | null = null;
    const opened = await sender((client, errorText) => {
      results[client] = errorText;
      notify?.();
    });
    const put = FramedMessage.of(encodePutRequest("/t/k", "v"));
    const unknown = FramedMessage.of(Buffer.alloc(0));
    const done = new Promise<void>((resolve) => {
      notify = () => {
        if (results.filter((entry) => entry !== undefined).length === 2) resolve();
      };
    });
    opened.send(0, methods.put, put);
    opened.send(1, "/etcdserverpb.KV/NoSuchMethod", unknown);
    await done;
    opened.close();
    return results;
  }

  it("grpc-js and raw HTTP/2: a Put succeeds, an unknown method fails with the server's status text", async () => {
    const viaGrpcJs = await outcomes(async (complete) => grpcJsSender([connection], 2, complete));
    const viaHttp2 = await outcomes((complete) => http2Sender(running.endpoints, 1, 2, 2000, complete));
    assert.equal(viaGrpcJs[0], null);
    assert.match(viaGrpcJs[1] ?? "", /NoSuchMethod/);
    assert.deepEqual(viaHttp2, viaGrpcJs);
  });
});
