/**
 * A switch's round, apart from IO: the aggregator opens it with the clients to expect, clients
 * report (or the aggregator drops one that went down), and the switch forwards one sum when no
 * one is left to wait for, or at its deadline. With too few updates it forwards nothing and says so.
 */

import { sessionOf } from './attempt';

export interface SwitchRoundState {
  stage: 'idle' | 'collecting' | 'forwarded';
  round: number;
  /** The aggregator's name for this opening of the round; updates, drops and deadlines must carry the same. */
  attempt: string;
  /** The clients still expected (those dropped by the aggregator are gone from here). */
  clients: string[];
  received: Set<string>;
}

export type SwitchEvent =
  | { type: 'open'; round: number; attempt: string; clients: string[]; deadlineMs: number }
  | { type: 'update'; round: number; attempt: string; from: string }
  /** The aggregator saw this client go down: the round stops waiting for it. */
  | { type: 'drop'; round: number; attempt: string; client: string }
  | { type: 'deadline'; attempt: string };

export type SwitchAction =
  | { type: 'start-timer'; attempt: string; ms: number }
  | { type: 'reset-buffer'; round: number }
  | { type: 'accept'; round: number; from: string }
  | { type: 'refuse'; status: number; reason: string }
  | { type: 'forward'; round: number; attempt: string; from: string[]; missing: string[] }
  /** Nothing goes up this round; the aggregator is told why, so it need not wait for this switch. */
  | { type: 'withhold'; round: number; attempt: string; from: string[]; missing: string[]; reason: string }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export class SwitchMachine {
  readonly state: SwitchRoundState = { stage: 'idle', round: 0, attempt: '', clients: [], received: new Set() };
  /** The selected clients of the round, dropped or not (a drop arriving after the update changes nothing). */
  private selected: string[] = [];

  constructor(
    /** Every client that reports through this switch. */
    private readonly members: readonly string[],
    /**
     * Fewer updates than this are never forwarded: when the aggregator holds the HE key, one update
     * alone would let it decrypt one client's weights.
     */
    private readonly minUpdates = 1,
  ) {}

  handle(event: SwitchEvent): SwitchAction[] {
    switch (event.type) {
      case 'open':
        return this.open(event.round, event.attempt, event.clients, event.deadlineMs);
      case 'update':
        return this.update(event.round, event.attempt, event.from);
      case 'drop':
        return this.drop(event.round, event.attempt, event.client);
      case 'deadline':
        return this.deadline(event.attempt);
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
    this.selected = [...clients];
    actions.push({ type: 'reset-buffer', round }, { type: 'start-timer', attempt, ms: deadlineMs });
    return actions;
  }

  /** The refusal an update would get now, without taking it; undefined when it would be taken. */
  refusalFor(round: number, attempt: string, from: string): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const { state } = this;
    if (!this.members.includes(from)) return { type: 'refuse', status: 403, reason: `${from} is not a client of this switch` };
    const openRefusal = this.notOpen(round, attempt);
    if (openRefusal) return openRefusal;
    if (!this.selected.includes(from)) return { type: 'refuse', status: 403, reason: `${from} was not selected for round ${round}` };
    if (!state.clients.includes(from)) return { type: 'refuse', status: 409, reason: `${from} was dropped from round ${round} (the aggregator saw it go down)` };
    if (state.received.has(from)) return { type: 'refuse', status: 409, reason: `${from} already sent its update for round ${round}` };
    return undefined;
  }

  private notOpen(round: number, attempt: string): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const { state } = this;
    if (state.stage !== 'collecting' || round !== state.round) {
      return { type: 'refuse', status: 409, reason: `round ${round} is not open here (this switch is in round ${state.round}, ${state.stage})` };
    }
    if (attempt !== state.attempt) {
      return { type: 'refuse', status: 409, reason: `the message belongs to an earlier opening of round ${round} (${attempt}, now ${state.attempt})` };
    }
    return undefined;
  }

  private update(round: number, attempt: string, from: string): SwitchAction[] {
    const refusal = this.refusalFor(round, attempt, from);
    if (refusal) return [refusal];
    this.state.received.add(from);
    return [{ type: 'accept', round, from }, ...this.closeIfComplete()];
  }

  private drop(round: number, attempt: string, client: string): SwitchAction[] {
    const refusal = this.notOpen(round, attempt);
    if (refusal) return [refusal];
    const { state } = this;
    if (!this.selected.includes(client)) return [{ type: 'refuse', status: 400, reason: `${client} is not in round ${round} here` }];
    if (state.received.has(client) || !state.clients.includes(client)) return []; // its update is in, or it was dropped already
    state.clients = state.clients.filter((c) => c !== client);
    return [{ type: 'log', level: 'info', message: `round ${round}: ${client} dropped (down); not waiting for it` }, ...this.closeIfComplete()];
  }

  private closeIfComplete(): SwitchAction[] {
    const { state } = this;
    return state.received.size === state.clients.length ? this.close() : [];
  }

  private deadline(attempt: string): SwitchAction[] {
    const { state } = this;
    if (state.stage !== 'collecting' || attempt !== state.attempt) return []; // a timer of an opening that is over
    return this.close();
  }

  private close(): SwitchAction[] {
    const { state } = this;
    state.stage = 'forwarded';
    const from = [...state.received].sort();
    const missing = this.selected.filter((c) => !state.received.has(c));
    const { round, attempt } = state;
    if (from.length < this.minUpdates) {
      const reason = from.length ? `only ${from.length} update arrived, ${this.minUpdates} needed to forward a sum` : 'no client reported';
      return [{ type: 'log', level: 'warn', message: `round ${round}: ${reason}; nothing to forward` }, { type: 'withhold', round, attempt, from, missing, reason }];
    }
    const actions: SwitchAction[] = [];
    if (missing.length) actions.push({ type: 'log', level: 'warn', message: `round ${round}: forwarding without ${missing.join(', ')}` });
    actions.push({ type: 'forward', round, attempt, from, missing });
    return actions;
  }
}
