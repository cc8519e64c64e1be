/**
 * Codec comparison behind src/proto/README.md "Generator comparison": encode and decode rates and heap
 * bytes allocated per message, for our generated codecs against protobufjs static code (pbjs
 * static-module, 64-bit as Long, and as number with util.Long unset) and, when installed somewhere,
 * @bufbuild/protobuf v2 (reflection codec; int64 as bigint).
 *
 *   node --import tsx bench/proto/codec.bench.ts                 # every implementation, one table
 *   PROTOBUF_ES_DIR=/tmp/protobench node --import tsx bench/proto/codec.bench.ts
 *
 * Each implementation runs in its own child process (protobufjs's Long switch is global) with
 * --expose-gc and a 64 MiB semi-space so the allocation window sees no scavenge. Short on purpose: a
 * smoke run on a shared machine; the figures are rates, not assertions.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { etcdserverpb } from "../../src/proto/index.js";

const PROTO_ROOT = resolve(import.meta.dirname, "../../src/proto");
const REPO_ROOT = resolve(import.meta.dirname, "../..");
const PROTO_FILES = ["mvccpb/kv.proto", "authpb/auth.proto", "etcdserverpb/rpc.proto"];
/** Wall time per measured loop. */
const MEASURE_MS = 400;
const WARMUP_MS = 200;
/** Operations in one allocation window: small enough that 64 MiB of young space never fills. */
const ALLOC_WINDOW_OPS = 500;
const ALLOC_WINDOW_OPS_MIN = 20;
/** Windows tried before giving up on a GC-free one (the figure is then NaN). */
const ALLOC_ATTEMPTS_MAX = 10;
const RANGE_KVS = 10;

interface Codec {
  encode(): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}
interface Impl {
  put: Codec;
  range: Codec;
}

const KEY_BYTES = 276;
const VALUE_BYTES = 1024;
const key = (i: number) => Buffer.alloc(KEY_BYTES, 97 + (i % 26));
const value = Buffer.alloc(VALUE_BYTES, 120);
const CLUSTER_ID = 0xcdf818194e3a8c32n;
const MEMBER_ID = 0x8e9e05c52164694dn;

function ours(): Impl {
  const put = { key: key(0), value };
  const range: etcdserverpb.RangeResponseInit = {
    header: { clusterId: CLUSTER_ID, memberId: MEMBER_ID, revision: 1_234_567, raftTerm: 5 },
    kvs: Array.from({ length: RANGE_KVS }, (_, i) => ({
      key: key(i),
      value,
      createRevision: 1_000_000 + i,
      modRevision: 1_200_000 + i,
      version: 3,
    })),
    count: RANGE_KVS,
  };
  return {
    put: {
      encode: () => etcdserverpb.PutRequest.encode(put),
      decode: (b) => etcdserverpb.PutRequest.decode(b),
    },
    range: {
      encode: () => etcdserverpb.RangeResponse.encode(range),
      decode: (b) => etcdserverpb.RangeResponse.decode(b),
    },
  };
}

interface PbjsType {
  encode(m: unknown): { finish(): Uint8Array };
  decode(b: Uint8Array): unknown;
}

async function pbjs(longs: boolean): Promise<Impl> {
  const dir = mkdtempSync(join(tmpdir(), "pbjs-bench-"));
  try {
    const out = join(dir, "pbjs.js");
    const pbjsBin = join(REPO_ROOT, "node_modules/.bin/pbjs");
    const require = createRequire(join(REPO_ROOT, "package.json"));
    // An absolute dependency path, so the module generated under tmpdir finds the repo's protobufjs.
    const minimalPath = require.resolve("protobufjs/minimal.js");
    const args = ["-t", "static-module", "-w", "commonjs", "-p", PROTO_ROOT, "--no-verify", "--no-convert"];
    args.push("--no-delimited", "--no-comments", "--no-service", "--dependency", minimalPath);
    execFileSync(pbjsBin, [...args, "-o", out, ...PROTO_FILES.map((f) => join(PROTO_ROOT, f))]);
    const minimal = require("protobufjs/minimal.js") as { util: { Long: unknown }; configure(): void };
    if (!longs) {
      minimal.util.Long = null;
      minimal.configure();
    }
    writeFileSync(join(dir, "package.json"), '{"type":"commonjs"}');
    const loaded = createRequire(join(REPO_ROOT, "x.js"))(out) as {
      etcdserverpb: { PutRequest: PbjsType; RangeResponse: PbjsType };
    };
    const Long = require("long") as { fromString(s: string, unsigned: boolean): unknown };
    const id = (v: bigint) => (longs ? Long.fromString(v.toString(), true) : Number(v));
    const put = { key: key(0), value };
    const range = {
      header: { clusterId: id(CLUSTER_ID), memberId: id(MEMBER_ID), revision: 1_234_567, raftTerm: 5 },
      kvs: Array.from({ length: RANGE_KVS }, (_, i) => ({
        key: key(i),
        value,
        createRevision: 1_000_000 + i,
        modRevision: 1_200_000 + i,
        version: 3,
      })),
      count: RANGE_KVS,
    };
    const { PutRequest, RangeResponse } = loaded.etcdserverpb;
    return {
      put: { encode: () => PutRequest.encode(put).finish(), decode: (b) => PutRequest.decode(b) },
      range: { encode: () => RangeResponse.encode(range).finish(), decode: (b) => RangeResponse.decode(b) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface EsModule {
  fromBinary(schema: unknown, bytes: Uint8Array): unknown;
  toBinary(schema: unknown, message: unknown): Uint8Array;
  create(schema: unknown, init: unknown): unknown;
  createFileRegistry(set: unknown): { getMessage(name: string): unknown };
}

/** @bufbuild/protobuf v2 from PROTOBUF_ES_DIR, its schema built from our .proto via protobufjs. */
async function protobufEs(dir: string): Promise<Impl> {
  const require = createRequire(join(dir, "x.js"));
  const es = require("@bufbuild/protobuf") as EsModule;
  const wkt = require("@bufbuild/protobuf/wkt") as { FileDescriptorSetSchema: unknown };
  const descriptorSet = await fileDescriptorSet();
  const registry = es.createFileRegistry(es.fromBinary(wkt.FileDescriptorSetSchema, descriptorSet));
  const Put = registry.getMessage("etcdserverpb.PutRequest");
  const Range = registry.getMessage("etcdserverpb.RangeResponse");
  const put = es.create(Put, { key: key(0), value });
  const range = es.create(Range, {
    header: { clusterId: CLUSTER_ID, memberId: MEMBER_ID, revision: 1_234_567n, raftTerm: 5n },
    kvs: Array.from({ length: RANGE_KVS }, (_, i) => ({
      key: key(i),
      value,
      createRevision: BigInt(1_000_000 + i),
      modRevision: BigInt(1_200_000 + i),
      version: 3n,
    })),
    count: BigInt(RANGE_KVS),
  });
  return {
    put: { encode: () => es.toBinary(Put, put), decode: (b) => es.fromBinary(Put, b) },
    range: { encode: () => es.toBinary(Range, range), decode: (b) => es.fromBinary(Range, b) },
  };
}

/** A FileDescriptorSet of our protos, from protobufjs's descriptor extension, names fully qualified. */
async function fileDescriptorSet(): Promise<Uint8Array> {
  const require = createRequire(join(REPO_ROOT, "package.json"));
  type Reflect = {
    name: string;
    fields: Record<string, { resolvedType: { fullName: string } | null }>;
  };
  const protobuf = require("protobufjs") as {
    Root: new () => {
      resolvePath: (o: string, t: string) => string;
      loadSync(f: string[], o: object): void;
      resolveAll(): void;
      lookupType(n: string): Reflect;
      toDescriptor(s: string): { file: DescFile[] };
    };
  };
  type DescMessage = {
    name: string;
    field?: { name: string; typeName?: string }[];
    nestedType?: DescMessage[];
  };
  type DescFile = {
    package: string;
    dependency: string[];
    syntax: string;
    messageType?: DescMessage[];
    service: [];
  };
  const descriptor = require("protobufjs/ext/descriptor") as {
    FileDescriptorSet: { encode(s: unknown): { finish(): Uint8Array } };
  };
  const root = new protobuf.Root();
  root.resolvePath = (_o, t) => (isAbsolute(t) ? t : join(PROTO_ROOT, t));
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  const set = root.toDescriptor("proto3");
  const qualify = (prefix: string, messages: DescMessage[] | undefined) => {
    for (const m of messages ?? []) {
      const full = `${prefix}.${m.name}`;
      const type = root.lookupType(full);
      for (const f of m.field ?? []) {
        const resolved = type.fields[f.name]?.resolvedType;
        if (resolved) f.typeName = resolved.fullName;
      }
      qualify(full, m.nestedType);
    }
  };
  for (const file of set.file) {
    file.dependency = file.package === "etcdserverpb" ? ["mvccpb.proto", "authpb.proto"] : [];
    file.syntax = "proto3";
    file.service = [];
    qualify(file.package, file.messageType);
  }
  return descriptor.FileDescriptorSet.encode(set).finish();
}

// ---- measurement ----

declare const gc: undefined | (() => void);

function rate(fn: () => void): number {
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < MEASURE_MS) {
    for (let i = 0; i < 100; i++) fn();
    ops += 100;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

let gcCount = 0;
new PerformanceObserver((list) => {
  gcCount += list.getEntries().length;
}).observe({ entryTypes: ["gc"] });

/** Lets the GC PerformanceObserver deliver pending entries (it reports asynchronously). */
const tick = () => new Promise<void>((r) => setTimeout(r, 20));

/**
 * Heap bytes allocated per call: heapUsed growth over a window in which no GC ran (checked with a
 * PerformanceObserver; windows with a GC are measured again). Buffer backing stores above Node's 4 KiB
 * pool size live outside the V8 heap and are not counted.
 */
async function allocatedBytesPerOp(fn: () => void): Promise<number> {
  if (typeof gc !== "function") return Number.NaN;
  for (let attempt = 0; attempt < ALLOC_ATTEMPTS_MAX; attempt++) {
    gc();
    await tick();
    const gcBefore = gcCount;
    // Halve the window on each retry: external memory (large Buffers) can trigger a GC by itself.
    const ops = Math.max(ALLOC_WINDOW_OPS_MIN, ALLOC_WINDOW_OPS >> attempt);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < ops; i++) fn();
    const after = process.memoryUsage().heapUsed;
    await tick();
    if (gcCount === gcBefore) return (after - before) / ops;
  }
  return Number.NaN;
}

interface Row {
  impl: string;
  message: string;
  sizeBytes: number;
  encodePerSec: number;
  decodePerSec: number;
  roundTripPerSec: number;
  encodeAllocBytes: number;
  decodeAllocBytes: number;
}

async function runOne(name: string): Promise<Row[]> {
  const impl =
    name === "ours"
      ? ours()
      : name === "pbjs-long"
        ? await pbjs(true)
        : name === "pbjs-number"
          ? await pbjs(false)
          : await protobufEs(process.env.PROTOBUF_ES_DIR ?? "");
  const rows: Row[] = [];
  for (const [message, codec] of [
    ["PutRequest (276 B key, 1 KiB value)", impl.put],
    [`RangeResponse (${RANGE_KVS} kvs)`, impl.range],
  ] as const) {
    const bytes = codec.encode();
    let sink: unknown;
    rows.push({
      impl: name,
      message,
      sizeBytes: bytes.length,
      encodePerSec: rate(() => {
        sink = codec.encode();
      }),
      decodePerSec: rate(() => {
        sink = codec.decode(bytes);
      }),
      roundTripPerSec: rate(() => {
        sink = codec.decode(codec.encode());
      }),
      encodeAllocBytes: await allocatedBytesPerOp(() => {
        sink = codec.encode();
      }),
      decodeAllocBytes: await allocatedBytesPerOp(() => {
        sink = codec.decode(bytes);
      }),
    });
    void sink;
  }
  return rows;
}

function format(rows: Row[]): string {
  const k = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(0)}k` : n.toFixed(0));
  const lines = [
    "impl          message                              bytes  enc/s   dec/s   rt/s    encB   decB",
  ];
  for (const r of rows) {
    lines.push(
      [
        r.impl.padEnd(13),
        r.message.padEnd(36),
        String(r.sizeBytes).padStart(5),
        k(r.encodePerSec).padStart(6),
        k(r.decodePerSec).padStart(7),
        k(r.roundTripPerSec).padStart(6),
        String(Math.round(r.encodeAllocBytes ?? Number.NaN)).padStart(7),
        String(Math.round(r.decodeAllocBytes ?? Number.NaN)).padStart(6),
      ].join(" "),
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const which = process.argv[2];
  if (which !== undefined) {
    process.stdout.write(`${JSON.stringify(await runOne(which))}\n`);
    return;
  }
  const impls = ["ours", "pbjs-long", "pbjs-number"];
  if (process.env.PROTOBUF_ES_DIR !== undefined) impls.push("protobuf-es");
  const rows: Row[] = [];
  for (const impl of impls) {
    const out = execFileSync(
      process.execPath,
      [
        "--expose-gc",
        "--max-semi-space-size=64",
        "--import",
        "tsx",
        pathToFileURL(import.meta.filename).pathname,
        impl,
      ],
      { encoding: "utf8", env: process.env },
    );
    rows.push(...(JSON.parse(out.trim().split("\n").at(-1) ?? "[]") as Row[]));
  }
  console.log(`node ${process.version}; rates per second, allocation in heap bytes per call`);
  console.log(format(rows));
}

await main();
