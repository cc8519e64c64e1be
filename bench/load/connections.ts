import * as grpc from "@grpc/grpc-js";
import { BenchError } from "./errors.js";

/** Fully-qualified gRPC methods the bench calls (spec/etcd-v3-api.md §2). */
export const methods = {
  range: "/etcdserverpb.KV/Range",
  put: "/etcdserverpb.KV/Put",
  deleteRange: "/etcdserverpb.KV/DeleteRange",
  txn: "/etcdserverpb.KV/Txn",
  compact: "/etcdserverpb.KV/Compact",
  watch: "/etcdserverpb.Watch/Watch",
  leaseGrant: "/etcdserverpb.Lease/LeaseGrant",
  leaseRevoke: "/etcdserverpb.Lease/LeaseRevoke",
  leaseKeepAlive: "/etcdserverpb.Lease/LeaseKeepAlive",
  defragment: "/etcdserverpb.Maintenance/Defragment",
  status: "/etcdserverpb.Maintenance/Status",
} as const;

/**
 * Requests are Buffers the bench encoded itself and responses stay raw Buffers: grpc-js frames the
 * bytes we hand it, and the hot path never decodes a response it only needs the status of.
 */
export const passThrough = (bytes: Buffer): Buffer => bytes;

/** etcd's clientv3 receive limit (math.MaxInt32): big Range answers must not fail on our side. */
const receiveMessageBytesMax = 2_147_483_647;

/**
 * Channel options, all explicit (STYLE.md). `grpc.use_local_subchannel_pool` gives each channel its
 * own subchannel, hence its own TCP connection: without it grpc-js shares one subchannel among
 * channels with equal options, and 1,000 "clients" would be one connection. The distinct
 * `grpc-node.bench_connection_index` keeps the keys distinct as well, for the same reason.
 * Retries are off so a failed write is counted once, as etcdctl counts it; channelz is off because it
 * costs ~5% CPU per call (PERFORMANCE.md).
 */
export function channelOptions(connectionIndex: number): grpc.ChannelOptions {
  return {
    "grpc.use_local_subchannel_pool": 1,
    "grpc-node.bench_connection_index": connectionIndex,
    "grpc.enable_retries": 0,
    "grpc.enable_channelz": 0,
    "grpc.max_receive_message_length": receiveMessageBytesMax,
    "grpc.max_send_message_length": -1,
  };
}

/** Opens `count` separate connections, spread round-robin over `endpoints`, and waits until all are up. */
export async function openConnections(
  endpoints: readonly string[],
  count: number,
  dialTimeoutMs: number,
): Promise<grpc.Client[]> {
  const clients: grpc.Client[] = [];
  for (let index = 0; index < count; index++) {
    const endpoint = endpoints[index % endpoints.length]!;
    clients.push(new grpc.Client(endpoint, grpc.credentials.createInsecure(), channelOptions(index)));
  }
  const deadline = Date.now() + dialTimeoutMs;
  const failures = await Promise.all(
    clients.map(
      (client, index) =>
        new Promise<string | null>((resolve) => {
          client.waitForReady(deadline, (error) => {
            resolve(error === undefined || error === null ? null : endpoints[index % endpoints.length]!);
          });
        }),
    ),
  );
  const failed = failures.find((endpoint) => endpoint !== null);
  if (failed !== undefined && failed !== null) {
    closeConnections(clients);
    throw new BenchError(
      "BENCH_CONNECT",
      `cannot connect to ${failed} within ${dialTimeoutMs} ms (is an etcd server listening there?)`,
    );
  }
  return clients;
}

export function closeConnections(clients: readonly grpc.Client[]): void {
  for (const client of clients) client.close();
}

/** The text etcd's Go client would show for a failed call: the server's status message. */
export function errorText(error: grpc.ServiceError): string {
  return error.details.length > 0 ? error.details : error.message;
}

/** One unary call on the cold path (pre-check, cleanup, setup), with a deadline; errors become BenchErrors. */
export function unaryCall(
  client: grpc.Client,
  method: string,
  request: Buffer,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      method,
      passThrough,
      passThrough,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, response) => {
        if (error !== null) reject(new BenchError("BENCH_RPC", errorText(error)));
        else if (response === undefined) reject(new BenchError("BENCH_RPC", `${method}: empty response`));
        else resolve(response);
      },
    );
  });
}
