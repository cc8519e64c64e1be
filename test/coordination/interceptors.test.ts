/**
 * What etcd's interceptors do to the Lock and Election services, over gRPC against the store double:
 * `hasleader` without a leader is refused at once (unary and Observe), a `hasleader` Observe stream ends
 * with "etcdserver: no leader" once the member has had no leader for three election timeouts, a
 * learner refuses them, and the services' own errors arrive as UNKNOWN with etcd's text.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type ClientPort, listenClientPort } from "../../src/api/clientPort.js";
import { createCoordinationServices } from "../../src/api/coordination.js";
import { createApi } from "../../src/api/index.js";
import { Errors } from "../../src/errors.js";
import { callUnary, ElectionClient, LockClient, type v3electionpb } from "../../src/proto/index.js";
import { WatchHub } from "../../src/watch/hub.js";
import { feedHub } from "../watch/watchServer.js";
import { LeaseStoreServer } from "./storeDouble.js";
import { b, startObserve, waitFor } from "./support.js";

const ELECTION_TIMEOUT_MS = 20;

function hasLeader(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("hasleader", "true");
  return metadata;
}

const status = (code: keyof typeof Errors) => ({
  code: Errors[code].grpcCode,
  details: Errors[code].message,
});

describe("Lock and Election behind etcd's interceptor checks", () => {
  let server: LeaseStoreServer;
  let hub: WatchHub;
  let port: ClientPort;
  let lock: LockClient;
  let election: ElectionClient;
  let api: ReturnType<typeof createApi>;

  before(async () => {
    server = new LeaseStoreServer();
    hub = new WatchHub({ store: server.store, header: () => server.header(), fanout: "inline" });
    await hub.start();
    feedHub(server.store, hub);
    api = createApi(
      server,
      createCoordinationServices({ server, hub, electionTimeoutMs: ELECTION_TIMEOUT_MS }),
    );
    port = await listenClientPort({
      host: "127.0.0.1",
      port: 0,
      grpcServer: api.grpcServer,
      http: api.httpHandler,
    });
    const endpoint = `127.0.0.1:${port.address().port}`;
    lock = new LockClient(endpoint, grpc.credentials.createInsecure());
    election = new ElectionClient(endpoint, grpc.credentials.createInsecure());
  });
  after(async () => {
    lock?.close();
    election?.close();
    await hub?.close();
    await port?.close(200);
    api?.grpcServer.forceShutdown();
    await server?.store.close();
  });

  const settleError = async (pending: Promise<unknown>) => {
    try {
      await pending;
    } catch (error) {
      const e = error as grpc.ServiceError;
      return { code: e.code, details: e.details };
    }
    assert.fail("the call succeeded");
  };

  it("answers the services' own errors as UNKNOWN with etcd's text", async () => {
    assert.deepEqual(await settleError(callUnary(election, election.Leader, { name: b("none") })), {
      code: grpc.status.UNKNOWN,
      details: "election: no leader",
    });
    assert.deepEqual(await settleError(callUnary(lock, lock.Unlock, { key: b("") })), {
      code: grpc.status.UNKNOWN,
      details: "etcdserver: key is not provided",
    });
  });

  it("refuses hasleader calls at once without a leader; ends hasleader Observe streams on leader loss", async () => {
    const campaign = await callUnary(election, election.Campaign, { name: b("e"), lease: 7n, value: b("v") });
    assert.equal(campaign.leader?.rev, campaign.header?.revision);

    const observing = election.Observe({ name: b("e") }, hasLeader());
    const seen: v3electionpb.LeaderResponse[] = [];
    let ended: { code: number; details: string } | null = null;
    observing.on("data", (response: v3electionpb.LeaderResponse) => seen.push(response));
    observing.on("error", (error: grpc.ServiceError) => {
      ended = { code: error.code, details: error.details };
    });
    const plain = startObserve(election, "e");
    await waitFor(() => seen.length === 1 && plain.responses.length === 1, "both observers see the leader");

    const leaderId = server.leader;
    server.leader = 0n;
    try {
      await waitFor(() => ended !== null, "the hasleader stream to end");
      assert.deepEqual(ended, status("NoLeader"));
      assert.equal(plain.ended, null, "a stream without hasleader goes on");
      assert.deepEqual(
        await settleError(callUnary(lock, lock.Lock, { name: b("l"), lease: 7n }, hasLeader())),
        status("NoLeader"),
      );
      const refusedStream = election.Observe({ name: b("e") }, hasLeader());
      const refusal = await new Promise<{ code: number; details: string }>((resolve) =>
        refusedStream.on("error", (error: grpc.ServiceError) =>
          resolve({ code: error.code, details: error.details }),
        ),
      );
      assert.deepEqual(refusal, status("NoLeader"));
      plain.cancel();
    } finally {
      server.leader = leaderId;
    }
  });

  it("a learner refuses Lock and Observe", async () => {
    server.isLearner = true;
    try {
      assert.deepEqual(
        await settleError(callUnary(lock, lock.Lock, { name: b("l"), lease: 7n })),
        status("NotSupportedForLearner"),
      );
      const observation = startObserve(election, "e");
      await waitFor(() => observation.ended !== null, "the learner's refusal");
      assert.deepEqual(observation.ended, status("NotSupportedForLearner"));
    } finally {
      server.isLearner = false;
    }
  });
});
