/**
 * A TCP proxy on 127.0.0.1 that can stall: while paused it stops reading from both sides of every
 * connection (and holds new ones), so the sender's writes back up into its kernel buffers and then into
 * the transport's own bounds, as with a peer that is stopped (SIGSTOP) or blackholed.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { freePort } from "../support/ports.js";

export interface StallProxy {
  readonly url: string;
  pause(): void;
  resume(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startStallProxy(targetPort: number): Promise<StallProxy> {
  const port = await freePort();
  const pairs = new Set<[Socket, Socket]>();
  let paused = false;
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    if (paused) {
      client.pause();
      upstream.pause();
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    pause() {
      paused = true;
      for (const [a, b] of pairs) {
        a.unpipe();
        b.unpipe();
        a.pause();
        b.pause();
      }
    },
    resume() {
      paused = false;
      for (const [a, b] of pairs) {
        a.pipe(b);
        b.pipe(a);
        a.resume();
        b.resume();
      }
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
