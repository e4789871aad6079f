/** Aggregation done: evaluate, checkpoint, then the next round or the end. */
import { enter } from './phases';
import { beginSelection } from './selection';
import type { Action, RoundRules, RoundState, Topology } from './state';

export function onAggregated(state: RoundState, round: number): Action[] {
  if (state.stage !== 'aggregation' || round !== state.round) return [];
  return [...enter(state, 'evaluation'), { type: 'evaluate', round }];
}

export function onEvaluated(state: RoundState, round: number): Action[] {
  if (state.stage !== 'evaluation' || round !== state.round) return [];
  return [...enter(state, 'checkpoint'), { type: 'checkpoint', round }];
}

export function onCheckpointed(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'checkpoint' || round !== state.round) return [];
  if (state.round >= rules.rounds) return [...enter(state, 'done'), { type: 'finish' }];
  state.round++;
  state.retries = 0;
  return beginSelection(state, rules, topology);
}
