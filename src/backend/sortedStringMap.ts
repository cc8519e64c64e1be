import { assert } from "../assert.js";

/**
 * An ordered map keyed by byte strings: each key is a "latin1" string whose char codes are the key's bytes
 * (0..255), so JavaScript's string order is exactly etcd's byte order (memcmp, a shorter prefix first).
 * Latin1 strings are the most compact way V8 holds short byte keys (one byte per char, one header), and the
 * engine compares them natively.
 *
 * Layout: a sorted array of leaves, each a sorted array of at most LEAF_MAX_ENTRIES keys. A lookup is a
 * binary search over the leaves' first keys, then one inside the leaf; an insert moves at most one leaf's
 * entries (a split moves the leaf array, about n / 256 pointers). This is a two-level B-tree: simpler than a
 * full one and fast enough for millions of keys, which is what the key index and the write buffer hold.
 */

/** A leaf splits in two when it would exceed this many entries. */
const LEAF_MAX_ENTRIES = 512;
/** A leaf that shrinks below this many entries is merged into a neighbour when the two fit in one leaf. */
const LEAF_MERGE_BELOW_ENTRIES = 128;

class Leaf<V> {
  constructor(
    public keys: string[] = [],
    public values: V[] = [],
  ) {}
}

/** Index of the first element of `keys` that is >= `key` (keys.length when none). */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type SortedVisitor<V> = (key: string, value: V) => boolean | undefined;

export class SortedStringMap<V> {
  /** Never empty: an empty map has one empty leaf. Every other leaf holds at least one entry. */
  private leaves: Leaf<V>[] = [new Leaf<V>()];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The index of the leaf that holds `key` or would receive it. */
  private leafFor(key: string): number {
    const leaves = this.leaves;
    let lo = 0;
    let hi = leaves.length - 1;
    // Find the last leaf whose first key is <= key; leaf 0 takes keys below every first key.
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((leaves[mid] as Leaf<V>).keys[0]! <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  get(key: string): V | undefined {
    const leaf = this.leaves[this.leafFor(key)] as Leaf<V>;
    const i = lowerBound(leaf.keys, key);
    return i < leaf.keys.length && leaf.keys[i] === key ? leaf.values[i] : undefined;
  }

  has(key: string): boolean {
    const leaf = this.leaves[this.leafFor(key)] as Leaf<V>;
    const i = lowerBound(leaf.keys, key);
    return i < leaf.keys.length && leaf.keys[i] === key;
  }

  /** Inserts or replaces; returns true when the key was new. */
  set(key: string, value: V): boolean {
    const li = this.leafFor(key);
    const leaf = this.leaves[li] as Leaf<V>;
    const i = lowerBound(leaf.keys, key);
    if (i < leaf.keys.length && leaf.keys[i] === key) {
      leaf.values[i] = value;
      return false;
    }
    if (i === leaf.keys.length) {
      leaf.keys.push(key);
      leaf.values.push(value);
    } else {
      leaf.keys.splice(i, 0, key);
      leaf.values.splice(i, 0, value);
    }
    this.count++;
    if (leaf.keys.length > LEAF_MAX_ENTRIES) this.split(li);
    return true;
  }

  private split(li: number): void {
    const leaf = this.leaves[li] as Leaf<V>;
    const half = leaf.keys.length >>> 1;
    const right = new Leaf<V>(leaf.keys.splice(half), leaf.values.splice(half));
    this.leaves.splice(li + 1, 0, right);
  }

  /** Removes `key`; returns its value, or undefined when absent. */
  delete(key: string): V | undefined {
    const li = this.leafFor(key);
    const leaf = this.leaves[li] as Leaf<V>;
    const i = lowerBound(leaf.keys, key);
    if (i >= leaf.keys.length || leaf.keys[i] !== key) return undefined;
    const value = leaf.values[i] as V;
    leaf.keys.splice(i, 1);
    leaf.values.splice(i, 1);
    this.count--;
    if (leaf.keys.length < LEAF_MERGE_BELOW_ENTRIES) this.shrink(li);
    return value;
  }

  /** Drops an empty leaf or merges a small one into a neighbour, keeping "no empty leaf but a lone one". */
  private shrink(li: number): void {
    const leaves = this.leaves;
    const leaf = leaves[li] as Leaf<V>;
    if (leaf.keys.length === 0) {
      if (leaves.length > 1) leaves.splice(li, 1);
      return;
    }
    const next = leaves[li + 1];
    if (next !== undefined && leaf.keys.length + next.keys.length <= LEAF_MAX_ENTRIES) {
      leaf.keys.push(...next.keys);
      leaf.values.push(...next.values);
      leaves.splice(li + 1, 1);
      return;
    }
    const prev = leaves[li - 1];
    if (prev !== undefined && leaf.keys.length + prev.keys.length <= LEAF_MAX_ENTRIES) {
      prev.keys.push(...leaf.keys);
      prev.values.push(...leaf.values);
      leaves.splice(li, 1);
    }
  }

  /**
   * Visits entries with start <= key < end in ascending order (`end` null = no upper bound) until `visit`
   * returns false. `visit` must not change the map.
   */
  forEachInRange(start: string, end: string | null, visit: SortedVisitor<V>): void {
    if (end !== null && end <= start) return;
    const leaves = this.leaves;
    let li = this.leafFor(start);
    let i = lowerBound((leaves[li] as Leaf<V>).keys, start);
    for (; li < leaves.length; li++, i = 0) {
      const leaf = leaves[li] as Leaf<V>;
      const keys = leaf.keys;
      for (; i < keys.length; i++) {
        const key = keys[i] as string;
        if (end !== null && key >= end) return;
        if (visit(key, leaf.values[i] as V) === false) return;
      }
    }
  }

  /** Visits every entry in ascending order until `visit` returns false. */
  visitAll(visit: SortedVisitor<V>): void {
    this.forEachInRange("", null, visit);
  }

  /** The smallest key, or undefined when empty. */
  firstKey(): string | undefined {
    return (this.leaves[0] as Leaf<V>).keys[0];
  }

  clear(): void {
    this.leaves = [new Leaf<V>()];
    this.count = 0;
  }

  /** Checks the layout invariants (tests call this after random operations). */
  checkInvariants(): void {
    let total = 0;
    let last: string | undefined;
    for (const leaf of this.leaves) {
      assert(leaf.keys.length === leaf.values.length, "a leaf holds one value per key");
      assert(leaf.keys.length <= LEAF_MAX_ENTRIES, "a leaf is not over-full");
      assert(leaf.keys.length > 0 || this.leaves.length === 1, "only a lone leaf may be empty");
      for (const key of leaf.keys) {
        assert(last === undefined || last < key, "keys ascend strictly across leaves");
        last = key;
      }
      total += leaf.keys.length;
    }
    assert(total === this.count, "size matches the entries");
  }
}
