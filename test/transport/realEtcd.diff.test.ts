/**
 * The same peer-port requests against a real etcd 3.4.23 and an etcd-ts transport with the same cluster
 * and member ids: the refusals (cluster ID mismatch, incompatible version, removed member, bad paths,
 * wrong methods) and /version must match in status, body and the headers peers read.
 *
 * Known, deliberate differences (not compared): a stream from a member we do not know yet is accepted
 * and answered through a remote (etcd answers 404 "error sender not found" on streams but accepts the
 * same member's pipeline posts); a plain GET on etcd's own stream paths is refused here as an
 * incompatible version (no etcd stream protocol is spoken), where etcd would start streaming.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import type { PeerMember } from "../../src/transport/index.js";
import { type RealEtcd, startRealEtcd } from "../support/realEtcd.js";
import { type Node, startNode } from "./harness.js";
import { type HttpAnswer, httpCall } from "./http.js";

interface MemberJson {
  id: string;
  name?: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

const COMPARED_HEADERS = [
  "content-type",
  "x-content-type-options",
  "allow",
  "x-etcd-cluster-id",
  "x-server-version",
];

function etcdctl(etcd: RealEtcd, ...args: string[]): string {
  return execFileSync("etcdctl", [`--endpoints=${etcd.endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    encoding: "utf8",
  });
}

function addLearner(etcd: RealEtcd, name: string, peerUrl: string): string {
  const out = etcdctl(etcd, "member", "add", name, `--peer-urls=${peerUrl}`, "--learner");
  // etcdctl pads the id to 16 columns ("Member  8855857d4031b93 added" for a 15-digit id).
  const match = /Member\s+([0-9a-f]+) added/.exec(out);
  assert.ok(match, out);
  return match[1]!;
}

function shape(answer: HttpAnswer): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  for (const name of COMPARED_HEADERS) headers[name] = answer.headers[name];
  return { status: answer.status, body: answer.body, headers };
}

describe("peer port refusals match a real etcd", () => {
  let etcd: RealEtcd;
  let node: Node;
  let clusterId = "";
  let memberId = "";
  let removedId = "";
  let knownId = "";
  let referenceMembers: PeerMember[] = [];

  before(async () => {
    etcd = await startRealEtcd();
    const peerPort = Number(new URL(etcd.peerUrl).port);
    const members = await httpCall(peerPort, "GET", "/members");
    clusterId = String(members.headers["x-etcd-cluster-id"]);
    memberId = BigInt(
      (JSON.parse(members.body.replace(/"id":(\d+)/, '"id":"$1"')) as { id: string }[])[0]!.id,
    ).toString(16);
    removedId = addLearner(etcd, "gone", "http://127.0.0.1:1");
    etcdctl(etcd, "member", "remove", removedId);
    knownId = addLearner(etcd, "known", "http://127.0.0.1:2");
    // Our /members serves what the real etcd lists now, so the two answers can be compared byte for byte.
    const listed = await httpCall(peerPort, "GET", "/members");
    referenceMembers = (JSON.parse(listed.body.replace(/"id":(\d+)/g, '"id":"$1"')) as MemberJson[]).map(
      (m) => ({
        id: BigInt(m.id),
        name: m.name ?? "",
        peerUrls: m.peerURLs,
        clientUrls: m.clientURLs ?? [],
        isLearner: m.isLearner === true,
      }),
    );
    node = await startNode(BigInt(`0x${memberId}`), {
      clusterId: BigInt(`0x${clusterId}`),
      extra: { clusterVersion: () => "3.4.0", members: () => referenceMembers },
    });
    node.removed.add(BigInt(`0x${removedId}`));
  });
  after(async () => {
    await node?.close();
    await etcd?.stop();
  });

  const versions = { "X-Server-Version": "3.4.23", "X-Min-Cluster-Version": "3.0.0" };
  const cases: [
    name: string,
    request: () => [method: string, path: string, headers: Record<string, string>],
  ][] = [
    ["a stream without version headers", () => ["GET", `/raft/stream/message/${knownId}`, {}]],
    [
      "a stream from a version too old",
      () => ["GET", `/raft/stream/message/${knownId}`, { "X-Server-Version": "2.3.0" }],
    ],
    [
      "a stream from another cluster",
      () => ["GET", `/raft/stream/message/${knownId}`, { ...versions, "X-Etcd-Cluster-ID": "1234" }],
    ],
    [
      "a stream on an unknown path",
      () => ["GET", `/raft/stream/bogus/${knownId}`, { ...versions, "X-Etcd-Cluster-ID": clusterId }],
    ],
    [
      "a stream with a bad sender id",
      () => ["GET", "/raft/stream/message/xyz", { ...versions, "X-Etcd-Cluster-ID": clusterId }],
    ],
    [
      "a stream from a removed member",
      () => [
        "GET",
        `/raft/stream/message/${removedId}`,
        { ...versions, "X-Etcd-Cluster-ID": clusterId, "X-Raft-To": memberId },
      ],
    ],
    [
      "a stream meant for another member",
      () => [
        "GET",
        `/raft/stream/message/${knownId}`,
        { ...versions, "X-Etcd-Cluster-ID": clusterId, "X-Raft-To": "1" },
      ],
    ],
    ["a stream request with POST", () => ["POST", `/raft/stream/message/${knownId}`, {}]],
    ["a snapshot with GET", () => ["GET", "/raft/snapshot", {}]],
    [
      "a snapshot without version headers",
      () => ["POST", "/raft/snapshot", { "X-Etcd-Cluster-ID": clusterId }],
    ],
    [
      "a snapshot from another cluster",
      () => ["POST", "/raft/snapshot", { ...versions, "X-Etcd-Cluster-ID": "1234" }],
    ],
    ["GET /version", () => ["GET", "/version", {}]],
    ["POST /version", () => ["POST", "/version", {}]],
    ["POST /members", () => ["POST", "/members", {}]],
    ["GET /members (a voter and a learner)", () => ["GET", "/members", {}]],
    ["an unknown path", () => ["GET", "/nope", {}]],
  ];

  for (const [name, request] of cases) {
    it(name, async () => {
      const [method, path, headers] = request();
      const reference = await httpCall(Number(new URL(etcd.peerUrl).port), method, path, headers);
      const ours = await httpCall(node.port, method, path, headers);
      assert.deepEqual(shape(ours), shape(reference));
    });
  }

  it("/raft/probing: same status and content type", async () => {
    const reference = await httpCall(Number(new URL(etcd.peerUrl).port), "GET", "/raft/probing");
    const ours = await httpCall(node.port, "GET", "/raft/probing");
    assert.equal(ours.status, reference.status);
    assert.equal(ours.headers["content-type"], reference.headers["content-type"]);
    assert.deepEqual(
      Object.keys(JSON.parse(ours.body) as object),
      Object.keys(JSON.parse(reference.body) as object),
    );
  });
});
