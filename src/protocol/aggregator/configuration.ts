/** Configuration: the switches under the aggregator learn which clients beneath them are in the round; the model goes down. */
import { enter } from './phases';
import { reporterOf, type Action, type RoundRules, type RoundState, type Topology } from './state';

export function configureRound(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  const { round, attempt } = state;
  // The deadline first: whatever happens to the sends below, the round cannot hang without one.
  const actions = [...enter(state, 'training'), { type: 'start-timer' as const, phase: 'training' as const, attempt, ms: rules.deadlineMs }];
  state.expected = new Map();
  for (const client of state.selected) {
    const reporter = reporterOf(topology, client); // a direct client reports for itself
    state.expected.set(reporter, [...(state.expected.get(reporter) ?? []), client]);
  }
  state.awaiting = new Set(state.expected.keys());
  for (const [reporter, clients] of state.expected) {
    if (!topology.upstreamOf.has(reporter)) {
      // a switch (a direct client is its own reporter); it opens the round of the switches below it
      actions.push({ type: 'open-switch-round', round, attempt, switch: reporter, clients });
    }
  }
  actions.push({ type: 'send-model', round, attempt, clients: [...state.selected] });
  return actions;
}
