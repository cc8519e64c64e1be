import { assert } from "../assert.js";

/**
 * A binary min-heap whose items remember their own position, so that an item can be moved (a renewed
 * lease) or removed (a revoked one) in O(log n) without searching: etcd's LeaseQueue with the `index`
 * field, minus the side map, since our items are the lease records themselves.
 *
 * The position lives in the item (one field per heap it can be in); -1 means "not in this heap". The
 * heap holds at most one entry per item, so its size is bounded by the number of leases.
 */
export interface HeapAccess<T> {
  /** Strict order: true when a must come out before b. Must be a total order for determinism. */
  less(a: T, b: T): boolean;
  position(item: T): number;
  setPosition(item: T, position: number): void;
}

export class IndexedHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly access: HeapAccess<T>) {}

  get size(): number {
    return this.items.length;
  }

  has(item: T): boolean {
    return this.access.position(item) >= 0;
  }

  /** The first item, or undefined when empty. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Inserts `item`, or moves it after its key changed. */
  upsert(item: T): void {
    const position = this.access.position(item);
    if (position < 0) {
      this.items.push(item);
      this.access.setPosition(item, this.items.length - 1);
      this.up(this.items.length - 1);
      return;
    }
    assert(this.items[position] === item, "a heap item's position points at it");
    if (!this.up(position)) this.down(position);
  }

  /** Removes `item` when present. */
  remove(item: T): void {
    const position = this.access.position(item);
    if (position < 0) return;
    assert(this.items[position] === item, "a heap item's position points at it");
    const last = this.items.pop() as T;
    this.access.setPosition(item, -1);
    if (last === item) return;
    this.items[position] = last;
    this.access.setPosition(last, position);
    if (!this.up(position)) this.down(position);
  }

  /** Removes and returns the first item. */
  pop(): T | undefined {
    const first = this.items[0];
    if (first !== undefined) this.remove(first);
    return first;
  }

  /** Empties the heap. */
  clear(): void {
    for (const item of this.items) this.access.setPosition(item, -1);
    this.items.length = 0;
  }

  /** Replaces the contents with `items` in O(n) (after keys of many items changed at once). */
  rebuild(items: Iterable<T>): void {
    this.clear();
    for (const item of items) {
      assert(this.access.position(item) < 0, "an item is in the heap once");
      this.access.setPosition(item, this.items.length);
      this.items.push(item);
    }
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  /** Moves the item at `position` towards the root; true when it moved. */
  private up(position: number): boolean {
    const items = this.items;
    const item = items[position] as T;
    const start = position;
    while (position > 0) {
      const parentPosition = (position - 1) >> 1;
      const parent = items[parentPosition] as T;
      if (!this.access.less(item, parent)) break;
      items[position] = parent;
      this.access.setPosition(parent, position);
      position = parentPosition;
    }
    items[position] = item;
    this.access.setPosition(item, position);
    return position !== start;
  }

  private down(position: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[position] as T;
    for (;;) {
      const left = 2 * position + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.access.less(items[right] as T, items[left] as T)) child = right;
      const childItem = items[child] as T;
      if (!this.access.less(childItem, item)) break;
      items[position] = childItem;
      this.access.setPosition(childItem, position);
      position = child;
    }
    items[position] = item;
    this.access.setPosition(item, position);
  }

  /** For tests: checks the heap property and every stored position. */
  checkInvariants(): void {
    this.items.forEach((item, i) => {
      assert(this.access.position(item) === i, `item at ${i} knows its position`);
      if (i > 0) assert(!this.access.less(item, this.items[(i - 1) >> 1] as T), `heap order at ${i}`);
    });
  }
}
