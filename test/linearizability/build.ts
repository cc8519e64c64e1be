import type { CasExpect, HistoryOp } from "./history.js";

/**
 * Hand-built histories for tests: times in milliseconds (stored as ns), ids in call order. `at` is
 * [invokeMs, completeMs]; a pending op gives only its invoke time.
 */
export class HistoryBuilder {
  private readonly built: HistoryOp[] = [];

  put(client: number, key: string, value: string, at: [number, number], revision: number): this {
    return this.add(client, { kind: "put", key, value }, at, { kind: "put", revision });
  }

  get(
    client: number,
    key: string,
    at: [number, number],
    value: string | null,
    modRevision: number,
    revision: number,
  ): this {
    return this.add(client, { kind: "get", key }, at, { kind: "get", value, modRevision, revision });
  }

  cas(
    client: number,
    key: string,
    expect: CasExpect,
    value: string,
    at: [number, number],
    succeeded: boolean,
    revision: number,
  ): this {
    return this.add(client, { kind: "cas", key, expect, value }, at, { kind: "cas", succeeded, revision });
  }

  pendingPut(client: number, key: string, value: string, invokeMs: number): this {
    return this.addPending(client, { kind: "put", key, value }, invokeMs);
  }

  pendingCas(client: number, key: string, expect: CasExpect, value: string, invokeMs: number): this {
    return this.addPending(client, { kind: "cas", key, expect, value }, invokeMs);
  }

  ops(): HistoryOp[] {
    return [...this.built];
  }

  private add(
    client: number,
    input: HistoryOp["input"],
    at: [number, number],
    output: HistoryOp["output"],
  ): this {
    this.built.push({
      id: this.built.length + 1,
      client,
      input,
      invokeNs: msToNs(at[0]),
      completeNs: msToNs(at[1]),
      output,
    });
    return this;
  }

  private addPending(client: number, input: HistoryOp["input"], invokeMs: number): this {
    this.built.push({
      id: this.built.length + 1,
      client,
      input,
      invokeNs: msToNs(invokeMs),
      completeNs: null,
      output: null,
      error: "deadline exceeded",
    });
    return this;
  }
}

function msToNs(ms: number): number {
  return Math.round(ms * 1e6);
}
