import * as grpc from "@grpc/grpc-js";
import { type ClientPort, listenClientPort } from "../../src/api/clientPort.js";
import { createApi } from "../../src/api/index.js";
import { createWatchService, watchServiceDefinition } from "../../src/api/watch.js";
import type { MvccStore } from "../../src/mvcc/store.js";
import type { WriteOp } from "../../src/mvcc/types.js";
import { callUnary, type etcdserverpb, KVClient, WatchClient, WatchService } from "../../src/proto/index.js";
import { WatchHub } from "../../src/watch/hub.js";
import type { WatchHubOptions } from "../../src/watch/types.js";
import { StoreServer } from "../api/storeServer.js";

/**
 * The store double of test/api (a bare MvccStore, no raft) with the watch hub fed from its applies, as
 * the member will wire it: every applied write's events go to `hub.onApplied` right after the store
 * applied them, and the Watch service is registered with its identity-serializing definition.
 */

export interface RunningWatchServer {
  server: StoreServer;
  hub: WatchHub;
  port: ClientPort;
  endpoint: string;
  stop(): Promise<void>;
}

export type WatchServerOptions = Partial<Omit<WatchHubOptions, "store" | "header">> & {
  electionTimeoutMs?: number;
  perMessageWrites?: boolean;
};

/** Routes every apply of `store` through `onApplied` (the lead's apply loop does the same). */
export function feedHub(store: MvccStore, hub: WatchHub): void {
  const apply = store.apply.bind(store);
  store.apply = <O extends WriteOp>(index: number, term: number, op: O) => {
    const result = apply(index, term, op);
    if (result.events.length > 0) hub.onApplied(store.revision, result.events);
    return result;
  };
}

export async function startWatchServer(options: WatchServerOptions = {}): Promise<RunningWatchServer> {
  const server = new StoreServer();
  const hub = new WatchHub({ ...options, store: server.store, header: () => server.header() });
  await hub.start();
  feedHub(server.store, hub);
  const api = createApi(server);
  api.grpcServer.removeService(WatchService);
  api.grpcServer.addService(
    watchServiceDefinition,
    createWatchService({
      hub,
      server,
      electionTimeoutMs: options.electionTimeoutMs,
      perMessageWrites: options.perMessageWrites,
    }),
  );
  const port = await listenClientPort({
    host: "127.0.0.1",
    port: 0,
    grpcServer: api.grpcServer,
    http: api.httpHandler,
  });
  const endpoint = `127.0.0.1:${port.address().port}`;
  server.clientUrls = [`http://${endpoint}`];
  return {
    server,
    hub,
    port,
    endpoint,
    async stop() {
      await hub.close();
      await port.close(200);
      api.grpcServer.forceShutdown();
      await server.store.close();
    },
  };
}

/** Guard so a missing stream message fails the test instead of hanging it (not a timing assertion). */
export const STREAM_WAIT_MS = 10_000;

/** A client Watch stream with a queue of responses, awaited one by one. */
export class WatchSession {
  readonly responses: etcdserverpb.WatchResponse[] = [];
  readonly errors: grpc.ServiceError[] = [];
  private wake: (() => void) | null = null;
  readonly call: grpc.ClientDuplexStream<etcdserverpb.WatchRequestInit, etcdserverpb.WatchResponse>;

  constructor(client: WatchClient, metadata = new grpc.Metadata()) {
    this.call = client.Watch(metadata);
    this.call.on("data", (response: etcdserverpb.WatchResponse) => {
      this.responses.push(response);
      this.wake?.();
    });
    this.call.on("error", (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) this.errors.push(error);
      this.wake?.();
    });
  }

  create(request: etcdserverpb.WatchCreateRequestInit): void {
    this.call.write({ requestUnion: { case: "createRequest", value: request } });
  }

  cancel(watchId: number): void {
    this.call.write({ requestUnion: { case: "cancelRequest", value: { watchId } } });
  }

  progress(): void {
    this.call.write({ requestUnion: { case: "progressRequest", value: {} } });
  }

  /** The next response (waits up to STREAM_WAIT_MS). */
  async next(): Promise<etcdserverpb.WatchResponse> {
    const deadline = Date.now() + STREAM_WAIT_MS;
    while (this.responses.length === 0) {
      if (this.errors.length > 0) throw this.errors[0];
      if (Date.now() > deadline) throw new Error("no watch response");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
      this.wake = null;
    }
    return this.responses.shift() as etcdserverpb.WatchResponse;
  }

  /** Waits until the stream ends with an error (returns it). */
  async failure(): Promise<grpc.ServiceError> {
    const deadline = Date.now() + STREAM_WAIT_MS;
    while (this.errors.length === 0) {
      if (Date.now() > deadline) throw new Error("the stream did not fail");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
      this.wake = null;
    }
    return this.errors[0] as grpc.ServiceError;
  }

  /** Responses that arrive within `ms` (for "no response" rules; the caller first syncs on a later one). */
  async drain(ms: number): Promise<etcdserverpb.WatchResponse[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.responses.splice(0);
  }

  close(): void {
    this.call.on("error", () => {});
    this.call.cancel();
  }
}

export function clients(endpoint: string): { kv: KVClient; watch: WatchClient; close(): void } {
  const creds = grpc.credentials.createInsecure();
  const kv = new KVClient(endpoint, creds);
  const watch = new WatchClient(endpoint, creds);
  return {
    kv,
    watch,
    close() {
      kv.close();
      watch.close();
    },
  };
}

export async function put(kv: KVClient, key: string, value: string): Promise<number> {
  const response = await callUnary(kv, kv.Put, { key: Buffer.from(key), value: Buffer.from(value) });
  return response.header?.revision ?? 0;
}
