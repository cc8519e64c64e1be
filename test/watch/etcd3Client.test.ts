import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3, type IKeyValue } from "etcd3";
import { startRealEtcd } from "../support/realEtcd.js";
import { startWatchServer } from "./watchServer.js";

/**
 * The `etcd3` npm client's watch builder against the etcd-ts double and, with the same assertions, a real
 * etcd 3.4.23: a key and a prefix watcher sharing the client's one stream, put/delete events with
 * previous values, a watcher from a past revision, and a cancel that stops the events.
 */

/** Guard for events that never come (not a timing assertion). */
const EVENT_WAIT_MS = 10_000;

interface Target {
  name: string;
  start(): Promise<{ endpoint: string; stop(): Promise<void> }>;
}

const targets: Target[] = [
  { name: "etcd-ts double", start: () => startWatchServer({ fanout: "worker" }) },
  { name: "real etcd 3.4.23", start: () => startRealEtcd() },
];

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + EVENT_WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const target of targets) {
  describe(`the etcd3 npm client's watch builder against ${target.name}`, () => {
    let running: { endpoint: string; stop(): Promise<void> };
    let client: Etcd3;

    before(async () => {
      running = await target.start();
      client = new Etcd3({ hosts: `http://${running.endpoint}` });
    });

    after(async () => {
      client.close();
      await running.stop();
    });

    it("key and prefix watchers get puts and deletes with previous values, until cancelled", async () => {
      const seen: string[] = [];
      const record = (name: string) => (kv: IKeyValue, previous?: IKeyValue) =>
        seen.push(
          `${name} ${kv.key.toString()}=${kv.value.toString()} prev=${previous?.value.toString() ?? "-"}`,
        );
      const single = await client.watch().key("w/a").withPreviousKV().create();
      const prefix = await client.watch().prefix("w/").create();
      single.on("put", record("single put"));
      single.on("delete", record("single delete"));
      prefix.on("put", record("prefix put"));
      prefix.on("delete", record("prefix delete"));
      await client.put("w/a").value("1");
      await client.put("w/a").value("2");
      await client.put("w/b").value("3");
      await client.delete().key("w/a");
      await until(() => seen.length === 7, "seven events");
      assert.deepEqual(
        seen.filter((s) => s.startsWith("single")),
        ["single put w/a=1 prev=-", "single put w/a=2 prev=1", "single delete w/a= prev=2"],
      );
      assert.deepEqual(
        seen.filter((s) => s.startsWith("prefix")),
        [
          "prefix put w/a=1 prev=-",
          "prefix put w/a=2 prev=-",
          "prefix put w/b=3 prev=-",
          "prefix delete w/a= prev=-",
        ],
      );
      await single.cancel();
      await client.put("w/a").value("after");
      await until(() => seen.length === 8, "the prefix watcher's event");
      assert.equal(seen[7], "prefix put w/a=after prev=-", "the cancelled watcher got nothing more");
      await prefix.cancel();
    });

    it("a watcher from a past revision replays it", async () => {
      const { header } = await client.put("r/x").value("old").exec();
      await client.put("r/x").value("new");
      const values: string[] = [];
      const watcher = await client.watch().key("r/x").startRevision(String(header.revision)).create();
      watcher.on("put", (kv) => values.push(kv.value.toString()));
      await until(() => values.length === 2, "two replayed puts");
      assert.deepEqual(values, ["old", "new"]);
      await watcher.cancel();
    });
  });
}
