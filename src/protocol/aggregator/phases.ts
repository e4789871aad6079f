/**
 * Which stage may follow which, in one place. Every stage change goes through `enter`, which voids
 * the timers of the stage being left: a deadline belongs to the phase and attempt that set it.
 */
import type { Action, RoundState, Stage } from './state';

export const TRANSITIONS: Readonly<Record<Stage, readonly Stage[]>> = {
  idle: ['selection', 'done'],
  selection: ['selection', 'training'], // selection again: a retried round waits anew
  training: ['aggregation', 'selection'], // back to selection: too few updates, the round starts again
  aggregation: ['evaluation'],
  evaluation: ['checkpoint'],
  checkpoint: ['selection', 'done'],
  done: [],
};

export function enter(state: RoundState, next: Stage): Action[] {
  if (!TRANSITIONS[state.stage].includes(next)) throw new Error(`round machine: no transition from ${state.stage} to ${next}`);
  state.stage = next;
  return [{ type: 'cancel-timers' }];
}

/** A message of another round or opening, or for a phase that is over, is dropped. */
export const isCurrent = (state: RoundState, stage: Stage, attempt: string) => state.stage === stage && state.attempt === attempt;
