import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { before, describe, it } from "node:test";
import { Engine, type EngineOptions } from "../../bench/load/engine.js";
import { TokenBucket } from "../../bench/load/rateLimiter.js";
import { initHistograms, LatencyRecorder } from "../../bench/load/recorder.js";

function options(overrides: Partial<EngineOptions>): EngineOptions {
  const startMs = performance.now();
  return {
    clients: 4,
    limiter: null,
    durationSeconds: null,
    totalRequests: 100,
    queueCapacity: 4,
    recorder: new LatencyRecorder(startMs, 10),
    startMs,
    ...overrides,
  };
}

/** A fake server: tracks what is in flight per client and answers when told to. */
class FakeServer {
  readonly inFlight: Set<number> = new Set();
  inFlightMax = 0;
  issued = 0;
  constructor(private readonly engine: () => Engine) {}

  issue = (client: number): void => {
    assert.ok(!this.inFlight.has(client), `client ${client} issued while its request was in flight`);
    this.inFlight.add(client);
    this.inFlightMax = Math.max(this.inFlightMax, this.inFlight.size);
    this.issued++;
  };

  answer(client: number, error: string | null): void {
    assert.ok(this.inFlight.delete(client));
    this.engine().complete(client, error);
  }

  answerAll(error: (index: number) => string | null = () => null): void {
    for (const client of [...this.inFlight]) this.answer(client, error(this.issued));
  }
}

describe("Engine: clients, queue and stop conditions", () => {
  before(initHistograms);

  it("closed loop: exactly `total` requests, at most one in flight per client, counts add up", async () => {
    const config = options({ clients: 8, totalRequests: 1000 });
    const engine = new Engine(config);
    const server = new FakeServer(() => engine);
    let answered = 0;
    const issue = (client: number): void => {
      server.issue(client);
      // Every third answer is an error; answers come back on a later turn, as from a socket.
      setImmediate(() =>
        server.answer(client, ++answered % 3 === 0 ? "etcdserver: too many requests" : null),
      );
    };
    const result = await engine.run(issue);
    assert.equal(result.sent, 1000);
    assert.equal(server.issued, 1000);
    assert.equal(result.succeeded + result.failed, result.sent);
    assert.equal(result.failed, 333);
    assert.equal(config.recorder.errors.get("etcdserver: too many requests"), 333);
    assert.equal(config.recorder.histogram.totalCount, result.succeeded);
    assert.equal(server.inFlightMax, 8);
    config.recorder.destroy();
  });

  it("rate-limited with a duration: the generator stops at the deadline (1000/s for 0.2 s = 200)", async () => {
    const config = options({
      clients: 8,
      queueCapacity: 8,
      limiter: new TokenBucket(1000, 1),
      durationSeconds: 0.2,
      totalRequests: null,
    });
    const engine = new Engine(config);
    const server = new FakeServer(() => engine);
    const result = await engine.run((client) => {
      server.issue(client);
      setImmediate(() => server.answer(client, null));
    });
    if (result.generatorBlocked) assert.ok(result.sent <= 200);
    else assert.equal(result.sent, 200, "permits follow the ideal schedule, not the timer's lateness");
    assert.equal(result.succeeded, result.sent);
    config.recorder.destroy();
  });

  it("a server that does not answer: clients fill, the queue fills, then the generator blocks holding one", async () => {
    const config = options({
      clients: 2,
      queueCapacity: 2,
      limiter: new TokenBucket(10_000, 1),
      totalRequests: 10,
    });
    const engine = new Engine(config);
    const server = new FakeServer(() => engine);
    const done = engine.run(server.issue);
    // Give the generator many permit intervals; without answers it cannot send more than one per client.
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(engine.progress.sent, 2);
    assert.equal(engine.progress.inFlight, 2);
    // Each answer hands a queued request to the freed client and the held one moves into the queue.
    server.answer(0, null);
    assert.equal(engine.progress.sent, 3);
    assert.ok(server.inFlight.has(0));
    // Answer until the total is reached.
    while (server.issued < 10 || server.inFlight.size > 0) {
      server.answerAll();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const result = await done;
    assert.equal(result.sent, 10);
    assert.equal(result.succeeded, 10);
    assert.equal(result.generatorBlocked, true);
    assert.equal(server.inFlightMax, 2);
    config.recorder.destroy();
  });
});
