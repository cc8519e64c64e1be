import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { MemberError, startMember } from "../../src/index.js";
import { createLogger, type Logger } from "../../src/log/logger.js";
import { callUnary } from "../../src/proto/grpc.js";
import { ClusterClient, KVClient, MaintenanceClient } from "../../src/proto/index.js";
import type { Member, StartMemberOptions } from "../../src/server/member.js";

/** Tests start members in-process on port 0 of 127.0.0.1, each in its own temp dir. */
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-member-"));
  dirs.push(dir);
  return dir;
}

interface CapturedLog {
  logger: Logger;
  lines: Array<{ level: string; msg: string; [field: string]: unknown }>;
}

function captureLog(): CapturedLog {
  const lines: CapturedLog["lines"] = [];
  const logger = createLogger({
    destination: {
      write(line: string) {
        lines.push(JSON.parse(line) as CapturedLog["lines"][number]);
      },
    },
  });
  return { logger, lines };
}

function options(dataDir: string, extra: StartMemberOptions = {}): StartMemberOptions {
  return {
    name: "m1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "m1=http://127.0.0.1:2380",
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
    ...extra,
  };
}

function clients(member: Member): { kv: KVClient; maintenance: MaintenanceClient; cluster: ClusterClient } {
  const address = member.clientUrls[0]!.replace("http://", "");
  const credentials = grpc.credentials.createInsecure();
  return {
    kv: new KVClient(address, credentials),
    maintenance: new MaintenanceClient(address, credentials),
    cluster: new ClusterClient(address, credentials),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function put(kv: KVClient, key: string, value: string) {
  return await callUnary(kv, kv.Put, { key: encoder.encode(key), value: encoder.encode(value) });
}

async function get(kv: KVClient, key: string) {
  return await callUnary(kv, kv.Range, { key: encoder.encode(key) });
}

describe("startMember", () => {
  it("serves puts and gets on a bound port, with this member's ids in the headers", async () => {
    const log = captureLog();
    const member = await startMember(options(tempDir(), { log: log.logger }));
    const { kv, cluster } = clients(member);
    try {
      assert.match(member.clientUrls[0]!, /^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
      const put1 = await put(kv, "foo", "bar");
      assert.equal(put1.header?.memberId, member.memberId);
      assert.equal(put1.header?.clusterId, member.clusterId);
      const range = await get(kv, "foo");
      assert.equal(range.kvs.length, 1);
      assert.equal(decoder.decode(range.kvs[0]!.value), "bar");
      assert.equal(range.header?.revision, put1.header?.revision);

      // The member published the port it really bound, not the :0 it was given.
      const members = await callUnary(cluster, cluster.MemberList, {});
      assert.deepEqual(
        members.members.map((m) => [m.ID, m.name, m.clientURLs]),
        [[member.memberId, "m1", [...member.clientUrls]]],
      );
      assert.deepEqual(member.advertiseClientUrls, member.clientUrls);
    } finally {
      kv.close();
      cluster.close();
      await member.close();
    }
    const messages = log.lines.map((line) => line.msg);
    const order = [
      "starting an etcd server",
      "opened backend db",
      "starting local member",
      "started as single-node; fast-forwarding election ticks",
      "published local member to cluster through raft",
      "ready to serve client requests",
      "serving client traffic insecurely; this is strongly discouraged!",
      "closing etcd server",
      "closed etcd server",
    ];
    let previous = -1;
    for (const msg of order) {
      const at = messages.indexOf(msg);
      assert.ok(
        at > previous,
        `"${msg}" logged after "${order[order.indexOf(msg) - 1]}":\n${messages.join("\n")}`,
      );
      previous = at;
    }
    const insecure = log.lines.find((line) => line.msg.startsWith("serving client traffic insecurely"));
    assert.equal(`http://${String(insecure?.address)}`, member.clientUrls[0]);
  });

  it("keeps data, revision and ids across a restart, and ignores the initial-cluster flags then", async () => {
    const dataDir = tempDir();
    const first = await startMember(options(dataDir));
    let revision: number;
    {
      const { kv } = clients(first);
      await put(kv, "a", "1");
      await put(kv, "b", "2");
      revision = (await put(kv, "a", "3")).header!.revision;
      kv.close();
      await first.close();
    }
    const log = captureLog();
    const second = await startMember(
      options(dataDir, {
        log: log.logger,
        initialClusterToken: "a-different-token",
        initialCluster: "m1=http://127.0.0.1:2390",
        initialAdvertisePeerUrls: "http://127.0.0.1:2390",
      }),
    );
    const { kv } = clients(second);
    try {
      assert.equal(second.memberId, first.memberId);
      assert.equal(second.clusterId, first.clusterId);
      const a = await get(kv, "a");
      assert.equal(decoder.decode(a.kvs[0]!.value), "3");
      assert.equal(a.kvs[0]!.version, 2);
      assert.equal(a.header?.revision, revision);
      assert.equal(decoder.decode((await get(kv, "b")).kvs[0]!.value), "2");
      assert.equal((await put(kv, "c", "4")).header?.revision, revision + 1);
    } finally {
      kv.close();
      await second.close();
    }
    const messages = log.lines.map((line) => line.msg);
    assert.ok(messages.includes("server has been already initialized"));
    assert.ok(messages.includes("restarting local member"));
    assert.ok(!messages.includes("starting local member"));
    const starting = log.lines.find((line) => line.msg === "starting an etcd server");
    assert.equal(starting?.["member-initialized"], true);
  });

  it("lets requests already in the server finish when it closes, and they survive a restart", async () => {
    const dataDir = tempDir();
    const member = await startMember(options(dataDir));
    const { kv } = clients(member);
    const inServerCount = 50;
    let entered = 0;
    let allEntered: () => void = () => {};
    const allInServer = new Promise<void>((resolve) => {
      allEntered = resolve;
    });
    // Count puts as they reach the server; close once they are all inside it (none answered yet).
    const server = member.server;
    const originalPut = server.put.bind(server);
    server.put = (request) => {
      entered++;
      if (entered === inServerCount) allEntered();
      return originalPut(request);
    };
    const puts = Array.from({ length: inServerCount }, (_, i) => put(kv, `k${i}`, `v${i}`));
    await allInServer;
    await member.close();
    const results = await Promise.allSettled(puts);
    kv.close();
    assert.deepEqual(
      results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );

    const again = await startMember(options(dataDir));
    const client = clients(again).kv;
    try {
      const range = await callUnary(client, client.Range, {
        key: encoder.encode("k"),
        rangeEnd: encoder.encode("l"),
        countOnly: true,
      });
      assert.equal(range.count, inServerCount);
    } finally {
      client.close();
      await again.close();
    }
  });

  it("reports the version whose API it implements", async () => {
    const member = await startMember(options(tempDir()));
    const { maintenance } = clients(member);
    try {
      const status = await callUnary(maintenance, maintenance.Status, {});
      assert.equal(status.version, "3.4.23");
      assert.equal(status.leader, member.memberId);
      const response = await fetch(`${member.clientUrls[0]}/version`);
      assert.deepEqual(await response.json(), { etcdserver: "3.4.23", etcdcluster: "3.4.0" });
    } finally {
      maintenance.close();
      await member.close();
    }
  });
});

describe("startMember refuses what it cannot honour, before creating anything", () => {
  const cases: Array<{ name: string; extra: StartMemberOptions; code: string; message: string | RegExp }> = [
    {
      name: "a name missing from --initial-cluster",
      extra: { initialCluster: "other=http://127.0.0.1:2380" },
      code: "MEMBER_BOOTSTRAP_INVALID",
      message: `couldn't find local name "m1" in the initial cluster configuration`,
    },
    {
      // etcd 3.4.23's exact text for this mismatch (checked against the real etcd).
      name: "advertised peer URLs that differ from the member's --initial-cluster entry",
      extra: { initialCluster: "m1=http://127.0.0.1:1" },
      code: "MEMBER_BOOTSTRAP_INVALID",
      message:
        '--initial-cluster has m1=http://127.0.0.1:1 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2380 (resolved urls: "http://127.0.0.1:2380" != "http://127.0.0.1:1")',
    },
    {
      name: "more advertised URLs than the --initial-cluster entry lists",
      extra: { initialAdvertisePeerUrls: ["http://127.0.0.1:2380", "http://127.0.0.1:2381"] },
      code: "MEMBER_BOOTSTRAP_INVALID",
      message:
        "--initial-advertise-peer-urls has http://127.0.0.1:2381 but missing from --initial-cluster=m1=http://127.0.0.1:2380,m1=http://127.0.0.1:2381",
    },
    {
      name: "a URL listed twice in --initial-cluster",
      extra: { initialCluster: "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2380" },
      code: "MEMBER_BOOTSTRAP_INVALID",
      message: "initial cluster m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2380 has duplicate url",
    },
    {
      name: "joining an existing cluster that no listed peer answers for",
      extra: { initialClusterState: "existing" },
      code: "MEMBER_JOIN_FAILED",
      message: /cannot fetch cluster info from peer urls/,
    },
    {
      name: "an https client URL (TLS is not built)",
      extra: { listenClientUrls: "https://127.0.0.1:0", advertiseClientUrls: "https://127.0.0.1:0" },
      code: "MEMBER_LISTEN_UNSUPPORTED",
      message: /only http:\/\/ client URLs/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dataDir = tempDir();
      await assert.rejects(
        startMember(options(dataDir, { ...c.extra, log: captureLog().logger })),
        (error) => {
          assert.ok(error instanceof MemberError, String(error));
          assert.equal(error.code, c.code);
          if (typeof c.message === "string") assert.equal(error.message, c.message);
          else assert.match(error.message, c.message);
          return true;
        },
      );
      assert.equal(existsSync(join(dataDir, "member", "wal")), false, "no WAL was created");
    });
  }
});
