/**
 * The recipes in process, over the store double of test/api and a real WatchHub fed from its applies:
 * every wait releases its watch (on success, on cancel, on failure), a cancelled waiter deletes its key
 * (Lock always, Campaign too), and Observe under a reader that does not keep up still delivers every
 * proclamation, in order (the hub's watcher falls behind and catches up from history; nothing dropped).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MemberClient, prefixEnd } from "../../src/concurrency/client.js";
import { campaign, leader, observe, proclaim } from "../../src/concurrency/election.js";
import { lock, unlock } from "../../src/concurrency/mutex.js";
import { etcdserverpb, type v3electionpb } from "../../src/proto/index.js";
import { WatchHub } from "../../src/watch/hub.js";
import { feedHub } from "../watch/watchServer.js";
import { LeaseStoreServer } from "./storeDouble.js";
import { b, str, waitFor } from "./support.js";

describe("lock and election recipes over the watch hub", () => {
  let server: LeaseStoreServer;
  let hub: WatchHub;
  let client: MemberClient;

  before(async () => {
    server = new LeaseStoreServer();
    hub = new WatchHub({ store: server.store, header: () => server.header(), fanout: "inline" });
    await hub.start();
    feedHub(server.store, hub);
    client = new MemberClient(server, hub);
  });
  after(async () => {
    await hub.close();
  });

  const idle = async (): Promise<void> => {
    // Streams close a microtask after their watch ends.
    await waitFor(() => client.openWatchCount === 0 && hub.stats().streams === 0, "every watch released");
    assert.equal(hub.stats().watchers, 0);
  };
  const keys = async (prefix: string): Promise<string[]> => {
    const response = await server.range(
      etcdserverpb.RangeRequest.create({ key: b(prefix), rangeEnd: prefixEnd(b(prefix)) }),
    );
    return (response.kvs ?? []).map((kv) => str(kv.key));
  };

  it("a lock waiter takes the lock after the holder's unlock and leaves no watch behind", async () => {
    const never = new AbortController().signal;
    const held = await lock(client, b("m"), 1n, never);
    assert.equal(str(held.key), "m/1");
    const waiting = lock(client, b("m"), 2n, never);
    await waitFor(() => client.openWatchCount === 1, "the waiter watching the holder's key");
    await unlock(client, held.key);
    const got = await waiting;
    assert.equal(str(got.key), "m/2");
    assert.equal(got.header.revision, server.store.revision, "the header of the last (empty) read");
    await unlock(client, got.key);
    await idle();
  });

  it("a cancelled lock waiter deletes its key and releases its watch", async () => {
    const never = new AbortController().signal;
    const held = await lock(client, b("c"), 1n, never);
    const controller = new AbortController();
    const waiting = lock(client, b("c"), 2n, controller.signal);
    await waitFor(() => client.openWatchCount === 1, "the waiter watching");
    assert.deepEqual(await keys("c/"), ["c/1", "c/2"]);
    controller.abort();
    await assert.rejects(waiting, { code: "Cancelled" });
    assert.deepEqual(await keys("c/"), ["c/1"]);
    await unlock(client, held.key);
    await idle();
  });

  it("a cancelled campaign resigns; a leader's proclamations reach a slow observer in order", async () => {
    const never = new AbortController().signal;
    const first = await campaign(client, { name: b("e"), lease: 1n, value: b("v0") }, never);
    const controller = new AbortController();
    const waiting = campaign(client, { name: b("e"), lease: 2n, value: b("x") }, controller.signal);
    await waitFor(() => client.openWatchCount === 1, "the candidate watching");
    controller.abort();
    await assert.rejects(waiting, { code: "Cancelled" });
    assert.deepEqual(await keys("e/"), ["e/1"]);

    // An observer whose sends take their time while many proclamations land.
    const seen: string[] = [];
    const observing = new AbortController();
    let release: (() => void) | null = null;
    const done = observe(
      client,
      b("e"),
      observing.signal,
      async (response: v3electionpb.LeaderResponseInit) => {
        seen.push(str(response.kv?.value ?? undefined));
        if (seen.length === 2) await new Promise<void>((resolve) => (release = resolve));
      },
    );
    await waitFor(() => seen.length === 1, "the current leader observed");
    const proclamations = 300;
    const value = "p".repeat(2048);
    await proclaim(client, { leader: first.leader as v3electionpb.LeaderKey, value: b(`${value}1`) });
    // The observer now holds the second response: its watch of the leader key is open and not read.
    await waitFor(() => seen.length === 2, "the first proclamation observed");
    for (let i = 2; i <= proclamations; i++) {
      await proclaim(client, { leader: first.leader as v3electionpb.LeaderKey, value: b(`${value}${i}`) });
    }
    // More than the stream's byte bound was written while the reader held back: the watcher fell behind.
    assert.ok(hub.stats().fellBehind > 0);
    (release as unknown as () => void)();
    await waitFor(() => seen.length === proclamations + 1, "every proclamation observed");
    assert.deepEqual(
      seen.slice(1).map((v) => Number(v.slice(value.length))),
      Array.from({ length: proclamations }, (_, i) => i + 1),
    );
    observing.abort();
    await done;
    const current = await leader(client, { name: b("e") });
    assert.equal(str(current.kv?.value ?? undefined), `${value}${proclamations}`);
    await unlock(client, b("e/1"));
    await idle();
  });
});
