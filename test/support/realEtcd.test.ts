import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { it } from "node:test";
import { startRealEtcd } from "./realEtcd.js";

it("starts a real etcd on loopback that etcdctl can write to, and stops it", async () => {
  const etcd = await startRealEtcd();
  try {
    const env = { ...process.env, ETCDCTL_API: "3" };
    execFileSync("etcdctl", [`--endpoints=${etcd.endpoint}`, "put", "k", "v"], { env });
    const out = execFileSync("etcdctl", [`--endpoints=${etcd.endpoint}`, "get", "k", "--print-value-only"], {
      env,
    });
    assert.equal(out.toString().trim(), "v");
  } finally {
    await etcd.stop();
  }
  assert.notEqual(etcd.process.exitCode ?? etcd.process.signalCode, null);
});
