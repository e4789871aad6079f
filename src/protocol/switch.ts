/**
 * A switch's round, apart from IO: the aggregator opens it with the clients to expect, clients
 * report, and the switch forwards one sum when all are in or at its deadline.
 */

import { sessionOf } from './attempt';

export interface SwitchRoundState {
  stage: 'idle' | 'collecting' | 'forwarded';
  round: number;
  /** The aggregator's name for this opening of the round; updates must carry the same. */
  attempt: string;
  clients: string[];
  received: Set<string>;
}

export type SwitchEvent =
  | { type: 'open'; round: number; attempt: string; clients: string[]; deadlineMs: number }
  | { type: 'update'; round: number; attempt: string; from: string }
  | { type: 'deadline'; round: number };

export type SwitchAction =
  | { type: 'start-timer'; round: number; ms: number }
  | { type: 'reset-buffer'; round: number }
  | { type: 'accept'; round: number; from: string }
  | { type: 'refuse'; status: number; reason: string }
  | { type: 'forward'; round: number; from: string[]; missing: string[] }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export class SwitchMachine {
  readonly state: SwitchRoundState = { stage: 'idle', round: 0, attempt: '', clients: [], received: new Set() };

  constructor(
    /** Every client that reports through this switch. */
    private readonly members: readonly string[],
  ) {}

  handle(event: SwitchEvent): SwitchAction[] {
    switch (event.type) {
      case 'open':
        return this.open(event.round, event.attempt, event.clients, event.deadlineMs);
      case 'update':
        return this.update(event.round, event.attempt, event.from);
      case 'deadline':
        return this.deadline(event.round);
    }
  }

  private open(round: number, attempt: string, clients: string[], deadlineMs: number): SwitchAction[] {
    const strangers = clients.filter((c) => !this.members.includes(c));
    if (strangers.length) return [{ type: 'refuse', status: 400, reason: `not clients of this switch: ${strangers.join(', ')}` }];
    if (!clients.length) return [{ type: 'refuse', status: 400, reason: 'a round needs at least one client' }];
    const { state } = this;
    // The same round may be opened again (a retry), and an aggregator started again may begin anew.
    if (round < state.round && sessionOf(attempt) === sessionOf(state.attempt)) {
      return [{ type: 'refuse', status: 409, reason: `round ${round} is older than round ${state.round}` }];
    }
    const actions: SwitchAction[] = [];
    if (state.stage === 'collecting' && state.round !== round) {
      actions.push({ type: 'log', level: 'warn', message: `round ${state.round} abandoned: the aggregator opened round ${round}` });
    }
    Object.assign(state, { stage: 'collecting', round, attempt, clients: [...clients], received: new Set() });
    actions.push({ type: 'reset-buffer', round }, { type: 'start-timer', round, ms: deadlineMs });
    return actions;
  }

  /** The refusal an update would get now, without taking it; undefined when it would be taken. */
  refusalFor(round: number, attempt: string, from: string): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const { state } = this;
    if (!this.members.includes(from)) return { type: 'refuse', status: 403, reason: `${from} is not a client of this switch` };
    if (state.stage !== 'collecting' || round !== state.round) {
      return { type: 'refuse', status: 409, reason: `round ${round} is not open here (this switch is in round ${state.round}, ${state.stage})` };
    }
    if (attempt !== state.attempt) {
      return { type: 'refuse', status: 409, reason: `the update belongs to an earlier opening of round ${round} (${attempt}, now ${state.attempt})` };
    }
    if (!state.clients.includes(from)) return { type: 'refuse', status: 403, reason: `${from} was not selected for round ${round}` };
    if (state.received.has(from)) return { type: 'refuse', status: 409, reason: `${from} already sent its update for round ${round}` };
    return undefined;
  }

  private update(round: number, attempt: string, from: string): SwitchAction[] {
    const refusal = this.refusalFor(round, attempt, from);
    if (refusal) return [refusal];
    const { state } = this;
    state.received.add(from);
    const actions: SwitchAction[] = [{ type: 'accept', round, from }];
    if (state.received.size === state.clients.length) actions.push(...this.forward());
    return actions;
  }

  private deadline(round: number): SwitchAction[] {
    const { state } = this;
    if (state.stage !== 'collecting' || round !== state.round) return [];
    if (state.received.size === 0) {
      state.stage = 'forwarded';
      return [{ type: 'log', level: 'warn', message: `round ${round}: no client reported by the deadline; nothing to forward` }];
    }
    return this.forward();
  }

  private forward(): SwitchAction[] {
    const { state } = this;
    state.stage = 'forwarded';
    const from = [...state.received].sort();
    const missing = state.clients.filter((c) => !state.received.has(c));
    const actions: SwitchAction[] = [];
    if (missing.length) actions.push({ type: 'log', level: 'warn', message: `round ${state.round}: forwarding without ${missing.join(', ')}` });
    actions.push({ type: 'forward', round: state.round, from, missing });
    return actions;
  }
}
