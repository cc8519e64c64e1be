/**
 * The peer port's HTTP endpoints besides raft: /version and /members from the server's callbacks in
 * etcd's JSON, /raft/probing, the handler seam (Go ServeMux patterns), 404 and 405 as Go answers them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TransportErrorCode } from "../../src/transport/index.js";
import { type Node, startNode } from "./harness.js";
import { httpCall } from "./http.js";

describe("peer HTTP endpoints", () => {
  let node: Node;
  before(async () => {
    node = await startNode(0xbdae9bbc11dd390dn, {
      clusterId: 0xd1cfaf999eb97a2an,
      extra: {
        members: () => [
          // Unsorted on purpose: etcd lists members by id.
          {
            id: 0xbdae9bbc11dd390dn,
            name: "ref",
            peerUrls: ["http://127.0.0.1:23801"],
            clientUrls: ["http://127.0.0.1:23791"],
            isLearner: false,
          },
          {
            id: 0x45399d5e88d9496en,
            name: "",
            peerUrls: ["http://127.0.0.1:2"],
            clientUrls: [],
            isLearner: true,
          },
        ],
        clusterVersion: () => "3.4.0",
      },
    });
  });
  after(async () => {
    await node.close();
  });

  it("GET /members: etcd's JSON (decimal ids above 2^53, omitempty) and the cluster id header", async () => {
    const answer = await httpCall(node.port, "GET", "/members");
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-type"], "application/json");
    assert.equal(answer.headers["x-etcd-cluster-id"], "d1cfaf999eb97a2a");
    assert.equal(
      answer.body,
      '[{"id":4988191091637963118,"peerURLs":["http://127.0.0.1:2"],"isLearner":true},' +
        '{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"ref","clientURLs":["http://127.0.0.1:23791"]}]\n',
    );
    const wrongMethod = await httpCall(node.port, "POST", "/members");
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, "GET");
    assert.equal(wrongMethod.body, "Method Not Allowed\n");
  });

  it("GET /version", async () => {
    const answer = await httpCall(node.port, "GET", "/version");
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-type"], "application/json");
    assert.equal(answer.body, '{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}');
  });

  it("GET /raft/probing answers like etcd's prober handler", async () => {
    const answer = await httpCall(node.port, "GET", "/raft/probing");
    assert.equal(answer.status, 200);
    const body = JSON.parse(answer.body) as { OK: boolean; Now: string };
    assert.equal(body.OK, true);
    assert.ok(Math.abs(Date.parse(body.Now) - Date.now()) < 60_000);
  });

  it("unknown paths get Go's 404", async () => {
    for (const path of ["/", "/nope", "/raft", "/members/x", "/leases"]) {
      const answer = await httpCall(node.port, "GET", path);
      assert.equal(answer.status, 404, path);
      assert.equal(answer.body, "404 page not found\n");
      assert.equal(answer.headers["x-content-type-options"], "nosniff");
    }
  });

  it("registered handlers: exact and subtree patterns, longest subtree wins; failures answer 500", async () => {
    node.transport.handle("/leases", (_req, res) => {
      res.end("leases");
    });
    node.transport.handle("/leases/internal", (_req, res) => {
      res.end("internal");
    });
    node.transport.handle("/members/promote/", (req, res) => {
      res.end(`promote ${req.url}`);
    });
    node.transport.handle("/members/hashkv", async (_req, res) => {
      await new Promise((resolve) => setImmediate(resolve));
      res.end("hashkv");
    });
    node.transport.handle("/boom", () => {
      throw new Error("handler bug");
    });
    assert.equal((await httpCall(node.port, "POST", "/leases")).body, "leases");
    assert.equal((await httpCall(node.port, "POST", "/leases/internal")).body, "internal");
    assert.equal(
      (await httpCall(node.port, "POST", "/members/promote/123")).body,
      "promote /members/promote/123",
    );
    assert.equal((await httpCall(node.port, "GET", "/members/hashkv")).body, "hashkv");
    assert.equal((await httpCall(node.port, "GET", "/leases/other")).status, 404);
    const boom = await httpCall(node.port, "GET", "/boom");
    assert.equal(boom.status, 500);
    assert.throws(
      () => node.transport.handle("/leases", () => {}),
      (error: unknown) => (error as { code?: string }).code === TransportErrorCode.BadConfig,
    );
    assert.throws(() => node.transport.handle("/raft/snapshot", () => {}));
    assert.throws(() => node.transport.handle("/raft/stream/x", () => {}));
  });
});
