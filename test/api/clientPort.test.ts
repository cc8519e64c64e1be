import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type ClientPort, listenClientPort } from "../../src/api/clientPort.js";

// A one-method service with identity serialisation: this test is about routing bytes, not protobuf.
const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: "/test.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  },
};

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET" }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("client port: gRPC and HTTP/1.1 on one listener", () => {
  let port: ClientPort;
  let grpcServer: grpc.Server;

  before(async () => {
    grpcServer = new grpc.Server();
    grpcServer.addService(echoService, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        callback(null, Buffer.concat([Buffer.from("echo:"), call.request]));
      },
    });
    port = await listenClientPort({
      host: "127.0.0.1",
      port: 0,
      grpcServer,
      http: (req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`http:${req.method} ${req.url}`);
      },
    });
  });

  after(async () => {
    await port.close();
    grpcServer.forceShutdown();
  });

  it("routes an HTTP/2 gRPC call to the gRPC server", async () => {
    const Client = grpc.makeGenericClientConstructor(echoService, "Echo");
    const client = new Client(`127.0.0.1:${port.address().port}`, grpc.credentials.createInsecure());
    const reply = await new Promise<Buffer>((resolve, reject) => {
      client.Echo!(Buffer.from("hi"), (error: grpc.ServiceError | null, value?: Buffer) =>
        error ? reject(error) : resolve(value ?? Buffer.alloc(0)),
      );
    });
    assert.equal(reply.toString(), "echo:hi");
    client.close();
  });

  it("routes HTTP/1.1 requests to the HTTP handler, also over keep-alive", async () => {
    const first = await httpGet(port.address().port, "/health");
    assert.deepEqual(first, { status: 200, body: "http:GET /health" });
    const second = await httpGet(port.address().port, "/version");
    assert.deepEqual(second, { status: 200, body: "http:GET /version" });
  });

  it("routes a request whose first bytes arrive one at a time", async () => {
    const socket = connect(port.address().port, "127.0.0.1");
    const text = "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = "";
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
    });
    const closed = new Promise((resolve) => socket.on("close", resolve));
    for (const ch of text) {
      socket.write(ch);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await closed;
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /http:GET \/slow/);
  });

  it("survives garbage and a client that disconnects mid-request", async () => {
    for (const garbage of [
      "\x00\x01\x02garbage\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff",
      "P",
    ]) {
      const socket = connect(port.address().port, "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(Buffer.from(garbage, "latin1"));
      socket.destroy();
    }
    const still = await httpGet(port.address().port, "/health");
    assert.equal(still.status, 200);
  });
});
