/**
 * A small synchronous cluster for raft unit tests (etcd's raft_test.go `network`, driven through the Ready
 * contract): every node persists each Ready into its MemoryStorage, applies committed entries (including
 * conf changes) and advances; messages are delivered in order until the cluster is quiet.
 */
import { decodeConfChangeEntry } from "../../src/raft/codec.js";
import { isRaftError } from "../../src/raft/errors.js";
import type { RaftBug, RaftConfig } from "../../src/raft/raft.js";
import { RawNode, type Ready } from "../../src/raft/rawnode.js";
import { Xoshiro128 } from "../../src/raft/rng.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { ConfState, Entry, Message, MessageType, ReadState } from "../../src/raft/types.js";
import { EntryType, StateRole } from "../../src/raft/types.js";

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export interface NodeOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  maxInflightMessages?: number;
  maxSizePerMsgBytes?: number;
  maxInflightBytes?: number;
  maxUncommittedEntriesSizeBytes?: number;
  stepDownOnRemoval?: boolean;
  disableProposalForwarding?: boolean;
  bugs?: ReadonlySet<RaftBug>;
  seed?: number;
}

/** Storage with a snapshot at index 0 describing the given members, as etcd tests build them. */
export function storageWith(confState: Partial<ConfState>): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({
    data: new Uint8Array(0),
    metadata: {
      index: 0,
      term: 0,
      confState: {
        voters: confState.voters ?? [],
        learners: confState.learners ?? [],
        votersOutgoing: confState.votersOutgoing ?? [],
        learnersNext: confState.learnersNext ?? [],
        autoLeave: confState.autoLeave ?? false,
      },
    },
  });
  return s;
}

export function configFor(id: bigint, storage: MemoryStorage, opts: NodeOptions = {}): RaftConfig {
  return {
    id,
    electionTick: opts.electionTick ?? 10,
    heartbeatTick: opts.heartbeatTick ?? 1,
    storage,
    rng: new Xoshiro128(opts.seed ?? Number(id)),
    maxInflightMessages: opts.maxInflightMessages ?? 256,
    maxSizePerMsgBytes: opts.maxSizePerMsgBytes ?? 1024 * 1024,
    maxInflightBytes: opts.maxInflightBytes,
    maxUncommittedEntriesSizeBytes: opts.maxUncommittedEntriesSizeBytes,
    preVote: opts.preVote ?? false,
    checkQuorum: opts.checkQuorum ?? false,
    stepDownOnRemoval: opts.stepDownOnRemoval,
    disableProposalForwarding: opts.disableProposalForwarding,
    bugs: opts.bugs,
  };
}

export class TestNode {
  readonly applied: Entry[] = [];
  readonly readStates: ReadState[] = [];
  /** When false, conf change entries are applied to the state machine list but not to raft. */
  applyConfChanges = true;
  lastConfState: ConfState | null = null;

  constructor(
    readonly id: bigint,
    readonly storage: MemoryStorage,
    public rn: RawNode,
  ) {}

  get raft() {
    return this.rn.raft;
  }

  /** Persists and applies one Ready; returns the messages it produced (immediate ones first). */
  handleReady(): Message[] {
    if (!this.rn.hasReady()) return [];
    const rd: Ready = this.rn.ready();
    if (rd.snapshot !== null) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    if (rd.hardState !== null) this.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      this.applied.push(e);
      if (e.type !== EntryType.Normal && this.applyConfChanges) {
        this.lastConfState = this.rn.applyConfChange(decodeConfChangeEntry(e));
      }
    }
    for (const rs of rd.readStates) this.readStates.push(rs);
    const out = [...rd.messages, ...rd.messagesAfterPersist];
    this.rn.advance(rd);
    return out;
  }

  appliedData(): string[] {
    return this.applied
      .filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => dec(e.data));
  }
}

type Filter = (m: Message) => boolean;

export class Network {
  readonly nodes = new Map<bigint, TestNode>();
  /** Directed links that drop everything: "from>to". */
  private readonly cuts = new Set<string>();
  private readonly ignored = new Set<MessageType>();
  /** Extra filters; a message is dropped when any returns true. */
  readonly filters: Filter[] = [];
  /** Messages delivered so far (for assertions on traffic). */
  readonly delivered: Message[] = [];

  constructor(ids: readonly bigint[], opts: NodeOptions = {}, perNode?: Map<bigint, NodeOptions>) {
    for (const id of ids) {
      const storage = storageWith({ voters: [...ids] });
      this.add(id, storage, { ...opts, ...(perNode?.get(id) ?? {}) });
    }
  }

  /**
   * A cluster bootstrapped the way a new etcd cluster is: every member starts from an empty storage with
   * AddNode entries for the initial members, so nodes added later can learn the configuration from the log.
   */
  static bootstrapped(members: readonly bigint[], opts: NodeOptions = {}): Network {
    const net = new Network([], opts);
    for (const id of members) {
      const node = net.add(id, new MemoryStorage(), opts);
      node.rn.bootstrap(members.map((m) => ({ id: m })));
    }
    net.stabilize();
    return net;
  }

  add(id: bigint, storage: MemoryStorage, opts: NodeOptions = {}): TestNode {
    const node = new TestNode(id, storage, new RawNode(configFor(id, storage, opts)));
    this.nodes.set(id, node);
    return node;
  }

  node(id: bigint): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  cut(a: bigint, b: bigint): void {
    this.cuts.add(`${a}>${b}`);
    this.cuts.add(`${b}>${a}`);
  }

  isolate(id: bigint): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  ignore(type: MessageType): void {
    this.ignored.add(type);
  }

  recover(): void {
    this.cuts.clear();
    this.ignored.clear();
    this.filters.length = 0;
  }

  private dropped(m: Message): boolean {
    if (this.cuts.has(`${m.from}>${m.to}`)) return true;
    if (this.ignored.has(m.type)) return true;
    return this.filters.some((f) => f(m));
  }

  /** Steps the messages into their targets and runs every node's Ready loop until the cluster is quiet. */
  send(msgs: Message[] = []): void {
    const queue = [...msgs];
    for (let round = 0; round < 10_000; round++) {
      let busy = false;
      for (const node of this.nodes.values()) {
        if (node.rn.hasReady()) busy = true;
        queue.push(...node.handleReady());
      }
      if (queue.length === 0 && !busy) return;
      const batch = queue.splice(0, queue.length);
      for (const m of batch) {
        if (this.dropped(m)) continue;
        const target = this.nodes.get(m.to);
        if (target === undefined) continue;
        this.delivered.push(m);
        try {
          target.rn.step(m);
        } catch (err) {
          if (!isRaftError(err)) throw err;
        }
      }
    }
    throw new Error("network did not quiesce");
  }

  /** Runs Ready loops without injecting anything. */
  stabilize(): void {
    this.send([]);
  }

  campaign(id: bigint): void {
    this.node(id).rn.campaign();
    this.stabilize();
  }

  propose(id: bigint, data: string): void {
    this.node(id).rn.propose(enc(data));
    this.stabilize();
  }

  tick(id: bigint, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).rn.tick();
  }

  leader(): TestNode | undefined {
    for (const n of this.nodes.values()) if (n.raft.state === StateRole.Leader) return n;
    return undefined;
  }
}

/** Collects the messages a single node produced in its next Ready, persisting like the harness does. */
export function drain(node: TestNode): Message[] {
  return node.handleReady();
}

export function ids(...n: number[]): bigint[] {
  return n.map((x) => BigInt(x));
}
