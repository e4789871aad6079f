/** Workers going down and coming back, as the aggregator's health checks see them. */
import { onNodeDown } from './reporting';
import { selectIfReady } from './selection';
import type { Action, RoundRules, RoundState, Topology } from './state';

export function onDown(state: RoundState, rules: RoundRules, topology: Topology, node: string): Action[] {
  if (state.down.has(node)) return [];
  state.down.add(node);
  // A client that dies loses its check-in (it checks in again once started anew); one that only hung
  // keeps it, parked, for when it answers again.
  if (state.pool.includes(node)) state.parked.add(node);
  state.pool = state.pool.filter((client) => client !== node);
  if (state.stage === 'selection') return selectIfReady(state, rules, topology) ?? [];
  return onNodeDown(state, rules, topology, node);
}

export function onUp(state: RoundState, rules: RoundRules, topology: Topology, node: string, resumed = false): Action[] {
  const parked = state.parked.delete(node);
  if (!state.down.delete(node)) return [];
  if (parked && resumed && !state.pool.includes(node)) state.pool.push(node);
  // A switch back up makes its waiting clients selectable again.
  return (state.stage === 'selection' && selectIfReady(state, rules, topology)) || [];
}
