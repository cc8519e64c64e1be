import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3, EtcdLeaseInvalidError } from "etcd3";
import { type DiffTarget, etcdTsTarget, type RunningTarget, realEtcdTarget } from "../diff/targets.js";

/**
 * The etcd3 npm client's KV and txn calls against the etcd-ts member and, with the same assertions,
 * against a real etcd 3.4.23 (so a check that fails on etcd is known to be wrong, not a finding).
 */
for (const target of [etcdTsTarget, realEtcdTarget] satisfies DiffTarget[]) {
  describe(`the etcd3 npm client's KV and txn calls against ${target.name}`, () => {
    let running: RunningTarget;
    let client: Etcd3;

    before(async () => {
      running = await target.start();
      client = new Etcd3({ hosts: `http://${running.endpoint}` });
    });

    after(async () => {
      client.close();
      await running.stop();
    });

    it("puts and gets strings, numbers, JSON and buffers", async () => {
      await client.put("s").value("text");
      await client.put("n").value(42);
      await client.put("j").value(JSON.stringify({ a: 1 }));
      await client.put("buf").value(Buffer.from([0, 1, 2]));
      assert.equal(await client.get("s").string(), "text");
      assert.equal(await client.get("n").number(), 42);
      assert.deepEqual(await client.get("j").json(), { a: 1 });
      assert.deepEqual(await client.get("buf").buffer(), Buffer.from([0, 1, 2]));
      assert.equal(await client.get("absent").string(), null);
    });

    it("reads prefixes, counts, sorts and limits; deletes ranges and returns previous values", async () => {
      for (const [k, v] of [
        ["p/a", "3"],
        ["p/b", "1"],
        ["p/c", "2"],
      ] as const) {
        await client.put(k).value(v);
      }
      assert.deepEqual(await client.getAll().prefix("p/").keys(), ["p/a", "p/b", "p/c"]);
      assert.equal(await client.getAll().prefix("p/").count(), 3);
      assert.deepEqual(await client.getAll().prefix("p/").sort("Value", "Descend").keys(), [
        "p/a",
        "p/c",
        "p/b",
      ]);
      assert.deepEqual(await client.getAll().prefix("p/").limit(2).keys(), ["p/a", "p/b"]);
      const previous = await client.put("p/a").value("4").getPrevious();
      assert.equal(previous?.value.toString(), "3");
      const deleted = await client.delete().prefix("p/").getPrevious();
      assert.deepEqual(
        deleted.map((kv) => kv.key.toString()),
        ["p/a", "p/b", "p/c"],
      );
      assert.equal(await client.getAll().prefix("p/").count(), 0);
    });

    it("runs if/then/else txns and reports which branch ran", async () => {
      await client.put("lock").value("free");
      const taken = await client
        .if("lock", "Value", "==", "free")
        .then(client.put("lock").value("mine"))
        .commit();
      assert.equal(taken.succeeded, true);
      const again = await client
        .if("lock", "Value", "==", "free")
        .then(client.put("lock").value("theirs"))
        .else(client.get("lock"))
        .commit();
      assert.equal(again.succeeded, false);
      const range = again.responses[0]?.response_range;
      assert.equal(range?.kvs[0]?.value.toString(), "mine");
      assert.equal(await client.get("lock").string(), "mine");
    });

    it("sees etcd's errors as the client library maps them", async () => {
      await assert.rejects(
        client.put("leased").value("v").lease("1234").exec(),
        // The client recognises etcd's text and raises its lease error (whose message wraps the status).
        (error: Error) =>
          error instanceof EtcdLeaseInvalidError && /requested lease not found/.test(error.message),
      );
      await assert.rejects(client.get("").string(), /key is not provided/);
    });

    it("grants a lease, attaches keys, keeps it alive, and revoking it deletes them", async () => {
      const lease = client.lease(60, { autoKeepAlive: false });
      await lease.put("leased/a").value("1");
      await lease.put("leased/b").value("2");
      const id = await lease.grant();
      assert.match(id, /^[0-9a-f]+$/);
      assert.deepEqual(await client.getAll().prefix("leased/").keys(), ["leased/a", "leased/b"]);
      const alive = await lease.keepaliveOnce();
      assert.equal(alive.TTL, "60");
      const live = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
      assert.equal(live.grantedTTL, "60");
      assert.deepEqual(live.keys.map((k) => k.toString()).sort(), ["leased/a", "leased/b"]);
      await lease.revoke();
      assert.deepEqual(await client.getAll().prefix("leased/").keys(), []);
    });

    it("serves many concurrent calls on one connection in order per key", async () => {
      const keys = Array.from({ length: 200 }, (_, i) => `c/${i.toString().padStart(3, "0")}`);
      await Promise.all(keys.map((key, i) => client.put(key).value(String(i))));
      const all = await client.getAll().prefix("c/").strings();
      assert.equal(Object.keys(all).length, keys.length);
      assert.deepEqual(
        keys.map((key) => all[key]),
        keys.map((_key, i) => String(i)),
      );
      const revisions = await Promise.all(keys.slice(0, 50).map((key) => client.put(key).value("x")));
      const seen = new Set(revisions.map((r) => r.header.revision));
      // Every acknowledged write got its own revision.
      assert.equal(seen.size, 50);
    });
  });
}
