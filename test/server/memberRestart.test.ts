import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { resolveMemberConfig } from "../../src/config/member.js";
import { MemberError, startMember } from "../../src/index.js";
import { createLogger } from "../../src/log/logger.js";
import { callUnary } from "../../src/proto/grpc.js";
import { KVClient } from "../../src/proto/index.js";
import { EMPTY_CONF_STATE, encodeConfState } from "../../src/raft/index.js";
import { bootstrap } from "../../src/server/bootstrap.js";
import type { StartMemberOptions } from "../../src/server/member.js";
import { Snapshotter } from "../../src/wal/snap.js";

/**
 * Restarting from a raft snapshot: the newest snapshot the WAL has a marker for is loaded, the log after
 * it replayed, and the backend must cover the snapshot. Nothing in the member writes snapshots yet, so
 * the test writes one the way the snapshot logic will (file first, then the WAL marker).
 */

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const silent = createLogger({ destination: { write: () => {} } });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function memberOptions(dataDir: string): StartMemberOptions {
  return {
    name: "m1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "m1=http://127.0.0.1:2380",
    log: silent,
    onFatal: (error) => assert.fail(`fatal: ${String(error)}`),
  };
}

/** Writes a snapshot at the backend's consistent index, as the member's snapshot logic will. */
async function snapshotAtConsistentIndex(dataDir: string): Promise<number> {
  const { onFatal: _onFatal, log: _log, ...flags } = memberOptions(dataDir);
  const { config } = resolveMemberConfig(flags);
  const booted = await bootstrap({ config, logger: silent, onFatal: (e) => assert.fail(String(e)) });
  try {
    const index = booted.backend.consistentIndex;
    const term = booted.storage.term(index);
    const confState = encodeConfState({ ...EMPTY_CONF_STATE, voters: [booted.memberId] });
    await new Snapshotter(booted.paths.snapDir).save({ index, term, confState, data: new Uint8Array(0) });
    await booted.wal.saveSnapshotMarker({ index, term, confState });
    return index;
  } finally {
    await booted.close();
  }
}

async function putAll(member: { clientUrls: readonly string[] }, pairs: Array<[string, string]>) {
  const kv = new KVClient(member.clientUrls[0]!.replace("http://", ""), grpc.credentials.createInsecure());
  try {
    for (const [key, value] of pairs) {
      await callUnary(kv, kv.Put, { key: encoder.encode(key), value: encoder.encode(value) });
    }
  } finally {
    kv.close();
  }
}

async function getAll(member: { clientUrls: readonly string[] }) {
  const kv = new KVClient(member.clientUrls[0]!.replace("http://", ""), grpc.credentials.createInsecure());
  try {
    const range = await callUnary(kv, kv.Range, { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
    return {
      revision: range.header!.revision,
      kvs: range.kvs.map((kv) => [decoder.decode(kv.key), decoder.decode(kv.value)]),
    };
  } finally {
    kv.close();
  }
}

describe("restart from a snapshot", () => {
  it("loads the snapshot, replays the log after it, and keeps serving", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-restart-"));
    dirs.push(dataDir);
    const first = await startMember(memberOptions(dataDir));
    await putAll(first, [
      ["a", "1"],
      ["b", "2"],
    ]);
    await first.close();
    const snapshotIndex = await snapshotAtConsistentIndex(dataDir);
    assert.ok(snapshotIndex > 0);

    // Entries after the snapshot are replayed above it.
    const second = await startMember(memberOptions(dataDir));
    await putAll(second, [["c", "3"]]);
    const before = await getAll(second);
    assert.equal(second.server.membership.list().length, 1);
    await second.close();

    const third = await startMember(memberOptions(dataDir));
    try {
      assert.deepEqual(await getAll(third), before);
      assert.deepEqual(before.kvs, [
        ["a", "1"],
        ["b", "2"],
        ["c", "3"],
      ]);
      assert.ok(third.server.appliedIndex > snapshotIndex);
    } finally {
      await third.close();
    }
  });

  it("refuses to start when the backend the snapshot covers is gone", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-restart-"));
    dirs.push(dataDir);
    const first = await startMember(memberOptions(dataDir));
    await putAll(first, [["a", "1"]]);
    await first.close();
    await snapshotAtConsistentIndex(dataDir);
    rmSync(join(dataDir, "member", "snap", "db"), { recursive: true, force: true });
    await assert.rejects(startMember(memberOptions(dataDir)), (error) => {
      assert.ok(error instanceof MemberError);
      assert.equal(error.code, "MEMBER_BACKEND_MISSING");
      assert.equal(
        error.message,
        `database file (${join(dataDir, "member", "snap", "db")}) of the backend is missing`,
      );
      return true;
    });
  });

  it("rebuilds a lost backend from the WAL when no snapshot was taken", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "etcd-ts-restart-"));
    dirs.push(dataDir);
    const first = await startMember(memberOptions(dataDir));
    await putAll(first, [
      ["a", "1"],
      ["a", "2"],
    ]);
    const before = await getAll(first);
    await first.close();
    rmSync(join(dataDir, "member", "snap", "db"), { recursive: true, force: true });
    const second = await startMember(memberOptions(dataDir));
    try {
      assert.deepEqual(await getAll(second), before);
    } finally {
      await second.close();
    }
  });
});
