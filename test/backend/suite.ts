/**
 * The Backend contract (src/backend/backend.ts), as tests any implementation must pass: the lmdb backend
 * here, the pure-TypeScript one (native-free/) later. `open` gives a fresh backend; `reopen`, when the
 * backend persists, closes it and opens the same storage again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Backend, TableName } from "../../src/backend/backend.js";
import { hashBackend } from "../../src/backend/hash.js";

export interface BackendFactory {
  name: string;
  open(): Promise<Backend>;
  /** Closes `backend` and opens its storage again (undefined: the backend does not persist). */
  reopen?: (backend: Backend) => Promise<Backend>;
  /** Releases what `open` created (temp dirs), after the backend was closed. */
  cleanup?: () => Promise<void>;
}

const b = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const str = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1");

function scan(
  backend: Backend,
  table: TableName,
  start = "\0",
  end: string | null = null,
  limit = 0,
): string[] {
  const out: string[] = [];
  backend.range(
    table,
    b(start),
    end === null ? null : b(end),
    (key, value) => {
      out.push(`${str(key)}=${str(value)}`);
      return true;
    },
    limit,
  );
  return out;
}

export function backendSuite(factory: BackendFactory): void {
  describe(`Backend contract: ${factory.name}`, () => {
    const withBackend = async (fn: (backend: Backend) => Promise<Backend | undefined>) => {
      const backend = await factory.open();
      let current: Backend = backend;
      try {
        current = (await fn(backend)) ?? backend;
      } finally {
        await current.close();
        await factory.cleanup?.();
      }
    };

    it("reads its own writes at once, before any commit", async () => {
      await withBackend(async (backend) => {
        backend.put("key", b("a"), b("1"));
        assert.equal(str(backend.get("key", b("a"))), "1");
        backend.put("key", b("a"), b("2"));
        backend.delete("key", b("b"));
        assert.equal(str(backend.get("key", b("a"))), "2");
        assert.equal(backend.get("key", b("b")), undefined);
        backend.seal(1, 1);
        return undefined;
      });
    });

    it("keeps tables apart", async () => {
      await withBackend(async (backend) => {
        backend.put("lease", b("x"), b("lease"));
        backend.put("auth", b("x"), b("auth"));
        backend.seal(1, 1);
        assert.equal(str(backend.get("lease", b("x"))), "lease");
        assert.equal(str(backend.get("auth", b("x"))), "auth");
        assert.equal(backend.get("members", b("x")), undefined);
        return undefined;
      });
    });

    it("scans ranges in byte order with bounds, limit and early stop, merging committed and new writes", async () => {
      await withBackend(async (backend) => {
        for (const k of ["b", "a", "c\xff", "ab", "d"]) backend.put("key", b(k), b(k));
        backend.seal(1, 1);
        await backend.forceCommit();
        backend.put("key", b("aa"), b("new"));
        backend.put("key", b("b"), b("B"));
        backend.delete("key", b("c\xff"));
        backend.seal(2, 1);
        assert.deepEqual(scan(backend, "key"), ["a=a", "aa=new", "ab=ab", "b=B", "d=d"]);
        assert.deepEqual(scan(backend, "key", "aa", "b"), ["aa=new", "ab=ab"]);
        assert.deepEqual(scan(backend, "key", "a", null, 2), ["a=a", "aa=new"]);
        assert.deepEqual(scan(backend, "key", "c", "a"), []);
        let visited = 0;
        backend.range("key", b("a"), null, () => ++visited < 3);
        assert.equal(visited, 3);
        await backend.forceCommit();
        assert.deepEqual(scan(backend, "key"), ["a=a", "aa=new", "ab=ab", "b=B", "d=d"]);
        return undefined;
      });
    });

    it("tracks the consistent index of the last seal and makes it durable on forceCommit", async () => {
      await withBackend(async (backend) => {
        assert.equal(backend.consistentIndex, 0);
        backend.put("key", b("a"), b("1"));
        backend.seal(5, 2);
        backend.seal(5, 2);
        backend.seal(7, 3);
        assert.deepEqual([backend.consistentIndex, backend.term], [7, 3]);
        await backend.forceCommit();
        assert.equal(backend.durableIndex(), 7);
        assert.throws(() => backend.seal(6, 3), /never goes back/);
        return undefined;
      });
    });

    if (factory.reopen !== undefined) {
      const reopen = factory.reopen;
      it("reopens with every sealed write and the consistent index and term", async () => {
        await withBackend(async (backend) => {
          backend.put("key", b("a"), b("1"));
          backend.put("meta", b("x"), b("y"));
          backend.seal(3, 2);
          backend.delete("key", b("a"));
          backend.put("key", b("b"), b("2"));
          backend.seal(4, 2);
          const again = await reopen(backend);
          assert.deepEqual([again.consistentIndex, again.term], [4, 2]);
          assert.deepEqual(scan(again, "key"), ["b=2"]);
          assert.equal(str(again.get("meta", b("x"))), "y");
          return again;
        });
      });

      it("defragments without losing data or the consistent index", async () => {
        await withBackend(async (backend) => {
          const big = new Uint8Array(4096).fill(7);
          for (let i = 0; i < 2000; i++) backend.put("key", b(`k${String(i).padStart(5, "0")}`), big);
          backend.seal(1, 1);
          for (let i = 0; i < 2000; i += 2) backend.delete("key", b(`k${String(i).padStart(5, "0")}`));
          backend.seal(2, 1);
          await backend.forceCommit();
          const sizeBefore = backend.sizeBytes();
          await backend.defragment();
          assert.ok(backend.sizeBytes() < sizeBefore, `${backend.sizeBytes()} < ${sizeBefore}`);
          assert.equal(scan(backend, "key").length, 1000);
          // Writes that free and reuse pages in the rewritten file (a compacting lmdb copy crashed here).
          for (let i = 1; i < 2000; i += 2) backend.delete("key", b(`k${String(i).padStart(5, "0")}`));
          backend.seal(3, 1);
          for (let i = 0; i < 500; i++) backend.put("key", b(`after${i}`), big);
          backend.seal(4, 1);
          await backend.forceCommit();
          const again = await reopen(backend);
          assert.equal(again.consistentIndex, 4);
          assert.equal(scan(again, "key").length, 500);
          return again;
        });
      });
    }

    it("hashes contents, not the consistent index or term", async () => {
      await withBackend(async (backend) => {
        backend.put("key", b("a"), b("1"));
        backend.put("lease", b("\0"), b("2"));
        backend.seal(1, 1);
        const before = hashBackend(backend);
        backend.seal(9, 4);
        await backend.forceCommit();
        assert.equal(hashBackend(backend), before);
        backend.put("alarm", b("x"), b(""));
        backend.seal(10, 4);
        assert.notEqual(hashBackend(backend), before);
        return undefined;
      });
    });

    it("reports a size and a size in use no larger than it", async () => {
      await withBackend(async (backend) => {
        for (let i = 0; i < 100; i++) backend.put("key", b(`k${i}`), new Uint8Array(1000));
        backend.seal(1, 1);
        await backend.forceCommit();
        assert.ok(backend.sizeBytes() > 100_000);
        assert.ok(backend.sizeInUseBytes() > 0 && backend.sizeInUseBytes() <= backend.sizeBytes());
        return undefined;
      });
    });

    it("streams a snapshot whose chunks add up to its size", async () => {
      await withBackend(async (backend) => {
        backend.put("key", b("a"), new Uint8Array(100_000).fill(1));
        backend.seal(1, 1);
        const snapshot = await backend.snapshot();
        let total = 0;
        for await (const chunk of snapshot.chunks(32 * 1024)) {
          assert.ok(chunk.length <= 32 * 1024);
          total += chunk.length;
        }
        assert.equal(total, snapshot.sizeBytes);
        assert.ok(total >= 100_000);
        await snapshot.close();
        return undefined;
      });
    });

    it("matches a plain map under random writes, seals, commits and scans", async () => {
      // One backend for every run (opening one can cost a thread start): each run writes under its own prefix.
      await withBackend(async (backend) => {
        let run = 0;
        let index = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.oneof(
                fc.record({
                  op: fc.constant("put" as const),
                  key: fc.string({ maxLength: 3 }),
                  value: fc.string(),
                }),
                fc.record({ op: fc.constant("delete" as const), key: fc.string({ maxLength: 3 }) }),
                fc.record({ op: fc.constant("seal" as const) }),
                fc.record({ op: fc.constant("commit" as const) }),
              ),
              { maxLength: 60 },
            ),
            async (ops) => {
              const prefix = `r${String(++run).padStart(4, "0")}/`;
              const model = new Map<string, string>();
              for (const op of ops) {
                if (op.op === "put") {
                  backend.put("key", b(prefix + op.key), b(op.value));
                  model.set(prefix + op.key, op.value);
                } else if (op.op === "delete") {
                  backend.delete("key", b(prefix + op.key));
                  model.delete(prefix + op.key);
                } else if (op.op === "seal") {
                  backend.seal(++index, 1);
                } else {
                  backend.seal(++index, 1);
                  await backend.forceCommit();
                }
                const expected = [...model.entries()]
                  .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
                  .map(([k, v]) => `${k}=${v}`);
                assert.deepEqual(scan(backend, "key", prefix, `${prefix}\xff`), expected);
              }
              backend.seal(++index, 1);
            },
          ),
          { numRuns: 60 },
        );
        return undefined;
      });
    });
  });
}
