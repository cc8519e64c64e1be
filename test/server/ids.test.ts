import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { it } from "node:test";
import { clusterIdFor, formatId, memberIdFor } from "../../src/server/ids.js";
import { startRealEtcd } from "../support/realEtcd.js";

it("derives the member and cluster ids the spec records for a known peer URL and token", () => {
  const member = memberIdFor(["http://127.0.0.1:24800"], "etcd-cluster");
  assert.equal(member, 9829954754940738069n);
  assert.equal(clusterIdFor([member]), 2755613793311995676n);
});

it("sorts peer URLs and member ids before hashing", () => {
  const a = memberIdFor(["http://127.0.0.1:2", "http://127.0.0.1:1"], "t");
  const b = memberIdFor(["http://127.0.0.1:1", "http://127.0.0.1:2"], "t");
  assert.equal(a, b);
  assert.equal(clusterIdFor([3n, 1n, 2n]), clusterIdFor([1n, 2n, 3n]));
  assert.notEqual(memberIdFor(["http://127.0.0.1:1"], "t"), memberIdFor(["http://127.0.0.1:1"], "u"));
});

it("matches the ids a real etcd reports for the same peer URL and token", async () => {
  const etcd = await startRealEtcd();
  try {
    const out = execFileSync(
      "etcdctl",
      [`--endpoints=${etcd.endpoint}`, "endpoint", "status", "-w", "json"],
      {
        env: { ...process.env, ETCDCTL_API: "3" },
      },
    ).toString();
    const [status] = JSON.parse(out.replace(/"(member_id|cluster_id)":(\d+)/g, '"$1":"$2"')) as Array<{
      Status: { header: { cluster_id: string; member_id: string } };
    }>;
    const peerUrl = etcd.peerUrl;
    const member = memberIdFor([peerUrl], "etcd-cluster");
    assert.equal(status?.Status.header.member_id, member.toString());
    assert.equal(status?.Status.header.cluster_id, clusterIdFor([member]).toString());
    assert.match(formatId(member), /^[0-9a-f]+$/);
  } finally {
    await etcd.stop();
  }
});
