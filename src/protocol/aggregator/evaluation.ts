/** Aggregation done: evaluate, checkpoint, then the next round or the end. */
import { beginSelection } from './selection';
import type { Action, RoundRules, RoundState, Topology } from './state';

export function onAggregated(state: RoundState, round: number): Action[] {
  if (state.stage !== 'aggregation' || round !== state.round) return [];
  state.stage = 'evaluation';
  return [{ type: 'evaluate', round }];
}

export function onEvaluated(state: RoundState, round: number): Action[] {
  if (state.stage !== 'evaluation' || round !== state.round) return [];
  state.stage = 'checkpoint';
  return [{ type: 'checkpoint', round }];
}

export function onCheckpointed(state: RoundState, rules: RoundRules, topology: Topology, round: number): Action[] {
  if (state.stage !== 'checkpoint' || round !== state.round) return [];
  if (state.round >= rules.rounds) {
    state.stage = 'done';
    return [{ type: 'finish' }];
  }
  state.round++;
  state.retries = 0;
  return beginSelection(state, rules, topology);
}
