import { RaftError, RaftErrorCode } from "./errors.js";
import { compareIds, Progress, type ProgressTracker, type TrackerConfig } from "./tracker.js";
import type { ConfChange, ConfChangeSingle, ConfChangeV2, ConfState } from "./types.js";
import { ConfChangeTransition, ConfChangeType, EMPTY_BYTES, isConfChangeV2 } from "./types.js";

/** A new configuration and the progress map that goes with it, not yet installed. */
export interface ConfigAndProgress {
  config: TrackerConfig;
  progress: Map<bigint, Progress>;
}

function invalid(message: string): never {
  throw new RaftError(RaftErrorCode.InvalidConfChange, message);
}

/** Views a v1 change as the equivalent single-change v2. */
export function toConfChangeV2(cc: ConfChange | ConfChangeV2): ConfChangeV2 {
  if (isConfChangeV2(cc)) return cc;
  return {
    transition: ConfChangeTransition.Auto,
    changes: [{ type: cc.type, nodeId: cc.nodeId }],
    context: cc.context,
  };
}

/** An empty v2 change (with Auto transition) means "leave the joint configuration". */
export function isLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0;
}

/**
 * Whether the change uses joint consensus, and if so whether the joint configuration is left
 * automatically. Several changes at once always use joint consensus (even where one step would be safe):
 * simple and obviously correct beats clever.
 */
export function enterJoint(cc: ConfChangeV2): { joint: boolean; autoLeave: boolean } {
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    switch (cc.transition) {
      case ConfChangeTransition.Auto:
      case ConfChangeTransition.JointImplicit:
        return { joint: true, autoLeave: true };
      case ConfChangeTransition.JointExplicit:
        return { joint: true, autoLeave: false };
      default:
        return invalid(`unknown conf change transition ${String(cc.transition)}`);
    }
  }
  return { joint: false, autoLeave: false };
}

/**
 * Computes configuration changes against a tracker without touching it (etcd's confchange.Changer): every
 * method works on copies, checks the invariants before and after, and throws InvalidConfChange instead of
 * producing a bad configuration.
 */
export class Changer {
  constructor(
    private readonly tracker: ProgressTracker,
    private readonly lastIndex: number,
  ) {}

  /** Applies any ConfChange/ConfChangeV2 as raft does when the entry is applied. */
  applyChange(cc: ConfChangeV2): ConfigAndProgress {
    if (isLeaveJoint(cc)) return this.leaveJoint();
    const { joint, autoLeave } = enterJoint(cc);
    if (joint) return this.enterJoint(autoLeave, cc.changes);
    return this.simple(cc.changes);
  }

  /**
   * Enters the joint configuration C_old,new (thesis §4.3): the outgoing half becomes a copy of the current
   * voters and the changes are applied to the incoming half.
   */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ConfigAndProgress {
    const { config, progress } = this.checkAndCopy();
    if (config.isJoint()) invalid("config is already joint");
    if (config.incoming.size === 0) invalid("can't make a zero-voter config joint");
    config.outgoing.clear();
    for (const id of config.incoming) config.outgoing.add(id);
    this.apply(config, progress, changes);
    config.autoLeave = autoLeave;
    return checked(config, progress);
  }

  /** Leaves the joint configuration: the incoming voters decide alone; staged learners become learners. */
  leaveJoint(): ConfigAndProgress {
    const { config, progress } = this.checkAndCopy();
    if (!config.isJoint()) invalid("can't leave a non-joint config");
    for (const id of config.learnersNext) {
      config.learners.add(id);
      progress.get(id)!.isLearner = true;
    }
    config.learnersNext.clear();
    for (const id of config.outgoing) {
      if (!config.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.outgoing.clear();
    config.autoLeave = false;
    return checked(config, progress);
  }

  /**
   * Changes that, together, alter the set of voters by at most one (etcd's one-at-a-time rule), applied
   * directly without a joint step. Any number of learner changes may come along.
   */
  simple(changes: readonly ConfChangeSingle[]): ConfigAndProgress {
    const { config, progress } = this.checkAndCopy();
    if (config.isJoint()) invalid("can't apply simple config change in joint config");
    this.apply(config, progress, changes);
    if (symmetricDifference(this.tracker.config.incoming, config.incoming) > 1) {
      invalid("more than one voter changed without entering joint config");
    }
    return checked(config, progress);
  }

  private apply(
    config: TrackerConfig,
    progress: Map<bigint, Progress>,
    changes: readonly ConfChangeSingle[],
  ): void {
    for (const cc of changes) {
      // The application turns a change it decided not to apply into a no-op by zeroing the node id.
      if (cc.nodeId === 0n) continue;
      switch (cc.type) {
        case ConfChangeType.AddNode:
          this.makeVoter(config, progress, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(config, progress, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          this.remove(config, progress, cc.nodeId);
          break;
        case ConfChangeType.UpdateNode:
          break;
        default:
          invalid(`unexpected conf change type ${String(cc.type)}`);
      }
    }
    if (config.incoming.size === 0) invalid("removed all voters");
  }

  private makeVoter(config: TrackerConfig, progress: Map<bigint, Progress>, id: bigint): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(config, progress, id, false);
      return;
    }
    pr.isLearner = false;
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.incoming.add(id);
  }

  /**
   * Makes id a learner. A voter of the outgoing half cannot be a learner at the same time, so it is staged
   * in learnersNext and becomes a learner when the joint configuration is left.
   */
  private makeLearner(config: TrackerConfig, progress: Map<bigint, Progress>, id: bigint): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(config, progress, id, true);
      return;
    }
    if (pr.isLearner) return;
    this.remove(config, progress, id);
    progress.set(id, pr);
    if (config.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      config.learners.add(id);
    }
  }

  private remove(config: TrackerConfig, progress: Map<bigint, Progress>, id: bigint): void {
    if (!progress.has(id)) return;
    config.incoming.delete(id);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    // A voter of the outgoing half keeps its progress until the joint config is left.
    if (!config.outgoing.has(id)) progress.delete(id);
  }

  private initProgress(
    config: TrackerConfig,
    progress: Map<bigint, Progress>,
    id: bigint,
    isLearner: boolean,
  ): void {
    if (isLearner) config.learners.add(id);
    else config.incoming.add(id);
    // Probe from the last index; the follower's rejection hint brings next down quickly. A new node counts
    // as recently active so that CheckQuorum does not depose the leader before it could answer.
    progress.set(id, new Progress(Math.max(this.lastIndex, 1), this.tracker.newInflights(), isLearner, true));
  }

  private checkAndCopy(): ConfigAndProgress {
    const config = this.tracker.config.clone();
    const progress = new Map<bigint, Progress>();
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.clone());
    return checked(config, progress);
  }
}

function checked(config: TrackerConfig, progress: Map<bigint, Progress>): ConfigAndProgress {
  checkInvariants(config, progress);
  return { config, progress };
}

/** The configuration and progress map must agree; any mismatch is a bug or a corrupted conf change. */
export function checkInvariants(config: TrackerConfig, progress: Map<bigint, Progress>): void {
  for (const set of [config.incoming, config.outgoing, config.learners, config.learnersNext]) {
    for (const id of set) if (!progress.has(id)) invalid(`no progress for ${id.toString(16)}`);
  }
  for (const id of config.learnersNext) {
    if (!config.outgoing.has(id)) invalid(`${id.toString(16)} is in learnersNext but not an outgoing voter`);
    if (progress.get(id)!.isLearner) invalid(`${id.toString(16)} is in learnersNext but already a learner`);
  }
  for (const id of config.learners) {
    if (config.outgoing.has(id)) invalid(`${id.toString(16)} is a learner and an outgoing voter`);
    if (config.incoming.has(id)) invalid(`${id.toString(16)} is a learner and an incoming voter`);
    if (!progress.get(id)!.isLearner) invalid(`${id.toString(16)} is a learner but not marked as one`);
  }
  for (const [id, pr] of progress) {
    const tracked = config.incoming.has(id) || config.outgoing.has(id) || config.learners.has(id);
    if (!tracked) invalid(`progress for ${id.toString(16)} which is not in the configuration`);
    if (pr.isLearner && !config.learners.has(id))
      invalid(`${id.toString(16)} marked learner but not in learners`);
  }
  if (!config.isJoint()) {
    if (config.learnersNext.size > 0) invalid("learnersNext must be empty when not joint");
    if (config.autoLeave) invalid("autoLeave must be false when not joint");
  }
}

function symmetricDifference(a: Set<bigint>, b: Set<bigint>): number {
  let n = 0;
  for (const id of a) if (!b.has(id)) n++;
  for (const id of b) if (!a.has(id)) n++;
  return n;
}

/**
 * Rebuilds the configuration described by a ConfState (from a snapshot or at start) by replaying changes
 * from an empty configuration: first the outgoing voters one at a time, then (if joint) entering the joint
 * configuration with the incoming voters and learners.
 */
export function restoreConfig(tracker: ProgressTracker, lastIndex: number, cs: ConfState): ConfigAndProgress {
  const outgoing: ConfChangeSingle[] = [];
  const incoming: ConfChangeSingle[] = [];
  for (const id of cs.votersOutgoing) outgoing.push({ type: ConfChangeType.AddNode, nodeId: id });
  for (const id of cs.votersOutgoing) incoming.push({ type: ConfChangeType.RemoveNode, nodeId: id });
  for (const id of cs.voters) incoming.push({ type: ConfChangeType.AddNode, nodeId: id });
  for (const id of cs.learners) incoming.push({ type: ConfChangeType.AddLearnerNode, nodeId: id });
  for (const id of cs.learnersNext) incoming.push({ type: ConfChangeType.AddLearnerNode, nodeId: id });

  // Work on a scratch tracker so that a failure leaves the real one untouched.
  const scratch = tracker.emptyCopy();
  const step = (result: ConfigAndProgress) => scratch.install(result.config, result.progress);
  if (outgoing.length === 0) {
    for (const cc of incoming) step(new Changer(scratch, lastIndex).simple([cc]));
  } else {
    for (const cc of outgoing) step(new Changer(scratch, lastIndex).simple([cc]));
    step(new Changer(scratch, lastIndex).enterJoint(cs.autoLeave, incoming));
  }
  return { config: scratch.config, progress: scratch.progress };
}

/** An empty v2 change: leaves a joint configuration. */
export const LEAVE_JOINT: ConfChangeV2 = Object.freeze({
  transition: ConfChangeTransition.Auto,
  changes: [],
  context: EMPTY_BYTES,
});

/** Two ConfStates describe the same configuration (order-insensitive). */
export function confStatesEquivalent(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly bigint[], y: readonly bigint[]) => {
    if (x.length !== y.length) return false;
    const sx = [...x].sort(compareIds);
    const sy = [...y].sort(compareIds);
    return sx.every((v, i) => v === sy[i]);
  };
  return (
    same(a.voters, b.voters) &&
    same(a.learners, b.learners) &&
    same(a.votersOutgoing, b.votersOutgoing) &&
    same(a.learnersNext, b.learnersNext) &&
    a.autoLeave === b.autoLeave
  );
}
