import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { etcdctl } from "../diff/etcdctl.js";
import { type DiffTarget, etcdTsTarget, type RunningTarget, realEtcdTarget } from "../diff/targets.js";

/**
 * The real etcdctl 3.4 against the etcd-ts member (the bin as a child process) and, with the same
 * assertions, against a real etcd 3.4.23: a check that fails on etcd too is a wrong check, not a finding.
 * The differential suite (test/diff, scenario kv.txt) compares every KV command and flag output for
 * output; this file asserts the answers operators script against.
 */
for (const target of [etcdTsTarget, realEtcdTarget] satisfies DiffTarget[]) {
  describe(`etcdctl 3.4 against ${target.name}`, () => {
    let running: RunningTarget;
    const run = async (args: string[], stdin?: string) => {
      const result = await etcdctl(running.endpoint, args, stdin);
      // etcdctl's client logs (zap JSON lines) are not part of the answer.
      return { ...result, stderr: result.stderr.replace(/^\{"level".*\n/gm, "") };
    };

    before(async () => {
      running = await target.start();
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
      // etcdctl 3.4 has no --count-only (3.5 added it): test/api/grpc.test.ts covers count_only.
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
        Status: { version: string; leader: number; raftIndex: number; raftAppliedIndex: number };
      }[];
      assert.equal(status[0]?.Status.version, "3.4.23");
      assert.equal(status[0]?.Status.raftAppliedIndex, status[0]?.Status.raftIndex);
      const list = (await run(["member", "list"])).stdout;
      assert.match(
        list,
        new RegExp(
          `^[0-9a-f]+, started, ref, http://127\\.0\\.0\\.1:\\d+, http://${running.endpoint}, false\\n$`,
        ),
      );
      // The status names this member as the leader (a one-member cluster); ids exceed 2^53, compare text.
      const statusText = (await run(["endpoint", "status"])).stdout;
      assert.equal(statusText.split(", ")[1], list.split(", ")[0]);
    });
  });
}
