/**
 * Raw gRPC access to the Lock/Election services for the coordination tests, and the normaliser that
 * makes two servers' answers comparable (lease ids differ; everything else must not).
 */
import * as grpc from "@grpc/grpc-js";
import {
  callUnary,
  ElectionClient,
  KVClient,
  LeaseClient,
  LockClient,
  type v3electionpb,
} from "../../src/proto/index.js";

/** Bound on polling for a condition another process brings about (a guard, not a timed assertion). */
export const CONDITION_WAIT_MS = 15_000;
const POLL_INTERVAL_MS = 20;

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + CONDITION_WAIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

export interface Clients {
  kv: KVClient;
  lease: LeaseClient;
  lock: LockClient;
  election: ElectionClient;
  close(): void;
}

export function connect(endpoint: string): Clients {
  const creds = grpc.credentials.createInsecure();
  const kv = new KVClient(endpoint, creds);
  const lease = new LeaseClient(endpoint, creds);
  const lock = new LockClient(endpoint, creds);
  const election = new ElectionClient(endpoint, creds);
  return {
    kv,
    lease,
    lock,
    election,
    close() {
      for (const c of [kv, lease, lock, election]) c.close();
    },
  };
}

export const b = (s: string): Buffer => Buffer.from(s);
export const str = (u: Uint8Array | undefined): string =>
  u === undefined ? "" : Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("latin1");

export interface CallError {
  code: number;
  details: string;
}

/** Settles a call into its response or {code, details}. */
export async function settle<T>(pending: Promise<T>): Promise<T | { error: CallError }> {
  try {
    return await pending;
  } catch (error) {
    const e = error as grpc.ServiceError;
    return { error: { code: e.code, details: e.details } };
  }
}

export function unary<Req, Res>(
  client: grpc.Client,
  method: Parameters<typeof callUnary<Req, Res>>[1],
  request: Req,
  options: Partial<grpc.CallOptions> = {},
): Promise<Res> {
  return callUnary(client, method, request, new grpc.Metadata(), options);
}

/** A running Observe stream: the responses so far, and how it ended (null while open). */
export interface Observation {
  responses: v3electionpb.LeaderResponse[];
  ended: CallError | "ok" | null;
  cancel(): void;
}

export function startObserve(election: ElectionClient, name: string): Observation {
  const stream = election.Observe({ name: b(name) });
  const observation: Observation = {
    responses: [],
    ended: null,
    cancel: () => stream.cancel(),
  };
  stream.on("data", (response: v3electionpb.LeaderResponse) => observation.responses.push(response));
  stream.on("error", (error: grpc.ServiceError) => {
    observation.ended ??= { code: error.code, details: error.details };
  });
  stream.on("end", () => {
    observation.ended ??= "ok";
  });
  return observation;
}

/**
 * Replaces every lease id (as a bigint and as the hex in keys) by its order of first appearance, drops
 * the header's member/cluster ids (they differ by design), keeps revisions and raft terms.
 */
export class Normaliser {
  private readonly leases = new Map<string, string>();

  lease(id: bigint): string {
    const hex = id.toString(16);
    let name = this.leases.get(hex);
    if (name === undefined) {
      name = `L${this.leases.size + 1}`;
      this.leases.set(hex, name);
    }
    return name;
  }

  /** Registers the lease named by a session key's last segment (`name/<hex>`). */
  keyLease(key: string): void {
    const hex = key.slice(key.lastIndexOf("/") + 1);
    if (/^-?[0-9a-f]+$/.test(hex))
      this.lease(BigInt(`${hex.startsWith("-") ? "-0x" : "0x"}${hex.replace("-", "")}`));
  }

  text(value: string): string {
    const slash = value.lastIndexOf("/");
    if (slash < 0) return value;
    const name = this.leases.get(value.slice(slash + 1));
    return name === undefined ? value : `${value.slice(0, slash + 1)}<${name}>`;
  }

  value(value: unknown, field = ""): unknown {
    if (typeof value === "bigint")
      return field === "lease" || field === "ID" ? this.lease(value) : value.toString();
    if (value instanceof Uint8Array) {
      if (field === "key") this.keyLease(str(value));
      return this.text(str(value));
    }
    if (Array.isArray(value)) return value.map((v) => this.value(v, field));
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === "clusterId" || k === "memberId") continue;
        out[k] = this.value(v, k);
      }
      return out;
    }
    return value;
  }
}
