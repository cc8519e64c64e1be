/**
 * Peer transport benchmark: raft messages and a snapshot between two transports on 127.0.0.1, both in
 * this process (so the CPU figure is the sender's and the receiver's work together).
 *
 *   node --import tsx bench/transport/transport.bench.ts           3 s per workload, 256 MB snapshot
 *   node --import tsx bench/transport/transport.bench.ts --quick   1 s per workload, 32 MB snapshot
 *
 * Workloads: MsgApp with one 1 KiB entry (check perf's value size), small messages without entries
 * (heartbeats and responses), and MsgApp with 64 KiB of entries (bytes/s). The sender keeps a window of
 * messages in flight below the peer queue, so the figures are throughput without drops (drops are
 * printed and should be 0). Figures: messages/s, payload MB/s on the wire, messages per frame, CPU µs
 * per message. There is no reference etcd figure at this layer; run on an idle machine for real numbers.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/log/logger.js";
import { type Entry, EntryType, type Message, MessageType, newMessage } from "../../src/raft/index.js";
import { createTransport, type Transport } from "../../src/transport/index.js";

const quick = process.argv.includes("--quick");
const DURATION_MS = quick ? 1000 : 3000;
const SNAPSHOT_BYTES = (quick ? 32 : 256) * 1024 * 1024;
/** Messages in flight (sent, not yet received): below queueMessagesMax (4096) so nothing drops. */
const WINDOW_MESSAGES = 2048;
/** ... and bytes in flight below queueBytesMax (64 MiB). */
const WINDOW_BYTES = 16 * 1024 * 1024;
const SEND_BATCH = 64;

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

async function freeTcpPort(): Promise<number> {
  const { createServer } = await import("node:net");
  return await new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

interface End {
  transport: Transport;
  dir: string;
}

let received = 0;

async function start(id: bigint): Promise<End> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-transport-bench-"));
  const port = await freeTcpPort();
  const transport = await createTransport({
    clusterId: 0x1234n,
    memberId: id,
    listen: [`http://127.0.0.1:${port}`],
    logger: createLogger({ level: "error" }),
    snapshotDir: dir,
    onMessage(_message, snapshot) {
      if (snapshot === undefined) received++;
    },
    onUnreachable() {},
    onSnapshotStatus() {},
  });
  return { transport, dir };
}

function appMessage(entryCount: number, entryBytes: number): Message {
  const message = newMessage(MessageType.App, 2n, 1n, 5);
  message.index = 1000;
  message.logTerm = 5;
  message.commit = 999;
  const entries: Entry[] = [];
  for (let i = 0; i < entryCount; i++) {
    entries.push({
      term: 5,
      index: 1001 + i,
      type: EntryType.Normal,
      data: new Uint8Array(entryBytes).fill(i),
    });
  }
  message.entries = entries;
  return message;
}

async function run(name: string, a: End, message: Message): Promise<void> {
  const counters = () => a.transport.peerStatus(2n)!.counters;
  const before = counters();
  received = 0;
  let sent = 0;
  const batch = new Array<Message>(SEND_BATCH).fill(message);
  let messageBytes = 64;
  for (const entry of message.entries) messageBytes += entry.data.length;
  const window = Math.max(SEND_BATCH, Math.min(WINDOW_MESSAGES, Math.floor(WINDOW_BYTES / messageBytes)));
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  while (performance.now() - startMs < DURATION_MS) {
    if (sent - received + SEND_BATCH <= window) {
      a.transport.send(batch);
      sent += SEND_BATCH;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  while (received < sent - Number(counters().messagesDropped - before.messagesDropped)) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  const elapsedS = (performance.now() - startMs) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const after = counters();
  const frames = after.framesSent - before.framesSent;
  const bytes = after.bytesSent - before.bytesSent;
  console.log(
    `${name.padEnd(34)} ${fmt(received / elapsedS, 0).padStart(10)} msg/s ${fmt(bytes / elapsedS / 1e6).padStart(8)} MB/s ` +
      `${fmt(received / Math.max(frames, 1)).padStart(7)} msg/frame ` +
      `${fmt((cpu.user + cpu.system) / Math.max(received, 1), 2).padStart(7)} CPU µs/msg ` +
      `dropped ${after.messagesDropped - before.messagesDropped}`,
  );
}

async function snapshot(a: End): Promise<void> {
  const message = newMessage(MessageType.Snap, 2n, 1n, 5);
  message.snapshot = {
    data: new Uint8Array(64),
    metadata: {
      index: 42,
      term: 5,
      confState: { voters: [1n, 2n], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    },
  };
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let sent = 0; sent < SNAPSHOT_BYTES; sent += chunk.length) yield Buffer.from(chunk);
  }
  let done: (ok: boolean) => void = () => {};
  const finished = new Promise<boolean>((resolve) => {
    done = resolve;
  });
  const status = a.transport.peerStatus(2n)!;
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 20);
  const startMs = performance.now();
  const poll = setInterval(() => {
    const counters = a.transport.peerStatus(2n)!.counters;
    if (counters.snapshotsSent > status.counters.snapshotsSent) done(true);
    if (counters.snapshotsSendFailed > status.counters.snapshotsSendFailed) done(false);
  }, 5);
  a.transport.sendSnapshot(message, source());
  const ok = await finished;
  clearInterval(poll);
  clearInterval(sampler);
  const elapsedS = (performance.now() - startMs) / 1000;
  console.log(
    `${`snapshot ${SNAPSHOT_BYTES / 1024 / 1024} MB to disk (fsync)`.padEnd(34)} ${fmt(SNAPSHOT_BYTES / elapsedS / 1e6).padStart(10)} MB/s ` +
      `${ok ? "ok" : "FAILED"}, RSS growth ${fmt((rssPeak - rssBefore) / 1024 / 1024)} MB`,
  );
}

console.log(
  `transport bench (${quick ? "quick" : "full"}): two transports on 127.0.0.1 in one process, ` +
    `load average ${loadavg().map((l) => l.toFixed(2))}`,
);
const a = await start(1n);
const b = await start(2n);
try {
  a.transport.addPeer(2n, b.transport.listenUrls);
  b.transport.addPeer(1n, a.transport.listenUrls);
  while (a.transport.activeSince(2n) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  await run("MsgApp, 1 entry of 1 KiB", a, appMessage(1, 1024));
  await run("MsgHeartbeat (no entries)", a, newMessage(MessageType.Heartbeat, 2n, 1n, 5));
  await run("MsgApp, 4 entries of 16 KiB", a, appMessage(4, 16 * 1024));
  await snapshot(a);
} finally {
  await a.transport.close();
  await b.transport.close();
  rmSync(a.dir, { recursive: true, force: true });
  rmSync(b.dir, { recursive: true, force: true });
}
