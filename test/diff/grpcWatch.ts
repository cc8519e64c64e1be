import * as grpc from "@grpc/grpc-js";
import {
  callUnary,
  type etcdserverpb,
  KVClient,
  LeaseClient,
  type mvccpb,
  WatchClient,
} from "../../src/proto/index.js";
import { WatchSession } from "../watch/watchServer.js";
import type { Step, StepOutput } from "./harness.js";
import type { DiffTarget } from "./targets.js";

/**
 * The watch details etcdctl cannot reach, as a differential scenario over gRPC: the same requests sent to
 * each target, every response written down (header revision, watch id, flags, events; not the member and
 * cluster ids or the raft term, which differ between any two members), and the transcripts compared step
 * by step with the harness's compare() and allow-list, as the etcdctl scenarios are.
 *
 * Each step opens its own Watch stream(s), so that a response one target sends late cannot be read by a
 * later step. A step reads the responses it expects (so a missing one shows as "(none)") and then waits
 * EXTRA_RESPONSE_WAIT_MS for any more (so a surplus one shows too).
 */

/** The progress interval both targets run with (etcd's flag takes a duration). */
export const GRPC_WATCH_PROGRESS_INTERVAL_MS = 500;
export const GRPC_WATCH_FLAGS = [
  `--experimental-watch-progress-notify-interval=${GRPC_WATCH_PROGRESS_INTERVAL_MS}ms`,
];

/** How long a step waits for a response it expects before writing "(none)". */
const RESPONSE_WAIT_MS = 3000;
/** How long a step waits after the expected responses for surplus ones. */
const EXTRA_RESPONSE_WAIT_MS = 250;
/** Large enough for an unfragmented 3 MB response (grpc-js refuses more than 4 MiB by default). */
const CLIENT_RECEIVE_BYTES_MAX = 16 * 1024 * 1024;

const b = (s: string) => Buffer.from(s);
const text = (u: Uint8Array | undefined) => Buffer.from(u ?? []).toString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function describeKv(kv: mvccpb.KeyValue | undefined): string {
  if (kv === undefined) return "-";
  const value = kv.value.length > 64 ? `<${kv.value.length} bytes>` : text(kv.value);
  return `${text(kv.key)}=${value} c${kv.createRevision} m${kv.modRevision} v${kv.version} l${kv.lease}`;
}

/** One response as a line: everything but the member-specific header fields. */
export function describeResponse(r: etcdserverpb.WatchResponse): string {
  const flags = [
    r.created ? "created" : "",
    r.canceled ? "canceled" : "",
    r.compactRevision !== 0 ? `compact=${r.compactRevision}` : "",
    r.cancelReason !== "" ? `reason=${JSON.stringify(r.cancelReason)}` : "",
    r.fragment ? "fragment" : "",
  ].filter((f) => f !== "");
  const events = r.events.map(
    (e) =>
      `${e.type === 1 ? "DELETE" : "PUT"} ${describeKv(e.kv)}${e.prevKv ? ` prev(${describeKv(e.prevKv)})` : ""}`,
  );
  return `id=${r.watchId} rev=${r.header?.revision ?? 0}${flags.length > 0 ? ` ${flags.join(" ")}` : ""}${
    events.length > 0 ? ` [${events.join("; ")}]` : ""
  }`;
}

interface Context {
  kv: KVClient;
  lease: LeaseClient;
  watch: WatchClient;
  /** Streams opened by the step; closed after it. */
  session(): WatchSession;
  put(key: string, value: string | Buffer, lease?: bigint): Promise<number>;
  del(key: string, rangeEnd?: string, prevKv?: boolean): Promise<number>;
  /** Reads `count` responses from `s` (each waited RESPONSE_WAIT_MS), then any surplus ones. */
  read(s: WatchSession, count: number): Promise<string>;
}

interface GrpcStep {
  name: string;
  run(ctx: Context): Promise<string>;
}

async function readResponses(s: WatchSession, count: number): Promise<string> {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const deadline = Date.now() + RESPONSE_WAIT_MS;
    while (s.responses.length === 0 && s.errors.length === 0 && Date.now() < deadline) await sleep(10);
    const next = s.responses.shift();
    if (next === undefined) {
      lines.push(
        s.errors.length > 0 ? `(stream error ${s.errors[0]?.code}: ${s.errors[0]?.details})` : "(none)",
      );
      break;
    }
    lines.push(describeResponse(next));
  }
  await sleep(EXTRA_RESPONSE_WAIT_MS);
  for (const extra of s.responses.splice(0)) lines.push(`surplus: ${describeResponse(extra)}`);
  return lines.join("\n");
}

/** The scenario: each step's transcript is compared with etcd's. Revisions are read from the writes. */
const STEPS: GrpcStep[] = [
  {
    name: "writes: put g/a, g/b, g/a, delete g/a, put g/c",
    async run({ put, del }) {
      const revs = [await put("g/a", "1"), await put("g/b", "1"), await put("g/a", "2")];
      revs.push(await del("g/a"), await put("g/c", "1"));
      return revs.join(" ");
    },
  },
  {
    name: "NOPUT: a replay of g/ from revision 2 holds only the delete",
    async run({ session, read }) {
      const s = session();
      s.create({ key: b("g/"), rangeEnd: b("g0"), startRevision: 2, filters: [0] });
      return read(s, 2);
    },
  },
  {
    name: "NODELETE with prev_kv: a replay of g/ from revision 2 holds only the puts",
    async run({ session, read }) {
      const s = session();
      s.create({ key: b("g/"), rangeEnd: b("g0"), startRevision: 2, filters: [1], prevKv: true });
      return read(s, 2);
    },
  },
  {
    name: "NOPUT and NODELETE live: no response for a put or a delete; a progress request is answered",
    async run({ session, read, put, del }) {
      const s = session();
      s.create({ key: b("g/"), rangeEnd: b("g0"), filters: [0, 1] });
      const created = await read(s, 1);
      await put("g/d", "1");
      await del("g/d");
      s.progress();
      return `${created}\n${await read(s, 1)}`;
    },
  },
  {
    name: "NOPUT live with prev_kv: the delete comes with the previous value",
    async run({ session, read, put, del }) {
      const s = session();
      s.create({ key: b("g/e"), filters: [0], prevKv: true });
      const created = await read(s, 1);
      await put("g/e", "1");
      await put("g/e", "2");
      await del("g/e");
      return `${created}\n${await read(s, 1)}`;
    },
  },
  {
    name: "client-chosen watch ids: 7, 7 again (refused), auto, 0 (auto), auto, 8; events per id",
    async run({ session, read, put }) {
      const s = session();
      s.create({ key: b("g/i"), watchId: 7 });
      s.create({ key: b("g/i"), watchId: 7 });
      s.create({ key: b("g/i") });
      s.create({ key: b("g/i"), watchId: 0 });
      s.create({ key: b("g/i") });
      s.create({ key: b("g/i"), watchId: 8 });
      const created = await read(s, 6);
      await put("g/i", "x");
      // Each of the five watchers (watch id 0 is "pick one", as proto3 cannot tell it from unset) gets the
      // event in its own response; their order is the server's.
      const events = (await read(s, 5)).split("\n").sort().join("\n");
      s.cancel(7);
      const cancel = await read(s, 1);
      s.cancel(99);
      const unknown = await read(s, 0);
      return `${created}\n${events}\n${cancel}\n${unknown}`;
    },
  },
  {
    name: "progress request: answered on a stream with synced watchers, and on one without any",
    async run({ session, read, put }) {
      const s = session();
      s.create({ key: b("g/p") });
      s.create({ key: b("g/q"), watchId: 5 });
      const created = await read(s, 2);
      await put("g/z", "1");
      s.progress();
      const progress = await read(s, 1);
      const empty = session();
      empty.progress();
      return `${created}\n${progress}\n${await read(empty, 1)}`;
    },
  },
  {
    name: "progress_notify: a quiet watcher gets a notification at the server's interval",
    async run({ session, read }) {
      const s = session();
      s.create({ key: b("g/n"), progressNotify: true, watchId: 3 });
      const created = await read(s, 1);
      // Read one notification only: later ones depend on how long the step runs.
      const deadline = Date.now() + RESPONSE_WAIT_MS + GRPC_WATCH_PROGRESS_INTERVAL_MS * 2;
      while (s.responses.length === 0 && Date.now() < deadline) await sleep(10);
      const notify = s.responses.shift();
      return `${created}\n${notify === undefined ? "(none)" : describeResponse(notify)}`;
    },
  },
  {
    name: "compaction at revision 4; watches from 2 (compacted), 3 (compacted), 4 and 5 (replayed, with and without prev_kv)",
    async run({ kv, session, read }) {
      const compacted = await callUnary(kv, kv.Compact, { revision: 4, physical: true });
      const lines = [`compact header rev=${compacted.header?.revision ?? 0}`];
      for (const start of [2, 3, 4, 5]) {
        const s = session();
        s.create({ key: b("g/"), rangeEnd: b("g0"), startRevision: start, watchId: 11 });
        lines.push(`from ${start}:`, await read(s, 2));
      }
      // prev_kv across the boundary: etcd reads it at mod_revision - 1, which fails below the compaction.
      for (const start of [4, 5]) {
        const s = session();
        s.create({ key: b("g/"), rangeEnd: b("g0"), startRevision: start, prevKv: true });
        lines.push(`from ${start} with prev_kv:`, await read(s, 2));
      }
      return lines.join("\n");
    },
  },
  {
    name: "a compacted watcher's id stays taken on its stream",
    async run({ session, read }) {
      const s = session();
      s.create({ key: b("g/"), rangeEnd: b("g0"), startRevision: 2 });
      s.create({ key: b("g/") });
      // etcd cancels compacted watchers from its 100 ms sync loop, so whether the cancel of 0 comes before
      // or after the answer to the second create is timing: the lines are compared sorted (rules.test.ts
      // checks the order of one watcher's own responses).
      return (await read(s, 3)).split("\n").sort().join("\n");
    },
  },
  {
    name: "fragment: a 3 MB replay (three 1 MB values) with and without fragment",
    async run({ session, read, put }) {
      const value = Buffer.alloc(1_000_000, 97);
      const revs: number[] = [];
      for (let i = 0; i < 3; i++) revs.push(await put(`g/f/${i}`, value));
      const fragmented = session();
      fragmented.create({ key: b("g/f/"), rangeEnd: b("g/f0"), startRevision: revs[0], fragment: true });
      const whole = session();
      whole.create({ key: b("g/f/"), rangeEnd: b("g/f0"), startRevision: revs[0] });
      return `fragment:\n${await read(fragmented, 3)}\nwhole:\n${await read(whole, 2)}`;
    },
  },
  {
    name: "fragment: a live 3 MB revision (prev_kv of a range delete) with and without fragment",
    async run({ session, read, del }) {
      const fragmented = session();
      fragmented.create({ key: b("g/f/"), rangeEnd: b("g/f0"), prevKv: true, fragment: true });
      const whole = session();
      whole.create({ key: b("g/f/"), rangeEnd: b("g/f0"), prevKv: true });
      const created = `${await read(fragmented, 1)}\n${await read(whole, 1)}`;
      await del("g/f/", "g/f0");
      return `${created}\nfragment:\n${await read(fragmented, 2)}\nwhole:\n${await read(whole, 1)}`;
    },
  },
  {
    name: "a lease revoke: every attached key deleted in one revision, one response, key order",
    async run({ lease: leases, session, read, put }) {
      const s = session();
      s.create({ key: b("g/l/"), rangeEnd: b("g/l0"), prevKv: true });
      const created = await read(s, 1);
      const lease = await callUnary(leases, leases.LeaseGrant, { TTL: 600 });
      for (const key of ["g/l/c", "g/l/a", "g/l/b"]) await put(key, "v", lease.ID);
      const puts = await read(s, 3);
      const revoked = await callUnary(leases, leases.LeaseRevoke, { ID: lease.ID });
      return `${created}\n${puts.replaceAll(`l${lease.ID}`, "l<lease>")}\nrevoke rev=${
        revoked.header?.revision ?? 0
      }\n${(await read(s, 1)).replaceAll(`l${lease.ID}`, "l<lease>")}`;
    },
  },
];

/** Runs the gRPC watch scenario against a fresh instance of `target`: one output per step. */
export async function runGrpcWatchScenario(
  target: DiffTarget,
): Promise<{ steps: Step[]; outputs: StepOutput[] }> {
  const running = await target.start(GRPC_WATCH_FLAGS);
  const options = { "grpc.max_receive_message_length": CLIENT_RECEIVE_BYTES_MAX };
  const kv = new KVClient(running.endpoint, grpc.credentials.createInsecure(), options);
  const watch = new WatchClient(running.endpoint, grpc.credentials.createInsecure(), options);
  const lease = new LeaseClient(running.endpoint, grpc.credentials.createInsecure());
  const steps: Step[] = [];
  const outputs: StepOutput[] = [];
  try {
    for (const [i, step] of STEPS.entries()) {
      const sessions: WatchSession[] = [];
      const ctx: Context = {
        kv,
        lease,
        watch,
        session() {
          const s = new WatchSession(watch);
          sessions.push(s);
          return s;
        },
        async put(key, value, lease) {
          const response = await callUnary(kv, kv.Put, {
            key: b(key),
            value: typeof value === "string" ? b(value) : value,
            lease: lease ?? 0n,
          });
          return response.header?.revision ?? 0;
        },
        async del(key, rangeEnd, prevKv) {
          const response = await callUnary(kv, kv.DeleteRange, {
            key: b(key),
            rangeEnd: rangeEnd === undefined ? new Uint8Array() : b(rangeEnd),
            prevKv: prevKv ?? false,
          });
          return response.header?.revision ?? 0;
        },
        read: readResponses,
      };
      let output: StepOutput;
      try {
        output = { stdout: `${await step.run(ctx)}\n`, stderr: "", exitCode: 0 };
      } catch (error) {
        output = { stdout: "", stderr: `${String(error)}\n`, exitCode: 1 };
      } finally {
        for (const s of sessions) s.close();
      }
      steps.push({ line: i + 1, text: `grpc: ${step.name}`, args: [] });
      outputs.push(output);
    }
    return { steps, outputs };
  } finally {
    kv.close();
    watch.close();
    lease.close();
    await running.stop();
  }
}
