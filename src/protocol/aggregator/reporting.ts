/**
 * Training and reporting: each switch (or direct client) sends one update, or says it has none; the
 * round closes when no one is left to wait for (all in, down, or withheld) or at its deadline.
 */
import { enter, isCurrent } from './phases';
import { beginSelection } from './selection';
import { chainOf, quorum, reporterOf, type Action, type Event, type RoundRules, type RoundState, type Topology } from './state';

type Report = Extract<Event, { type: 'report' | 'withheld' }>;

/** Why a report (or a withheld notice) would be refused now, without changing anything; undefined when taken. */
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
  const empty = event.type === 'report' && !event.clients.length;
  if (empty || strangers.length || new Set(event.clients).size !== event.clients.length) {
    return {
      type: 'refuse',
      status: 400,
      reason: `${event.from} can sum the updates of ${clients.join(', ')} in round ${event.round}, not of [${event.clients.join(', ')}]`,
    };
  }
  return undefined;
}

export function onReport(state: RoundState, rules: RoundRules, topology: Topology, event: Extract<Event, { type: 'report' }>): Action[] {
  const refusal = reportRefusal(state, event);
  if (refusal) return [refusal];
  state.reported.set(event.from, { clients: [...event.clients], weight: event.weight });
  state.awaiting.delete(event.from);
  // A client dropped a moment ago may still have made its switch's sum: then it is in.
  for (const client of event.clients) state.dropped.delete(client);
  return [{ type: 'accept-report', round: state.round, attempt: state.attempt, from: event.from }, ...closeIfNoneAwaited(state, rules, topology)];
}

export function onWithheld(state: RoundState, rules: RoundRules, topology: Topology, event: Extract<Event, { type: 'withheld' }>): Action[] {
  const refusal = reportRefusal(state, event);
  if (refusal) return [refusal];
  if (!state.awaiting.delete(event.from)) return [];
  for (const client of state.expected.get(event.from)!) state.dropped.add(client);
  const message = `round ${state.round}: ${event.from} forwards nothing (${event.reason})`;
  return [{ type: 'log', level: 'warn', message }, ...closeIfNoneAwaited(state, rules, topology)];
}

export function onTrainingDeadline(state: RoundState, rules: RoundRules, topology: Topology, attempt: string): Action[] {
  if (!isCurrent(state, 'training', attempt)) return [];
  return closeOrRetry(state, rules, topology);
}

/**
 * A worker that went down mid-round will not report: the round stops waiting for it at once. A
 * selected client down is dropped from its switch's round, so the switch forwards without it. A
 * switch down takes the clients beneath it out of the round; they stand by, since the model it
 * relays may never have reached them (they check in again, and wait there until it is back).
 */
export function onNodeDown(state: RoundState, rules: RoundRules, topology: Topology, node: string): Action[] {
  if (state.stage !== 'training') return [];
  if (state.selected.includes(node)) return dropClient(state, rules, topology, node, 'went down');
  const beneath = state.selected.filter((c) => chainOf(topology, c).includes(node) && state.awaiting.has(reporterOf(topology, c)));
  if (!beneath.length) return [];
  const actions: Action[] = [
    { type: 'log', level: 'warn', message: `round ${state.round}: ${node} went down; the round goes on without the clients beneath it (${beneath.join(', ')})` },
    { type: 'standby', round: state.round, clients: beneath },
  ];
  if (state.awaiting.delete(node)) {
    for (const client of state.expected.get(node)!) state.dropped.add(client);
    return [...actions, ...closeIfNoneAwaited(state, rules, topology)];
  }
  // A switch further down: the switch above it stops waiting for these clients.
  return [...actions, ...beneath.flatMap((client) => dropClient(state, rules, topology, client, `is beneath ${node}, which went down`))];
}

/**
 * A selected client the model never reached will not report: the round stops waiting for it, as
 * for one that went down. It is not down: it checks in again once free (a busy one when done).
 */
export function onUndelivered(state: RoundState, rules: RoundRules, topology: Topology, event: Extract<Event, { type: 'undelivered' }>): Action[] {
  if (state.stage !== 'training' || event.round !== state.round || event.attempt !== state.attempt) return [];
  return dropClient(state, rules, topology, event.client, `did not take the model (${event.reason})`);
}

function dropClient(state: RoundState, rules: RoundRules, topology: Topology, client: string, why: string): Action[] {
  if (!state.selected.includes(client) || state.dropped.has(client)) return [];
  const reporter = [...state.expected].find(([, clients]) => clients.includes(client))![0];
  if (!state.awaiting.has(reporter)) return []; // its update is in already
  state.dropped.add(client);
  const actions: Action[] = [{ type: 'log', level: 'warn', message: `round ${state.round}: client ${client} ${why}; the round goes on without it` }];
  // A switch is still awaited: it may hold the update already, and forwards or says it has nothing.
  if (reporter !== client) actions.push({ type: 'drop-client', round: state.round, attempt: state.attempt, switch: reporter, client });
  else state.awaiting.delete(client);
  return [...actions, ...closeIfNoneAwaited(state, rules, topology)];
}

function closeIfNoneAwaited(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  return state.stage === 'training' && state.awaiting.size === 0 ? closeOrRetry(state, rules, topology) : [];
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
  const actions = enter(state, 'aggregation');
  const from = [...state.reported.keys()];
  const included = new Set([...state.reported.values()].flatMap((r) => r.clients));
  const missing = state.selected.filter((c) => !included.has(c));
  if (missing.length) actions.push({ type: 'log', level: 'warn', message: `round ${state.round}: no update from ${missing.join(', ')}` });
  actions.push({ type: 'aggregate', round: state.round, from, missing });
  return actions;
}
