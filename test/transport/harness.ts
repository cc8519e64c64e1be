/**
 * Transports on 127.0.0.1 for tests: each records what it received and what it reported, and logs into
 * memory so tests can check etcd's log lines.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../../src/log/logger.js";
import { type Entry, EntryType, type Message, MessageType, newMessage } from "../../src/raft/index.js";
import {
  createTransport,
  type ReceivedSnapshot,
  type Transport,
  type TransportError,
  type TransportLimits,
  type TransportOptions,
} from "../../src/transport/index.js";
import { freePort } from "../support/ports.js";

export interface LogLine {
  level: string;
  caller: string;
  msg: string;
  [field: string]: unknown;
}

export function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger({
    level: "debug",
    destination: {
      write(line: string) {
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  });
  return { logger, lines };
}

export interface Node {
  readonly id: bigint;
  readonly url: string;
  readonly port: number;
  transport: Transport;
  readonly received: Message[];
  readonly snapshots: { message: Message; file: ReceivedSnapshot }[];
  readonly unreachable: bigint[];
  readonly snapshotStatus: { id: bigint; ok: boolean }[];
  readonly removedErrors: TransportError[];
  readonly removed: Set<bigint>;
  readonly lines: LogLine[];
  readonly snapshotDir: string;
  /** Closes and starts a transport again on the same port (a member restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface NodeOptions {
  clusterId?: bigint;
  limits?: Partial<TransportLimits>;
  port?: number;
  extra?: Partial<TransportOptions>;
  /** Called for each delivered message before it is recorded (may throw to test error handling). */
  onMessage?: (message: Message) => void;
}

export const CLUSTER_ID = 0xc1d5a0b17e5n;

/** Fast timings so reconnect and timeout tests finish quickly. */
export const FAST_LIMITS: Partial<TransportLimits> = {
  backoffInitialMs: 20,
  backoffMaxMs: 200,
  heartbeatIntervalMs: 100,
  readTimeoutMs: 1000,
  dialTimeoutMs: 1000,
  housekeepingIntervalMs: 20,
};

export async function startNode(id: bigint, options: NodeOptions = {}): Promise<Node> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const snapshotDir = mkdtempSync(join(tmpdir(), "etcd-ts-transport-"));
  const { logger, lines } = memoryLogger();
  const node: Node = {
    id,
    url,
    port,
    transport: null as unknown as Transport,
    received: [],
    snapshots: [],
    unreachable: [],
    snapshotStatus: [],
    removedErrors: [],
    removed: new Set(),
    lines,
    snapshotDir,
    async restart() {
      await node.transport.close();
      node.transport = await open();
    },
    async close() {
      await node.transport.close();
      rmSync(snapshotDir, { recursive: true, force: true });
    },
  };
  const open = () =>
    createTransport({
      clusterId: options.clusterId ?? CLUSTER_ID,
      memberId: id,
      listen: [url],
      logger,
      snapshotDir,
      limits: { ...FAST_LIMITS, ...options.limits },
      onMessage(message, file) {
        options.onMessage?.(message);
        if (file !== undefined) node.snapshots.push({ message, file });
        else node.received.push(message);
      },
      onUnreachable: (peer) => node.unreachable.push(peer),
      onSnapshotStatus: (peer, ok) => node.snapshotStatus.push({ id: peer, ok }),
      onMemberRemoved: (error) => node.removedErrors.push(error),
      isRemoved: (peer) => node.removed.has(peer),
      ...options.extra,
    });
  node.transport = await open();
  return node;
}

/** Makes every node a peer of every other. */
export function connectAll(nodes: readonly Node[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.transport.addPeer(b.id, [b.url]);
}

const encoder = new TextEncoder();

/** A MsgApp whose index is `seq` and that carries `entryCount` entries of `entryBytes` each. */
export function appMessage(from: bigint, to: bigint, seq: number, entryCount = 1, entryBytes = 16): Message {
  const message = newMessage(MessageType.App, to, from, 1);
  message.index = seq;
  message.commit = seq;
  const entries: Entry[] = [];
  for (let i = 0; i < entryCount; i++) {
    const data = new Uint8Array(entryBytes);
    data.set(encoder.encode(`${seq}:${i}`).subarray(0, entryBytes));
    entries.push({ term: 1, index: seq * 1000 + i, type: EntryType.Normal, data });
  }
  message.entries = entries;
  return message;
}

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function linesWith(node: Node, msg: string): LogLine[] {
  return node.lines.filter((line) => line.msg === msg);
}

/** A frame built by hand (frame.ts layout); `length` may lie. */
export function rawFrame(kind: number, payload: Uint8Array, length = payload.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(length, 0);
  header[4] = kind;
  return Buffer.concat([header, payload]);
}

/** A snapshot POST as a peer would send it, without Expect: 100-continue. */
export function postSnapshot(port: number, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/raft/snapshot",
        agent: false,
        headers: {
          "X-Server-From": "1",
          "X-Server-Version": "3.4.23",
          "X-Min-Cluster-Version": "3.0.0",
          "X-Etcd-Cluster-ID": CLUSTER_ID.toString(16),
          "X-Raft-To": "2",
          "X-Etcd-Ts-Peer-Protocol": "1",
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => parts.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
