/** Selection: clients check in; the first `goal` of them that can report make the round, the rest stand by. */
import { configureRound } from './configuration';
import { quorum, reachable, type Action, type RoundRules, type RoundState, type Topology } from './state';

export function beginSelection(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  state.stage = 'selection';
  state.selected = [];
  state.expected = new Map();
  state.reported = new Map();
  return selectIfReady(state, rules, topology) ?? [{ type: 'start-timer', timer: 'selection', round: state.round, ms: rules.deadlineMs }];
}

export function onCheckin(state: RoundState, rules: RoundRules, topology: Topology, client: string): Action[] {
  if (!topology.upstreamOf.has(client)) {
    return [{ type: 'refuse', status: 403, reason: `${client} is not a client of this experiment` }];
  }
  // A client checks in when it is free: at start, and after each update it sent (or gave up on).
  state.down.delete(client); // it answered: it is up, whatever the last health check said
  if (!state.pool.includes(client)) state.pool.push(client);
  return (state.stage === 'selection' && selectIfReady(state, rules, topology)) || [];
}

export function onSelectionDeadline(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'selection' || round !== state.round) return [];
  const needed = quorum(rules.goal, rules.minFraction);
  const ready = reachable(state, topology, state.pool).length;
  if (ready >= needed) return closeSelection(state, rules, topology);
  return [
    { type: 'log', level: 'warn', message: `round ${round}: ${ready} clients ready, ${needed} needed; still waiting` },
    { type: 'start-timer', timer: 'selection', round, ms: rules.deadlineMs },
  ];
}

/**
 * Closes selection once the goal count is ready, or, with workers down, every client that can still
 * report (never fewer than the quorum: below it the round waits for workers to come back).
 */
export function selectIfReady(state: RoundState, rules: RoundRules, topology: Topology): Action[] | undefined {
  const attainable = Math.min(rules.goal, reachable(state, topology, topology.upstreamOf.keys()).length);
  const needed = Math.max(attainable, quorum(rules.goal, rules.minFraction));
  return reachable(state, topology, state.pool).length >= needed ? closeSelection(state, rules, topology) : undefined;
}

function closeSelection(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  state.selected = reachable(state, topology, state.pool).slice(0, rules.goal);
  state.pool = state.pool.filter((client) => !state.selected.includes(client));
  const actions = configureRound(state, rules, topology);
  if (state.pool.length) actions.push({ type: 'standby', round: state.round, clients: [...state.pool] });
  return actions;
}
