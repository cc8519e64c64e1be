/**
 * Majority and joint quorums (Raft thesis §4.3): a decision needs a majority of the incoming voters and,
 * while joint, also a majority of the outgoing voters. An empty majority config agrees with everything,
 * so a joint config with an empty outgoing half behaves like a plain majority.
 */

export const VoteResult = { Pending: 1, Lost: 2, Won: 3 } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** Committed index of an empty majority config: larger than any real index, so min() ignores it. */
export const EMPTY_QUORUM_INDEX = Number.MAX_SAFE_INTEGER;

/**
 * The largest index acknowledged by a majority of `ids`, where acked(i) is the acknowledged index of
 * ids[i] (0 when unknown). `scratch` is a reusable buffer of at least ids.length slots, so the hot path
 * (every append response on the leader) allocates nothing.
 */
export function majorityIndex(count: number, scratch: Float64Array): number {
  if (count === 0) return EMPTY_QUORUM_INDEX;
  // Insertion sort, descending: voter counts are tiny (3, 5, 7).
  for (let i = 1; i < count; i++) {
    const v = scratch[i]!;
    let j = i - 1;
    while (j >= 0 && scratch[j]! < v) {
      scratch[j + 1] = scratch[j]!;
      j--;
    }
    scratch[j + 1] = v;
  }
  // The (floor(n/2)+1)-th largest value is held by a majority.
  return scratch[count >> 1]!;
}

/** majorityIndex over an id -> acknowledged index map (absent ids count as 0). */
export function majorityIndexOf(ids: readonly bigint[], acked: ReadonlyMap<bigint, number>): number {
  const scratch = new Float64Array(ids.length);
  for (let i = 0; i < ids.length; i++) scratch[i] = acked.get(ids[i]!) ?? 0;
  return majorityIndex(ids.length, scratch);
}

/** The joint committed index: the smaller of the two halves'. */
export function jointIndexOf(
  incoming: readonly bigint[],
  outgoing: readonly bigint[],
  acked: ReadonlyMap<bigint, number>,
): number {
  return Math.min(majorityIndexOf(incoming, acked), majorityIndexOf(outgoing, acked));
}

export function majorityVoteResult(ids: readonly bigint[], votes: ReadonlyMap<bigint, boolean>): VoteResult {
  if (ids.length === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (let i = 0; i < ids.length; i++) {
    const v = votes.get(ids[i]!);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const quorum = (ids.length >> 1) + 1;
  if (granted >= quorum) return VoteResult.Won;
  if (granted + missing >= quorum) return VoteResult.Pending;
  return VoteResult.Lost;
}

export function jointVoteResult(
  incoming: readonly bigint[],
  outgoing: readonly bigint[],
  votes: ReadonlyMap<bigint, boolean>,
): VoteResult {
  const a = majorityVoteResult(incoming, votes);
  const b = majorityVoteResult(outgoing, votes);
  if (a === b) return a;
  if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}
