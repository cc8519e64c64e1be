import * as grpc from "@grpc/grpc-js";
import { callUnary, etcdserverpb, KVClient } from "../../src/proto/index.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import type { AckModel, ObservedKey, Op, TxnWrite } from "./model.js";

/**
 * Concurrent writers against one member, over several gRPC connections. Each writer owns
 * KEYS_PER_WRITER keys and runs one operation at a time (put, delete of a key it knows exists, or a txn
 * of puts and deletes guarded by a compare that must hold), recording every acknowledgement in the
 * model. A writer stops at its first error: that op's outcome is unknown, and nothing after it is sent.
 */

export const KEY_PREFIX = "dur/";
const KEY_RANGE_END = "dur0"; // the prefix with its last byte incremented
export const KEYS_PER_WRITER = 16;
/** The largest random padding in a value, so records of many sizes go through the WAL. */
const VALUE_PADDING_BYTES_MAX = 2048;
/** A call that gets no answer this long is given up (its op is then unknown). */
const CALL_DEADLINE_MS = 10_000;
/** The most keys one txn writes. */
const TXN_WRITES_MAX = 4;

const utf8 = (s: string): Buffer => Buffer.from(s);

export function keyOf(writer: number, index: number): string {
  return `${KEY_PREFIX}w${writer.toString().padStart(2, "0")}/k${index.toString().padStart(2, "0")}`;
}

export interface WriterRun {
  /** Problems the acknowledgements themselves showed (a revision not increasing, a failed compare). */
  problems: string[];
  /** The first error each stopped writer saw (for the report; expected once the member is killed). */
  errors: string[];
}

export interface WritersOptions {
  endpoint: string;
  model: AckModel;
  writers: number;
  connections: number;
  seed: number;
  /** A tag that makes this run's values unique (the round number). */
  round: number;
  /** Stop each writer after this many ops (a clean run); default: run until the first error. */
  opsPerWriter?: number;
}

export async function runWriters(options: WritersOptions): Promise<WriterRun> {
  const channels = Array.from(
    { length: options.connections },
    // Distinct channel options give distinct connections (grpc-js shares subchannels otherwise).
    (_unused, i) =>
      new KVClient(options.endpoint, grpc.credentials.createInsecure(), { "etcd-ts.test.connection": i }),
  );
  const run: WriterRun = { problems: [], errors: [] };
  try {
    await Promise.all(
      Array.from({ length: options.writers }, (_unused, writer) =>
        runWriter(channels[writer % channels.length] as KVClient, writer, options, run),
      ),
    );
  } finally {
    for (const channel of channels) channel.close();
  }
  return run;
}

async function runWriter(
  kv: KVClient,
  writer: number,
  options: WritersOptions,
  run: WriterRun,
): Promise<void> {
  const rng = new Xoshiro128(options.seed * 1000 + options.round * 100 + writer);
  const { model } = options;
  for (let seq = 0; options.opsPerWriter === undefined || seq < options.opsPerWriter; seq++) {
    const op = chooseOp(rng, model, writer, `r${options.round}.w${writer}.s${seq}.`);
    let result: { revision: number; deleted?: number };
    try {
      result = await perform(kv, model, op);
    } catch (error) {
      if (error instanceof CompareFailed) {
        // The txn was answered (nothing applied): not a doubt but a finding.
        run.problems.push(`writer ${writer}: ${error.message}`);
        return;
      }
      model.unanswer(writer, op);
      run.errors.push(`writer ${writer}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    run.problems.push(...model.ack(writer, op, result.revision, result.deleted));
  }
}

function chooseOp(rng: Xoshiro128, model: AckModel, writer: number, tag: string): Op {
  const value = (): string => tag + "x".repeat(rng.nextInt(VALUE_PADDING_BYTES_MAX + 1));
  const key = (): string => keyOf(writer, rng.nextInt(KEYS_PER_WRITER));
  const dice = rng.nextInt(100);
  if (dice < 15) {
    const target = key();
    if (model.state(target).value !== null) return { kind: "delete", key: target };
  }
  if (dice < 75) return { kind: "put", key: key(), value: value() };
  // A txn: the first write is a put (so the txn always makes a revision), the rest puts or deletes.
  const count = 2 + rng.nextInt(TXN_WRITES_MAX - 1);
  const first = rng.nextInt(KEYS_PER_WRITER);
  const writes: TxnWrite[] = [];
  for (let i = 0; i < count; i++) {
    const target = keyOf(writer, (first + i) % KEYS_PER_WRITER);
    writes.push({ key: target, value: i > 0 && rng.nextInt(3) === 0 ? null : value() });
  }
  return { kind: "txn", writes };
}

async function perform(
  kv: KVClient,
  model: AckModel,
  op: Op,
): Promise<{ revision: number; deleted?: number }> {
  const options = { deadline: Date.now() + CALL_DEADLINE_MS };
  const metadata = new grpc.Metadata();
  switch (op.kind) {
    case "put": {
      const response = await callUnary(
        kv,
        kv.Put,
        { key: utf8(op.key), value: utf8(op.value) },
        metadata,
        options,
      );
      return { revision: response.header?.revision ?? 0 };
    }
    case "delete": {
      const response = await callUnary(kv, kv.DeleteRange, { key: utf8(op.key) }, metadata, options);
      return { revision: response.header?.revision ?? 0, deleted: response.deleted };
    }
    case "txn": {
      const first = op.writes[0] as TxnWrite;
      const response = await callUnary(
        kv,
        kv.Txn,
        {
          // Holds by construction (the writer owns the key and knows its last acknowledged write), so a
          // failed compare means the member lost or invented a write.
          compare: [
            {
              key: utf8(first.key),
              target: etcdserverpb.Compare_CompareTarget.MOD,
              result: etcdserverpb.Compare_CompareResult.EQUAL,
              targetUnion: { case: "modRevision", value: model.state(first.key).modRevision },
            },
          ],
          success: op.writes.map((w) =>
            w.value === null
              ? { request: { case: "requestDeleteRange" as const, value: { key: utf8(w.key) } } }
              : {
                  request: { case: "requestPut" as const, value: { key: utf8(w.key), value: utf8(w.value) } },
                },
          ),
        },
        metadata,
        options,
      );
      if (!response.succeeded) throw new CompareFailed(first.key);
      return { revision: response.header?.revision ?? 0 };
    }
  }
}

/** A txn whose compare on the writer's own key failed: the member's state is not what it acknowledged. */
export class CompareFailed extends Error {
  constructor(key: string) {
    super(`txn compare on ${key} failed: the member does not hold the acknowledged mod revision`);
  }
}

/** Every key under the writers' prefix, read linearizably, and the header revision. */
export async function readAll(
  endpoint: string,
): Promise<{ keys: Map<string, ObservedKey>; revision: number }> {
  const kv = new KVClient(endpoint, grpc.credentials.createInsecure());
  try {
    const response = await callUnary(
      kv,
      kv.Range,
      { key: utf8(KEY_PREFIX), rangeEnd: utf8(KEY_RANGE_END) },
      new grpc.Metadata(),
      { deadline: Date.now() + CALL_DEADLINE_MS },
    );
    const keys = new Map<string, ObservedKey>();
    for (const kv of response.kvs) {
      keys.set(Buffer.from(kv.key).toString(), {
        value: Buffer.from(kv.value).toString(),
        modRevision: kv.modRevision,
      });
    }
    return { keys, revision: response.header?.revision ?? 0 };
  } finally {
    kv.close();
  }
}
