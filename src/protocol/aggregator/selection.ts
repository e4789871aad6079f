/** Selection: clients check in; once enough can report, the strategy picks the round's clients; the rest stand by. */
import { attemptId } from '../attempt';
import { configureRound } from './configuration';
import { enter, isCurrent } from './phases';
import { quorum, reachable, type Action, type RoundRules, type RoundState, type Topology } from './state';

export function beginSelection(state: RoundState, rules: RoundRules, topology: Topology): Action[] {
  const actions = enter(state, 'selection');
  state.attempt = attemptId(rules.session ?? '', state.round, state.retries);
  state.selected = [];
  state.expected = new Map();
  state.awaiting = new Set();
  state.reported = new Map();
  state.dropped = new Set();
  return [...actions, ...(selectIfReady(state, rules, topology) ?? [deadline(state, rules)])];
}

const deadline = (state: RoundState, rules: RoundRules): Action => ({ type: 'start-timer', phase: 'selection', attempt: state.attempt, ms: rules.deadlineMs });

export function onCheckin(state: RoundState, rules: RoundRules, topology: Topology, client: string): Action[] {
  if (!topology.upstreamOf.has(client)) {
    return [{ type: 'refuse', status: 403, reason: `${client} is not a client of this experiment` }];
  }
  // A client checks in when it is free: at start, and after each update it sent (or gave up on).
  state.down.delete(client); // it answered: it is up, whatever the last health check said
  state.parked.delete(client);
  if (!state.pool.includes(client)) state.pool.push(client);
  return (state.stage === 'selection' && selectIfReady(state, rules, topology)) || [];
}

export function onSelectionDeadline(state: RoundState, rules: RoundRules, topology: Topology, attempt: string): Action[] {
  if (!isCurrent(state, 'selection', attempt)) return [];
  const needed = quorum(rules.goal, rules.minFraction);
  const ready = reachable(state, topology, state.pool);
  if (ready.length >= needed) return closeSelection(state, rules, topology);
  const missing = [...topology.upstreamOf.keys()].filter((client) => !ready.includes(client));
  return [{ type: 'waiting', round: state.round, ready: ready.length, needed, missing }, deadline(state, rules)];
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
  const ready = reachable(state, topology, state.pool);
  const chosen = rules.select ? rules.select(state.round, ready, rules.goal) : ready.slice(0, rules.goal);
  // Whatever the strategy says, a round takes only ready clients, each once, at most the goal.
  state.selected = [...new Set(chosen)].filter((client) => ready.includes(client)).slice(0, rules.goal);
  state.pool = state.pool.filter((client) => !state.selected.includes(client));
  const actions = configureRound(state, rules, topology);
  if (state.pool.length) actions.push({ type: 'standby', round: state.round, clients: [...state.pool] });
  return actions;
}
