/**
 * The `etcd3` npm client's lock and election helpers against etcd-ts. Like etcdctl they run their
 * recipes on the client side over KV, Lease and Watch; this shows the member serves them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Etcd3, EtcdLockFailedError } from "etcd3";
import { type EtcdTs, startEtcdTs } from "../support/etcdTs.js";
import { waitFor } from "./support.js";

describe("etcd3 npm client: lock and election against etcd-ts", () => {
  let member: EtcdTs;
  let one: Etcd3;
  let two: Etcd3;

  before(async () => {
    member = await startEtcdTs();
    one = new Etcd3({ hosts: member.clientUrl });
    two = new Etcd3({ hosts: member.clientUrl });
  });
  after(async () => {
    // Closing the clients stops every keepalive and watch a failed case may have left running.
    one?.close();
    two?.close();
    await member?.stop();
  });

  it("lock: a held lock refuses a second acquirer until it is released", async () => {
    const first = await one.lock("npm-lock").ttl(5).acquire();
    await assert.rejects(two.lock("npm-lock").ttl(5).acquire(), EtcdLockFailedError);
    await first.release();
    const second = await two.lock("npm-lock").ttl(5).acquire();
    assert.equal((await one.getAll().prefix("npm-lock").keys()).length, 1);
    await second.release();
    assert.equal((await one.getAll().prefix("npm-lock").keys()).length, 0);
  });

  it("election: campaign, leader, observe, proclaim, resign hands over to the next candidate", async () => {
    const electionOne = one.election("npm-election", 5);
    const electionTwo = two.election("npm-election", 5);
    const campaignOne = electionOne.campaign("a");
    await campaignOne.wait();
    assert.equal(await electionOne.leader(), "a");

    const observer = await electionTwo.observe();
    const seen: (string | undefined)[] = [];
    observer.on("change", (value) => seen.push(value));
    assert.equal(observer.leader(), "a");

    let twoElected = false;
    const campaignTwo = electionTwo.campaign("b");
    campaignTwo.on("elected", () => {
      twoElected = true;
    });
    await waitFor(
      async () => (await one.getAll().prefix("election/npm-election/").keys()).length === 2,
      "two candidates",
    );
    assert.equal(twoElected, false);

    await campaignOne.proclaim("a2");
    await waitFor(() => seen.includes("a2"), "the proclamation observed");
    assert.equal(await electionTwo.leader(), "a2");

    await campaignOne.resign();
    await campaignTwo.wait();
    assert.equal(twoElected, true);
    await waitFor(() => seen.includes("b"), "the new leader observed");
    assert.equal(await electionOne.leader(), "b");
    await observer.cancel();
    await campaignTwo.resign();
    assert.equal(await electionOne.leader(), undefined);
  });
});
