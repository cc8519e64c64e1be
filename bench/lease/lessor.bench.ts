/**
 * Lessor benchmark: what each lessor call costs the main thread with many leases, so the lead can see
 * that no call stalls the apply loop or the keepalive path.
 *
 *   node --import tsx bench/lease/lessor.bench.ts            100,000 leases (a few seconds)
 *   node --import tsx bench/lease/lessor.bench.ts --quick    10,000 leases
 *
 * Measured on the memory backend with a manual clock: grant (apply side, lease row encoded and written),
 * renew (a keepalive on the leader), promote (a new leader: every deadline reset, then spread), the
 * expiry round (500 leases handed out per call), revoke of a lease holding 1,000 keys through a real
 * MvccStore (one revision), and open (rebuilding every lease from the table at start). There is no
 * reference etcd figure at this layer. Figures are per call on one core; the load average is printed
 * because they mean little on a busy machine.
 */
import { loadavg } from "node:os";
import { MemoryBackend } from "../../src/backend/memory.js";
import { ManualClock } from "../../src/lease/clock.js";
import { Lessor } from "../../src/lease/lessor.js";
import { MvccStore } from "../../src/mvcc/store.js";

const quick = process.argv.includes("--quick");
const LEASES = quick ? 10_000 : 100_000;
const RENEWS = quick ? 100_000 : 1_000_000;
const KEYS_PER_REVOKED_LEASE = 1000;

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

function timeMs(run: () => void): number {
  const startMs = performance.now();
  run();
  return performance.now() - startMs;
}

function report(name: string, totalMs: number, calls: number): void {
  const perCallUs = (totalMs * 1000) / calls;
  console.log(
    `${name.padEnd(44)} ${fmt(totalMs).padStart(9)} ms total  ${fmt(perCallUs, 2).padStart(9)} µs/call  ${fmt(
      calls / (totalMs / 1000),
      0,
    ).padStart(12)} calls/s`,
  );
}

const backend = new MemoryBackend();
const clock = new ManualClock(0);
const lessor = Lessor.open({ backend, clock, minTtlSeconds: 2 });
const store = MvccStore.open({ backend, leases: lessor });
lessor.setRangeDeleter(() => store.beginWrite());
let index = 1;

console.log(`lessor bench: ${fmt(LEASES)} leases, load average ${loadavg().map((l) => l.toFixed(2))}`);

const grantMs = timeMs(() => {
  for (let i = 1; i <= LEASES; i++) {
    lessor.grant(BigInt(i), 10 + (i % 50));
    backend.seal(index++, 1);
  }
});
report("grant (follower, sealed unit each)", grantMs, LEASES);

const promoteMs = timeMs(() => lessor.promote(1000));
report(`promote (${fmt(LEASES)} leases, spread)`, promoteMs, 1);

const renewMs = timeMs(() => {
  for (let i = 0; i < RENEWS; i++) lessor.renew(BigInt((i % LEASES) + 1));
});
report("renew (keepalive on the leader)", renewMs, RENEWS);

const timeToLiveMs = timeMs(() => {
  for (let i = 0; i < RENEWS; i++) lessor.timeToLive(BigInt((i % LEASES) + 1), false);
});
report("timeToLive (no keys)", timeToLiveMs, RENEWS);

const leasesMs = timeMs(() => lessor.leases());
report(`leases() listing (${fmt(LEASES)} sorted)`, leasesMs, 1);

clock.advance(3_600_000);
let handedOut = 0;
let rounds = 0;
const roundMs = timeMs(() => {
  for (;;) {
    const ids = lessor.expired();
    if (ids.length === 0) break;
    handedOut += ids.length;
    rounds++;
  }
});
report(`expiry rounds (${fmt(handedOut)} leases, 500 per round)`, roundMs, rounds);

// Revoke: one lease holding many keys, through the store, one revision.
lessor.grant(-1n, 60);
backend.seal(index++, 1);
for (let k = 0; k < KEYS_PER_REVOKED_LEASE; k++) {
  const key = new Uint8Array(Buffer.from(`/registry/pods/${String(k).padStart(6, "0")}`, "latin1"));
  store.apply(index++, 1, { type: "put", request: { key, value: new Uint8Array(64), lease: -1n } });
}
const revokeMs = timeMs(() => {
  lessor.revoke(-1n);
  backend.seal(index++, 1);
});
report(`revoke (${fmt(KEYS_PER_REVOKED_LEASE)} keys, one revision)`, revokeMs, 1);

const revokeEmptyMs = timeMs(() => {
  for (let i = 1; i <= LEASES; i++) {
    lessor.revoke(BigInt(i));
    backend.seal(index++, 1);
  }
});
report("revoke (no keys, sealed unit each)", revokeEmptyMs, LEASES);

for (let i = 1; i <= LEASES; i++) lessor.grant(BigInt(i), 10);
backend.seal(index++, 1);
const openMs = timeMs(() => Lessor.open({ backend, clock, minTtlSeconds: 2 }));
report(`open (rebuild ${fmt(LEASES)} leases from the table)`, openMs, 1);
