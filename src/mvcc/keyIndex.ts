import { assert } from "../assert.js";

/**
 * The history of one key, as revisions grouped into generations (etcd's mvcc/key_index.go).
 *
 * A generation is the life of the key from a put that creates it to the delete that ends it; the delete's
 * revision (a tombstone) is the generation's last revision, and a new, empty generation follows it. The last
 * generation is the live one (empty when the key is deleted). Example: put a@2, put a@4, delete a@6,
 * put a@8 gives
 *
 *   generations: [ {created 2, ver 3, revs [2, 4, 6(tombstone)]}, {created 8, ver 1, revs [8]} ]
 *
 * Compacting at revision R keeps, per key, the newest revision <= R (unless it is a tombstone) and every
 * revision after R; whole generations that ended at or before R disappear. Compact(5) of the example keeps
 * [ {4, 6}, {8} ]; Compact(6) keeps [ {8} ]; a key whose only generation ended at or before R vanishes.
 *
 * Revisions are (main, sub) pairs held flat in `revs` (main0, sub0, main1, sub1, ...), ascending.
 */
export class Generation {
  constructor(
    /** Revisions ever added to this generation, compacted ones included (the next put's version is ver + 1). */
    public ver: number,
    /** Main revision of the put that created the generation. */
    public createdMain: number,
    public revs: number[],
  ) {}

  get length(): number {
    return this.revs.length >>> 1;
  }

  isEmpty(): boolean {
    return this.revs.length === 0;
  }

  main(i: number): number {
    return this.revs[2 * i] as number;
  }

  sub(i: number): number {
    return this.revs[2 * i + 1] as number;
  }

  /** The index of the newest revision with main <= atRev, or -1. */
  newestAtOrBefore(atRev: number): number {
    for (let i = this.length - 1; i >= 0; i--) {
      if (this.main(i) <= atRev) return i;
    }
    return -1;
  }
}

/** Where `KeyIndex.get` and `KeyIndex.kept` leave their answer (one shared slot: no allocation per read). */
export interface RevisionSlot {
  main: number;
  sub: number;
  createdMain: number;
  /** The key's version at that revision. */
  ver: number;
}

export const found: RevisionSlot = { main: 0, sub: 0, createdMain: 0, ver: 0 };

/** Receives each revision compaction removes from the index, for physical deletion. */
export type RemovedRevision = (main: number, sub: number) => void;

export class KeyIndex {
  modMain = 0;
  modSub = 0;
  generations: Generation[] = [];
  /** Lease of the live generation's newest put (0n when none or deleted); kept for lease detach. */
  lease = 0n;

  constructor(readonly key: string) {}

  private last(): Generation {
    return this.generations[this.generations.length - 1] as Generation;
  }

  /** Adds a revision to the live generation (creating the key when it is empty). */
  put(main: number, sub: number): void {
    assert(main > this.modMain || (main === this.modMain && sub > this.modSub), "put with a newer revision");
    if (this.generations.length === 0) this.generations.push(new Generation(0, 0, []));
    const g = this.last();
    if (g.isEmpty()) g.createdMain = main;
    g.revs.push(main, sub);
    g.ver++;
    this.modMain = main;
    this.modSub = sub;
  }

  /** Starts an index entry from the oldest surviving put of a key (rebuilding from the backend). */
  restore(createdMain: number, modMain: number, modSub: number, ver: number): void {
    assert(this.generations.length === 0, "restore on an empty key index");
    this.modMain = modMain;
    this.modSub = modSub;
    this.generations.push(new Generation(ver, createdMain, [modMain, modSub]));
  }

  /** Ends the live generation with a tombstone revision. False when the key is not live. */
  tombstone(main: number, sub: number): boolean {
    assert(!this.isEmpty(), "tombstone on an empty key index");
    if (this.last().isEmpty()) return false;
    this.put(main, sub);
    this.generations.push(new Generation(0, 0, []));
    this.lease = 0n;
    return true;
  }

  isEmpty(): boolean {
    return this.generations.length === 1 && (this.generations[0] as Generation).isEmpty();
  }

  /** True when the live generation holds a put (the key exists now). */
  isLive(): boolean {
    return this.generations.length > 0 && !this.last().isEmpty();
  }

  /** The generation holding the key's state at `atRev`, or undefined when it did not exist then. */
  private findGeneration(atRev: number): Generation | undefined {
    const lastIndex = this.generations.length - 1;
    for (let gi = lastIndex; gi >= 0; gi--) {
      const g = this.generations[gi] as Generation;
      if (g.isEmpty()) continue;
      // A closed generation whose tombstone is at or before atRev: the key was deleted at atRev.
      if (gi !== lastIndex && g.main(g.length - 1) <= atRev) return undefined;
      if (g.main(0) <= atRev) return g;
    }
    return undefined;
  }

  /**
   * The revision of the key's state at `atRev` (its newest revision <= atRev in a generation still alive
   * then). Fills `found` and returns true, or returns false when the key did not exist at atRev.
   */
  get(atRev: number): boolean {
    const g = this.findGeneration(atRev);
    if (g === undefined) return false;
    const n = g.newestAtOrBefore(atRev);
    if (n === -1) return false;
    found.main = g.main(n);
    found.sub = g.sub(n);
    found.createdMain = g.createdMain;
    found.ver = g.ver - (g.length - n - 1);
    return true;
  }

  /**
   * etcd's doCompact: the first generation not entirely at or before atRev (or the live one), and in it the
   * newest revision <= atRev (-1 when none).
   */
  private compactionPoint(atRev: number): [number, number] {
    let gi = 0;
    while (gi < this.generations.length - 1) {
      const g = this.generations[gi] as Generation;
      if (g.main(g.length - 1) > atRev) break;
      gi++;
    }
    return [gi, (this.generations[gi] as Generation).newestAtOrBefore(atRev)];
  }

  /**
   * The revision compaction at atRev keeps for this key (its newest revision <= atRev unless that is a
   * tombstone), as HashKV counts it. Fills `found.main/sub`; false when none.
   */
  kept(atRev: number): boolean {
    if (this.isEmpty()) return false;
    const [gi, ri] = this.compactionPoint(atRev);
    const g = this.generations[gi] as Generation;
    if (ri === -1) return false;
    // A generation's last revision is its tombstone unless it is the live generation.
    if (ri === g.length - 1 && gi !== this.generations.length - 1) return false;
    found.main = g.main(ri);
    found.sub = g.sub(ri);
    return true;
  }

  /**
   * Drops history before atRev as described above, reporting each revision <= atRev it removes. After the
   * call the index entry may be empty (`isEmpty()`): the caller removes it.
   */
  compact(atRev: number, removed: RemovedRevision): void {
    assert(!this.isEmpty(), "compact on an empty key index");
    const [first, ri] = this.compactionPoint(atRev);
    let gi = first;
    for (let i = 0; i < gi; i++) reportAll(this.generations[i] as Generation, atRev, removed);
    const g = this.generations[gi] as Generation;
    if (!g.isEmpty()) {
      if (ri > 0) {
        for (let i = 0; i < ri; i++) removed(g.main(i), g.sub(i));
        g.revs.splice(0, 2 * ri);
      }
      // Only a tombstone left in a closed generation: it goes too.
      if (g.length === 1 && gi !== this.generations.length - 1) {
        if (g.main(0) <= atRev) removed(g.main(0), g.sub(0));
        gi++;
      }
    }
    if (gi > 0) this.generations.splice(0, gi);
  }

  /** For tests: the generations as plain data. */
  toJSON(): Array<{ created: number; ver: number; revs: number[] }> {
    return this.generations.map((g) => ({ created: g.createdMain, ver: g.ver, revs: [...g.revs] }));
  }
}

function reportAll(g: Generation, atRev: number, removed: RemovedRevision): void {
  for (let i = 0; i < g.length; i++) {
    assert(g.main(i) <= atRev, "a generation ended at or before the compaction holds no later revision");
    removed(g.main(i), g.sub(i));
  }
}
