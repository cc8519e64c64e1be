import * as grpc from "@grpc/grpc-js";
import { assert } from "../../src/assert.js";
import { callUnary, etcdserverpb, KVClient, WatchClient } from "../../src/proto/index.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import type { CasExpect, HistoryRecorder, OpInput, OpOutput } from "./history.js";

/**
 * Concurrent clients doing put, get and compare-and-set (a txn: compare value or mod revision, then put)
 * on a few keys of a cluster, every op recorded with invoke and complete times. Each client talks to one
 * member and moves to the next after an error, so the history mixes members. Values are unique in the
 * run (`<client>.<seq>`), which is what lets the checker tell writes apart.
 *
 * A watcher follows the whole key prefix from the run's start revision, moving to another member when its
 * stream breaks and resuming right after the last revision it saw; its events are the run's write log.
 */

/** An op's client-side deadline: past it, the outcome is unknown. */
export const OP_DEADLINE_MS_DEFAULT = 1_500;
/** After an error a client waits this long before its next op (no hot loop against a dead member). */
const ERROR_BACKOFF_MS = 50;
/** The most a client waits between two ops (uniform) by default, to keep histories a checkable size. */
const THINK_MS_MAX_DEFAULT = 4;
/** Events the watcher keeps; a run that writes more is too long for one history. */
const WATCH_EVENTS_MAX = 2_000_000;

const utf8 = (s: string): Buffer => Buffer.from(s);

export interface WorkloadOptions {
  endpoints: readonly string[];
  recorder: HistoryRecorder;
  keys: readonly string[];
  clients: number;
  seed: number;
  opDeadlineMs?: number;
  /** Serializable gets (answered locally, no ReadIndex): not linearizable under partitions, for proving the checker. */
  serializableReads?: boolean;
  /** A client waits uniform [0, thinkMsMax] ms between ops. */
  thinkMsMax?: number;
}

export interface Workload {
  /** Stops issuing ops; resolves when every client's last op has settled. */
  stop(): Promise<void>;
  /** Per client, the count of ops that failed, and the last error texts (bounded). */
  errors(): { count: number; samples: string[] };
}

/** Error samples kept for the report. */
const ERROR_SAMPLES_MAX = 20;

export function startWorkload(options: WorkloadOptions): Workload {
  assert(
    options.endpoints.length > 0 && options.keys.length > 0 && options.clients > 0,
    "a workload needs endpoints, keys, clients",
  );
  let stopped = false;
  const errorState = { count: 0, samples: [] as string[] };
  const channels = Array.from({ length: options.clients }, (_unused, client) =>
    options.endpoints.map(
      (endpoint) =>
        // A distinct option per client gives each its own connection (grpc-js shares subchannels otherwise).
        new KVClient(endpoint, grpc.credentials.createInsecure(), {
          "etcd-ts.test.client": client,
          "grpc.initial_reconnect_backoff_ms": 100,
          "grpc.max_reconnect_backoff_ms": 1_000,
        }),
    ),
  );
  const runs = channels.map((kvs, client) =>
    runClient(
      client,
      kvs,
      options,
      () => stopped,
      (error) => {
        errorState.count++;
        if (errorState.samples.length < ERROR_SAMPLES_MAX)
          errorState.samples.push(`client ${client}: ${error}`);
      },
    ),
  );
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(runs);
      for (const kvs of channels) for (const kv of kvs) kv.close();
    },
    errors: () => errorState,
  };
}

async function runClient(
  client: number,
  kvs: readonly KVClient[],
  options: WorkloadOptions,
  stopped: () => boolean,
  onError: (error: string) => void,
): Promise<void> {
  const rng = new Xoshiro128(options.seed * 1_000 + client);
  const seen = new Map<string, { value: string | null; modRevision: number }>();
  let member = client % kvs.length;
  for (let seq = 0; !stopped(); seq++) {
    const key = options.keys[rng.nextInt(options.keys.length)] as string;
    const input = chooseInput(rng, key, `${client}.${seq}`, seen);
    const id = options.recorder.invoke(client, input);
    try {
      const output = await perform(kvs[member] as KVClient, input, options);
      options.recorder.complete(id, output);
      learn(seen, input, output);
    } catch (error) {
      const text = errorText(error);
      options.recorder.fail(id, text);
      onError(text);
      member = (member + 1) % kvs.length;
      await sleep(ERROR_BACKOFF_MS);
    }
    await sleep(rng.nextInt((options.thinkMsMax ?? THINK_MS_MAX_DEFAULT) + 1));
  }
}

function chooseInput(
  rng: Xoshiro128,
  key: string,
  value: string,
  seen: ReadonlyMap<string, { value: string | null; modRevision: number }>,
): OpInput {
  const dice = rng.nextInt(100);
  if (dice < 45) return { kind: "get", key };
  if (dice < 80) return { kind: "put", key, value };
  const last = seen.get(key) ?? { value: null, modRevision: 0 };
  const expect: CasExpect =
    last.value !== null && rng.nextInt(2) === 0 ? { value: last.value } : { modRevision: last.modRevision };
  return { kind: "cas", key, expect, value };
}

function learn(
  seen: Map<string, { value: string | null; modRevision: number }>,
  input: OpInput,
  output: OpOutput,
): void {
  if (output.kind === "get") seen.set(input.key, { value: output.value, modRevision: output.modRevision });
  else if (input.kind !== "get" && (output.kind === "put" || output.succeeded)) {
    seen.set(input.key, { value: input.value, modRevision: output.revision });
  }
}

async function perform(kv: KVClient, input: OpInput, options: WorkloadOptions): Promise<OpOutput> {
  const callOptions = { deadline: Date.now() + (options.opDeadlineMs ?? OP_DEADLINE_MS_DEFAULT) };
  const metadata = new grpc.Metadata();
  switch (input.kind) {
    case "get": {
      const response = await callUnary(
        kv,
        kv.Range,
        { key: utf8(input.key), serializable: options.serializableReads === true },
        metadata,
        callOptions,
      );
      const found = response.kvs[0];
      return {
        kind: "get",
        value: found === undefined ? null : Buffer.from(found.value).toString(),
        modRevision: found?.modRevision ?? 0,
        revision: response.header?.revision ?? 0,
      };
    }
    case "put": {
      const response = await callUnary(
        kv,
        kv.Put,
        { key: utf8(input.key), value: utf8(input.value) },
        metadata,
        callOptions,
      );
      return { kind: "put", revision: response.header?.revision ?? 0 };
    }
    case "cas": {
      const compare =
        "value" in input.expect
          ? {
              key: utf8(input.key),
              target: etcdserverpb.Compare_CompareTarget.VALUE,
              result: etcdserverpb.Compare_CompareResult.EQUAL,
              targetUnion: { case: "value" as const, value: utf8(input.expect.value) },
            }
          : {
              key: utf8(input.key),
              target: etcdserverpb.Compare_CompareTarget.MOD,
              result: etcdserverpb.Compare_CompareResult.EQUAL,
              targetUnion: { case: "modRevision" as const, value: input.expect.modRevision },
            };
      const response = await callUnary(
        kv,
        kv.Txn,
        {
          compare: [compare],
          success: [
            { request: { case: "requestPut", value: { key: utf8(input.key), value: utf8(input.value) } } },
          ],
        },
        metadata,
        callOptions,
      );
      return { kind: "cas", succeeded: response.succeeded, revision: response.header?.revision ?? 0 };
    }
  }
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as Partial<grpc.ServiceError>).code;
    return code === undefined
      ? error.message
      : `${grpc.status[code] ?? code}: ${(error as grpc.ServiceError).details}`;
  }
  return String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------------
// The watcher

export interface WatchedEvent {
  revision: number;
  key: string;
  /** null for a delete. */
  value: string | null;
}

export interface Watcher {
  readonly events: readonly WatchedEvent[];
  /** Stream (re)starts, with the member and the start revision, for the report. */
  readonly restarts: string[];
  /** Problems the stream itself showed (a compaction, a cancel). */
  readonly problems: string[];
  /** Resolves once the watcher has seen `revision` (or rejects after `timeoutMs`). */
  waitFor(revision: number, timeoutMs: number): Promise<void>;
  close(): void;
}

/** Watches [prefix, prefixEnd) from `startRevision` on, across members. */
export function startWatcher(endpoints: readonly string[], prefix: string, startRevision: number): Watcher {
  const events: WatchedEvent[] = [];
  const restarts: string[] = [];
  const problems: string[] = [];
  let closed = false;
  let member = 0;
  let clients: WatchClient[] = [];
  let stream: grpc.ClientDuplexStream<etcdserverpb.WatchRequestInit, etcdserverpb.WatchResponse> | null =
    null;
  const rangeEnd = prefixEnd(prefix);
  const next = (): number =>
    events.length === 0 ? startRevision : (events[events.length - 1] as WatchedEvent).revision + 1;

  const open = (): void => {
    if (closed) return;
    const endpoint = endpoints[member % endpoints.length] as string;
    const client = new WatchClient(endpoint, grpc.credentials.createInsecure(), {
      "etcd-ts.test.watcher": restarts.length,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1_000,
    });
    clients.push(client);
    const from = next();
    restarts.push(`${endpoint} from revision ${from}`);
    const current = client.Watch();
    stream = current;
    let retired = false;
    const retry = (): void => {
      if (retired) return;
      retired = true;
      current.cancel();
      client.close();
      clients = clients.filter((c) => c !== client);
      member++;
      if (!closed) setTimeout(open, 100);
    };
    current.on("data", (response: etcdserverpb.WatchResponse) => {
      if (response.compactRevision !== 0 || (response.canceled && !closed)) {
        problems.push(
          `watch on ${endpoint} canceled (compact revision ${response.compactRevision}): ${response.cancelReason}`,
        );
        retry();
        return;
      }
      for (const event of response.events) {
        const kv = event.kv;
        if (kv === undefined) continue;
        assert(events.length < WATCH_EVENTS_MAX, "watcher past its event bound");
        events.push({
          revision: kv.modRevision,
          key: Buffer.from(kv.key).toString(),
          value: event.type === 1 ? null : Buffer.from(kv.value).toString(),
        });
      }
    });
    current.on("error", retry);
    current.on("end", retry);
    current.write({
      requestUnion: { case: "createRequest", value: { key: utf8(prefix), rangeEnd, startRevision: from } },
    });
  };
  open();
  return {
    events,
    restarts,
    problems,
    waitFor: async (revision, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (next() <= revision) {
        if (Date.now() > deadline) {
          throw new Error(
            `watcher reached revision ${next() - 1}, not ${revision}, within ${timeoutMs} ms (${restarts.join("; ")})`,
          );
        }
        await sleep(50);
      }
    },
    close: () => {
      closed = true;
      stream?.cancel();
      for (const client of clients) client.close();
    },
  };
}

/** The end of the range of keys starting with `prefix` (its last byte plus one). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  assert(end.length > 0 && (end[end.length - 1] as number) < 0xff, "a prefix ending below 0xff");
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  return end;
}
