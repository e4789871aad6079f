/** Reporting: each switch (or direct client) sends one update; a round closes when all are in or at its deadline. */
import { beginSelection } from './selection';
import { quorum, type Action, type Event, type RoundRules, type RoundState, type Topology } from './state';

type Report = Extract<Event, { type: 'report' }>;

/** Why a report would be refused now, without changing anything; undefined when it would be taken. */
export function reportRefusal(state: RoundState, event: Report): Extract<Action, { type: 'refuse' }> | undefined {
  if (event.round !== state.round || state.stage !== 'training') {
    const when = event.round < state.round || state.stage !== 'training' ? 'is over or not open' : 'has not started';
    return { type: 'refuse', status: 409, reason: `round ${event.round} ${when} (the aggregator is in round ${state.round}, ${state.stage})` };
  }
  if (event.attempt !== state.attempt) {
    return { type: 'refuse', status: 409, reason: `the update belongs to an earlier opening of round ${event.round} (${event.attempt}, now ${state.attempt})` };
  }
  const clients = state.expected.get(event.from);
  if (!clients) return { type: 'refuse', status: 403, reason: `${event.from} has no clients in round ${event.round}` };
  if (state.reported.has(event.from)) return { type: 'refuse', status: 409, reason: `${event.from} already reported for round ${event.round}` };
  const strangers = event.clients.filter((c) => !clients.includes(c));
  if (!event.clients.length || strangers.length || new Set(event.clients).size !== event.clients.length) {
    return {
      type: 'refuse',
      status: 400,
      reason: `${event.from} can sum the updates of ${clients.join(', ')} in round ${event.round}, not of [${event.clients.join(', ')}]`,
    };
  }
  return undefined;
}

export function onReport(state: RoundState, rules: RoundRules, topology: Topology, event: Report): Action[] {
  const refusal = reportRefusal(state, event);
  if (refusal) return [refusal];
  state.reported.set(event.from, { clients: [...event.clients], weight: event.weight });
  const actions: Action[] = [{ type: 'accept-report', round: state.round, from: event.from }];
  if (state.reported.size === state.expected.size) actions.push(...closeOrRetry(state, rules, topology));
  return actions;
}

export function onReportDeadline(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'training' || round !== state.round) return [];
  return closeOrRetry(state, rules, topology);
}

/** A worker that went down mid-round will not report: the round stops waiting for it. */
export function onNodeDown(state: RoundState, rules: RoundRules, topology: Topology, node: string): Action[] {
  if (state.stage !== 'training' || !state.expected.has(node) || state.reported.has(node)) return [];
  state.expected.delete(node);
  const actions: Action[] = [{ type: 'log', level: 'warn', message: `round ${state.round}: ${node} went down; the round goes on without it` }];
  if (state.reported.size === state.expected.size) actions.push(...closeOrRetry(state, rules, topology));
  return actions;
}

/** Aggregates when enough of the selected clients are in the sum; otherwise the round starts again. */
function closeOrRetry(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  const arrived = [...state.reported.values()].reduce((n, r) => n + r.clients.length, 0);
  const needed = quorum(state.selected.length, rules.minFraction);
  if (arrived >= needed) return closeReporting(state);
  state.retries++;
  return [
    { type: 'log', level: 'warn', message: `round ${state.round}: ${arrived} of ${state.selected.length} updates arrived, ${needed} needed; the round starts again` },
    { type: 'discard-round', round: state.round },
    ...beginSelection(state, rules, topology),
  ];
}

function closeReporting(state: RoundState): Action[] {
  state.stage = 'aggregation';
  const from = [...state.reported.keys()];
  const included = new Set([...state.reported.values()].flatMap((r) => r.clients));
  const missing = state.selected.filter((c) => !included.has(c));
  const actions: Action[] = [];
  if (missing.length) actions.push({ type: 'log', level: 'warn', message: `round ${state.round}: no update from ${missing.join(', ')}` });
  actions.push({ type: 'aggregate', round: state.round, from, missing });
  return actions;
}
