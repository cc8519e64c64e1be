import { crc32cUpdate } from "../wal/crc32c.js";
import { type Backend, MetaKeys, TABLES } from "./backend.js";
import { bytesEqual } from "./bytes.js";

const IGNORED_META_KEYS = [MetaKeys.consistentIndex, MetaKeys.term].map((name) =>
  Buffer.from(name, "latin1"),
);

/**
 * The Maintenance.Hash value: CRC-32C over every table in TABLES order, each contributing its name, then
 * each key and value in key order, skipping the meta keys that differ between members for the same data
 * (the consistent index and term, as etcd skips its consistent_index). Our format, so it only compares
 * with other etcd-ts members (spec §11.4).
 */
export function hashBackend(backend: Backend): number {
  let crc = 0;
  const empty = new Uint8Array(0);
  for (const table of TABLES) {
    const name = Buffer.from(table, "latin1");
    crc = crc32cUpdate(crc, name);
    backend.range(table, empty, null, (key, value) => {
      if (table === "meta" && IGNORED_META_KEYS.some((ignored) => bytesEqual(ignored, key))) return true;
      crc = crc32cUpdate(crc, key);
      crc = crc32cUpdate(crc, value);
      return true;
    });
  }
  return crc;
}
