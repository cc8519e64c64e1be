import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { callUnary, type KVClient } from "../../src/proto/index.js";
import { etcdctl, etcdctlBinary } from "../diff/etcdctl.js";
import { startRealEtcd } from "../support/realEtcd.js";
import { clients, startWatchServer } from "./watchServer.js";

/**
 * The real etcdctl 3.4.23 `watch` (every flag it has: --prefix, --rev, --prev-kv, a range end, -i with its
 * `watch` and `progress` commands, an exec command after `--`, -w json, --hex) against the etcd-ts double
 * and, with the same assertions, a real etcd 3.4.23. etcdctl 3.4 has no --progress-notify flag (3.5 added
 * it); progress_notify is covered over gRPC in rules.test.ts. Each watch starts at an explicit revision
 * where it can, so that the output does not depend on when etcdctl's stream was set up.
 */

/** Guard for output that never comes (not a timing assertion). */
const OUTPUT_WAIT_MS = 15_000;

/** A long-running etcdctl (watch) whose output is awaited piece by piece. */
class Etcdctl {
  private readonly child: ChildProcessWithoutNullStreams;
  stdout = "";
  stderr = "";
  exitCode: number | null = null;
  private readonly exited: Promise<void>;

  constructor(endpoint: string, args: string[]) {
    this.child = spawn(etcdctlBinary(), [`--endpoints=${endpoint}`, "--dial-timeout=3s", ...args], {
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    this.child.stdout.on("data", (chunk: Buffer) => {
      this.stdout += chunk.toString();
    });
    this.child.stderr.on("data", (chunk: Buffer) => {
      // etcdctl's client logs (zap JSON lines) are not part of the answer.
      this.stderr += chunk.toString().replace(/^\{"level".*\n/gm, "");
    });
    this.child.stdin.on("error", () => {});
    this.exited = new Promise((resolve) =>
      this.child.on("close", (code) => {
        this.exitCode = code;
        resolve();
      }),
    );
  }

  write(line: string): void {
    this.child.stdin.write(line);
  }

  /** Waits until stdout holds `expected` (returns stdout), or fails with what came. */
  async waitFor(expected: string): Promise<string> {
    const deadline = Date.now() + OUTPUT_WAIT_MS;
    while (!this.stdout.includes(expected)) {
      if (Date.now() > deadline || this.exitCode !== null) {
        assert.fail(
          `etcdctl printed ${JSON.stringify(this.stdout)} (stderr ${JSON.stringify(this.stderr)}), not ${JSON.stringify(expected)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.stdout;
  }

  async waitExit(): Promise<number> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), OUTPUT_WAIT_MS);
    await this.exited;
    clearTimeout(timer);
    return this.exitCode ?? -1;
  }

  async stop(): Promise<void> {
    if (this.exitCode === null) this.child.kill("SIGTERM");
    await this.waitExit();
  }
}

interface Target {
  name: string;
  start(): Promise<{ endpoint: string; stop(): Promise<void> }>;
}

const targets: Target[] = [
  { name: "etcd-ts double", start: () => startWatchServer({ fanout: "worker" }) },
  { name: "real etcd 3.4.23", start: () => startRealEtcd() },
];

for (const target of targets) {
  describe(`etcdctl 3.4 watch against ${target.name}`, () => {
    let running: { endpoint: string; stop(): Promise<void> };
    let kv: KVClient;
    let close: () => void;
    const watches: Etcdctl[] = [];
    const watch = (args: string[]) => {
      const w = new Etcdctl(running.endpoint, ["watch", ...args]);
      watches.push(w);
      return w;
    };
    const put = async (key: string, value: string) =>
      (await callUnary(kv, kv.Put, { key: Buffer.from(key), value: Buffer.from(value) })).header?.revision ??
      0;
    const revision = async () =>
      (await callUnary(kv, kv.Range, { key: Buffer.from("\0"), countOnly: true })).header?.revision ?? 0;

    before(async () => {
      running = await target.start();
      ({ kv, close } = clients(running.endpoint));
    });

    after(async () => {
      for (const w of watches) await w.stop();
      close();
      await running.stop();
    });

    it("a key, then --prefix with puts and a delete", async () => {
      const from = (await revision()) + 1;
      const single = watch(["--rev", String(from), "e1"]);
      const prefix = watch(["--prefix", "--rev", String(from), "e1"]);
      await put("e1", "a");
      await put("e1x", "b");
      await etcdctl(running.endpoint, ["del", "e1x"]);
      assert.equal(await single.waitFor("PUT\ne1\na\n"), "PUT\ne1\na\n");
      assert.equal(await prefix.waitFor("DELETE\ne1x\n\n"), "PUT\ne1\na\nPUT\ne1x\nb\nDELETE\ne1x\n\n");
    });

    it("--rev replays history; --prev-kv prints the previous pair first; a range end", async () => {
      const first = await put("e2", "1");
      await put("e2", "2");
      await put("e2b", "3");
      const history = watch(["--rev", String(first), "e2"]);
      assert.equal(await history.waitFor("PUT\ne2\n2\n"), "PUT\ne2\n1\nPUT\ne2\n2\n");
      const withPrev = watch(["--prev-kv", "--rev", String(first), "e2"]);
      assert.equal(await withPrev.waitFor("e2\n2\n"), "PUT\ne2\n1\nPUT\ne2\n1\ne2\n2\n");
      const range = watch(["--rev", String(first), "e2", "e2c"]);
      assert.equal(await range.waitFor("e2b\n3\n"), "PUT\ne2\n1\nPUT\ne2\n2\nPUT\ne2b\n3\n");
    });

    it("-w json and --hex", async () => {
      const rev = await put("e3", "v");
      const json = watch(["-w", "json", "--rev", String(rev), "e3"]);
      const line = await json.waitFor("\n");
      const parsed = JSON.parse(line) as {
        Header: { revision: number };
        Events: { kv: { key: string; value: string; mod_revision: number } }[];
        CompactRevision: number;
        Canceled: boolean;
        Created: boolean;
      };
      assert.equal(parsed.Events.length, 1);
      assert.equal(Buffer.from(parsed.Events[0]?.kv.key ?? "", "base64").toString(), "e3");
      assert.equal(parsed.Events[0]?.kv.mod_revision, rev);
      assert.deepEqual([parsed.Header.revision, parsed.Created, parsed.Canceled], [rev, false, false]);
      const hex = watch(["--hex", "--rev", String(rev), "e3"]);
      assert.equal(await hex.waitFor("\\x76\n"), "PUT\n\\x65\\x33\n\\x76\n");
    });

    it("-i: watch commands from stdin, and `progress` prints a progress notify", async () => {
      const from = (await revision()) + 1;
      const interactive = watch(["-i"]);
      interactive.write(`watch --rev ${from} e4\n`);
      const rev = await put("e4", "x");
      await interactive.waitFor("PUT\ne4\nx\n");
      interactive.write("progress\n");
      assert.equal(
        await interactive.waitFor(`progress notify: ${rev}\n`),
        `PUT\ne4\nx\nprogress notify: ${rev}\n`,
      );
    });

    it("an exec command after -- runs per event with ETCD_WATCH_* set", async () => {
      const rev = await put("e5", "run");
      const exec = watch([
        "--rev",
        String(rev),
        "e5",
        "--",
        "sh",
        "-c",
        'echo "$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_REVISION"',
      ]);
      assert.equal(await exec.waitFor(`${rev}\n`), `PUT\ne5\nrun\n"PUT" "e5" "run" ${rev}\n`);
    });

    it("a compacted --rev: the watch is cancelled with the compaction error and etcdctl exits", async () => {
      const old = await put("e6", "1");
      const now = await put("e6", "2");
      await callUnary(kv, kv.Compact, { revision: now });
      const compacted = watch(["--rev", String(old), "e6"]);
      const code = await compacted.waitExit();
      assert.equal(compacted.stdout, "");
      assert.match(
        compacted.stderr,
        /watch was canceled \(etcdserver: mvcc: required revision has been compacted\)\nError: watch is canceled by the server\n$/,
      );
      assert.equal(code, 5);
    });
  });
}
