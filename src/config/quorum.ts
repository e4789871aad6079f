/**
 * How many updates a round needs, asked by the round machine (when to close), the config checks
 * (what a robust rule must withstand) and distributed DP (how many noise shares a sum holds at least).
 */

/** Reports needed for the round to count: the minimum share of the selected clients, at least one. */
export const quorum = (selected: number, minFraction: number) => Math.max(1, Math.ceil(selected * minFraction - 1e-9));

/**
 * The fewest updates a round can close with: selection may close with a quorum of the goal (workers
 * down), and training with a quorum of those selected.
 */
export const fewestUpdates = (perRound: number, minFraction: number) => quorum(quorum(perRound, minFraction), minFraction);
