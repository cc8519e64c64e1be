import { createHash } from "node:crypto";

/**
 * Member and cluster ids derived the way etcd derives them, so that the ids etcdctl shows follow etcd's
 * rules (spec §4):
 * - a bootstrap member's id is the first 8 bytes (big-endian) of SHA-1 over its peer URLs, sorted and
 *   concatenated with no separator, followed by the cluster token; a member added at runtime appends the
 *   decimal Unix time of the add (in seconds) instead of the token;
 * - the cluster id is the first 8 bytes of SHA-1 over the sorted member ids, each as 8 big-endian bytes.
 */

export function memberIdFor(
  peerUrls: readonly string[],
  clusterToken: string | undefined,
  addedAtUnixSeconds?: number,
): bigint {
  const hash = createHash("sha1");
  hash.update([...peerUrls].sort().join(""));
  if (clusterToken !== undefined) hash.update(clusterToken);
  if (addedAtUnixSeconds !== undefined) hash.update(String(addedAtUnixSeconds));
  return hash.digest().readBigUInt64BE(0);
}

export function clusterIdFor(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  for (const [i, id] of sorted.entries()) bytes.writeBigUInt64BE(id, 8 * i);
  return createHash("sha1").update(bytes).digest().readBigUInt64BE(0);
}

/** etcd prints member ids in hex without padding (e.g. `8e9e05c52164694d`). */
export function formatId(id: bigint): string {
  return id.toString(16);
}
