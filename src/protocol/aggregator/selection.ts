/** Selection: clients check in; the first `goal` of them make the round, the rest stand by. */
import { configureRound } from './configuration';
import { quorum, type Action, type RoundRules, type RoundState, type Topology } from './state';

export function beginSelection(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  state.stage = 'selection';
  state.selected = [];
  state.expected = new Map();
  state.reported = new Map();
  if (state.pool.length >= rules.goal) return closeSelection(state, rules, topology);
  return [{ type: 'start-timer', timer: 'selection', round: state.round, ms: rules.deadlineMs }];
}

export function onCheckin(state: RoundState, rules: RoundRules, topology: Topology, client: string): Action[] {
  if (!topology.upstreamOf.has(client)) {
    return [{ type: 'refuse', status: 403, reason: `${client} is not a client of this experiment` }];
  }
  // A client checks in when it is free: at start, and after each update it sent (or gave up on).
  if (!state.pool.includes(client)) state.pool.push(client);
  if (state.stage === 'selection' && state.pool.length >= rules.goal) return closeSelection(state, rules, topology);
  return [];
}

export function onSelectionDeadline(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'selection' || round !== state.round) return [];
  const needed = quorum(rules.goal, rules.minFraction);
  if (state.pool.length >= needed) return closeSelection(state, rules, topology);
  return [
    { type: 'log', level: 'warn', message: `round ${round}: ${state.pool.length} clients ready, ${needed} needed; still waiting` },
    { type: 'start-timer', timer: 'selection', round, ms: rules.deadlineMs },
  ];
}

function closeSelection(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  state.selected = state.pool.slice(0, rules.goal);
  state.pool = state.pool.slice(rules.goal);
  const actions = configureRound(state, rules, topology);
  if (state.pool.length) actions.push({ type: 'standby', round: state.round, clients: [...state.pool] });
  return actions;
}
