/**
 * How many updates a round needs, asked by the round machine (when to close), the config checks
 * (what a robust rule must withstand) and distributed DP (how many noise shares a sum holds at least).
 */

import type { Settings, StragglerPolicy } from './schema';

/** Reports needed for the round to count: the minimum share of the selected clients, at least one. */
export const quorum = (selected: number, minFraction: number) => Math.max(1, Math.ceil(selected * minFraction - 1e-9));

/**
 * The fewest updates a round can close with: selection may close with a quorum of the goal (workers
 * down), and training with a quorum of those selected.
 */
export const fewestUpdates = (perRound: number, minFraction: number) => quorum(quorum(perRound, minFraction), minFraction);

/** How many clients a round selects: clients_per_round (or every client), times stragglers.over_select, at most all there are. */
export const selectedPerRound = (settings: Pick<Settings, 'clients_per_round' | 'stragglers'>, clients: number): number =>
  Math.min(clients, Math.ceil((settings.clients_per_round ?? clients) * (settings.stragglers?.over_select ?? 1) - 1e-9));

/**
 * Under the straggler policy, how many of `selected` clients' updates let a round (or a switch) close
 * once the grace has passed; undefined without one (it waits for every client, or its deadline).
 */
export function earlyCloseAt(selected: number, stragglers: StragglerPolicy | undefined): number | undefined {
  if (!stragglers || (stragglers.over_select === 1 && stragglers.close_fraction === undefined)) return undefined;
  return quorum(selected, stragglers.close_fraction ?? 1 / stragglers.over_select);
}
