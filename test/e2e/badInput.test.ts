import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { callUnary, etcdserverpb, KVClient, MaintenanceClient } from "../../src/proto/index.js";
import { startEtcdTs } from "../support/etcdTs.js";
import { startRealEtcd } from "../support/realEtcd.js";

/**
 * Issue 8, "bad input never takes the server down", against the etcd-ts bin and, case by case, against a
 * real etcd 3.4.23: oversized requests, malformed protobuf, broken gRPC framing, garbage and oversized
 * headers on the HTTP side, and clients that hang up mid-request or mid-answer. Each case records the
 * answer each server gives; where etcd-ts answers differently the case says why. Afterwards the member
 * must still serve, have exited on nothing, keep every key written before (values, revisions, HashKV at
 * that revision), and hold nothing from a request that never arrived whole.
 */

interface Running {
  endpoint: string;
  port: number;
  alive(): boolean;
  /** Log lines that mean the server hit something it could not handle. */
  troubles(): string[];
  stop(): Promise<void>;
}

interface Target {
  name: "etcd" | "etcd-ts";
  start(): Promise<Running>;
}

const targets: Target[] = [
  {
    name: "etcd-ts",
    async start() {
      const member = await startEtcdTs();
      return {
        endpoint: member.endpoint,
        port: Number(member.endpoint.split(":")[1]),
        alive: () => member.process.exitCode === null && member.process.signalCode === null,
        troubles: () =>
          member
            .stderr()
            .split("\n")
            .filter((l) => /"level":"(fatal|panic|dpanic)"/.test(l)),
        async stop() {
          assert.equal(await member.stop(), 0, `etcd-ts did not stop cleanly:\n${member.stderr()}`);
        },
      };
    },
  },
  {
    name: "etcd",
    async start() {
      const etcd = await startRealEtcd();
      return {
        endpoint: etcd.endpoint,
        port: Number(etcd.endpoint.split(":")[1]),
        alive: () => etcd.process.exitCode === null && etcd.process.signalCode === null,
        troubles: () => [],
        stop: () => etcd.stop(),
      };
    },
  },
];

const utf8 = (s: string): Buffer => Buffer.from(s);
const MiB = 1024 * 1024;
/** How long a raw probe waits for an answer before it reports "no answer". */
const PROBE_WAIT_MS = 2000;

/** A gRPC outcome as one comparable line: "OK" or "<CODE> <details>". */
function grpcOutcome(error: grpc.ServiceError | null): string {
  if (error === null) return "OK";
  return `${grpc.status[error.code]} ${error.details}`;
}

async function unary<Req>(promise: Promise<Req>): Promise<string> {
  return promise.then(
    () => "OK",
    (error: grpc.ServiceError) => grpcOutcome(error),
  );
}

/** A unary call whose request bytes are sent as given (no encoder), on a path of our choosing. */
function rawUnary(endpoint: string, path: string, bytes: Buffer): Promise<string> {
  const client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (error) => resolve(grpcOutcome(error)),
    );
  }).finally(() => client.close());
}

/** A gRPC message frame: flag, 4-byte length (given or true), body. */
function frame(body: Buffer, flag = 0, length = body.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, body]);
}

/**
 * One HTTP/2 request with hand-made headers and body; the outcome is the gRPC status (message
 * percent-decoded, as clients read it), the HTTP status without one, or the stream's reset code.
 */
function h2Call(endpoint: string, headers: http2.OutgoingHttpHeaders, body: Buffer | null): Promise<string> {
  const session = http2.connect(`http://${endpoint}`);
  session.on("error", () => {});
  return new Promise<string>((resolve) => {
    const stream = session.request({
      ":method": "POST",
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let seen: http2.IncomingHttpHeaders = {};
    const timer = setTimeout(() => resolve("no answer"), PROBE_WAIT_MS);
    stream.on("response", (h) => {
      seen = { ...seen, ...h };
    });
    stream.on("trailers", (h) => {
      seen = { ...seen, ...h };
    });
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => {
      clearTimeout(timer);
      const status = seen["grpc-status"];
      if (status === "0") resolve("OK");
      else if (status !== undefined) {
        const code = grpc.status[Number(status)];
        resolve(`${code} ${decodeURIComponent(String(seen["grpc-message"] ?? ""))}`.trimEnd());
      } else if (seen[":status"] !== undefined) resolve(`HTTP ${seen[":status"]}`);
      else resolve(`RST_STREAM ${stream.rstCode}`);
    });
    if (body === null) stream.end();
    else stream.end(body);
  }).finally(() => session.destroy());
}

/**
 * Sends bytes on a plain TCP connection; reports the first thing answered (an HTTP status line, or the
 * type of the first HTTP/2 frame) and whether the server closed the connection or left it open.
 */
function tcpProbe(port: number, bytes: Buffer, reportState = true): Promise<string> {
  return new Promise((resolve) => {
    let answer = Buffer.alloc(0);
    const describe = (state: string) =>
      `${reportState ? `${state}, ` : ""}${answer.length === 0 ? "no answer" : firstAnswer(answer)}`;
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    const timer = setTimeout(() => {
      resolve(describe("open"));
      socket.destroy();
    }, PROBE_WAIT_MS / 4);
    socket.on("data", (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(describe("closed"));
    });
  });
}

const HTTP2_FRAME_TYPES = [
  "DATA",
  "HEADERS",
  "PRIORITY",
  "RST_STREAM",
  "SETTINGS",
  "PUSH_PROMISE",
  "PING",
  "GOAWAY",
];

function firstAnswer(bytes: Buffer): string {
  const text = bytes.toString("latin1");
  if (text.startsWith("HTTP/")) return text.slice(0, text.indexOf("\r\n"));
  // An HTTP/2 frame header: 3 bytes length, 1 byte type.
  return `HTTP/2 ${HTTP2_FRAME_TYPES[bytes[3] ?? -1] ?? "frame"}`;
}

/** A raw HTTP/2 request that sends `sent` bytes of a `declared`-byte Put, then ends as `how` says. */
async function abandonedPut(endpoint: string, key: string, how: "reset" | "hang up"): Promise<string> {
  const session = http2.connect(`http://${endpoint}`);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": "/etcdserverpb.KV/Put",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  const message = etcdserverpb.PutRequest.encode({ key: utf8(key), value: Buffer.alloc(100_000, 0x61) });
  const whole = frame(message);
  stream.write(whole.subarray(0, 10_000));
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (how === "reset") stream.close(http2.constants.NGHTTP2_CANCEL);
  session.destroy();
  return "abandoned";
}

/** Starts a large Range and hangs up as soon as its answer begins. */
async function abandonedRange(endpoint: string): Promise<string> {
  const session = http2.connect(`http://${endpoint}`);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": "/etcdserverpb.KV/Range",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  stream.end(frame(etcdserverpb.RangeRequest.encode({ key: utf8("base/"), rangeEnd: utf8("base0") })));
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, PROBE_WAIT_MS);
    stream.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  session.destroy();
  return "abandoned";
}

/** Many connections opened at once, each sending a partial request, all dropped. */
async function connectionStorm(port: number, connections: number): Promise<string> {
  await Promise.all(
    Array.from(
      { length: connections },
      (_unused, i) =>
        new Promise<void>((resolve) => {
          const socket = connect(port, "127.0.0.1", () => {
            socket.write(i % 2 === 0 ? "PRI * HTTP/2.0\r\n\r\nSM" : "GET /health HTTP/1.1\r\nHo");
            setTimeout(() => socket.destroy(), 20);
          });
          socket.on("error", () => {});
          socket.on("close", () => resolve());
        }),
    ),
  );
  return "dropped";
}

interface Case {
  name: string;
  run(r: Running): Promise<string>;
  /** What a real etcd 3.4.23 answers. */
  etcd: string;
  /** What etcd-ts answers when it differs, and why that is acceptable. */
  etcdTs?: { answer: string; why: string };
}

const GRPC_JS_FRAMING =
  "grpc-js's framing layer answers before any handler (grpc-go and grpc-js differ here); no gRPC client sends this";

const cases: Case[] = [
  // Oversized requests.
  {
    name: "Put over --max-request-bytes (1.5 MiB + 1)",
    run: (r) =>
      withKv(r, (kv) =>
        unary(callUnary(kv, kv.Put, { key: utf8("bad/a"), value: Buffer.alloc(1.5 * MiB + 1) })),
      ),
    etcd: "INVALID_ARGUMENT etcdserver: request is too large",
  },
  {
    name: "Put over the gRPC receive limit (2.6 MiB)",
    run: (r) =>
      withKv(r, (kv) => unary(callUnary(kv, kv.Put, { key: utf8("bad/b"), value: Buffer.alloc(2.6 * MiB) }))),
    etcd: "RESOURCE_EXHAUSTED grpc: received message larger than max (2726309 vs. 2097152)",
  },
  {
    name: "Txn of 100 puts of 16 KiB",
    run: (r) =>
      withKv(r, (kv) =>
        unary(
          callUnary(kv, kv.Txn, {
            success: Array.from({ length: 100 }, (_unused, i) => ({
              request: {
                case: "requestPut" as const,
                value: { key: utf8(`bad/t${i}`), value: Buffer.alloc(16 * 1024) },
              },
            })),
          }),
        ),
      ),
    etcd: "INVALID_ARGUMENT etcdserver: request is too large",
  },
  {
    name: "Put with a 1.6 MiB key",
    run: (r) => withKv(r, (kv) => unary(callUnary(kv, kv.Put, { key: Buffer.alloc(1.6 * MiB, 0x62) }))),
    etcd: "INVALID_ARGUMENT etcdserver: request is too large",
  },
  {
    name: "Range with a 1.6 MiB key (reads are not size-checked)",
    run: (r) => withKv(r, (kv) => unary(callUnary(kv, kv.Range, { key: Buffer.alloc(1.6 * MiB, 0x62) }))),
    etcd: "OK",
  },
  {
    name: "a length prefix of 4 GiB",
    run: (r) =>
      h2Call(r.endpoint, { ":path": "/etcdserverpb.KV/Put" }, frame(Buffer.alloc(100), 0, 0xffffffff)),
    etcd: "RESOURCE_EXHAUSTED grpc: received message larger than max (4294967295 vs. 2097152)",
  },
  // Malformed protobuf (the codec's table, test/proto/codec.test.ts, has every decode error).
  {
    name: "Put truncated mid-field",
    run: (r) => rawUnary(r.endpoint, "/etcdserverpb.KV/Put", Buffer.from([0x0a, 0x7f, 0x01])),
    etcd: "INTERNAL grpc: error unmarshalling request: unexpected EOF",
  },
  {
    name: "Put whose lease (int64) is sent as bytes",
    run: (r) =>
      rawUnary(
        r.endpoint,
        "/etcdserverpb.KV/Put",
        Buffer.from([0x0a, 0x05, 0x62, 0x61, 0x64, 0x2f, 0x6c, 0x1a, 0x01, 0x41]),
      ),
    etcd: "INTERNAL grpc: error unmarshalling request: proto: wrong wireType = 2 for field Lease",
  },
  {
    name: "Put with field number 0",
    run: (r) => rawUnary(r.endpoint, "/etcdserverpb.KV/Put", Buffer.from([0x02, 0x01, 0x41])),
    etcd: "INTERNAL grpc: error unmarshalling request: proto: PutRequest: illegal tag 0 (wire type 2)",
  },
  {
    name: "Txn whose nested Put is cut short",
    run: (r) =>
      rawUnary(r.endpoint, "/etcdserverpb.KV/Txn", Buffer.from([0x12, 0x05, 0x12, 0x03, 0x0a, 0x05, 0x41])),
    etcd: "INTERNAL grpc: error unmarshalling request: unexpected EOF",
  },
  {
    name: "Range with a varint of eleven bytes",
    run: (r) =>
      rawUnary(
        r.endpoint,
        "/etcdserverpb.KV/Range",
        Buffer.from([0x0a, 0x01, 0x41, 0x18, ...Array(10).fill(0xff), 0x01]),
      ),
    etcd: "INTERNAL grpc: error unmarshalling request: proto: integer overflow",
  },
  {
    name: "Compact whose revision is sent as bytes",
    run: (r) => rawUnary(r.endpoint, "/etcdserverpb.KV/Compact", Buffer.from([0x0a, 0x00])),
    etcd: "INTERNAL grpc: error unmarshalling request: proto: wrong wireType = 2 for field Revision",
  },
  {
    name: "Maintenance Status with garbage",
    run: (r) => rawUnary(r.endpoint, "/etcdserverpb.Maintenance/Status", Buffer.from([0xff, 0xff, 0xff])),
    etcd: "INTERNAL grpc: error unmarshalling request: unexpected EOF",
  },
  {
    name: "LeaseGrant cut short",
    run: (r) => rawUnary(r.endpoint, "/etcdserverpb.Lease/LeaseGrant", Buffer.from([0x08, 0xff])),
    etcd: "INTERNAL grpc: error unmarshalling request: unexpected EOF",
  },
  {
    name: "a LeaseKeepAlive stream message cut short",
    run: (r) =>
      h2Call(r.endpoint, { ":path": "/etcdserverpb.Lease/LeaseKeepAlive" }, frame(Buffer.from([0x08, 0xff]))),
    etcd: "INTERNAL grpc: failed to unmarshal the received message unexpected EOF",
  },
  // Broken gRPC framing.
  {
    name: "a message shorter than its length prefix, then end of stream",
    run: (r) => h2Call(r.endpoint, { ":path": "/etcdserverpb.KV/Put" }, frame(Buffer.alloc(10), 0, 50)),
    etcd: "UNKNOWN unexpected EOF",
    etcdTs: {
      answer: "UNIMPLEMENTED Received no request message for server streaming method /etcdserverpb.KV/Put",
      why: GRPC_JS_FRAMING,
    },
  },
  {
    name: "a unary call with no message",
    run: (r) => h2Call(r.endpoint, { ":path": "/etcdserverpb.KV/Put" }, null),
    etcd: "UNKNOWN EOF",
    etcdTs: {
      answer: "UNIMPLEMENTED Received no request message for server streaming method /etcdserverpb.KV/Put",
      why: GRPC_JS_FRAMING,
    },
  },
  {
    name: "a unary call with two messages",
    run: (r) => {
      const message = frame(etcdserverpb.RangeRequest.encode({ key: utf8("base/0") }));
      return h2Call(r.endpoint, { ":path": "/etcdserverpb.KV/Range" }, Buffer.concat([message, message]));
    },
    etcd: "OK",
    etcdTs: {
      answer:
        "UNIMPLEMENTED Received a second request message for server streaming method /etcdserverpb.KV/Range",
      why: `${GRPC_JS_FRAMING} (grpc-go serves the first message and ignores the second)`,
    },
  },
  {
    name: "the compressed flag without a grpc-encoding",
    run: (r) =>
      h2Call(
        r.endpoint,
        { ":path": "/etcdserverpb.KV/Range" },
        frame(etcdserverpb.RangeRequest.encode({ key: utf8("a") }), 1),
      ),
    etcd: "INTERNAL grpc: compressed flag set with identity or empty encoding",
    etcdTs: { answer: "OK", why: `${GRPC_JS_FRAMING} (grpc-js reads the message as uncompressed)` },
  },
  {
    name: "grpc-encoding gzip with a body that is not gzip",
    run: (r) =>
      h2Call(
        r.endpoint,
        { ":path": "/etcdserverpb.KV/Range", "grpc-encoding": "gzip" },
        frame(Buffer.from([1, 2, 3]), 1),
      ),
    etcd: 'UNIMPLEMENTED grpc: Decompressor is not installed for grpc-encoding "gzip"',
    etcdTs: {
      answer: "INTERNAL Failed to decompress message",
      why: `${GRPC_JS_FRAMING} (grpc-js accepts gzip-compressed requests, etcd registers no decompressor)`,
    },
  },
  {
    name: "content-type text/plain",
    run: (r) => h2Call(r.endpoint, { ":path": "/etcdserverpb.KV/Range", "content-type": "text/plain" }, null),
    etcd: "RST_STREAM 1",
    etcdTs: { answer: "HTTP 415", why: GRPC_JS_FRAMING },
  },
  {
    name: "a path that is not /service/method",
    run: (r) => h2Call(r.endpoint, { ":path": "/nope" }, frame(Buffer.alloc(0))),
    etcd: 'RESOURCE_EXHAUSTED malformed method name: "/nope"',
    etcdTs: { answer: "UNIMPLEMENTED The server does not implement the method /nope", why: GRPC_JS_FRAMING },
  },
  {
    name: "a service etcd does not have",
    run: (r) => h2Call(r.endpoint, { ":path": "/x.Y/Z" }, frame(Buffer.alloc(0))),
    etcd: "UNIMPLEMENTED unknown service x.Y",
    etcdTs: {
      answer: "UNIMPLEMENTED The server does not implement the method /x.Y/Z",
      why: "grpc-js has no hook for paths no service claims; etcd's own services get grpc-go's text (src/api/index.ts)",
    },
  },
  {
    name: "a grpc-timeout that does not parse",
    run: (r) =>
      h2Call(
        r.endpoint,
        { ":path": "/etcdserverpb.KV/Range", "grpc-timeout": "abc" },
        frame(Buffer.alloc(0)),
      ),
    etcd: "RST_STREAM 1",
    etcdTs: { answer: 'INTERNAL Invalid grpc-timeout value "abc"', why: GRPC_JS_FRAMING },
  },
  // Garbage and oversized headers on the port.
  {
    name: "binary garbage",
    run: (r) => tcpProbe(r.port, Buffer.from([0x00, 0x01, 0x02, 0x67, 0x0d, 0x0a, 0x0d, 0x0a])),
    etcd: "closed, no answer",
    etcdTs: {
      answer: "closed, HTTP/1.1 400 Bad Request",
      why: "etcd's cmux drops a connection whose first bytes match no protocol; Node's HTTP parser answers 400 and closes",
    },
  },
  {
    name: "an HTTP/2 preface followed by garbage frames",
    run: (r) =>
      tcpProbe(
        r.port,
        Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.alloc(64, 0xff)]),
      ),
    etcd: "closed, HTTP/2 SETTINGS",
  },
  {
    name: "an HTTP/1.1 request with a 64 KiB header",
    run: (r) =>
      tcpProbe(r.port, utf8(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`)),
    etcd: "open, HTTP/1.1 200 OK",
  },
  {
    name: "an HTTP/1.1 request with a 2 MiB header",
    // Only the answer: when each server closes after it (Go lingers while the client still sends) varies.
    run: (r) =>
      tcpProbe(
        r.port,
        utf8(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2 * MiB)}\r\n\r\n`),
        false,
      ),
    etcd: "HTTP/1.1 431 Request Header Fields Too Large",
  },
  {
    name: "an HTTP/1.1 request line with a bad version",
    run: (r) => tcpProbe(r.port, utf8("GET /health HTTP/9.9\r\n\r\n")),
    etcd: "closed, no answer",
    etcdTs: {
      answer: "closed, HTTP/1.1 400 Bad Request",
      why: "Node's HTTP parser answers 400 where etcd's cmux closes",
    },
  },
  // Clients that go away.
  {
    name: "a Put cut off mid-message by RST_STREAM",
    run: (r) => abandonedPut(r.endpoint, "bad/reset", "reset"),
    etcd: "abandoned",
  },
  {
    name: "a Put cut off mid-message by a TCP hang-up",
    run: (r) => abandonedPut(r.endpoint, "bad/hangup", "hang up"),
    etcd: "abandoned",
  },
  {
    name: "ten large Ranges whose clients hang up as the answer starts",
    run: async (r) => {
      for (let i = 0; i < 10; i++) await abandonedRange(r.endpoint);
      return "abandoned";
    },
    etcd: "abandoned",
  },
  {
    name: "200 connections each sending half a request, then dropped",
    run: (r) => connectionStorm(r.port, 200),
    etcd: "dropped",
  },
];

async function withKv(r: Running, body: (kv: KVClient) => Promise<string>): Promise<string> {
  const kv = new KVClient(r.endpoint, grpc.credentials.createInsecure());
  try {
    return await body(kv);
  } finally {
    kv.close();
  }
}

/** Keys written before the bad input: 40 keys of 20 KiB (a Range of all of them is about 800 KiB). */
const BASE_KEYS = 40;
const BASE_VALUE_BYTES = 20 * 1024;

for (const target of targets) {
  describe(`bad input against ${target.name}`, () => {
    let running: Running;
    let baseRevision = 0;
    let baseHash = 0;
    let baseKeys: { key: string; value: string; modRevision: number }[] = [];

    const readBase = async () =>
      withKvClient(running, async (kv) => {
        const range = await callUnary(kv, kv.Range, { key: utf8("base/"), rangeEnd: utf8("base0") });
        return range.kvs.map((kv) => ({
          key: Buffer.from(kv.key).toString(),
          value: Buffer.from(kv.value).toString("hex").slice(0, 16) + kv.value.length,
          modRevision: kv.modRevision,
        }));
      });
    const hashAt = async (revision: number) => {
      const maintenance = new MaintenanceClient(running.endpoint, grpc.credentials.createInsecure());
      try {
        return (await callUnary(maintenance, maintenance.HashKV, { revision })).hash;
      } finally {
        maintenance.close();
      }
    };

    before(async () => {
      running = await target.start();
      await withKvClient(running, async (kv) => {
        for (let i = 0; i < BASE_KEYS; i++) {
          const value = Buffer.alloc(BASE_VALUE_BYTES, i);
          const put = await callUnary(kv, kv.Put, { key: utf8(`base/${i}`), value });
          baseRevision = put.header?.revision ?? 0;
        }
      });
      baseKeys = await readBase();
      baseHash = await hashAt(baseRevision);
    });

    after(async () => {
      await running.stop();
    });

    for (const c of cases) {
      const expected = target.name === "etcd-ts" && c.etcdTs !== undefined ? c.etcdTs.answer : c.etcd;
      it(`${c.name}: ${expected}`, async () => {
        assert.equal(await c.run(running), expected);
        assert.ok(running.alive(), "the server exited");
      });
    }

    it("still serves, exited on nothing, and kept every earlier key; nothing of a half-sent request", async () => {
      assert.ok(running.alive());
      assert.deepEqual(running.troubles(), []);
      await withKvClient(running, async (kv) => {
        const put = await callUnary(kv, kv.Put, { key: utf8("after"), value: utf8("ok") });
        assert.ok((put.header?.revision ?? 0) > baseRevision);
        const got = await callUnary(kv, kv.Range, { key: utf8("after") });
        assert.equal(Buffer.from(got.kvs[0]?.value ?? []).toString(), "ok");
        // No bad/ key: every request that wrote one was refused or never arrived whole.
        const bad = await callUnary(kv, kv.Range, {
          key: utf8("bad/"),
          rangeEnd: utf8("bad0"),
          countOnly: true,
        });
        assert.equal(bad.count, 0);
      });
      assert.deepEqual(await readBase(), baseKeys);
      assert.equal(await hashAt(baseRevision), baseHash);
    });
  });
}

async function withKvClient<T>(r: Running, body: (kv: KVClient) => Promise<T>): Promise<T> {
  const kv = new KVClient(r.endpoint, grpc.credentials.createInsecure());
  try {
    return await body(kv);
  } finally {
    kv.close();
  }
}
