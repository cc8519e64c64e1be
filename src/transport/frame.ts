import { assert } from "../assert.js";
import { CODEC_VERSION, isRaftError, type Message, RaftReader, RaftWriter } from "../raft/index.js";
import { TransportError, TransportErrorCode } from "./errors.js";

/**
 * The framing on peer connections (after the HTTP handshake of a stream, and in a snapshot's POST body):
 *
 *   frame = payloadLength: u32 big-endian | kind: u8 | payload (payloadLength bytes)
 *
 * A reader knows the size of a frame before it has it, so it can refuse one above its bound before
 * buffering it (a garbage length is caught at once), and it never needs more than one frame in memory.
 *
 * Kinds:
 * - Messages: a batch of raft messages, `CODEC_VERSION` then the messages back to back (src/raft codec,
 *   RaftWriter.message). No count: the batch ends where the payload ends. One frame carries what one
 *   flush found queued for a peer, up to frameTargetBytes, so one syscall and one decode loop serve many
 *   messages.
 * - Heartbeat: empty; sent both ways on an idle stream so each side can tell a live peer from a dead
 *   connection (etcd's linkHeartbeatMessage, which raft never sees).
 * - SnapshotHeader, SnapshotChunk, SnapshotEnd: a snapshot POST body is one header (the encoded MsgSnap),
 *   then the data in chunks, then the total size and SHA-256 of the data, so the receiver can tell a whole
 *   snapshot from a cut or corrupted one before it hands it to raft.
 */

export const FRAME_HEADER_BYTES = 5;

export const FrameKind = {
  Messages: 1,
  Heartbeat: 2,
  SnapshotHeader: 3,
  SnapshotChunk: 4,
  SnapshotEnd: 5,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const FRAME_KIND_MAX = FrameKind.SnapshotEnd;

/** Size (u64) and SHA-256 of the snapshot data. */
export const SNAPSHOT_END_PAYLOAD_BYTES = 8 + 32;

/** A frame of kind Heartbeat; never modified, so one buffer serves every write. */
export const HEARTBEAT_FRAME: Buffer = frameHeader(FrameKind.Heartbeat, 0);

/** The 5-byte header of a frame whose payload is written separately (snapshot chunks: no copy). */
export function frameHeader(kind: FrameKind, payloadBytes: number): Buffer {
  assert(payloadBytes >= 0 && payloadBytes <= 0xffffffff, `frame payload of ${payloadBytes} bytes`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payloadBytes, 0);
  header[4] = kind;
  return header;
}

/** A whole frame around a payload (one copy; for small payloads). */
export function frameOf(kind: FrameKind, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame[4] = kind;
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** A kind set as a bit mask, so a decoder can refuse kinds that do not belong on its connection. */
export function kindMask(...kinds: FrameKind[]): number {
  let mask = 0;
  for (const kind of kinds) mask |= 1 << kind;
  return mask;
}

/**
 * An upper bound of RaftWriter.message's output for `m` (every varint counted at its 10-byte maximum), so
 * a batch can be closed before a message would push it over frameMaxBytes without encoding it twice.
 */
export function messageSizeBoundBytes(m: Message): number {
  const VARINT = 10;
  // type, to, from, term, logTerm, index, commit, rejectHint, flags, context length, entry count
  let bound = 1 + 7 * VARINT + 1 + VARINT + m.context.length + VARINT;
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) bound += 3 * VARINT + 1 + entries[i]!.data.length;
  const snapshot = m.snapshot;
  if (snapshot !== null) {
    const cs = snapshot.metadata.confState;
    const ids = cs.voters.length + cs.learners.length + cs.votersOutgoing.length + cs.learnersNext.length;
    bound += 4 * VARINT + ids * VARINT + 1 + 2 * VARINT + VARINT + snapshot.data.length;
  }
  return bound;
}

/**
 * Builds Messages frames in one reused buffer. start(), add() messages, finish() returns the frame as a
 * fresh copy: the socket keeps a written buffer until the kernel has it, so the builder's own buffer
 * cannot be handed out.
 */
export class MessageFrameBuilder {
  private writer: RaftWriter;
  private count = 0;

  constructor(private readonly initialBytes: number) {
    this.writer = new RaftWriter(initialBytes);
  }

  start(): void {
    this.writer.reset();
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) this.writer.byte(0);
    this.writer.byte(CODEC_VERSION);
    this.count = 0;
  }

  /** Bytes of the frame so far, header included. */
  get frameBytes(): number {
    return this.writer.length;
  }

  get messages(): number {
    return this.count;
  }

  add(m: Message): void {
    this.writer.message(m);
    this.count++;
  }

  finish(): Uint8Array {
    assert(this.count > 0, "an empty Messages frame");
    const frame = this.writer.toBytes();
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    new DataView(frame.buffer, frame.byteOffset, frame.byteLength).setUint32(0, payloadBytes);
    frame[4] = FrameKind.Messages;
    // One oversized message must not pin a huge buffer for the life of the transport.
    if (frame.length > 4 * this.initialBytes) this.writer = new RaftWriter(this.initialBytes);
    this.count = 0;
    return frame;
  }

  /** Drops what start()/add() wrote (a single message too large for any frame). */
  abandon(): void {
    this.count = 0;
    this.writer = new RaftWriter(this.initialBytes);
  }
}

/**
 * The same bytes as a plain Uint8Array. RaftReader copies byte fields with slice(), which on a Buffer is
 * a view: decoding a Buffer would leave every message holding (and pinning) the socket's chunk.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
}

function malformed(message: string): never {
  throw new TransportError(TransportErrorCode.MalformedFrame, message);
}

/**
 * Decodes a Messages payload into `out` (cleared first). Everything is decoded and validated before the
 * caller delivers anything, so a corrupt frame delivers nothing. Throws TransportError(MalformedFrame).
 */
export function decodeMessagesPayload(payload: Uint8Array, out: Message[]): void {
  out.length = 0;
  try {
    const reader = new RaftReader(plainBytes(payload));
    reader.version();
    if (reader.remaining === 0) malformed("empty message batch");
    while (reader.remaining > 0) out.push(reader.message());
  } catch (error) {
    out.length = 0;
    if (isRaftError(error)) malformed(`bad raft message in batch: ${error.message}`);
    throw error;
  }
}

export type FrameHandler = (kind: FrameKind, payload: Buffer) => void;

/**
 * Splits a byte stream into frames. Memory is bounded: at most one frame (frameMaxBytes) plus the last
 * chunk pushed is held. A frame that fits in one pushed chunk is handed out as a view of it (no copy);
 * one that spans chunks is assembled once. After a malformed frame the decoder refuses further input.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** Read position in chunks[0]. */
  private offset = 0;
  private bufferedBytes = 0;
  /** Header of the frame being assembled, or -1 before its header is complete. */
  private payloadBytes = -1;
  private kind: FrameKind = FrameKind.Heartbeat;
  private failed = false;
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);

  constructor(
    private readonly frameMaxBytes: number,
    private readonly allowedKinds: number,
    private readonly onFrame: FrameHandler,
  ) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** True at a frame boundary (nothing partial held). */
  get atBoundary(): boolean {
    return this.bufferedBytes === 0 && this.payloadBytes < 0;
  }

  /** Feeds bytes; calls onFrame for each complete frame. Throws TransportError(MalformedFrame). */
  push(chunk: Buffer): void {
    if (this.failed) malformed("input after a malformed frame");
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    try {
      this.drain();
    } catch (error) {
      this.failed = true;
      this.chunks.length = 0;
      this.bufferedBytes = 0;
      throw error;
    }
  }

  private drain(): void {
    for (;;) {
      if (this.payloadBytes < 0) {
        if (this.bufferedBytes < FRAME_HEADER_BYTES) return;
        this.take(this.header, FRAME_HEADER_BYTES);
        const length = this.header.readUInt32BE(0);
        const kind = this.header[4]!;
        if (kind === 0 || kind > FRAME_KIND_MAX || (this.allowedKinds & (1 << kind)) === 0) {
          malformed(`unexpected frame kind ${kind}`);
        }
        if (length > this.frameMaxBytes) {
          malformed(`frame of ${length} bytes exceeds the limit of ${this.frameMaxBytes}`);
        }
        this.payloadBytes = length;
        this.kind = kind as FrameKind;
      }
      if (this.bufferedBytes < this.payloadBytes) return;
      const payload = this.takePayload(this.payloadBytes);
      const kind = this.kind;
      this.payloadBytes = -1;
      this.onFrame(kind, payload);
      if (this.failed) return;
    }
  }

  /** Copies the next `n` buffered bytes into `into` (n <= into.length). */
  private take(into: Buffer, n: number): void {
    let copied = 0;
    while (copied < n) {
      const first = this.chunks[0]!;
      const available = first.length - this.offset;
      const step = Math.min(available, n - copied);
      first.copy(into, copied, this.offset, this.offset + step);
      copied += step;
      this.consume(step);
    }
  }

  private takePayload(n: number): Buffer {
    if (n === 0) return EMPTY_BUFFER;
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.consume(n);
      return view;
    }
    const payload = Buffer.allocUnsafe(n);
    this.take(payload, n);
    return payload;
  }

  private consume(n: number): void {
    this.offset += n;
    this.bufferedBytes -= n;
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

const EMPTY_BUFFER = Buffer.alloc(0);
