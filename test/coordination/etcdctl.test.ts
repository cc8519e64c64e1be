/**
 * etcdctl 3.4's `lock` and `elect` against etcd-ts, with contending processes. etcdctl runs etcd's
 * clientv3/concurrency recipes on the client side (sessions with keepalive, txn, watch), so this shows
 * the member serves those recipes as etcd does: the second locker gets the lock only once the first
 * releases it (SIGTERM) or dies (kill -9, then its session lease expires).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { type EtcdTs, startEtcdTs } from "../support/etcdTs.js";
import { waitFor } from "./support.js";

interface Ctl {
  process: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

function etcdctl(endpoint: string, args: string[]): Ctl {
  const child = spawn("etcdctl", [`--endpoints=${endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { process: child, out: () => out, exited };
}

const LINE_KEY = /^(\S+\/[0-9a-f]+)$/m;

describe("etcdctl lock and elect against etcd-ts", () => {
  let member: EtcdTs;
  const running: Ctl[] = [];
  const start = (args: string[]): Ctl => {
    const ctl = etcdctl(member.endpoint, args);
    running.push(ctl);
    return ctl;
  };

  before(async () => {
    member = await startEtcdTs();
  });
  after(async () => {
    for (const ctl of running) if (ctl.process.exitCode === null) ctl.process.kill("SIGKILL");
    await Promise.all(running.map((ctl) => ctl.exited));
    await member?.stop();
  });

  it("lock: the second holder waits for a release, the third for the second's lease to expire", async () => {
    const first = start(["lock", "--ttl=2", "mylock"]);
    await waitFor(() => LINE_KEY.test(first.out()), "the first lock holder's key");
    const firstKey = (LINE_KEY.exec(first.out()) as RegExpExecArray)[1] as string;
    assert.match(firstKey, /^mylock\/[0-9a-f]+$/);

    const second = start(["lock", "--ttl=2", "mylock"]);
    const third = start(["lock", "--ttl=2", "mylock"]);
    // Both waiters are queued (their keys exist) while the first holds the lock.
    await waitFor(
      async () => (await countKeys(member.endpoint, "mylock/")) === 3,
      "three keys under mylock/",
    );
    assert.equal(second.out(), "");
    assert.equal(third.out(), "");

    first.process.kill("SIGTERM");
    assert.equal(await first.exited, 0);
    await waitFor(() => LINE_KEY.test(second.out()) || LINE_KEY.test(third.out()), "the next holder");
    const [next, last] = LINE_KEY.test(second.out()) ? [second, third] : [third, second];
    assert.equal(last.out(), "", "one holder at a time");

    // kill -9: no unlock; the lock passes on only when the dead holder's 2 s session lease expires.
    next.process.kill("SIGKILL");
    await next.exited;
    await waitFor(() => LINE_KEY.test(last.out()), "the last holder after the lease expiry");
    last.process.kill("SIGTERM");
    assert.equal(await last.exited, 0);
    await waitFor(async () => (await countKeys(member.endpoint, "mylock/")) === 0, "every lock key released");
  });

  it("lock name cmd: runs the command holding the lock, with ETCD_LOCK_KEY/REV, then unlocks", async () => {
    const holder = start(["lock", "execlock"]);
    await waitFor(() => LINE_KEY.test(holder.out()), "the holder");
    const exec = start([
      "lock",
      "execlock",
      "--",
      "sh",
      "-c",
      'echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"',
    ]);
    await waitFor(
      async () => (await countKeys(member.endpoint, "execlock/")) === 2,
      "the exec waiter queued",
    );
    assert.equal(exec.out(), "", "the command waits for the lock");
    holder.process.kill("SIGTERM");
    assert.equal(await exec.exited, 0);
    const match = /^key=(execlock\/[0-9a-f]+) rev=(\d+)$/m.exec(exec.out());
    assert.ok(match !== null, exec.out());
    assert.ok(Number(match[2]) > 0);
    assert.equal(await countKeys(member.endpoint, "execlock/"), 0, "unlocked after the command");
  });

  it("elect: the observer sees each leader; a candidate leads once the leader resigns", async () => {
    const leader = start(["elect", "myelection", "p1"]);
    await waitFor(() => /^myelection\/[0-9a-f]+\np1$/m.test(leader.out()), "the first leader");
    const observer = start(["elect", "-l", "myelection"]);
    await waitFor(() => /\np1\n/.test(observer.out()), "the observer's first leader");
    const candidate = start(["elect", "myelection", "p2"]);
    await waitFor(
      async () => (await countKeys(member.endpoint, "myelection/")) === 2,
      "the candidate queued",
    );
    assert.equal(candidate.out(), "");
    leader.process.kill("SIGTERM");
    assert.equal(await leader.exited, 0);
    await waitFor(() => /^myelection\/[0-9a-f]+\np2$/m.test(candidate.out()), "the candidate elected");
    await waitFor(() => /\np2\n/.test(observer.out()), "the observer's second leader");
    const observed = observer.out().trim().split("\n");
    assert.equal(observed.length, 4, observer.out());
    assert.deepEqual([observed[1], observed[3]], ["p1", "p2"]);
    candidate.process.kill("SIGTERM");
    observer.process.kill("SIGTERM");
    assert.equal(await candidate.exited, 0);
    assert.equal(await observer.exited, 0);
  });
});

async function countKeys(endpoint: string, prefix: string): Promise<number> {
  const ctl = etcdctl(endpoint, ["get", "--prefix", "--keys-only", "--write-out=fields", prefix]);
  await ctl.exited;
  const match = /"Count" : (\d+)/.exec(ctl.out());
  assert.ok(match !== null, ctl.out());
  return Number(match[1]);
}
