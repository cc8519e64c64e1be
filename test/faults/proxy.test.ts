import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { BLACKHOLE, DROP, FaultNetwork, PASS, serverFromIdentifier, UNKNOWN_SOURCE } from "./proxy.js";

/**
 * The fault proxy on plain TCP: three fake members ("a", "b", "c") that log what they receive and
 * answer each line with "ack:<line>". A client speaking for member X opens a connection to member Y's
 * proxy with an HTTP-style head carrying X-Server-From, as etcd's peers do.
 */

const IDS = new Map<bigint, string>([
  [0xa1n, "a"],
  [0xb2n, "b"],
  [0xc3n, "c"],
]);
const HEX = { a: "a1", b: "b2", c: "c3" } as const;

interface FakeMember {
  server: Server;
  port: number;
  received: string[];
}

async function fakeMember(): Promise<FakeMember> {
  const received: string[] = [];
  const server = createServer((socket) => {
    let buffered = "";
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === "" || line.startsWith("GET") || line.startsWith("X-") || line === "\r") continue;
        received.push(line);
        socket.write(`ack:${line}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  assert.ok(address !== null && typeof address !== "string");
  return { server, port: address.port, received };
}

/** A connection from member `from` (or an unidentified client when null) through the proxy of `to`. */
class PeerClient {
  readonly lines: string[] = [];
  closed = false;
  private buffered = "";

  constructor(readonly socket: Socket) {
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("data", (chunk: Buffer) => {
      this.buffered += chunk.toString();
      for (let nl = this.buffered.indexOf("\n"); nl !== -1; nl = this.buffered.indexOf("\n")) {
        this.lines.push(this.buffered.slice(0, nl));
        this.buffered = this.buffered.slice(nl + 1);
      }
    });
  }

  static async open(network: FaultNetwork, from: keyof typeof HEX | null, to: string): Promise<PeerClient> {
    const socket = connect({ host: "127.0.0.1", port: network.portOf(to) });
    await once(socket, "connect");
    const client = new PeerClient(socket);
    const fromHeader = from === null ? "" : `X-Server-From: ${HEX[from]}\r\n`;
    socket.write(`GET /raft/stream HTTP/1.1\r\nHost: x\r\n${fromHeader}\r\n`);
    return client;
  }

  send(line: string): void {
    this.socket.write(`${line}\n`);
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("fault proxy", () => {
  const members = new Map<string, FakeMember>();
  let network: FaultNetwork;
  const clients: PeerClient[] = [];
  const open = async (from: keyof typeof HEX | null, to: string): Promise<PeerClient> => {
    const client = await PeerClient.open(network, from, to);
    clients.push(client);
    return client;
  };

  before(async () => {
    network = new FaultNetwork({ identify: serverFromIdentifier(IDS), seed: 7 });
    for (const name of ["a", "b", "c"]) {
      const member = await fakeMember();
      members.set(name, member);
      await network.addMember(name, member.port);
    }
  });

  after(async () => {
    for (const client of clients) client.socket.destroy();
    await network.close();
    for (const member of members.values()) member.server.close();
  });

  const received = (name: string): string[] => members.get(name)?.received ?? [];

  it("passes bytes both ways and counts them per direction", async () => {
    network.heal();
    const client = await open("a", "b");
    client.send("hello");
    await until(() => client.lines.includes("ack:hello"), "the answer");
    assert.ok(received("b").includes("hello"));
    const stats = network.directionStats();
    assert.ok((stats.find((s) => s.from === "a" && s.to === "b")?.bytesForwarded ?? 0) > 0);
    assert.ok((stats.find((s) => s.from === "b" && s.to === "a")?.bytesForwarded ?? 0) > 0);
  });

  it("delays one direction by at least the delay, keeping order under jitter", async () => {
    network.heal();
    const client = await open("a", "b");
    client.send("warm");
    await until(() => client.lines.includes("ack:warm"), "warm-up");
    network.set("a", "b", { kind: "delay", delayMs: 150, jitterMs: 50 });
    const sentMs = performance.now();
    for (let i = 0; i < 20; i++) client.send(`d${i}`);
    await until(() => client.lines.includes("ack:d19"), "the delayed answers");
    assert.ok(performance.now() - sentMs >= 150, "nothing arrives before the delay");
    const order = received("b").filter((line) => line.startsWith("d"));
    assert.deepEqual(
      order,
      Array.from({ length: 20 }, (_unused, i) => `d${i}`),
    );
  });

  it("blackholes a direction without closing, then delivers the held bytes when it heals", async () => {
    network.heal();
    const client = await open("a", "c");
    client.send("before");
    await until(() => client.lines.includes("ack:before"), "the first answer");
    network.set("a", "c", BLACKHOLE);
    client.send("held1");
    client.send("held2");
    await sleep(200);
    assert.ok(!received("c").includes("held1"), "a blackholed direction forwards nothing");
    assert.equal(client.closed, false, "and closes nothing");
    network.set("a", "c", PASS);
    await until(() => client.lines.includes("ack:held2"), "the held bytes after healing");
    assert.deepEqual(
      received("c").filter((line) => line.startsWith("held")),
      ["held1", "held2"],
    );
  });

  it("drop: a connection dies when a byte would cross the dropped direction, new ones too", async () => {
    network.heal();
    const established = await open("a", "b");
    established.send("x1");
    await until(() => established.lines.includes("ack:x1"), "an answer");
    network.set("a", "b", DROP);
    established.send("lost");
    await until(() => established.closed, "the established connection to close");
    const fresh = await open("a", "b");
    fresh.send("lost-too");
    await until(() => fresh.closed, "a new connection to be dropped");
    assert.ok(!received("b").includes("lost") && !received("b").includes("lost-too"));
    assert.ok(
      (network.directionStats().find((s) => s.from === "a" && s.to === "b")?.connectionsDropped ?? 0) >= 2,
    );
  });

  it("an asymmetric drop lets the request through and kills the connection at the answer", async () => {
    network.heal();
    network.cutOneWay("b", "a");
    const client = await open("a", "b");
    client.send("one-way");
    await until(() => client.closed, "the connection to die at b's answer");
    assert.ok(received("b").includes("one-way"), "a->b still delivers");
    assert.ok(!client.lines.includes("ack:one-way"), "b->a delivers nothing");
  });

  it("connections that cannot be identified pass while no fault touches their destination", async () => {
    network.heal();
    const anonymous = await open(null, "c");
    anonymous.send("anon");
    await until(() => anonymous.lines.includes("ack:anon"), "the anonymous answer");
    network.cutOneWay("b", "c");
    anonymous.send("anon2");
    await until(() => anonymous.closed, "the anonymous connection to drop");
    assert.equal(network.faultOf(UNKNOWN_SOURCE, "a").kind, "pass");
  });

  it("partition shapes: isolate, bridge, symmetric groups, and heal", () => {
    network.heal();
    network.isolate("a");
    for (const other of ["b", "c"]) {
      assert.equal(network.faultOf("a", other).kind, "drop");
      assert.equal(network.faultOf(other, "a").kind, "drop");
    }
    assert.equal(network.faultOf("b", "c").kind, "pass");
    network.heal();
    network.bridge(["a"], "b", ["c"], BLACKHOLE);
    assert.equal(network.faultOf("a", "c").kind, "blackhole");
    assert.equal(network.faultOf("c", "a").kind, "blackhole");
    assert.equal(network.faultOf("a", "b").kind, "pass");
    assert.equal(network.faultOf("b", "c").kind, "pass");
    network.heal();
    network.partition([["a", "b"], ["c"]]);
    assert.match(network.describe(), /a->c: drop/);
    assert.equal(network.faultOf("a", "b").kind, "pass");
    network.heal();
    assert.equal(network.describe(), "all links pass");
  });

  it("a flapping link alternates between cut and pass until stopped", async () => {
    network.heal();
    const states: string[] = [];
    const flap = network.flap("a", "b", 40);
    for (let i = 0; i < 12; i++) {
      states.push(network.faultOf("a", "b").kind);
      await sleep(20);
    }
    flap.stop();
    assert.ok(states.includes("drop") && states.includes("pass"), states.join(","));
    assert.equal(network.faultOf("a", "b").kind, "pass");
  });

  it("resetConnections closes live connections so members reconnect", async () => {
    network.heal();
    const client = await open("c", "a");
    client.send("r");
    await until(() => client.lines.includes("ack:r"), "an answer");
    assert.ok(network.resetConnections("c", "a") >= 1);
    await until(() => client.closed, "the reset");
  });

  it("identifies the sender from X-Server-From, case-insensitively, and refuses what it cannot read", () => {
    const identify = serverFromIdentifier(IDS);
    assert.equal(identify(Buffer.from("GET / HTTP/1.1\r\nx-server-from: B2\r\n\r\n")), "b");
    assert.equal(
      identify(Buffer.from("GET / HTTP/1.1\r\nX-Server-From: b2\r\n")),
      undefined,
      "head not complete",
    );
    assert.equal(
      identify(Buffer.from("GET / HTTP/1.1\r\nX-Server-From: ff\r\n\r\n")),
      null,
      "unknown member",
    );
    assert.equal(identify(Buffer.from("GET /version HTTP/1.1\r\nHost: x\r\n\r\n")), null, "no header");
    assert.equal(identify(Buffer.from("GET / HTTP/1.1\r\nX-Server-From: zz\r\n\r\n")), null, "not hex");
  });
});
