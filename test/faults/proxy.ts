import { connect, createServer, type Server, type Socket } from "node:net";
import { assert } from "../../src/assert.js";
import { Xoshiro128 } from "../../src/raft/rng.js";

/**
 * A fault layer for peer traffic: one TCP proxy on 127.0.0.1 in front of each member's peer port. Members
 * advertise the proxy's URL, so every peer connection to member B arrives at B's proxy; the proxy reads
 * the first request's headers to learn which member A opened it (etcd's and etcd-ts's X-Server-From), so
 * each connection belongs to the link A->B and each byte has a direction: A->B on the way in, B->A on
 * the way back. A fault is set per direction (ordered pair of members):
 *
 *   pass       bytes flow.
 *   delay      each chunk is held delayMs (+ uniform jitter) before it goes on; order is kept (TCP's).
 *   blackhole  bytes are accepted and held, nothing is forwarded and nothing is closed, as with a route
 *              that silently eats packets. Past a bound the proxy stops reading (TCP back-pressure fills
 *              the sender's buffers). When the direction heals, held bytes are delivered, as TCP would
 *              retransmit them; the members' own timeouts may have closed the connection first.
 *   drop       a connection dies the moment a byte would cross the direction (both sockets destroyed,
 *              so the peer sees a reset). A connection A opens to B carries its request A->B, so it is
 *              dropped at once; one B opens to A survives until A answers. New connections are accepted
 *              and dropped the same way: the closest TCP gets to "packets lost".
 *
 * Not offered: duplication. TCP delivers each byte once and in order; repeating application bytes would
 * only corrupt the stream's framing, which no real network does. What reaches raft as a duplicate in real
 * life is a resend after a broken connection (`resetConnections`, `drop`, a flapping link), and raft-level
 * duplicate and reordered messages are what the raft simulator (test/sim) injects.
 *
 * Partitions are sets of directional faults: `partition` (symmetric, between groups), `cutOneWay`
 * (asymmetric), `isolate` (e.g. the leader), `bridge` (A and C cut, B reaches both), `flap` (a link that
 * fails and heals on a period). Connections whose source cannot be told (no X-Server-From, e.g. etcd's
 * /version and /raft/probing checks) pass while no fault touches their destination and are dropped
 * otherwise.
 */

export type Fault =
  | { kind: "pass" }
  | { kind: "delay"; delayMs: number; jitterMs?: number }
  | { kind: "blackhole" }
  | { kind: "drop" };

export const PASS: Fault = { kind: "pass" };
export const DROP: Fault = { kind: "drop" };
export const BLACKHOLE: Fault = { kind: "blackhole" };

/**
 * Names the member that opened a connection from the bytes it sent first: a name, null (cannot be
 * told: treated as unknown), or undefined (need more bytes).
 */
export type SourceIdentifier = (head: Buffer) => string | null | undefined;

/** Source name of connections that could not be identified. */
export const UNKNOWN_SOURCE = "?";

/** How many bytes of a connection's start are read to find its source; beyond that it is unknown. */
const HEAD_BYTES_MAX = 16 * 1024;
/** Bytes one direction of one connection may hold (delayed or blackholed) before reading stops. */
const HELD_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
/** Live connections per proxy; more are refused (closed at accept). */
const CONNECTIONS_MAX = 512;
/** Flapping links at once. */
const FLAPS_MAX = 64;

export interface FaultNetworkOptions {
  identify: SourceIdentifier;
  /** Seeds the delay jitter. */
  seed?: number;
  heldBytesMax?: number;
}

export interface DirectionStats {
  from: string;
  to: string;
  fault: Fault;
  bytesForwarded: number;
  connectionsDropped: number;
}

interface Proxy {
  name: string;
  port: number;
  targetPort: number;
  server: Server;
}

export class FaultNetwork {
  private readonly proxies = new Map<string, Proxy>();
  private readonly faults = new Map<string, Fault>();
  private readonly stats = new Map<string, { bytesForwarded: number; connectionsDropped: number }>();
  private readonly connections = new Set<ProxiedConnection>();
  private readonly flaps = new Set<NodeJS.Timeout>();
  private readonly rng: Xoshiro128;
  readonly heldBytesMax: number;
  private closed = false;

  constructor(private readonly options: FaultNetworkOptions) {
    this.rng = new Xoshiro128(options.seed ?? 1);
    this.heldBytesMax = options.heldBytesMax ?? HELD_BYTES_MAX_DEFAULT;
  }

  /** Starts the proxy in front of member `name` (its peer port is `targetPort`); resolves with the proxy's port. */
  async addMember(name: string, targetPort: number, listenPort = 0): Promise<number> {
    assert(!this.proxies.has(name) && name !== UNKNOWN_SOURCE, `member ${name} added twice or reserved`);
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(name, socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listenPort, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    assert(address !== null && typeof address !== "string", "proxy has no port");
    this.proxies.set(name, { name, port: address.port, targetPort, server });
    return address.port;
  }

  /** The proxy port of `name` (what the member advertises). */
  portOf(name: string): number {
    const proxy = this.proxies.get(name);
    assert(proxy !== undefined, `no proxy for member ${name}`);
    return proxy.port;
  }

  members(): string[] {
    return [...this.proxies.keys()];
  }

  /** Sets the fault of one direction (bytes from `from` to `to`). */
  set(from: string, to: string, fault: Fault): void {
    assert(this.proxies.has(from) && this.proxies.has(to) && from !== to, `no link ${from}->${to}`);
    if (fault.kind === "delay")
      assert(fault.delayMs >= 0 && (fault.jitterMs ?? 0) >= 0, "delays are not negative");
    if (fault.kind === "pass") this.faults.delete(direction(from, to));
    else this.faults.set(direction(from, to), fault);
    for (const connection of this.connections) connection.faultsChanged();
  }

  /** Both directions between a and b. */
  setLink(a: string, b: string, fault: Fault): void {
    this.set(a, b, fault);
    this.set(b, a, fault);
  }

  /** Every direction passes again (flapping stops too). */
  heal(): void {
    for (const timer of this.flaps) clearInterval(timer);
    this.flaps.clear();
    this.faults.clear();
    for (const connection of this.connections) connection.faultsChanged();
  }

  /** Cuts every link between members of different groups (a symmetric partition); members in no group are untouched. */
  partition(groups: readonly (readonly string[])[], fault: Fault = DROP): void {
    for (const [i, left] of groups.entries()) {
      for (const right of groups.slice(i + 1)) {
        for (const a of left) for (const b of right) this.setLink(a, b, fault);
      }
    }
  }

  /** Cuts `name` off from every other member, both ways. */
  isolate(name: string, fault: Fault = DROP): void {
    for (const other of this.members()) if (other !== name) this.setLink(name, other, fault);
  }

  /** An asymmetric partition: `from` cannot reach `to`, `to` still reaches `from`. */
  cutOneWay(from: string, to: string, fault: Fault = DROP): void {
    this.set(from, to, fault);
  }

  /** A bridge: `left` and `right` cannot talk; `bridge` talks to both. */
  bridge(left: readonly string[], bridge: string, right: readonly string[], fault: Fault = DROP): void {
    assert(!left.includes(bridge) && !right.includes(bridge), "the bridge is on neither side");
    this.partition([left, right], fault);
  }

  /** The link a<->b alternates between `fault` and pass every `periodMs` (starting cut) until `stop()` or `heal()`. */
  flap(a: string, b: string, periodMs: number, fault: Fault = DROP): { stop(): void } {
    assert(this.flaps.size < FLAPS_MAX, `more than ${FLAPS_MAX} flapping links`);
    assert(periodMs > 0, "a flap period is positive");
    let cut = true;
    this.setLink(a, b, fault);
    const timer = setInterval(() => {
      cut = !cut;
      this.setLink(a, b, cut ? fault : PASS);
    }, periodMs);
    this.flaps.add(timer);
    return {
      stop: () => {
        if (!this.flaps.delete(timer)) return;
        clearInterval(timer);
        this.setLink(a, b, PASS);
      },
    };
  }

  /** Closes live connections (between a and b when given, else all): the members reconnect and resend. */
  resetConnections(a?: string, b?: string): number {
    let count = 0;
    for (const connection of this.connections) {
      if (a !== undefined && !connection.joins(a, b)) continue;
      connection.destroy();
      count++;
    }
    return count;
  }

  /** The fault of bytes going from `from` to `to` now. */
  faultOf(from: string, to: string): Fault {
    if (from === UNKNOWN_SOURCE || to === UNKNOWN_SOURCE) {
      const member = from === UNKNOWN_SOURCE ? to : from;
      for (const key of this.faults.keys()) if (key.split("\u0000").includes(member)) return DROP;
      return PASS;
    }
    return this.faults.get(direction(from, to)) ?? PASS;
  }

  /** One line per faulty direction, for logs. */
  describe(): string {
    if (this.faults.size === 0) return "all links pass";
    return [...this.faults]
      .map(
        ([key, fault]) =>
          `${key.replace("\u0000", "->")}: ${fault.kind}${fault.kind === "delay" ? ` ${fault.delayMs}ms` : ""}`,
      )
      .join(", ");
  }

  directionStats(): DirectionStats[] {
    return [...this.stats].map(([key, stats]) => {
      const [from, to] = key.split("\u0000") as [string, string];
      return { from, to, fault: this.faultOf(from, to), ...stats };
    });
  }

  liveConnections(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.heal();
    for (const connection of this.connections) connection.destroy();
    await Promise.all(
      [...this.proxies.values()].map(
        (proxy) => new Promise<void>((resolve) => proxy.server.close(() => resolve())),
      ),
    );
  }

  // --- used by connections ---

  jitterMs(maxMs: number): number {
    return maxMs <= 0 ? 0 : this.rng.nextInt(Math.floor(maxMs) + 1);
  }

  counted(from: string, to: string): { bytesForwarded: number; connectionsDropped: number } {
    const key = direction(from, to);
    let stats = this.stats.get(key);
    if (stats === undefined) {
      stats = { bytesForwarded: 0, connectionsDropped: 0 };
      this.stats.set(key, stats);
    }
    return stats;
  }

  forget(connection: ProxiedConnection): void {
    this.connections.delete(connection);
  }

  private accept(name: string, socket: Socket): void {
    const proxy = this.proxies.get(name) as Proxy;
    if (this.closed || this.connections.size >= CONNECTIONS_MAX * this.proxies.size) {
      socket.destroy();
      return;
    }
    this.connections.add(
      new ProxiedConnection(this, proxy.name, proxy.targetPort, socket, this.options.identify),
    );
  }
}

function direction(from: string, to: string): string {
  return `${from}\u0000${to}`;
}

/** One accepted connection: identification, then two pipes (source->destination and back). */
class ProxiedConnection {
  private source = UNKNOWN_SOURCE;
  private upstream: Socket | null = null;
  private pipes: Pipe[] = [];
  private head: Buffer[] = [];
  private headBytes = 0;
  private dead = false;

  constructor(
    private readonly network: FaultNetwork,
    private readonly destination: string,
    private readonly targetPort: number,
    private readonly client: Socket,
    private readonly identify: SourceIdentifier,
  ) {
    client.on("error", () => this.destroy());
    client.on("close", () => this.destroy());
    client.on("data", this.onHead);
  }

  joins(a: string, b: string | undefined): boolean {
    const ends = [this.source, this.destination];
    return ends.includes(a) && (b === undefined || ends.includes(b));
  }

  /** Reads the start of the connection until its source is known, then opens the upstream side. */
  private readonly onHead = (chunk: Buffer): void => {
    this.head.push(chunk);
    this.headBytes += chunk.length;
    const head = Buffer.concat(this.head);
    const source = this.headBytes > HEAD_BYTES_MAX ? null : this.identify(head);
    if (source === undefined) return;
    this.client.off("data", this.onHead);
    this.client.pause();
    this.source = source ?? UNKNOWN_SOURCE;
    const upstream = connect({ host: "127.0.0.1", port: this.targetPort, allowHalfOpen: true });
    this.upstream = upstream;
    upstream.on("error", () => this.destroy());
    upstream.on("close", () => this.destroy());
    const inbound = new Pipe(this, this.network, this.source, this.destination, this.client, upstream);
    const outbound = new Pipe(this, this.network, this.destination, this.source, upstream, this.client);
    this.pipes = [inbound, outbound];
    inbound.push(head);
    this.head = [];
    upstream.once("connect", () => {
      if (this.dead) return;
      inbound.start();
      outbound.start();
    });
  };

  faultsChanged(): void {
    for (const pipe of this.pipes) pipe.flush();
  }

  /** Both sides finished sending: close. */
  pipeEnded(): void {
    if (this.pipes.every((pipe) => pipe.finished)) this.destroy();
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    for (const pipe of this.pipes) pipe.stop();
    this.client.destroy();
    this.upstream?.destroy();
    this.network.forget(this);
  }

  get isDead(): boolean {
    return this.dead;
  }
}

/** One direction of one connection: forwards, delays or holds chunks per the direction's current fault. */
class Pipe {
  private readonly queue: { data: Buffer; dueMs: number }[] = [];
  private queuedBytes = 0;
  private lastDueMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private sourceEnded = false;
  private started = false;
  private waitingDrain = false;
  finished = false;

  constructor(
    private readonly connection: ProxiedConnection,
    private readonly network: FaultNetwork,
    private readonly from: string,
    private readonly to: string,
    private readonly source: Socket,
    private readonly sink: Socket,
  ) {}

  /** The sink is connected: read the source and forward. */
  start(): void {
    this.started = true;
    this.source.on("data", (chunk: Buffer) => this.push(chunk));
    this.source.on("end", () => {
      this.sourceEnded = true;
      this.flush();
    });
    this.source.resume();
    this.flush();
  }

  push(chunk: Buffer): void {
    const fault = this.network.faultOf(this.from, this.to);
    const nowMs = performance.now();
    let dueMs = nowMs;
    if (fault.kind === "delay") dueMs = nowMs + fault.delayMs + this.network.jitterMs(fault.jitterMs ?? 0);
    // TCP keeps order: a chunk never overtakes one queued before it.
    dueMs = Math.max(dueMs, this.lastDueMs);
    this.lastDueMs = dueMs;
    this.queue.push({ data: chunk, dueMs });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > this.network.heldBytesMax) this.source.pause();
    this.flush();
  }

  /** Delivers what the current fault lets through and is due; drops the connection under `drop`. */
  flush(): void {
    if (this.connection.isDead || !this.started) return;
    const fault = this.network.faultOf(this.from, this.to);
    if (fault.kind === "drop" && this.queue.length > 0) {
      this.network.counted(this.from, this.to).connectionsDropped++;
      this.connection.destroy();
      return;
    }
    if (fault.kind === "blackhole" || fault.kind === "drop") return;
    const nowMs = performance.now();
    const stats = this.network.counted(this.from, this.to);
    while (this.queue.length > 0 && !this.waitingDrain) {
      const first = this.queue[0] as { data: Buffer; dueMs: number };
      if (first.dueMs > nowMs) break;
      this.queue.shift();
      this.queuedBytes -= first.data.length;
      stats.bytesForwarded += first.data.length;
      if (!this.sink.write(first.data)) {
        this.waitingDrain = true;
        this.sink.once("drain", () => {
          this.waitingDrain = false;
          this.flush();
        });
      }
    }
    if (this.queuedBytes <= this.network.heldBytesMax / 2 && !this.waitingDrain) this.source.resume();
    else this.source.pause();
    this.schedule(nowMs);
    if (this.queue.length === 0 && this.sourceEnded && !this.finished) {
      this.finished = true;
      this.sink.end();
      this.connection.pipeEnded();
    }
  }

  private schedule(nowMs: number): void {
    if (this.timer !== null || this.queue.length === 0) return;
    const first = this.queue[0] as { data: Buffer; dueMs: number };
    if (!Number.isFinite(first.dueMs)) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.flush();
      },
      Math.max(0, first.dueMs - nowMs),
    );
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/**
 * Identifies etcd (and etcd-ts) peer connections by the X-Server-From header of their first HTTP request
 * (the sender's member id in hex, as etcd prints it), mapped to member names by `ids`.
 */
export function serverFromIdentifier(ids: ReadonlyMap<bigint, string>): SourceIdentifier {
  return (head: Buffer): string | null | undefined => {
    const end = head.indexOf("\r\n\r\n");
    if (end === -1) return undefined;
    const lines = head.subarray(0, end).toString("latin1").split("\r\n");
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon === -1 || line.slice(0, colon).trim().toLowerCase() !== "x-server-from") continue;
      const text = line.slice(colon + 1).trim();
      if (!/^[0-9a-f]{1,16}$/i.test(text)) return null;
      return ids.get(BigInt(`0x${text}`)) ?? null;
    }
    return null;
  };
}
