import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { etcdctl } from "../diff/etcdctl.js";
import { type RunningStoreServer, startStoreServer } from "./storeServer.js";

/**
 * The real etcdctl 3.4 against the api layer (over the store double). Every KV command and flag is run
 * against both this layer and a real etcd, and compared, by the differential suite (test/diff, scenario
 * kv.txt); this file checks the answers themselves for the commands operators script against.
 */
describe("etcdctl 3.4 against the api layer", () => {
  let running: RunningStoreServer;
  const run = async (args: string[], stdin?: string) => {
    const result = await etcdctl(running.endpoint, args, stdin);
    return { ...result, stderr: result.stderr.replace(/^\{"level".*\n/gm, "") };
  };

  before(async () => {
    running = await startStoreServer();
  });

  after(async () => {
    await running.stop();
  });

  it("put, get with flags, del", async () => {
    assert.deepEqual(await run(["put", "k1", "v1"]), { stdout: "OK\n", stderr: "", exitCode: 0 });
    await run(["put", "k2", "v2"]);
    assert.equal((await run(["get", "k", "--prefix"])).stdout, "k1\nv1\nk2\nv2\n");
    assert.equal(
      (await run(["get", "k", "--prefix", "--keys-only", "--order=DESCEND"])).stdout,
      "k2\n\nk1\n\n",
    );
    assert.equal((await run(["get", "k1", "--print-value-only"])).stdout, "v1\n");
    // etcdctl 3.4 has no --count-only (3.5 added it): the gRPC tests cover count_only.
    assert.match((await run(["get", "k", "--count-only"])).stderr, /unknown flag: --count-only/);
    const json = JSON.parse((await run(["get", "k", "--prefix", "--limit=1", "-w", "json"])).stdout) as {
      count: number;
      more: boolean;
      header: { revision: number };
    };
    assert.deepEqual([json.count, json.more, json.header.revision], [2, true, 3]);
    assert.equal((await run(["get", "k1", "--rev=1"])).stdout, "");
    assert.equal((await run(["del", "k", "--prefix"])).stdout, "2\n");
    assert.deepEqual(await run(["get", ""]), {
      stdout: "",
      stderr: "Error: etcdserver: key is not provided\n",
      exitCode: 1,
    });
  });

  it("txn -i from a here-doc, and compaction", async () => {
    await run(["put", "t", "a"]);
    const txn = await run(["txn", "-i"], 'value("t") = "a"\n\nput t b\n\nput t c\n\n');
    assert.equal(txn.exitCode, 0);
    assert.match(txn.stdout, /SUCCESS\n\nOK\n$/);
    assert.equal((await run(["get", "t", "--print-value-only"])).stdout, "b\n");
    assert.equal((await run(["compaction", "3"])).stdout, "compacted revision 3\n");
    assert.equal(
      (await run(["get", "t", "--rev=2"])).stderr,
      "Error: etcdserver: mvcc: required revision has been compacted\n",
    );
  });

  it("endpoint health, endpoint status and member list", async () => {
    // etcdctl 3.4 prints the health line on stderr.
    const health = await run(["endpoint", "health"]);
    assert.match(health.stderr, /^127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = /);
    const status = JSON.parse((await run(["endpoint", "status", "-w", "json"])).stdout) as {
      Status: { version: string };
    }[];
    assert.equal(status[0]?.Status.version, "3.4.23");
    const id = running.server.memberId.toString(16);
    assert.equal(
      (await run(["member", "list"])).stdout,
      `${id}, started, default, http://127.0.0.1:2380, http://${running.endpoint}, false\n`,
    );
  });
});
