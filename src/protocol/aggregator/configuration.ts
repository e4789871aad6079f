/** Configuration: switches learn which of their clients are in the round; the model goes down. */
import { attemptId } from '../attempt';
import type { Action, RoundRules, RoundState, Topology } from './state';

export function configureRound(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  state.stage = 'training';
  state.attempt = attemptId(rules.session ?? '', state.round, state.retries);
  state.expected = new Map();
  const switches = new Set<string>();
  for (const client of state.selected) {
    const upstream = topology.upstreamOf.get(client)!;
    if (upstream === topology.self) {
      state.expected.set(client, [client]); // a direct client reports for itself
    } else {
      switches.add(upstream);
      state.expected.set(upstream, [...(state.expected.get(upstream) ?? []), client]);
    }
  }
  const actions: Action[] = [...switches].map((sw) => ({
    type: 'open-switch-round' as const,
    round: state.round,
    attempt: state.attempt,
    switch: sw,
    clients: state.expected.get(sw)!,
  }));
  actions.push(
    { type: 'send-model', round: state.round, attempt: state.attempt, clients: [...state.selected] },
    { type: 'start-timer', timer: 'report', round: state.round, ms: rules.deadlineMs },
  );
  return actions;
}
