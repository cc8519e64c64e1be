import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { callUnary, KVClient } from "../../src/proto/index.js";
import { startWatchServer } from "../watch/watchServer.js";

/**
 * A Watch stream message that does not decode ends the stream as etcd 3.4.23 ends it (checked by hand
 * against one: INTERNAL "grpc: failed to unmarshal the received message unexpected EOF"), and the server
 * goes on serving.
 */
describe("Watch with a malformed message", () => {
  it("ends the stream with grpc-go's INTERNAL text", async () => {
    const running = await startWatchServer();
    const session = http2.connect(`http://${running.endpoint}`);
    session.on("error", () => {});
    try {
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/etcdserverpb.Watch/Watch",
          "content-type": "application/grpc",
          te: "trailers",
        });
        let seen: http2.IncomingHttpHeaders = {};
        stream.on("response", (h) => {
          seen = { ...seen, ...h };
        });
        stream.on("trailers", (h) => {
          seen = { ...seen, ...h };
        });
        stream.on("data", () => {});
        stream.on("error", () => {});
        stream.on("close", () => resolve(seen));
        // One framed message: a create_request whose length runs past the end; then the client's
        // half-close, so that the stream closes once the server has ended its side.
        stream.end(Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x05]));
      });
      assert.equal(trailers["grpc-status"], String(grpc.status.INTERNAL));
      assert.equal(
        decodeURIComponent(String(trailers["grpc-message"])),
        "grpc: failed to unmarshal the received message unexpected EOF",
      );
      const kv = new KVClient(running.endpoint, grpc.credentials.createInsecure());
      await callUnary(kv, kv.Put, { key: Buffer.from("still"), value: Buffer.from("serving") });
      kv.close();
    } finally {
      session.destroy();
      await running.stop();
    }
  });
});
