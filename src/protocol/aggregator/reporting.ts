/** Reporting: each switch (or direct client) sends one update; a round closes when all are in or at its deadline. */
import { beginSelection } from './selection';
import { quorum, type Action, type RoundRules, type RoundState, type Topology } from './state';

type Report = { round: number; from: string; contributors: number; weight: number };

/** Why a report would be refused now, without changing anything; undefined when it would be taken. */
export function reportRefusal(state: RoundState, event: Report): Extract<Action, { type: 'refuse' }> | undefined {
  if (event.round !== state.round || state.stage !== 'training') {
    const when = event.round < state.round || state.stage !== 'training' ? 'is over or not open' : 'has not started';
    return { type: 'refuse', status: 409, reason: `round ${event.round} ${when} (the aggregator is in round ${state.round}, ${state.stage})` };
  }
  const clients = state.expected.get(event.from);
  if (!clients) return { type: 'refuse', status: 403, reason: `${event.from} has no clients in round ${event.round}` };
  if (state.reported.has(event.from)) return { type: 'refuse', status: 409, reason: `${event.from} already reported for round ${event.round}` };
  if (event.contributors < 1 || event.contributors > clients.length) {
    return { type: 'refuse', status: 400, reason: `${event.from} can sum 1 to ${clients.length} updates in round ${event.round}, not ${event.contributors}` };
  }
  return undefined;
}

export function onReport(state: RoundState, rules: RoundRules, event: Report): Action[] {
  const refusal = reportRefusal(state, event);
  if (refusal) return [refusal];
  state.reported.set(event.from, { contributors: event.contributors, weight: event.weight });
  const actions: Action[] = [{ type: 'accept-report', round: state.round, from: event.from }];
  if (state.reported.size === state.expected.size) actions.push(...closeReporting(state));
  return actions;
}

export function onReportDeadline(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'training' || round !== state.round) return [];
  const arrived = [...state.reported.values()].reduce((n, r) => n + r.contributors, 0);
  const needed = quorum(state.selected.length, rules.minFraction);
  if (arrived >= needed) return closeReporting(state);
  state.retries++;
  return [
    { type: 'log', level: 'warn', message: `round ${round}: ${arrived} of ${state.selected.length} updates arrived, ${needed} needed; the round starts again` },
    { type: 'discard-round', round },
    ...beginSelection(state, rules, topology),
  ];
}

function closeReporting(state: RoundState): Action[] {
  state.stage = 'aggregation';
  const from = [...state.reported.keys()];
  const missing = [...state.expected.keys()].filter((k) => !state.reported.has(k));
  const actions: Action[] = [];
  if (missing.length) actions.push({ type: 'log', level: 'warn', message: `round ${state.round}: no update from ${missing.join(', ')}` });
  actions.push({ type: 'aggregate', round: state.round, from, missing });
  return actions;
}
