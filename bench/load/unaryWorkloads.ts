import { randomBytes } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { checkPerfKeySuffixBytes, checkPerfValueBytes } from "./config.js";
import { methods, unaryCall } from "./connections.js";
import type { IssueRequest } from "./engine.js";
import { BenchError } from "./errors.js";
import type { UnarySender } from "./transport.js";
import { putRandomInt63, putZigZagSafeInteger, varintLengthMaxBytes } from "./varint.js";
import {
  encodePutRequest,
  encodeRangeRequest,
  FramedMessage,
  PutRequestTemplate,
  TxnPutTemplate,
  varintSize,
} from "./wire.js";

/**
 * The unary workloads' request makers. Each client owns a request encoded once; per request only the
 * key bytes are patched in place. A client's previous request has completed before its next starts,
 * so the transport is done with the bytes by then (grpc-js copies them into its frame, HTTP/2 has
 * written them).
 */

/**
 * etcdctl check perf's request: key = prefix + a 256-byte buffer shared by all requests, with the
 * varint of a random int63 written at its start (later bytes keep what earlier, longer varints left
 * there, as in etcdctl); value = 1,024 zero bytes.
 */
export function checkPerfIssuer(sender: UnarySender, clients: number, prefix: string): IssueRequest {
  const keySuffix = Buffer.alloc(checkPerfKeySuffixBytes);
  const template = PutRequestTemplate.build(
    Buffer.from(prefix),
    checkPerfKeySuffixBytes,
    Buffer.alloc(checkPerfValueBytes),
  );
  const requests = Array.from({ length: clients }, () => template.clone());
  return (client) => {
    const request = requests[client]!;
    putRandomInt63(keySuffix, 0);
    keySuffix.copy(request.buffer, request.keySuffixOffset);
    sender.send(client, methods.put, request.frame);
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
export function putIssuer(sender: UnarySender, clients: number, options: KeyedWorkloadOptions): IssueRequest {
  assertKeySpaceFits(options);
  const keySuffix = Buffer.alloc(options.keySizeBytes);
  const template = PutRequestTemplate.build(
    Buffer.from(options.prefix),
    options.keySizeBytes,
    randomBytes(options.valueSizeBytes),
  );
  const requests = Array.from({ length: clients }, () => template.clone());
  let sequence = 0;
  return (client) => {
    const request = requests[client]!;
    const index = options.sequentialKeys
      ? sequence++ % options.keySpaceSize
      : Math.floor(Math.random() * options.keySpaceSize);
    putZigZagSafeInteger(keySuffix, 0, index);
    keySuffix.copy(request.buffer, request.keySuffixOffset);
    sender.send(client, methods.put, request.frame);
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
 * issuer once the key space is written (through `setupConnections`, with grpc-js).
 */
export async function rangeIssuer(
  sender: UnarySender,
  setupConnections: readonly grpc.Client[],
  options: KeyedWorkloadOptions & { consistency: "l" | "s" },
): Promise<IssueRequest> {
  assertKeySpaceFits(options);
  if (options.keySpaceSize > rangeKeySpaceMax) {
    throw new BenchError("BENCH_BAD_ARGS", `range: --key-space-size must not exceed ${rangeKeySpaceMax}`);
  }
  const value = randomBytes(options.valueSizeBytes);
  const requests: FramedMessage[] = [];
  for (let index = 0; index < options.keySpaceSize; index++) {
    requests.push(
      FramedMessage.of(
        encodeRangeRequest({ key: keyOf(options, index), serializable: options.consistency === "s" }),
      ),
    );
  }
  let next = 0;
  const writer = async (lane: number): Promise<void> => {
    for (let index = next++; index < options.keySpaceSize; index = next++) {
      const request = encodePutRequest(keyOf(options, index), value);
      await unaryCall(
        setupConnections[lane % setupConnections.length]!,
        methods.put,
        request,
        populateTimeoutMs,
      );
    }
  };
  const lanes = Math.min(populateInFlightMax, options.keySpaceSize);
  await Promise.all(Array.from({ length: lanes }, (_, lane) => writer(lane)));
  // Range requests are never patched, so clients can share them.
  return (client) => {
    sender.send(client, methods.range, requests[Math.floor(Math.random() * requests.length)]!);
  };
}

/**
 * etcd tools/benchmark `txn-put`: each Txn has no compares and `txnOps` puts in its success branch,
 * on keys ((i * txnOps) + j) mod key-space-size, i counting transactions.
 */
export function txnPutIssuer(
  sender: UnarySender,
  clients: number,
  options: KeyedWorkloadOptions & { txnOps: number },
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
  let sequence = 0;
  return (client) => {
    const request = requests[client]!;
    const txnIndex = sequence++;
    for (let op = 0; op < options.txnOps; op++) {
      putZigZagSafeInteger(keySuffix, 0, (txnIndex * options.txnOps + op) % options.keySpaceSize);
      keySuffix.copy(request.buffer, request.keySuffixOffsets[op]!);
    }
    sender.send(client, methods.txn, request.frame);
  };
}
