import { createHash, randomBytes } from "node:crypto";
import { type FileHandle, open, readdir, rename, rm } from "node:fs/promises";
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { formatDurationMs, formatId, humanizeBytes } from "../log/format.js";
import { decodeMessage, encodeMessage, isRaftError, type Message, MessageType } from "../raft/index.js";
import type { ReceivedSnapshot, TransportContext } from "./context.js";
import {
  EtcdPeerText,
  isTransportError,
  reasonOf,
  refusalError,
  TransportError,
  TransportErrorCode,
} from "./errors.js";
import {
  FrameDecoder,
  FrameKind,
  frameHeader,
  frameOf,
  kindMask,
  plainBytes,
  SNAPSHOT_END_PAYLOAD_BYTES,
} from "./frame.js";
import {
  CLUSTER_ID_RESPONSE_HEADER,
  checkCompatibility,
  compatibilityText,
  Header,
  headerValue,
  logPeerCompatibility,
  PEER_PROTOCOL_VERSION,
  parseId,
  peerRequestHeaders,
  SNAPSHOT_PATH,
} from "./headers.js";
import { sendError } from "./httpReply.js";
import type { Peer } from "./peer.js";

/**
 * Snapshots travel on their own connection, never on the message stream (a large one would hold every
 * heartbeat behind it): a POST to /raft/snapshot whose body is frames (frame.ts): the MsgSnap, the data in
 * chunks of snapshotChunkBytes, then the data's size and SHA-256.
 *
 * The sender pulls the data from an async iterable one chunk at a time and waits for the socket to drain
 * before pulling more; the receiver appends each chunk to a temp file as it arrives, then checks size and
 * hash, fsyncs, renames to `<index %016x>.snap.db` (etcd's name) and fsyncs the directory, and only then
 * hands the MsgSnap to raft with the file's path. Neither side ever holds more than a chunk or two.
 *
 * The POST carries `Expect: 100-continue`: every refusal that depends only on the headers (cluster id,
 * versions, removed member, too many snapshots) is answered before the sender writes a byte of data, so it
 * reads a clean status instead of a reset connection.
 */

export const SNAPSHOT_FILE_SUFFIX = ".snap.db";
const TEMP_MARKER = ".snap.db.tmp-";
const TEMP_NAME = /\.snap\.db\.tmp-[0-9a-f]+$/;
const SNAPSHOT_FRAME_KINDS = kindMask(
  FrameKind.SnapshotHeader,
  FrameKind.SnapshotChunk,
  FrameKind.SnapshotEnd,
);
const SEND_SOURCE = "sendMsgSnap";

/** etcd's name for the database snapshot at a raft index. */
export function snapshotFileName(index: number): string {
  return `${index.toString(16).padStart(16, "0")}${SNAPSHOT_FILE_SUFFIX}`;
}

/** Removes temp files a crash left in the snapshot directory (etcd removes its "tmp*" files likewise). */
export async function removeSnapshotTempFiles(snapshotDir: string): Promise<number> {
  let removed = 0;
  for (const name of await readdir(snapshotDir)) {
    if (!TEMP_NAME.test(name)) continue;
    await rm(join(snapshotDir, name), { force: true });
    removed++;
  }
  return removed;
}

type SendPhase = "connecting" | "streaming" | "awaiting" | "done";

interface PostAnswer {
  readonly status: number;
  readonly body: string;
}

/** One snapshot being sent to one peer (at most one per peer). */
export class SnapshotSender {
  private phase: SendPhase = "connecting";
  private request: ClientRequest | null = null;
  private lastProgressMs: number;
  private abortError: Error | null = null;
  private wake: (() => void) | null = null;
  private sentBytes = 0;
  private answer: PostAnswer | null = null;
  /** Settles when the transfer has finished or failed (never rejects). */
  done: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: TransportContext,
    private readonly peer: Peer,
    private readonly message: Message,
    private readonly data: AsyncIterable<Uint8Array>,
    private readonly onDone: () => void,
  ) {
    this.lastProgressMs = ctx.nowMs();
  }

  start(url: string): void {
    this.done = this.run(url);
  }

  /** Housekeeping: the connect phase is bounded by dialTimeoutMs, the rest by snapshotStallTimeoutMs. */
  tick(nowMs: number): void {
    if (this.phase === "done") return;
    const limits = this.ctx.limits;
    const limitMs = this.phase === "connecting" ? limits.dialTimeoutMs : limits.snapshotStallTimeoutMs;
    if (nowMs - this.lastProgressMs > limitMs) {
      this.abort(
        new TransportError(
          TransportErrorCode.SnapshotStalled,
          `snapshot ${this.phase === "connecting" ? "connect" : "transfer"} made no progress for ${limitMs} ms`,
        ),
      );
    }
  }

  abort(error: Error): void {
    if (this.phase === "done" || this.abortError !== null) return;
    this.abortError = error;
    this.request?.destroy(error);
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async run(url: string): Promise<void> {
    const index = this.message.snapshot?.metadata.index ?? 0;
    const to = this.peer.idText;
    const startMs = Date.now();
    this.ctx.log.info("sending database snapshot", { "snapshot-index": index, "remote-peer-id": to });
    try {
      await this.post(url);
      this.phase = "done";
      this.peer.counters.snapshotsSent++;
      this.peer.setActive();
      this.ctx.log.info("sent database snapshot", {
        "snapshot-index": index,
        "remote-peer-id": to,
        bytes: this.sentBytes,
        size: humanizeBytes(this.sentBytes),
        took: formatDurationMs(Date.now() - startMs),
      });
      if (!this.ctx.isClosed()) this.ctx.reportSnapshot(this.peer.id, true);
    } catch (error) {
      this.phase = "done";
      this.request?.destroy();
      this.peer.counters.snapshotsSendFailed++;
      this.ctx.log.warn("failed to send database snapshot", {
        "snapshot-index": index,
        "remote-peer-id": to,
        bytes: this.sentBytes,
        size: humanizeBytes(this.sentBytes),
        error: reasonOf(error),
      });
      if (!this.ctx.isClosed()) {
        this.peer.unreachableUrl(url);
        this.peer.setInactive("post", reasonOf(error), SEND_SOURCE);
        this.ctx.reportUnreachable(this.peer.id);
        this.ctx.reportSnapshot(this.peer.id, false);
        if (isTransportError(error, TransportErrorCode.MemberRemoved)) this.ctx.memberRemoved(error);
      }
    } finally {
      this.onDone();
    }
  }

  private async post(url: string): Promise<void> {
    const target = new URL(url);
    target.pathname = SNAPSHOT_PATH;
    target.search = "";
    const request = this.ctx.network.request(target, {
      method: "POST",
      agent: false,
      headers: {
        ...peerRequestHeaders(this.ctx.local, this.peer.id),
        "Content-Type": "application/octet-stream",
        Expect: "100-continue",
      },
    });
    this.request = request;
    let failure: Error | null = null;
    const answered = new Promise<PostAnswer>((resolve, reject) => {
      request.on("response", (response: IncomingMessage) => {
        readBody(response, this.ctx.limits.errorBodyBytesMax).then((body) => {
          this.answer = { status: response.statusCode ?? 0, body };
          this.lastProgressMs = this.ctx.nowMs();
          this.wakeUp();
          resolve(this.answer);
        }, reject);
      });
      request.on("error", (error) => {
        failure = error;
        this.wakeUp();
        reject(error);
      });
    });
    // Awaited below; until then a rejection must not count as unhandled.
    answered.catch(() => {});
    request.on("continue", () => {
      this.phase = "streaming";
      this.lastProgressMs = this.ctx.nowMs();
      this.wakeUp();
    });
    request.on("drain", () => this.wakeUp());
    request.flushHeaders();

    const stopped = (): boolean => this.abortError !== null || failure !== null || this.answer !== null;
    while (this.phase === "connecting" && !stopped()) await this.waitForWake();
    if (!stopped()) await this.stream(request, stopped);
    if (this.abortError !== null) throw this.abortError;
    this.phase = "awaiting";
    this.lastProgressMs = this.ctx.nowMs();
    const answer = await answered;
    if (answer.status !== 204) {
      const text = answer.body.endsWith("\n") ? answer.body.slice(0, -1) : answer.body;
      throw refusalError(answer.status, text, this.peer.idText, formatId(this.ctx.local.memberId));
    }
  }

  private async stream(request: ClientRequest, stopped: () => boolean): Promise<void> {
    const chunkBytes = this.ctx.limits.snapshotChunkBytes;
    const hash = createHash("sha256");
    request.write(frameOf(FrameKind.SnapshotHeader, encodeMessage(this.message)));
    for await (const chunk of this.data) {
      for (let offset = 0; offset < chunk.length && !stopped(); offset += chunkBytes) {
        const piece = chunk.subarray(offset, offset + chunkBytes);
        hash.update(piece);
        request.write(frameHeader(FrameKind.SnapshotChunk, piece.length));
        const below = request.write(piece);
        this.sentBytes += piece.length;
        this.lastProgressMs = this.ctx.nowMs();
        if (!below) await this.waitForWake();
      }
      if (stopped()) break;
    }
    if (stopped()) return;
    const end = Buffer.allocUnsafe(SNAPSHOT_END_PAYLOAD_BYTES);
    end.writeBigUInt64BE(BigInt(this.sentBytes), 0);
    hash.digest().copy(end, 8);
    request.end(frameOf(FrameKind.SnapshotEnd, end));
  }

  private waitForWake(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}

async function readBody(response: IncomingMessage, maxBytes: number): Promise<string> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    if (bytes < maxBytes) parts.push(chunk.subarray(0, maxBytes - bytes));
    bytes += chunk.length;
  }
  return Buffer.concat(parts).toString("utf8");
}

/** A snapshot being received (for the housekeeping stall check and close()). */
export interface InboundSnapshot {
  readonly request: IncomingMessage;
  lastProgressMs: number;
}

/** The inbound snapshot registry the transport keeps. */
export interface InboundSnapshots {
  readonly active: Set<InboundSnapshot>;
}

/**
 * POST /raft/snapshot (with or without Expect: 100-continue). Refusals in etcd's words and statuses;
 * the data goes to disk chunk by chunk; raft gets the MsgSnap only once the file is durable.
 */
export async function receiveSnapshot(
  ctx: TransportContext,
  registry: InboundSnapshots,
  request: IncomingMessage,
  response: ServerResponse,
  expectsContinue: boolean,
): Promise<void> {
  if (request.method !== "POST") {
    sendError(response, 405, EtcdPeerText.methodNotAllowed, { Allow: "POST" });
    return;
  }
  response.setHeader(CLUSTER_ID_RESPONSE_HEADER, formatId(ctx.local.clusterId));
  const localId = formatId(ctx.local.memberId);
  const problem = checkCompatibility(request.headers, ctx.local.clusterId);
  if (problem !== null) {
    logPeerCompatibility(ctx.log, ctx.local, request.headers, problem);
    sendError(response, 412, compatibilityText(problem));
    return;
  }
  if (headerValue(request.headers, Header.protocol) !== PEER_PROTOCOL_VERSION) {
    sendError(response, 412, EtcdPeerText.incompatibleVersion);
    return;
  }
  const from = parseId(headerValue(request.headers, Header.from));
  if (from !== null && ctx.isRemoved(from)) {
    ctx.log.warn("rejected Raft message from removed member", {
      "local-member-id": localId,
      "removed-member-id": formatId(from),
    });
    sendError(response, 403, EtcdPeerText.removedMemberMessage);
    return;
  }
  if (registry.active.size >= ctx.limits.inboundSnapshotsMax) {
    sendError(response, 503, "too many snapshots in flight");
    return;
  }
  const inbound: InboundSnapshot = { request, lastProgressMs: ctx.nowMs() };
  registry.active.add(inbound);
  try {
    if (expectsContinue) response.writeContinue();
    await receiveBody(ctx, inbound, request, response);
  } finally {
    registry.active.delete(inbound);
  }
}

/** A refusal with its HTTP status, raised while reading the body. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type FrameRecord = { kind: FrameKind; payload: Buffer };

/**
 * Reads the body to a durable file, then hands the MsgSnap to raft and answers 204. Refusals and I/O
 * failures are answered (and the temp file removed); only a broken invariant thrown by onMessage escapes.
 */
async function receiveBody(
  ctx: TransportContext,
  inbound: InboundSnapshot,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const startMs = Date.now();
  const localId = formatId(ctx.local.memberId);
  const saving: SavingSnapshot = { message: null, file: null, tempPath: "", sizeBytes: 0 };
  let saved: ReceivedSnapshot;
  try {
    saved = await saveBody(ctx, inbound, request, saving);
  } catch (error) {
    await saving.file?.close().catch(() => {});
    if (saving.tempPath !== "") await rm(saving.tempPath, { force: true });
    const sender = saving.message === null ? "" : formatId(saving.message.from);
    let status = 500;
    let text = `failed to save KV snapshot (${reasonOf(error)})`;
    if (error instanceof Refusal) {
      status = error.status;
      text = error.message;
      ctx.log.warn("failed to receive database snapshot", {
        "local-member-id": localId,
        "remote-snapshot-sender-id": sender,
        error: text,
      });
    } else {
      // I/O (disk full, connection lost): etcd answers 500 "failed to save KV snapshot (...)".
      ctx.log.warn("failed to save incoming database snapshot", {
        "local-member-id": localId,
        "remote-snapshot-sender-id": sender,
        "incoming-snapshot-index": saving.message?.snapshot?.metadata.index ?? 0,
        error: reasonOf(error),
      });
    }
    if (!response.headersSent && !request.destroyed) sendError(response, status, text, CLOSE);
    else request.destroy();
    return;
  }
  const message = saving.message!;
  ctx.counters(message.from).snapshotsReceived++;
  ctx.log.info("received and saved database snapshot", {
    "local-member-id": localId,
    "remote-snapshot-sender-id": formatId(message.from),
    "incoming-snapshot-index": saved.index,
    "incoming-snapshot-size-bytes": saved.sizeBytes,
    "incoming-snapshot-size": humanizeBytes(saved.sizeBytes),
    "download-took": formatDurationMs(Date.now() - startMs),
  });
  try {
    ctx.deliver(message, saved);
  } catch (error) {
    if (!isRaftError(error)) throw error;
    ctx.log.warn("failed to process Raft message", {
      "local-member-id": localId,
      "remote-snapshot-sender-id": formatId(message.from),
      error: error.message,
    });
    sendError(response, 500, `failed to process raft message (${error.message})`);
    return;
  }
  // 204 only once raft has the message, so the sender's reportSnapshot(Finish) means "received".
  response.writeHead(204);
  response.end();
}

interface SavingSnapshot {
  message: Message | null;
  file: FileHandle | null;
  tempPath: string;
  sizeBytes: number;
}

async function saveBody(
  ctx: TransportContext,
  inbound: InboundSnapshot,
  request: IncomingMessage,
  saving: SavingSnapshot,
): Promise<ReceivedSnapshot> {
  const pending: FrameRecord[] = [];
  const decoder = new FrameDecoder(ctx.limits.frameMaxBytes, SNAPSHOT_FRAME_KINDS, (kind, payload) => {
    pending.push({ kind, payload });
  });
  const hash = createHash("sha256");
  let ended = false;
  // destroyOnReturn: false, so a refusal mid-body can still be answered (the socket closes after it).
  for await (const chunk of request.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    inbound.lastProgressMs = ctx.nowMs();
    try {
      decoder.push(chunk);
    } catch (error) {
      throw new Refusal(400, `failed to decode raft message (${reasonOf(error)})`);
    }
    for (let i = 0; i < pending.length; i++) {
      const { kind, payload } = pending[i]!;
      if (ended) throw new Refusal(400, "failed to decode raft message (data after the end frame)");
      if (saving.message === null) {
        if (kind !== FrameKind.SnapshotHeader) {
          throw new Refusal(400, "failed to decode raft message (the body does not start with a MsgSnap)");
        }
        const message = decodeSnapMessage(ctx, payload);
        saving.message = message;
        const index = message.snapshot!.metadata.index;
        saving.tempPath = join(
          ctx.snapshotDir,
          `${index.toString(16).padStart(16, "0")}${TEMP_MARKER}${randomBytes(6).toString("hex")}`,
        );
        saving.file = await open(saving.tempPath, "wx");
        ctx.log.info("receiving database snapshot", {
          "local-member-id": formatId(ctx.local.memberId),
          "remote-snapshot-sender-id": formatId(message.from),
          "incoming-snapshot-index": index,
          "incoming-snapshot-message-size-bytes": payload.length,
          "incoming-snapshot-message-size": humanizeBytes(payload.length),
        });
      } else if (kind === FrameKind.SnapshotChunk) {
        if (payload.length === 0) throw new Refusal(400, "failed to decode raft message (empty chunk)");
        hash.update(payload);
        await saving.file!.write(payload);
        saving.sizeBytes += payload.length;
        inbound.lastProgressMs = ctx.nowMs();
      } else if (kind === FrameKind.SnapshotEnd) {
        checkEnd(payload, saving.sizeBytes, hash.digest());
        ended = true;
      } else {
        throw new Refusal(400, "failed to decode raft message (a second MsgSnap header)");
      }
    }
    pending.length = 0;
  }
  if (!ended) throw new Refusal(400, "failed to decode raft message (unexpected EOF)");
  const index = saving.message!.snapshot!.metadata.index;
  const finalPath = join(ctx.snapshotDir, snapshotFileName(index));
  await saving.file!.sync();
  await saving.file!.close();
  saving.file = null;
  await rename(saving.tempPath, finalPath);
  saving.tempPath = "";
  await syncDirectory(ctx.snapshotDir);
  return { path: finalPath, sizeBytes: saving.sizeBytes, index };
}

/** After a refusal the rest of the body is not read: the connection must not be reused. */
const CLOSE = { Connection: "close" };

function decodeSnapMessage(ctx: TransportContext, payload: Buffer): Message {
  let message: Message;
  try {
    message = decodeMessage(plainBytes(payload));
  } catch (error) {
    throw new Refusal(400, `failed to decode raft message (${reasonOf(error)})`);
  }
  if (message.type !== MessageType.Snap || message.snapshot === null) {
    ctx.log.warn("unexpected Raft message type", {
      "local-member-id": formatId(ctx.local.memberId),
      "remote-snapshot-sender-id": formatId(message.from),
      "message-type": message.type,
    });
    throw new Refusal(400, EtcdPeerText.wrongMessageType);
  }
  if (message.to !== ctx.local.memberId) throw new Refusal(412, EtcdPeerText.toFieldMismatch);
  if (ctx.isRemoved(message.from)) throw new Refusal(403, EtcdPeerText.removedMemberMessage);
  return message;
}

function checkEnd(payload: Buffer, sizeBytes: number, digest: Buffer): void {
  if (payload.length !== SNAPSHOT_END_PAYLOAD_BYTES) {
    throw new Refusal(400, `failed to decode raft message (end frame of ${payload.length} bytes)`);
  }
  const announced = payload.readBigUInt64BE(0);
  if (announced !== BigInt(sizeBytes)) {
    throw new Refusal(
      500,
      `failed to save KV snapshot (received ${sizeBytes} bytes, sender sent ${announced})`,
    );
  }
  if (!digest.equals(payload.subarray(8))) {
    throw new Refusal(500, "failed to save KV snapshot (sha256 mismatch)");
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
