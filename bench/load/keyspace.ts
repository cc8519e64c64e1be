import type * as grpc from "@grpc/grpc-js";
import { methods, unaryCall } from "./connections.js";
import { BenchError } from "./errors.js";
import {
  encodeCompactionRequest,
  encodeDeleteRangeRequest,
  encodeRangeRequest,
  prefixEnd,
  readDeleteRangeResponse,
  readRangeResponse,
} from "./wire.js";

/** etcdctl's deadlines: 60 s for the pre-check Get (the run's context), 30 s for cleanup calls. */
export const precheckTimeoutMs = 60_000;
export const cleanupTimeoutMs = 30_000;

/** Go's %q for the strings we print: quotes, backslash escapes, \xNN for control bytes. */
export function goQuote(text: string): string {
  let quoted = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (char === '"' || char === "\\") quoted += `\\${char}`;
    else if (char === "\n") quoted += "\\n";
    else if (char === "\t") quoted += "\\t";
    else if (char === "\r") quoted += "\\r";
    else if (code < 0x20 || code === 0x7f) quoted += `\\x${code.toString(16).padStart(2, "0")}`;
    else quoted += char;
  }
  return `${quoted}"`;
}

/** etcdctl's refusal when the prefix already holds keys (exit code 3). */
export function prefixNotEmptyMessage(prefix: string): string {
  return `prefix ${goQuote(prefix)} has keys. Delete with etcdctl del --prefix ${prefix} first`;
}

/** check perf's pre-check: Range(prefix, WithPrefix, limit 1) must find nothing. */
export async function assertPrefixEmpty(client: grpc.Client, prefix: string): Promise<number> {
  const key = Buffer.from(prefix);
  const response = readRangeResponse(
    await unaryCall(
      client,
      methods.range,
      encodeRangeRequest({ key, rangeEnd: prefixEnd(key), limit: 1 }),
      precheckTimeoutMs,
    ),
  );
  if (response.kvCount > 0) throw new BenchError("BENCH_PREFIX_NOT_EMPTY", prefixNotEmptyMessage(prefix));
  return response.revision;
}

export interface CleanupOptions {
  autoCompact: boolean;
  autoDefrag: boolean;
  /** One connection per endpoint, for Defragment (which acts on the member it reaches). */
  endpointClients: ReadonlyArray<{ endpoint: string; client: grpc.Client }>;
  /** Where etcdctl's "Compacting…"/"Defragmenting…" lines go. */
  print: (line: string) => void;
}

export interface CleanupResult {
  deleteRevision: number;
  deleted: number;
}

/** check perf's cleanup: DeleteRange(prefix), then optionally Compact(physical) and Defragment. */
export async function cleanupPrefix(
  client: grpc.Client,
  prefix: string,
  options: CleanupOptions,
): Promise<CleanupResult> {
  const key = Buffer.from(prefix);
  const response = await unaryCall(
    client,
    methods.deleteRange,
    encodeDeleteRangeRequest(key, prefixEnd(key)),
    cleanupTimeoutMs,
  );
  const { revision: deleteRevision, deleted } = readDeleteRangeResponse(response);
  if (options.autoCompact) {
    options.print(`Compacting with revision ${deleteRevision}`);
    await unaryCall(client, methods.compact, encodeCompactionRequest(deleteRevision, true), cleanupTimeoutMs);
    options.print(`Compacted with revision ${deleteRevision}`);
  }
  if (options.autoDefrag) {
    for (const { endpoint, client: endpointClient } of options.endpointClients) {
      options.print(`Defragmenting ${goQuote(endpoint)}`);
      await unaryCall(endpointClient, methods.defragment, Buffer.alloc(0), cleanupTimeoutMs);
      options.print(`Defragmented ${goQuote(endpoint)}`);
    }
  }
  return { deleteRevision, deleted };
}
