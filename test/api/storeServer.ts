import { type ClientPort, listenClientPort } from "../../src/api/clientPort.js";
import { type Api, type ApiOptions, createApi } from "../../src/api/index.js";
import { MemoryBackend } from "../../src/backend/memory.js";
import { ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION } from "../../src/config/version.js";
import { EtcdError } from "../../src/errors.js";
import { MvccStore } from "../../src/mvcc/store.js";
import { isTxnReadOnly } from "../../src/mvcc/txn.js";
import type { WriteOp } from "../../src/mvcc/types.js";
import { etcdserverpb } from "../../src/proto/index.js";
import type { EtcdServerApi } from "../../src/server/api.js";
import * as convert from "../../src/server/convert.js";
import { clusterIdFor, memberIdFor } from "../../src/server/ids.js";

/**
 * A test double of the member: EtcdServerApi over a bare MvccStore on the in-memory backend, no raft. Each
 * write is "applied" at once with the next index, so revisions follow the store's rules exactly; what the
 * double adds is what etcd adds around the store and is visible to clients: the request-size limit on the
 * raft request, header ids derived as etcd derives them, a one-member member list, alarms, health.
 */
export class StoreServer implements EtcdServerApi {
  readonly store = MvccStore.open({ backend: new MemoryBackend() });
  readonly limits = { maxTxnOps: 128, maxRequestBytes: 1.5 * 1024 * 1024 };
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** A fresh single-node etcd reports term 2 (spec §4). */
  raftTerm = 2;
  leader: bigint;
  clientUrls: string[] = [];
  private index = 1;
  private readonly alarms: { memberID: bigint; alarm: etcdserverpb.AlarmType }[] = [];
  private nextRequestId = 1n;

  constructor(
    readonly peerUrl = "http://127.0.0.1:2380",
    readonly name = "default",
  ) {
    this.memberId = memberIdFor([peerUrl], "etcd-cluster");
    this.clusterId = clusterIdFor([this.memberId]);
    this.leader = this.memberId;
  }

  header() {
    return { clusterId: this.clusterId, memberId: this.memberId, raftTerm: this.raftTerm };
  }

  /** etcd compares the marshaled raft request with --max-request-bytes (spec §14.1). */
  private admit(request: etcdserverpb.InternalRaftRequestInit): void {
    const id = this.nextRequestId++;
    const size = etcdserverpb.InternalRaftRequest.encode({ ...request, header: { ID: id } }).length;
    if (size > this.limits.maxRequestBytes) throw new EtcdError("RequestTooLarge");
  }

  private apply<O extends WriteOp>(op: O) {
    return this.store.apply(++this.index, this.raftTerm, op);
  }

  async range(request: etcdserverpb.RangeRequest) {
    return convert.rangeResponseToWire(this.store.range(convert.rangeRequestToStore(request)));
  }

  async put(request: etcdserverpb.PutRequest) {
    this.admit({ put: request });
    return convert.putResponseToWire(this.apply({ type: "put", request }).response);
  }

  async deleteRange(request: etcdserverpb.DeleteRangeRequest) {
    this.admit({ deleteRange: request });
    return convert.deleteRangeResponseToWire(this.apply({ type: "deleteRange", request }).response);
  }

  async txn(request: etcdserverpb.TxnRequest) {
    const txn = convert.txnRequestToStore(request);
    if (isTxnReadOnly(txn)) return convert.txnResponseToWire(this.store.txnReadOnly(txn));
    this.admit({ txn: request });
    return convert.txnResponseToWire(this.apply({ type: "txn", request: txn }).response);
  }

  async compact(request: etcdserverpb.CompactionRequest) {
    this.admit({ compaction: request });
    const result = this.apply({ type: "compaction", request: convert.compactionRequestToStore(request) });
    if (request.physical) await result.physicalDone;
    return convert.compactionResponseToWire(result.response);
  }

  async status(): Promise<etcdserverpb.StatusResponseInit> {
    return {
      header: { revision: this.store.revision },
      version: ETCD_SERVER_VERSION,
      dbSize: this.store.backend.sizeBytes(),
      dbSizeInUse: this.store.backend.sizeInUseBytes(),
      leader: this.leader,
      raftIndex: this.index,
      raftTerm: this.raftTerm,
      raftAppliedIndex: this.index,
      errors: [
        ...(this.leader === 0n ? [new EtcdError("NoLeader").message] : []),
        ...this.alarms.map((a) => `memberID:${a.memberID} alarm:${etcdserverpb.AlarmType_name[a.alarm]} `),
      ],
    };
  }

  async hash() {
    const { hash, revision } = this.store.hash();
    return { header: { revision }, hash };
  }

  async hashKV(request: etcdserverpb.HashKVRequest) {
    const result = this.store.hashKV(request.revision);
    return {
      header: { revision: result.revision },
      hash: result.hash,
      compactRevision: result.compactRevision,
    };
  }

  async alarm(request: etcdserverpb.AlarmRequest): Promise<etcdserverpb.AlarmResponseInit> {
    const { action, memberID, alarm } = request;
    if (action === etcdserverpb.AlarmRequest_AlarmAction.GET) {
      return { alarms: this.alarms.filter((a) => alarm === 0 || a.alarm === alarm) };
    }
    const at = this.alarms.findIndex((a) => a.memberID === memberID && a.alarm === alarm);
    if (action === etcdserverpb.AlarmRequest_AlarmAction.ACTIVATE) {
      if (at === -1) this.alarms.push({ memberID, alarm });
      return { alarms: [{ memberID, alarm }] };
    }
    if (at === -1) return { alarms: [] };
    return { alarms: this.alarms.splice(at, 1) };
  }

  async defragment() {
    return {};
  }

  async memberList() {
    return {
      header: { revision: 0 },
      members: [
        { ID: this.memberId, name: this.name, peerURLs: [this.peerUrl], clientURLs: this.clientUrls },
      ],
    };
  }

  async health(options: { excludeAlarms: readonly number[]; timeoutMs: number }) {
    if (this.alarms.some((a) => !options.excludeAlarms.includes(a.alarm)))
      return { health: false, reason: "ALARM" };
    if (this.leader === 0n) return { health: false, reason: "RAFT NO LEADER" };
    return { health: true, reason: "" };
  }

  versions() {
    return { etcdserver: ETCD_SERVER_VERSION, etcdcluster: ETCD_CLUSTER_VERSION };
  }
}

export interface RunningStoreServer {
  server: StoreServer;
  api: Api;
  port: ClientPort;
  /** host:port, as etcdctl's --endpoints takes it. */
  endpoint: string;
  stop(): Promise<void>;
}

/** Serves a fresh StoreServer through createApi + listenClientPort on a free loopback port. */
export async function startStoreServer(
  server = new StoreServer(),
  apiOptions: ApiOptions = {},
): Promise<RunningStoreServer> {
  const api = createApi(server, apiOptions);
  const port = await listenClientPort({
    host: "127.0.0.1",
    port: 0,
    grpcServer: api.grpcServer,
    http: api.httpHandler,
  });
  const endpoint = `127.0.0.1:${port.address().port}`;
  server.clientUrls = [`http://${endpoint}`];
  return {
    server,
    api,
    port,
    endpoint,
    async stop() {
      await port.close(200);
      api.grpcServer.forceShutdown();
      await server.store.close();
    },
  };
}
