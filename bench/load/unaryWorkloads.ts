import { randomBytes } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { checkPerfKeySuffixBytes, checkPerfValueBytes } from "./config.js";
import { errorText, methods, passThrough, unaryCall } from "./connections.js";
import type { IssueRequest } from "./engine.js";
import { BenchError } from "./errors.js";
import { putRandomInt63, putZigZagSafeInteger, varintLengthMaxBytes } from "./varint.js";
import {
  encodePutRequest,
  encodeRangeRequest,
  PutRequestTemplate,
  TxnPutTemplate,
  varintSize,
} from "./wire.js";

/** The engine's completion callback, called once per issued request. */
export type CompleteRequest = (client: number, errorText: string | null) => void;

type UnaryCallback = (error: grpc.ServiceError | null) => void;

/**
 * One completion closure per client, built once: grpc-js needs a callback per call, and handing it the
 * same function each time keeps the hot path free of per-request closures.
 */
function clientCallbacks(clients: number, complete: CompleteRequest): UnaryCallback[] {
  const callbacks: UnaryCallback[] = [];
  for (let client = 0; client < clients; client++) {
    callbacks.push((error) => complete(client, error === null ? null : errorText(error)));
  }
  return callbacks;
}

/** Client c uses connection c mod connections (etcd's benchmark spreads clients the same way). */
function connectionOf(connections: readonly grpc.Client[], client: number): grpc.Client {
  return connections[client % connections.length]!;
}

/**
 * etcdctl check perf's request: key = prefix + a 256-byte buffer shared by all requests, with the
 * varint of a random int63 written at its start (later bytes keep what earlier, longer varints left
 * there, as in etcdctl); value = 1,024 zero bytes. Each client owns a pre-encoded PutRequest whose
 * key suffix is overwritten per request: a client's previous request has completed before its next
 * starts, so grpc-js is done with the buffer by then.
 */
export function checkPerfIssuer(
  connections: readonly grpc.Client[],
  clients: number,
  prefix: string,
  complete: CompleteRequest,
): IssueRequest {
  const keySuffix = Buffer.alloc(checkPerfKeySuffixBytes);
  const template = PutRequestTemplate.build(
    Buffer.from(prefix),
    checkPerfKeySuffixBytes,
    Buffer.alloc(checkPerfValueBytes),
  );
  const requests = Array.from({ length: clients }, () => template.clone());
  const callbacks = clientCallbacks(clients, complete);
  return (client) => {
    const request = requests[client]!;
    putRandomInt63(keySuffix, 0);
    keySuffix.copy(request.buffer, request.keySuffixOffset);
    connectionOf(connections, client).makeUnaryRequest(
      methods.put,
      passThrough,
      passThrough,
      request.buffer,
      callbacks[client]!,
    );
  };
}

export interface KeyedWorkloadOptions {
  prefix: string;
  keySizeBytes: number;
  valueSizeBytes: number;
  keySpaceSize: number;
  sequentialKeys: boolean;
}

function assertKeySpaceFits(options: KeyedWorkloadOptions): void {
  const needed = varintSize((options.keySpaceSize - 1) * 2);
  if (needed > options.keySizeBytes || needed > varintLengthMaxBytes) {
    throw new BenchError(
      "BENCH_BAD_ARGS",
      `--key-size ${options.keySizeBytes} is too small for --key-space-size ${options.keySpaceSize} (needs ${needed} bytes)`,
    );
  }
}

/**
 * etcd tools/benchmark `put`: keys are prefix + key-size bytes starting with the varint of a random
 * (or sequential) index in the key space, values are random bytes.
 */
export function putIssuer(
  connections: readonly grpc.Client[],
  clients: number,
  options: KeyedWorkloadOptions,
  complete: CompleteRequest,
): IssueRequest {
  assertKeySpaceFits(options);
  const keySuffix = Buffer.alloc(options.keySizeBytes);
  const template = PutRequestTemplate.build(
    Buffer.from(options.prefix),
    options.keySizeBytes,
    randomBytes(options.valueSizeBytes),
  );
  const requests = Array.from({ length: clients }, () => template.clone());
  const callbacks = clientCallbacks(clients, complete);
  let sequence = 0;
  return (client) => {
    const request = requests[client]!;
    const index = options.sequentialKeys
      ? sequence++ % options.keySpaceSize
      : Math.floor(Math.random() * options.keySpaceSize);
    putZigZagSafeInteger(keySuffix, 0, index);
    keySuffix.copy(request.buffer, request.keySuffixOffset);
    connectionOf(connections, client).makeUnaryRequest(
      methods.put,
      passThrough,
      passThrough,
      request.buffer,
      callbacks[client]!,
    );
  };
}

/** The range workload's key space is written first and each key's request pre-encoded: bounded here. */
export const rangeKeySpaceMax = 1_000_000;
/** Puts in flight while the range workload writes its key space. */
const populateInFlightMax = 64;
const populateTimeoutMs = 30_000;

/** Key i of a keyed workload: prefix + key-size bytes starting with varint(i). */
export function keyOf(options: KeyedWorkloadOptions, index: number): Buffer {
  const prefix = Buffer.from(options.prefix);
  const key = Buffer.alloc(prefix.length + options.keySizeBytes);
  prefix.copy(key);
  putZigZagSafeInteger(key, prefix.length, index);
  return key;
}

/**
 * etcd tools/benchmark `range`, over a key space we write first (etcd's reads one given key): each
 * request reads one random key of the space, linearizable (`l`) or serializable (`s`). Returns the
 * issuer once the key space is written.
 */
export async function rangeIssuer(
  connections: readonly grpc.Client[],
  clients: number,
  options: KeyedWorkloadOptions & { consistency: "l" | "s" },
  complete: CompleteRequest,
): Promise<IssueRequest> {
  assertKeySpaceFits(options);
  if (options.keySpaceSize > rangeKeySpaceMax) {
    throw new BenchError("BENCH_BAD_ARGS", `range: --key-space-size must not exceed ${rangeKeySpaceMax}`);
  }
  const value = randomBytes(options.valueSizeBytes);
  const requests: Buffer[] = [];
  for (let index = 0; index < options.keySpaceSize; index++) {
    requests.push(
      encodeRangeRequest({ key: keyOf(options, index), serializable: options.consistency === "s" }),
    );
  }
  let next = 0;
  const writer = async (lane: number): Promise<void> => {
    for (let index = next++; index < options.keySpaceSize; index = next++) {
      const request = encodePutRequest(keyOf(options, index), value);
      await unaryCall(connections[lane % connections.length]!, methods.put, request, populateTimeoutMs);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(populateInFlightMax, options.keySpaceSize) }, (_, lane) => writer(lane)),
  );
  const callbacks = clientCallbacks(clients, complete);
  return (client) => {
    const request = requests[Math.floor(Math.random() * requests.length)]!;
    connectionOf(connections, client).makeUnaryRequest(
      methods.range,
      passThrough,
      passThrough,
      request,
      callbacks[client]!,
    );
  };
}

/**
 * etcd tools/benchmark `txn-put`: each Txn has no compares and `txnOps` puts in its success branch,
 * on keys ((i * txnOps) + j) mod key-space-size, i counting transactions.
 */
export function txnPutIssuer(
  connections: readonly grpc.Client[],
  clients: number,
  options: KeyedWorkloadOptions & { txnOps: number },
  complete: CompleteRequest,
): IssueRequest {
  assertKeySpaceFits(options);
  const keySuffix = Buffer.alloc(options.keySizeBytes);
  const template = TxnPutTemplate.build(
    Buffer.from(options.prefix),
    options.keySizeBytes,
    randomBytes(options.valueSizeBytes),
    options.txnOps,
  );
  const requests = Array.from({ length: clients }, () => template.clone());
  const callbacks = clientCallbacks(clients, complete);
  let sequence = 0;
  return (client) => {
    const request = requests[client]!;
    const txnIndex = sequence++;
    for (let op = 0; op < options.txnOps; op++) {
      putZigZagSafeInteger(keySuffix, 0, (txnIndex * options.txnOps + op) % options.keySpaceSize);
      keySuffix.copy(request.buffer, request.keySuffixOffsets[op]!);
    }
    connectionOf(connections, client).makeUnaryRequest(
      methods.txn,
      passThrough,
      passThrough,
      request.buffer,
      callbacks[client]!,
    );
  };
}
