import { assert } from "../assert.js";

/**
 * Which watcher groups want a key: single-key groups in a hash map, range groups in an augmented AVL
 * tree of half-open intervals [start, end) (end null: no upper bound) ordered by (start, id), each node
 * holding the largest end of its subtree. A stabbing query visits only subtrees whose largest end is
 * above the key and whose starts can be at or below it: O(log n + matches), never a scan of every
 * group (etcd's watcher_group.go does the same with its adt.IntervalTree).
 *
 * Keys are latin1 strings (one char per byte), whose JavaScript order is etcd's byte order.
 */

interface RangeNode {
  start: string;
  end: string | null;
  id: number;
  left: RangeNode | null;
  right: RangeNode | null;
  height: number;
  /** Largest end in this subtree; null = unbounded. */
  maxEnd: string | null;
}

export type GroupVisitor = (id: number) => void;

/** Bound on the number of distinct ranges, so that the tree's depth (and recursion) stays small. */
export const RANGES_MAX = 16_000_000;

function height(node: RangeNode | null): number {
  return node === null ? 0 : node.height;
}

/** The larger of two ends, null (no bound) winning. */
function maxOf(a: string | null, b: string | null): string | null {
  if (a === null || b === null) return null;
  return a > b ? a : b;
}

function update(node: RangeNode): void {
  const left = node.left;
  const right = node.right;
  node.height = 1 + Math.max(height(left), height(right));
  let maxEnd = node.end;
  if (left !== null) maxEnd = maxOf(maxEnd, left.maxEnd);
  if (right !== null) maxEnd = maxOf(maxEnd, right.maxEnd);
  node.maxEnd = maxEnd;
}

function rotateRight(node: RangeNode): RangeNode {
  const pivot = node.left as RangeNode;
  node.left = pivot.right;
  pivot.right = node;
  update(node);
  update(pivot);
  return pivot;
}

function rotateLeft(node: RangeNode): RangeNode {
  const pivot = node.right as RangeNode;
  node.right = pivot.left;
  pivot.left = node;
  update(node);
  update(pivot);
  return pivot;
}

function balance(node: RangeNode): RangeNode {
  update(node);
  const skew = height(node.left) - height(node.right);
  if (skew > 1) {
    const left = node.left as RangeNode;
    if (height(left.left) < height(left.right)) node.left = rotateLeft(left);
    return rotateRight(node);
  }
  if (skew < -1) {
    const right = node.right as RangeNode;
    if (height(right.right) < height(right.left)) node.right = rotateRight(right);
    return rotateLeft(node);
  }
  return node;
}

/** Order of nodes: by start, then by id (ids are unique, so no two nodes compare equal). */
function compare(start: string, id: number, node: RangeNode): number {
  if (start < node.start) return -1;
  if (start > node.start) return 1;
  return id - node.id;
}

function insert(node: RangeNode | null, fresh: RangeNode): RangeNode {
  if (node === null) return fresh;
  const c = compare(fresh.start, fresh.id, node);
  assert(c !== 0, "a range id is inserted once");
  if (c < 0) node.left = insert(node.left, fresh);
  else node.right = insert(node.right, fresh);
  return balance(node);
}

function removeMin(node: RangeNode): { root: RangeNode | null; min: RangeNode } {
  if (node.left === null) return { root: node.right, min: node };
  const { root, min } = removeMin(node.left);
  node.left = root;
  return { root: balance(node), min };
}

export class IntervalIndex {
  private root: RangeNode | null = null;
  private readonly singles = new Map<string, number[]>();
  private rangeCount = 0;
  private singleCount = 0;

  get size(): number {
    return this.rangeCount + this.singleCount;
  }

  /** Adds group `id` for the single key `key`. */
  addKey(id: number, key: string): void {
    const ids = this.singles.get(key);
    if (ids === undefined) this.singles.set(key, [id]);
    else {
      assert(!ids.includes(id), "a key group is added once");
      ids.push(id);
    }
    this.singleCount++;
  }

  removeKey(id: number, key: string): void {
    const ids = this.singles.get(key);
    assert(ids !== undefined, "a removed key group was added");
    const at = ids.indexOf(id);
    assert(at >= 0, "a removed key group was added");
    ids[at] = ids[ids.length - 1] as number;
    ids.pop();
    if (ids.length === 0) this.singles.delete(key);
    this.singleCount--;
  }

  /** Adds group `id` for [start, end); end null: every key >= start. An empty range is never added. */
  addRange(id: number, start: string, end: string | null): void {
    assert(end === null || start < end, "a range group is not empty");
    assert(this.rangeCount < RANGES_MAX, "ranges stay below RANGES_MAX");
    const fresh: RangeNode = { start, end, id, left: null, right: null, height: 1, maxEnd: end };
    this.root = insert(this.root, fresh);
    this.rangeCount++;
  }

  removeRange(id: number, start: string): void {
    const before = this.rangeCount;
    this.root = this.remove(this.root, start, id);
    assert(this.rangeCount === before - 1, "a removed range group was added");
  }

  private remove(node: RangeNode | null, start: string, id: number): RangeNode | null {
    if (node === null) return null;
    const c = compare(start, id, node);
    if (c < 0) node.left = this.remove(node.left, start, id);
    else if (c > 0) node.right = this.remove(node.right, start, id);
    else {
      this.rangeCount--;
      if (node.left === null) return node.right;
      if (node.right === null) return node.left;
      const { root, min } = removeMin(node.right);
      min.left = node.left;
      min.right = root;
      return balance(min);
    }
    return balance(node);
  }

  /** Visits every group whose key or range holds `key` (each once, in no particular order). */
  stab(key: string, visit: GroupVisitor): void {
    const ids = this.singles.get(key);
    if (ids !== undefined) for (let i = 0; i < ids.length; i++) visit(ids[i] as number);
    if (this.root !== null) stabNode(this.root, key, visit);
  }

  /** True when any group holds `key`. */
  contains(key: string): boolean {
    if (this.singles.has(key)) return true;
    const node = this.root;
    return node !== null && anyNode(node, key);
  }
}

function stabNode(node: RangeNode, key: string, visit: GroupVisitor): void {
  // Nothing in this subtree ends above the key: no interval here can hold it.
  if (node.maxEnd !== null && node.maxEnd <= key) return;
  if (node.left !== null) stabNode(node.left, key, visit);
  if (node.start > key) return; // this node and everything to its right start after the key
  if (node.end === null || key < node.end) visit(node.id);
  if (node.right !== null) stabNode(node.right, key, visit);
}

function anyNode(node: RangeNode, key: string): boolean {
  if (node.maxEnd !== null && node.maxEnd <= key) return false;
  if (node.left !== null && anyNode(node.left, key)) return true;
  if (node.start > key) return false;
  if (node.end === null || key < node.end) return true;
  return node.right !== null && anyNode(node.right, key);
}
