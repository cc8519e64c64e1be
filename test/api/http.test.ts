import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { type RunningStoreServer, startStoreServer } from "./storeServer.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HTTP/1.1 on the client port, as etcd 3.4 answers", () => {
  let running: RunningStoreServer;
  let port: number;

  before(async () => {
    running = await startStoreServer();
    port = running.port.address().port;
  });

  after(async () => {
    await running.stop();
  });

  it("GET /health is true while there is a leader and no alarm", async () => {
    const reply = await http(port, "GET", "/health");
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '{"health":"true"}');
    assert.equal(reply.headers["content-type"], "text/plain; charset=utf-8");
  });

  it("GET /health is false (503) with an alarm, unless ?exclude names it; and without a leader", async () => {
    const { server } = running;
    await server.alarm({ action: 1, memberID: server.memberId, alarm: 1 });
    try {
      const down = await http(port, "GET", "/health");
      assert.equal(down.status, 503);
      assert.equal(down.body, '{"health":"false"}\n');
      assert.equal(down.headers["x-content-type-options"], "nosniff");
      const excluded = await http(port, "GET", "/health?exclude=NOSPACE");
      assert.equal(excluded.status, 200);
      const other = await http(port, "GET", "/health?exclude=CORRUPT");
      assert.equal(other.status, 503);
    } finally {
      await server.alarm({ action: 2, memberID: server.memberId, alarm: 1 });
    }
    server.leader = 0n;
    try {
      assert.equal((await http(port, "GET", "/health")).status, 503);
    } finally {
      server.leader = server.memberId;
    }
  });

  it("other methods on /health and /version get 405 with Allow: GET", async () => {
    for (const path of ["/health", "/version"]) {
      const reply = await http(port, "POST", path);
      assert.equal(reply.status, 405);
      assert.equal(reply.headers.allow, "GET");
      assert.equal(reply.body, "Method Not Allowed\n");
    }
  });

  it("GET /version reports the etcd versions as JSON", async () => {
    const reply = await http(port, "GET", "/version");
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(reply.body), { etcdserver: "3.4.23", etcdcluster: "3.4.0" });
  });

  it("anything else is Go's 404 page not found (also /metrics and /v3 until they are served)", async () => {
    for (const path of ["/", "/healthz", "/metrics", "/v3/kv/range", "/v3alpha/kv/range"]) {
      const reply = await http(port, "GET", path);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.body, "404 page not found\n");
    }
  });

  it("keeps serving after garbage and half requests on the HTTP side", async () => {
    for (const bytes of [
      "GARBAGE\r\n\r\n",
      "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
      "\x00\x01\x02",
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, "127.0.0.1", () => socket.end(bytes));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
      });
    }
    assert.equal((await http(port, "GET", "/health")).status, 200);
  });

  it("adds etcd's CORS headers to every answer and answers OPTIONS 200 on any path (default --cors=*)", async () => {
    for (const [method, path, status] of [
      ["GET", "/health", 200],
      ["GET", "/nope", 404],
      ["POST", "/version", 405],
      ["OPTIONS", "/health", 200],
      ["OPTIONS", "/anything", 200],
    ] as const) {
      const reply = await http(port, method, path);
      assert.equal(reply.status, status, `${method} ${path}`);
      assert.equal(reply.headers["access-control-allow-origin"], "*");
      assert.equal(reply.headers["access-control-allow-methods"], "POST, GET, OPTIONS, PUT, DELETE");
      assert.equal(reply.headers["access-control-allow-headers"], "accept, content-type, authorization");
      // Go sends short bodies with their length, not chunked.
      assert.equal(reply.headers["content-length"], String(Buffer.byteLength(reply.body)));
      if (method === "OPTIONS") assert.equal(reply.body, "");
    }
  });

  it("serves request headers up to Go's 1 MiB limit, and 431 beyond", async () => {
    assert.equal((await http(port, "GET", "/health", { "x-big": "a".repeat(64 * 1024) })).status, 200);
    assert.equal((await http(port, "GET", "/health", { "x-big": "a".repeat(1100 * 1024) })).status, 431);
  });
});

describe("HTTP/1.1 with a --cors list", () => {
  it("echoes a listed Origin and sends no CORS headers to others", async () => {
    const running = await startStoreServer(undefined, { http: { cors: ["http://a.example"] } });
    try {
      const port = running.port.address().port;
      const listed = await http(port, "GET", "/health", { origin: "http://a.example" });
      assert.equal(listed.headers["access-control-allow-origin"], "http://a.example");
      const other = await http(port, "GET", "/health", { origin: "http://b.example" });
      assert.equal(other.headers["access-control-allow-origin"], undefined);
      assert.equal((await http(port, "GET", "/health")).headers["access-control-allow-methods"], undefined);
    } finally {
      await running.stop();
    }
  });
});
