import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { resolveMemberConfig } from "../../src/config/member.js";
import { createLogger, type Logger } from "../../src/log/logger.js";
import { etcdserverpb } from "../../src/proto/index.js";
import { decodeConfState } from "../../src/raft/index.js";
import { type Bootstrapped, bootstrap } from "../../src/server/bootstrap.js";
import { EtcdServer } from "../../src/server/etcdServer.js";
import { NO_PEERS } from "../../src/server/raftLoop.js";
import { decodeSnapshotData, type SnapshotStep } from "../../src/server/snapshot.js";
import { decodeSnapshot } from "../../src/wal/snap.js";

/**
 * Raft snapshots (issue 8): with a small --snapshot-count, a few hundred writes produce snapshot files,
 * WAL segments below the snapshots are deleted, MemoryStorage is compacted, and a restart on the same
 * data dir (bootstrap: newest snapshot with a WAL marker + WAL replay above the backend's consistent
 * index) restores every key and the revision, also after a SIGKILL at each step of a snapshot.
 *
 * The member is built the way startMember builds it (bootstrap() + EtcdServer, no client port): the test
 * needs the server's snapshot options and the bootstrap's storage, which startMember does not expose.
 * The SIGKILL rounds run this same file as a child process (SNAPSHOT_TEST_CHILD set).
 */

const CHILD_ENV = "ETCD_TS_SNAPSHOT_TEST_CHILD";

interface Settings {
  snapshotCount: number;
  catchUpEntries: number;
  maxWals: number;
  maxSnapshots: number;
  segmentSizeBytes: number;
}

/** Small enough that 300 writes make several snapshots and several WAL segments. */
const SMALL: Settings = {
  snapshotCount: 50,
  catchUpEntries: 20,
  maxWals: 2,
  maxSnapshots: 2,
  segmentSizeBytes: 8192,
};
/** Bound of the writes that wait for a due snapshot to be triggered. */
const POKES_MAX = 10;
/** Writes in flight at once (group commit keeps the test quick). */
const CONCURRENCY = 8;

interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

interface Opened {
  booted: Bootstrapped;
  server: EtcdServer;
  lines: LogLine[];
  close(): Promise<void>;
}

/** Members not closed yet: a failed assertion must not leave one running (its timers keep Node alive). */
const live = new Set<Opened>();

function captureLogger(lines: LogLine[]): Logger {
  return createLogger({
    destination: {
      write(line: string) {
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  });
}

async function openMember(
  dataDir: string,
  settings: Settings,
  afterStep?: (step: SnapshotStep, index: number) => void,
): Promise<Opened> {
  const lines: LogLine[] = [];
  const logger = captureLogger(lines);
  const { config } = resolveMemberConfig({
    name: "m1",
    dataDir,
    listenClientUrls: "http://127.0.0.1:0",
    advertiseClientUrls: "http://127.0.0.1:0",
    initialAdvertisePeerUrls: "http://127.0.0.1:2380",
    initialCluster: "m1=http://127.0.0.1:2380",
    snapshotCount: settings.snapshotCount,
    maxWals: settings.maxWals,
    maxSnapshots: settings.maxSnapshots,
  });
  const onFatal = (error: unknown): void => {
    throw new Error(`member failed: ${String(error)}`);
  };
  const booted = await bootstrap({
    config,
    logger,
    onFatal,
    rngSeed: 7,
    walOptions: { segmentSizeBytes: settings.segmentSizeBytes, preallocate: false },
  });
  const server = new EtcdServer({
    memberId: booted.memberId,
    clusterId: booted.clusterId,
    name: "m1",
    clientUrls: ["http://127.0.0.1:2379"],
    node: booted.node,
    storage: booted.storage,
    wal: booted.wal,
    store: booted.store,
    backend: booted.backend,
    transport: NO_PEERS,
    logger,
    tickMs: config.heartbeatIntervalMs,
    electionTimeoutMs: config.electionTimeoutMs,
    maxTxnOps: config.maxTxnOps,
    maxRequestBytes: config.maxRequestBytes,
    quotaBackendBytes: 0,
    onFatal,
    snapshots: {
      snapshotter: booted.snapshotter,
      snapshotCount: config.snapshotCount,
      catchUpEntries: settings.catchUpEntries,
      ...(afterStep === undefined ? {} : { afterStep }),
    },
  });
  // A lone member campaigns at once (startMember fast-forwards its election ticks the same way).
  for (let i = 0; i < config.electionTicks; i++) booted.node.tick();
  server.start();
  await server.readyNotify();
  const opened: Opened = {
    booted,
    server,
    lines,
    async close() {
      if (!live.delete(opened)) return;
      await server.stop();
      await booted.close();
    },
  };
  live.add(opened);
  return opened;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function keyOf(i: number): string {
  return `key-${String(i).padStart(5, "0")}`;
}

function valueFor(i: number, round: number): string {
  return `value-${i}-${round}-${"x".repeat(40)}`;
}

async function put(server: EtcdServer, key: string, value: string): Promise<number> {
  const response = await server.put(
    etcdserverpb.PutRequest.create({ key: encoder.encode(key), value: encoder.encode(value) }),
  );
  const revision = response.header?.revision;
  assert.ok(typeof revision === "number" && revision > 0, "a put answers with its revision");
  return revision;
}

/** Runs `count` tasks with CONCURRENCY in flight. */
async function inParallel(count: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Every live key and value, read from the store at its current revision. */
function contents(server: EtcdServer): Map<string, { value: string; modRevision: number }> {
  const response = server.store.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) });
  const out = new Map<string, { value: string; modRevision: number }>();
  for (const kv of response.kvs) {
    out.set(decoder.decode(kv.key), { value: decoder.decode(kv.value), modRevision: kv.modRevision });
  }
  return out;
}

function fileNames(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort();
}

/** The index in a `%016x-%016x.snap` or `.wal` name's second part. */
function secondHex(name: string): number {
  return Number.parseInt(name.slice(17, 33), 16);
}

function linesWith(lines: readonly LogLine[], msg: string): LogLine[] {
  return lines.filter((line) => line.msg === msg);
}

// -------------------------------------------------------------------------------------------------------
// Child mode: run a member, write until the chosen snapshot step, then SIGKILL ourselves right there.

interface ChildPlan {
  dataDir: string;
  step: SnapshotStep;
  /** Kill at the step of the snapshot with this ordinal (1-based), so earlier ones were released. */
  snapshotOrdinal: number;
}

async function runChild(plan: ChildPlan): Promise<void> {
  let seen = 0;
  const opened = await openMember(plan.dataDir, SMALL, (step, index) => {
    if (step !== plan.step) return;
    seen++;
    if (seen < plan.snapshotOrdinal) return;
    // stdout to a pipe is synchronous on Linux: every ack line printed so far reaches the parent.
    process.stdout.write(`kill ${index}\n`);
    process.kill(process.pid, "SIGKILL");
  });
  process.stdout.write("ready\n");
  let i = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const n = i++;
      const revision = await put(opened.server, keyOf(n), valueFor(n, 0));
      process.stdout.write(`ack ${n} ${revision}\n`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

interface ChildResult {
  acked: Map<number, number>;
  killedAt: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Child rounds are bounded: a round that never reaches its step fails instead of hanging. */
const CHILD_TIMEOUT_MS = 60_000;

function runChildProcess(plan: ChildPlan): Promise<ChildResult> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(plan) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const result: ChildResult = { acked: new Map(), killedAt: null, signal: null, stderr: "" };
  let pending = "";
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    for (let newline = pending.indexOf("\n"); newline >= 0; newline = pending.indexOf("\n")) {
      const words = pending.slice(0, newline).split(" ");
      pending = pending.slice(newline + 1);
      if (words[0] === "ack") result.acked.set(Number(words[1]), Number(words[2]));
      if (words[0] === "kill") result.killedAt = Number(words[1]);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    result.stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      result.signal = signal;
      resolve(result);
    });
  });
}

// -------------------------------------------------------------------------------------------------------

const childPlan = process.env[CHILD_ENV];
if (childPlan !== undefined) {
  await runChild(JSON.parse(childPlan) as ChildPlan);
} else {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const opened of [...live]) await opened.close();
  });
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "etcd-ts-snapshot-"));
    dirs.push(dir);
    return dir;
  };

  describe("raft snapshots", () => {
    it("snapshot every snapshotCount entries, release WAL segments, compact the raft log, restart from the snapshot", async () => {
      const dataDir = tempDir();
      const snapDir = join(dataDir, "member", "snap");
      const walDir = join(dataDir, "member", "wal");
      const first = await openMember(dataDir, SMALL);
      const writes = 300;
      await inParallel(writes, async (i) => {
        await put(first.server, keyOf(i), valueFor(i, 0));
      });
      // Overwrites and deletes, so the revision and the key versions are not just one put per key.
      await inParallel(50, async (i) => {
        await put(first.server, keyOf(i), valueFor(i, 1));
      });
      for (let i = 50; i < 60; i++) {
        await first.server.deleteRange(
          etcdserverpb.DeleteRangeRequest.create({ key: encoder.encode(keyOf(i)) }),
        );
      }
      const snapshots = first.server.raftSnapshots;
      assert.ok(snapshots !== null);
      // A snapshot due while another ran is triggered by the next Ready: write until none is due.
      for (let poke = 0; poke < POKES_MAX; poke++) {
        await snapshots.idle();
        if (first.server.appliedIndex - snapshots.snapshotIndex <= SMALL.snapshotCount) break;
        await put(first.server, "poke", String(poke));
      }

      const applied = first.server.appliedIndex;
      const snapshotIndex = snapshots.snapshotIndex;
      assert.ok(applied >= 360, `applied ${applied}`);
      assert.ok(applied - snapshotIndex <= SMALL.snapshotCount, "snapshots keep up with the applied index");
      // The first is due at the first Ready past snapshotCount, the last is within snapshotCount of the
      // end; how many lie between depends on how long each took (one runs at a time).
      const triggered = linesWith(first.lines, "triggering snapshot");
      assert.ok(triggered.length >= 2, `${triggered.length} snapshots for ${applied} entries`);
      assert.ok(Number(triggered[0]?.["local-member-applied-index"]) <= 2 * SMALL.snapshotCount);
      for (const line of triggered) {
        const gap = Number(line["local-member-applied-index"]) - Number(line["local-member-snapshot-index"]);
        assert.ok(gap > SMALL.snapshotCount, "a snapshot is triggered only past snapshotCount");
        assert.equal(line["local-member-snapshot-count"], SMALL.snapshotCount);
      }
      const saved = linesWith(first.lines, "saved snapshot").map((line) => line["snapshot-index"]);
      assert.deepEqual(
        saved,
        triggered.map((line) => line["local-member-applied-index"]),
        "every triggered snapshot is saved, in order",
      );

      // Snapshot files: the newest is this one, at most --max-snapshots are kept, each checks out.
      const snapFiles = fileNames(snapDir, ".snap");
      assert.equal(snapFiles.length, SMALL.maxSnapshots);
      assert.equal(secondHex(snapFiles.at(-1)!), snapshotIndex);
      const newest = decodeSnapshot(
        new Uint8Array(await readFile(join(snapDir, snapFiles.at(-1)!))),
        snapFiles.at(-1)!,
      );
      assert.deepEqual(decodeConfState(newest.confState).voters, [first.booted.memberId]);
      const members = decodeSnapshotData(newest.data);
      assert.deepEqual(
        members.map((m) => [m.id, m.name, m.peerUrls]),
        [[first.booted.memberId, "m1", ["http://127.0.0.1:2380"]]],
      );
      const purged = linesWith(first.lines, "purged").map((line) => String(line.path));
      assert.equal(
        purged.filter((path) => path.endsWith(".snap")).length,
        triggered.length - SMALL.maxSnapshots,
        "snapshot files beyond --max-snapshots are purged",
      );

      // WAL: segments wholly below a snapshot are gone (the first one above all), --max-wals are kept.
      const segments = fileNames(walDir, ".wal");
      const cut = first.booted.wal.stats().segmentsCut;
      assert.ok(cut >= 3, `${cut} segments cut`);
      assert.ok(segments.length < cut + 1, `${segments.length} of ${cut + 1} segments remain`);
      assert.notEqual(segments[0], "0000000000000000-0000000000000000.wal", "the first segment was released");
      assert.ok(segments.length >= SMALL.maxWals, "--max-wals segments are kept");
      assert.ok(secondHex(segments[0]!) < snapshotIndex);
      assert.ok(
        purged.some((path) => path.endsWith(".wal")),
        "released segments are logged as purged",
      );

      // MemoryStorage: holds the snapshot, and entries from catchUpEntries below it on.
      const storage = first.booted.storage;
      assert.equal(storage.snapshot().metadata.index, snapshotIndex);
      assert.equal(storage.firstIndex(), snapshotIndex - SMALL.catchUpEntries + 1);
      const compacted = linesWith(first.lines, "compacted Raft logs").at(-1);
      assert.equal(compacted?.["compact-index"], snapshotIndex - SMALL.catchUpEntries);

      const expected = contents(first.server);
      for (let i = 0; i < writes; i++) {
        const value = i < 50 ? valueFor(i, 1) : i < 60 ? undefined : valueFor(i, 0);
        assert.equal(expected.get(keyOf(i))?.value, value, keyOf(i));
      }
      const revision = first.server.store.revision;
      const hash = first.server.store.hashKV(0).hash;
      await first.close();

      // Restart: the newest snapshot with a marker, then the WAL above it; the backend holds the rest.
      const second = await openMember(dataDir, SMALL);
      assert.equal(second.booted.snapshot?.metadata.index, snapshotIndex);
      assert.equal(second.booted.storage.firstIndex(), snapshotIndex + 1);
      assert.equal(second.server.store.revision, revision);
      assert.deepEqual(contents(second.server), expected);
      assert.equal(second.server.store.hashKV(revision).hash, hash);
      assert.ok(second.server.appliedIndex >= applied, "the applied index resumes from the backend");
      // It goes on: more writes make more snapshots, and a second restart starts from a newer one.
      await inParallel(120, async (i) => {
        await put(second.server, keyOf(1000 + i), valueFor(i, 2));
      });
      await second.server.raftSnapshots?.idle();
      const laterIndex = second.server.raftSnapshots?.snapshotIndex ?? 0;
      assert.ok(laterIndex > snapshotIndex, "snapshots continue after a restart");
      const expectedLater = contents(second.server);
      const revisionLater = second.server.store.revision;
      await second.close();

      const third = await openMember(dataDir, SMALL);
      assert.equal(third.booted.snapshot?.metadata.index, laterIndex);
      assert.equal(third.server.store.revision, revisionLater);
      assert.deepEqual(contents(third.server), expectedLater);
      await third.close();
    });

    it("snapshot data round-trips the member list", () => {
      // decodeSnapshotData is what a member installing a leader's snapshot will read.
      const data = new TextEncoder().encode(
        '{"members":[{"id":"10501334649042878790","name":"m1","peerURLs":["http://127.0.0.1:2380"],"clientURLs":[],"isLearner":false}]}',
      );
      const [member] = decodeSnapshotData(data);
      assert.equal(member?.id, 10501334649042878790n);
      assert.throws(() => decodeSnapshotData(new TextEncoder().encode('{"members":1}')));
    });

    /**
     * SIGKILL at each step of the second snapshot: every acknowledged write survives with its revision,
     * and the restart loads the killed snapshot exactly when its WAL marker was durable (before that, the
     * previous one: a file without a marker is an orphan that is passed over).
     */
    const steps: Array<{ step: SnapshotStep; loadsKilledSnapshot: boolean }> = [
      { step: "backendCommitted", loadsKilledSnapshot: false },
      { step: "fileSaved", loadsKilledSnapshot: false },
      { step: "markerSaved", loadsKilledSnapshot: true },
      { step: "walReleased", loadsKilledSnapshot: true },
      { step: "compacted", loadsKilledSnapshot: true },
    ];
    for (const { step, loadsKilledSnapshot } of steps) {
      it(`kill -9 after step ${step}: every acknowledged write survives the restart`, async () => {
        const dataDir = tempDir();
        const result = await runChildProcess({ dataDir, step, snapshotOrdinal: 2 });
        assert.equal(result.signal, "SIGKILL", `child ended without the kill: ${result.stderr}`);
        assert.ok(result.killedAt !== null, `the child never reached ${step}: ${result.stderr}`);
        assert.ok(result.acked.size > SMALL.snapshotCount, `${result.acked.size} writes acknowledged`);

        const restarted = await openMember(dataDir, SMALL);
        const snapshotIndex = restarted.booted.snapshot?.metadata.index ?? 0;
        if (loadsKilledSnapshot) assert.equal(snapshotIndex, result.killedAt);
        else assert.ok(snapshotIndex > 0 && snapshotIndex < result.killedAt, `loaded ${snapshotIndex}`);
        const found = contents(restarted.server);
        let maxRevision = 0;
        for (const [n, revision] of result.acked) {
          assert.deepEqual(found.get(keyOf(n)), { value: valueFor(n, 0), modRevision: revision }, keyOf(n));
          maxRevision = Math.max(maxRevision, revision);
        }
        assert.ok(restarted.server.store.revision >= maxRevision);
        assert.ok(restarted.server.appliedIndex >= result.killedAt);
        // And the member takes writes again.
        await put(restarted.server, "after-restart", "v");
        await restarted.close();
      });
    }
  });
}
