/**
 * What a crashing member must keep: the acknowledged writes of several writers, each owning its own keys
 * and running one operation at a time, so that the state every acknowledgement implies is exact and the
 * one operation a crash leaves without an answer is the only doubt (it may or may not have been applied,
 * but atomically: all of a txn or none of it).
 */

/** A key's state as a client sees it: absent (never written or deleted), or a value and its revision. */
export interface KeyState {
  value: string | null;
  /** The revision of the write that produced this state; 0 while absent. */
  modRevision: number;
}

/** One operation of a writer; its keys all belong to that writer. */
export type Op =
  | { kind: "put"; key: string; value: string }
  | { kind: "delete"; key: string }
  /** Puts and deletes on distinct keys in one txn, guarded by a compare on the first key's mod revision. */
  | { kind: "txn"; writes: readonly TxnWrite[] };

export type TxnWrite = { key: string; value: string | null };

/** The keys an op writes and the value each gets (null: deleted). */
export function opWrites(op: Op): TxnWrite[] {
  switch (op.kind) {
    case "put":
      return [{ key: op.key, value: op.value }];
    case "delete":
      return [{ key: op.key, value: null }];
    case "txn":
      return [...op.writes];
  }
}

/** A key read back from the member. */
export interface ObservedKey {
  value: string;
  modRevision: number;
}

export class AckModel {
  private readonly acked = new Map<string, KeyState>();
  /** Per writer: the op whose answer never came (at most one, since a writer stops at its first error). */
  private readonly unanswered = new Map<number, Op>();
  /** Per writer: the revision of its last acknowledged write (each write's must be higher). */
  private readonly lastRevision = new Map<number, number>();
  /** The highest revision any acknowledgement carried: no later read may show a lower one. */
  maxAckedRevision = 0;
  ackedWrites = 0;

  state(key: string): KeyState {
    return this.acked.get(key) ?? { value: null, modRevision: 0 };
  }

  /**
   * Records an acknowledged op and its revision; returns problems (a revision that did not increase, or
   * an acknowledgement that contradicts the known state, such as a delete that deleted nothing).
   */
  ack(writer: number, op: Op, revision: number, deleted?: number): string[] {
    const problems: string[] = [];
    const last = this.lastRevision.get(writer) ?? 0;
    if (revision <= last) {
      problems.push(`writer ${writer}: ${op.kind} acknowledged at revision ${revision}, not above ${last}`);
    }
    if (op.kind === "delete" && deleted !== 1) {
      problems.push(`writer ${writer}: delete of existing key ${op.key} deleted ${deleted}`);
    }
    this.lastRevision.set(writer, revision);
    this.maxAckedRevision = Math.max(this.maxAckedRevision, revision);
    for (const write of opWrites(op)) {
      this.acked.set(write.key, { value: write.value, modRevision: write.value === null ? 0 : revision });
    }
    this.ackedWrites++;
    return problems;
  }

  /** A writer's op failed or was cut off: it may or may not have been applied. */
  unanswer(writer: number, op: Op): void {
    if (this.unanswered.has(writer)) throw new Error(`writer ${writer} has two unanswered ops`);
    this.unanswered.set(writer, op);
  }

  /**
   * Checks what the member shows after a restart (every key under the writers' prefix, and the header
   * revision) against the acknowledgements; then takes what it shows as the new known state, each
   * unanswered op settled as applied or not. Returns the problems found (none when the member kept
   * every acknowledged write).
   */
  checkAndSettle(observed: ReadonlyMap<string, ObservedKey>, headerRevision: number): string[] {
    const problems: string[] = [];
    if (headerRevision < this.maxAckedRevision) {
      problems.push(`revision went backwards: ${headerRevision} < acknowledged ${this.maxAckedRevision}`);
    }
    const doubtful = new Set<string>();
    for (const [writer, op] of this.unanswered) {
      const writes = opWrites(op);
      for (const write of writes) doubtful.add(write.key);
      const asBefore = writes.every((w) => sameState(observed.get(w.key), this.state(w.key)));
      const applied = writes.every((w) => appliedAs(observed.get(w.key), w, this.state(w.key)));
      const revisions = new Set(
        writes.filter((w) => w.value !== null).map((w) => observed.get(w.key)?.modRevision),
      );
      if (applied && revisions.size > 1) {
        problems.push(
          `writer ${writer}: unanswered txn applied at several revisions ${[...revisions].join(",")}`,
        );
      }
      if (!asBefore && !applied) {
        problems.push(
          `writer ${writer}: unanswered ${op.kind} is neither applied nor absent: ${describe(writes, observed, this)}`,
        );
      }
    }
    const keys = new Set([...this.acked.keys(), ...observed.keys()]);
    for (const key of keys) {
      if (doubtful.has(key)) continue;
      const want = this.state(key);
      const got = observed.get(key);
      if (!sameState(got, want)) {
        problems.push(
          `key ${key}: acknowledged ${want.value === null ? "absent" : `${short(want.value)}@${want.modRevision}`}, found ${
            got === undefined ? "absent" : `${short(got.value)}@${got.modRevision}`
          }`,
        );
      }
    }
    // Settle: the member's state is now the known state; nothing is in doubt any more.
    for (const key of keys) {
      const got = observed.get(key);
      this.acked.set(key, got === undefined ? { value: null, modRevision: 0 } : { ...got });
    }
    this.unanswered.clear();
    return problems;
  }
}

function sameState(got: ObservedKey | undefined, want: KeyState): boolean {
  if (want.value === null) return got === undefined;
  return got !== undefined && got.value === want.value && got.modRevision === want.modRevision;
}

/** The observed key is what `write` would leave, at a revision after the acknowledged state's. */
function appliedAs(got: ObservedKey | undefined, write: TxnWrite, before: KeyState): boolean {
  if (write.value === null) return got === undefined;
  return got !== undefined && got.value === write.value && got.modRevision > before.modRevision;
}

function short(value: string): string {
  return value.length > 24 ? `${value.slice(0, 24)}…(${value.length})` : value;
}

function describe(
  writes: readonly TxnWrite[],
  observed: ReadonlyMap<string, ObservedKey>,
  model: AckModel,
): string {
  return writes
    .map((w) => {
      const got = observed.get(w.key);
      const before = model.state(w.key);
      return `${w.key}: wrote ${w.value === null ? "delete" : short(w.value)}, acked ${
        before.value === null ? "absent" : short(before.value)
      }, found ${got === undefined ? "absent" : `${short(got.value)}@${got.modRevision}`}`;
    })
    .join("; ");
}
