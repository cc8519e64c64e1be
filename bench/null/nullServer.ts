import * as grpc from "@grpc/grpc-js";
import {
  type etcdserverpb,
  type KVHandlers,
  KVService,
  type LeaseHandlers,
  LeaseService,
  type MaintenanceHandlers,
  MaintenanceService,
  type WatchHandlers,
  WatchService,
} from "../../src/proto/index.js";

/**
 * A gRPC "etcd" that does nothing: the same protos and codecs on @grpc/grpc-js as the real server,
 * answering Put with a ResponseHeader (revision + 1 per put, nothing stored) and Range with an empty
 * result, so check perf's pre-check and cleanup work. Measured beside etcd, it is the ceiling a Node
 * gRPC server reaches on this machine: what is left once grpc-js and the codecs have taken their share.
 *
 * Lease calls answer with the id and TTL asked for; Watch only acknowledges creates and cancels (there
 * are no events to send). Every other method is grpc-js's UNIMPLEMENTED.
 */

const clusterId = 0x6e756c6cn; // "null"
const memberId = 0x6e756c6cn;
const raftTerm = 1;
/** etcd's receive limit: 1.5 MiB request + 512 KiB of gRPC overhead (spec §1). */
const receiveMessageBytesMax = 2_097_152;
/** Lease TTL granted when the request asks for none, in seconds (etcd's minimum TTL is 5 s). */
const leaseTtlSecondsDefault = 5;

export interface NullServer {
  /** host:port it listens on. */
  endpoint: string;
  /** Writes acknowledged so far (the revision minus one). */
  readonly puts: number;
  stop(): Promise<void>;
}

export async function startNullServer(host: string, port: number): Promise<NullServer> {
  let revision = 1;
  let puts = 0;
  let nextLeaseId = 1n;
  const header = (): etcdserverpb.ResponseHeaderInit => ({ clusterId, memberId, revision, raftTerm });

  const kv: KVHandlers = {
    Range: (_call, callback) => callback(null, { header: header(), count: 0 }),
    Put: (_call, callback) => {
      revision++;
      puts++;
      callback(null, { header: header() });
    },
    DeleteRange: (_call, callback) => callback(null, { header: header(), deleted: 0 }),
    Txn: (call, callback) => {
      if (call.request.success.length > 0) revision++;
      callback(null, { header: header(), succeeded: true });
    },
    Compact: (_call, callback) => callback(null, { header: header() }),
  };
  const maintenance: Pick<MaintenanceHandlers, "Status" | "Defragment"> = {
    Status: (_call, callback) =>
      callback(null, { header: header(), version: "0.0.0-null", leader: memberId }),
    Defragment: (_call, callback) => callback(null, { header: header() }),
  };
  const lease: Pick<LeaseHandlers, "LeaseGrant" | "LeaseRevoke" | "LeaseKeepAlive"> = {
    LeaseGrant: (call, callback) => {
      const id = call.request.ID !== 0n ? call.request.ID : nextLeaseId++;
      callback(null, { header: header(), ID: id, TTL: call.request.TTL || leaseTtlSecondsDefault });
    },
    LeaseRevoke: (_call, callback) => callback(null, { header: header() }),
    LeaseKeepAlive: (call) => {
      call.on("data", (request: etcdserverpb.LeaseKeepAliveRequest) => {
        call.write({ header: header(), ID: request.ID, TTL: leaseTtlSecondsDefault });
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  };
  const watch: WatchHandlers = {
    Watch: (call) => {
      let nextWatchId = 0;
      call.on("data", (request: etcdserverpb.WatchRequest) => {
        const union = request.requestUnion;
        if (union?.case === "createRequest") {
          call.write({ header: header(), watchId: nextWatchId++, created: true });
        } else if (union?.case === "cancelRequest") {
          call.write({ header: header(), watchId: union.value.watchId, canceled: true });
        }
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  };

  const server = new grpc.Server({
    "grpc.max_receive_message_length": receiveMessageBytesMax,
    "grpc.max_send_message_length": -1,
    "grpc.enable_channelz": 0,
  });
  server.addService(KVService, kv);
  server.addService(MaintenanceService, maintenance);
  server.addService(LeaseService, lease);
  server.addService(WatchService, watch);
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error !== null) reject(error);
      else resolve(bound);
    });
  });
  return {
    endpoint: `${host}:${boundPort}`,
    get puts() {
      return puts;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
