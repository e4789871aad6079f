/**
 * A switch's round, apart from IO: the switch above it (or the aggregator) opens it with the
 * clients to expect; the switch opens the round of each switch below it that has some of them.
 * Clients report, switches below send their sums (naming the clients in them) or say they have
 * none, the aggregator drops a client that went down; the switch forwards one sum when no one is
 * left to wait for, or at its deadline. With too few updates it forwards nothing and says so.
 */

import { earlyCloseAt } from '../config/quorum';
import type { StragglerPolicy } from '../config/schema';
import type { Topology } from '../topology/tree';
import { retryOf, sessionOf } from '../wire/attempt';
import { bundleRefusal, weightRefusal, type Weights } from './weights';

export interface SwitchRoundState {
  stage: 'idle' | 'collecting' | 'forwarded';
  round: number;
  /** The aggregator's name for this opening of the round; updates, drops and deadlines must carry the same. */
  attempt: string;
  /** The clients still expected (those dropped, or given up with the switch below them, are gone from here). */
  clients: string[];
  /** Clients whose update is in the sum: their own, or in the sum of a switch below. */
  received: Set<string>;
  /** Switches below that sent their sum or said they have none. */
  heard: Set<string>;
}

export type SwitchEvent =
  /** `weights`: each client's weight, as the aggregator assigned it; updates and sums must weigh the same. */
  | { type: 'open'; round: number; attempt: string; clients: string[]; weights: Weights; deadlineMs: number }
  /** `clients`: those a switch below names in its sum; a client's own update leaves it out. `weight`: what it says it weighs. */
  | { type: 'update'; round: number; attempt: string; from: string; weight: number; clients?: string[]; updateWeights?: Weights }
  /** The aggregator saw this client go down (or it did not take the model): the round stops waiting for it. */
  | { type: 'drop'; round: number; attempt: string; client: string; why?: string }
  /** A switch below has nothing to send: it said so, or its round or model did not reach it. */
  | { type: 'withheld'; round: number; attempt: string; from: string; reason: string }
  | { type: 'deadline'; attempt: string };

export type SwitchAction =
  | { type: 'start-timer'; attempt: string; ms: number }
  /** A new opening of a round: what was summed for the last one is void. */
  | { type: 'opened'; round: number }
  | { type: 'accept'; round: number; from: string }
  | { type: 'refuse'; status: number; reason: string }
  | { type: 'forward'; round: number; attempt: string; from: string[]; missing: string[] }
  /** Nothing goes up this round; the aggregator is told why, so it need not wait for this switch. */
  | { type: 'withhold'; round: number; attempt: string; from: string[]; missing: string[]; reason: string }
  | { type: 'open-below'; round: number; attempt: string; switch: string; clients: string[]; weights: Weights }
  /** The switch below holding this client's update is told to stop waiting for it. */
  | { type: 'drop-below'; round: number; attempt: string; switch: string; client: string }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

/**
 * The fewest updates a switch forwards: holding the HE key, the aggregator must never be handed one
 * client's update alone (a switch above it can only add), so a switch under it forwards two or none.
 */
export const leastToForward = (he: { enabled: boolean; key_holder: string }, reportsToAggregator: boolean): number =>
  he.enabled && he.key_holder === 'aggregator' && reportsToAggregator ? 2 : 1;

export class SwitchMachine {
  readonly state: SwitchRoundState = { stage: 'idle', round: 0, attempt: '', clients: [], received: new Set(), heard: new Set() };
  /** The selected clients of the round, dropped or not (a drop arriving after the update changes nothing). */
  private selected: string[] = [];
  /** Their weights, as the aggregator assigned them. */
  private weights: Weights = {};
  /** Under the straggler policy: enough of the round's clients are in, and the grace before forwarding has begun. */
  private graceStarted = false;

  constructor(
    /** The tree beneath this switch, rooted at it. */
    private readonly topology: Topology,
    /**
     * Fewer updates than this are never forwarded: when the aggregator holds the HE key, one update
     * alone would let it decrypt one client's weights.
     */
    private readonly minUpdates = 1,
    /** The deadline policy for stragglers: forward once enough clients are in and a grace has passed. */
    private readonly stragglers?: StragglerPolicy,
  ) {}

  handle(event: SwitchEvent): SwitchAction[] {
    switch (event.type) {
      case 'open':
        return this.open(event);
      case 'update':
        return this.update(event);
      case 'drop':
        return this.drop(event.round, event.attempt, event.client, event.why ?? 'down');
      case 'withheld':
        return this.withheld(event.round, event.attempt, event.from, event.reason);
      case 'deadline':
        return this.deadline(event.attempt);
    }
  }

  /** The selected clients beneath a switch below (none for any other name). */
  selectedBelow(sw: string): string[] {
    if (!this.topology.isSwitchBelowRoot(sw)) return [];
    return this.selected.filter((c) => this.topology.reporterOf(c) === sw);
  }

  /** The selected clients that report to this switch itself. */
  selectedHere(): string[] {
    return this.selected.filter((c) => this.topology.reportsToRoot(c));
  }

  /** The switches below with selected clients beneath them. */
  switchesInRound(): string[] {
    return this.topology.childrenOf(this.topology.root).filter((sw) => this.topology.isSwitchBelowRoot(sw) && this.selectedBelow(sw).length);
  }

  private open({ round, attempt, clients, weights, deadlineMs }: Extract<SwitchEvent, { type: 'open' }>): SwitchAction[] {
    const strangers = clients.filter((c) => !this.topology.isClient(c));
    if (strangers.length) return [{ type: 'refuse', status: 400, reason: `not clients of this switch, nor beneath it: ${strangers.join(', ')}` }];
    if (!clients.length) return [{ type: 'refuse', status: 400, reason: 'a round needs at least one client' }];
    const { state } = this;
    // The same opening again (a resend after a timeout that had reached it) changes nothing: one sum goes up.
    if (attempt === state.attempt && state.stage !== 'idle') {
      const same = clients.length === this.selected.length && clients.every((c) => this.selected.includes(c) && weights[c] === this.weights[c]);
      return same ? [] : [{ type: 'refuse', status: 409, reason: `${attempt} is open here already, with other clients or weights` }];
    }
    // The same round may be opened again (a retry), and an aggregator started again may begin anew.
    if (sessionOf(attempt) === sessionOf(state.attempt)) {
      if (round < state.round) return [{ type: 'refuse', status: 409, reason: `round ${round} is older than round ${state.round}` }];
      // Two openings of a round sent down one after the other may arrive the other way round.
      if (round === state.round && retryOf(attempt) < retryOf(state.attempt)) {
        return [{ type: 'refuse', status: 409, reason: `${attempt} is an earlier opening of round ${round} than ${state.attempt}` }];
      }
    }
    const actions: SwitchAction[] = [];
    if (state.stage === 'collecting' && state.round !== round) {
      actions.push({ type: 'log', level: 'warn', message: `round ${state.round} abandoned: round ${round} was opened` });
    }
    Object.assign(state, { stage: 'collecting', round, attempt, clients: [...clients], received: new Set(), heard: new Set() });
    this.selected = [...clients];
    this.weights = Object.fromEntries(clients.map((c) => [c, weights[c]]));
    this.graceStarted = false;
    actions.push({ type: 'opened', round }, { type: 'start-timer', attempt, ms: deadlineMs });
    for (const sw of this.switchesInRound()) {
      const below = this.selectedBelow(sw);
      actions.push({ type: 'open-below', round, attempt, switch: sw, clients: below, weights: this.weightsOf(below) });
    }
    return actions;
  }

  /** The weights the aggregator assigned `clients`. */
  weightsOf(clients: readonly string[]): Weights {
    return Object.fromEntries(clients.map((c) => [c, this.weights[c]]));
  }

  /** The refusal an update would get now, without taking it; undefined when it would be taken. */
  refusalFor(update: Omit<Extract<SwitchEvent, { type: 'update' }>, 'type'>): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const { round, attempt, from, weight } = update;
    const { state } = this;
    if (this.topology.isSwitchBelowRoot(from)) {
      const named = update.clients ?? [];
      return this.sumRefusal(round, attempt, from, named) ?? weightRefusal(from, weight, this.weightsOf(named), 'sum') ?? bundleRefusal(from, update.updateWeights, this.weightsOf(named));
    }
    if (!this.topology.isClient(from) || !this.topology.reportsToRoot(from)) return { type: 'refuse', status: 403, reason: `${from} is not a client of this switch, nor a switch below it` };
    const openRefusal = this.notOpen(round, attempt);
    if (openRefusal) return openRefusal;
    if (!this.selected.includes(from)) return { type: 'refuse', status: 403, reason: `${from} was not selected for round ${round}` };
    if (!state.clients.includes(from)) return { type: 'refuse', status: 409, reason: `${from} was dropped from round ${round} (it went down, or did not take the model)` };
    if (state.received.has(from)) return { type: 'refuse', status: 409, reason: `${from} already sent its update for round ${round}` };
    return weightRefusal(from, weight, this.weightsOf([from]));
  }

  private sumRefusal(round: number, attempt: string, from: string, named: string[]): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const openRefusal = this.notOpen(round, attempt);
    if (openRefusal) return openRefusal;
    const beneath = this.selectedBelow(from);
    if (!beneath.length) return { type: 'refuse', status: 403, reason: `${from} has no clients in round ${round}` };
    if (this.state.heard.has(from)) return { type: 'refuse', status: 409, reason: `${from} already reported for round ${round}` };
    if (!named.length || named.some((c) => !beneath.includes(c)) || new Set(named).size !== named.length) {
      return { type: 'refuse', status: 400, reason: `${from} can sum the updates of ${beneath.join(', ')} in round ${round}, not of [${named.join(', ')}]` };
    }
    return undefined;
  }

  private notOpen(round: number, attempt: string): Extract<SwitchAction, { type: 'refuse' }> | undefined {
    const { state } = this;
    if (state.stage !== 'collecting' || round !== state.round) {
      return { type: 'refuse', status: 409, reason: `round ${round} is not open here (this switch is in round ${state.round}, ${state.stage})` };
    }
    if (attempt !== state.attempt) {
      return { type: 'refuse', status: 409, reason: `the message belongs to another opening of round ${round} (${attempt}, now ${state.attempt})` };
    }
    return undefined;
  }

  private update(event: Extract<SwitchEvent, { type: 'update' }>): SwitchAction[] {
    const { round, from, clients: named } = event;
    const refusal = this.refusalFor(event);
    if (refusal) return [refusal];
    const { state } = this;
    if (this.topology.isSwitchBelowRoot(from)) {
      const beneath = this.topology.clientsBeneath(from);
      // The clients beneath it that are not in its sum will not come; one dropped a moment ago that made it is in.
      state.heard.add(from);
      state.clients = [...state.clients.filter((c) => !beneath.includes(c)), ...named!];
      for (const client of named!) state.received.add(client);
    } else {
      state.received.add(from);
    }
    return [{ type: 'accept', round, from }, ...this.closeIfComplete()];
  }

  private withheld(round: number, attempt: string, from: string, reason: string): SwitchAction[] {
    const refusal = this.notOpen(round, attempt);
    if (refusal) return [refusal];
    if (!this.selectedBelow(from).length) return [{ type: 'refuse', status: 403, reason: `${from} has no clients in round ${round}` }];
    const { state } = this;
    if (state.heard.has(from)) return [];
    state.heard.add(from);
    state.clients = state.clients.filter((c) => this.topology.reporterOf(c) !== from);
    return [{ type: 'log', level: 'warn', message: `round ${round}: ${from} sends nothing (${reason})` }, ...this.closeIfComplete()];
  }

  private drop(round: number, attempt: string, client: string, why: string): SwitchAction[] {
    const refusal = this.notOpen(round, attempt);
    if (refusal) return [refusal];
    const { state } = this;
    if (!this.selected.includes(client)) return [{ type: 'refuse', status: 400, reason: `${client} is not in round ${round} here` }];
    if (state.received.has(client) || !state.clients.includes(client)) return []; // its update is in, or it was dropped already
    state.clients = state.clients.filter((c) => c !== client);
    const actions: SwitchAction[] = [{ type: 'log', level: 'info', message: `round ${round}: ${client} dropped (${why}); not waiting for it` }];
    const sw = this.topology.reporterOf(client);
    if (sw !== client && !state.heard.has(sw)) actions.push({ type: 'drop-below', round, attempt, switch: sw, client });
    return [...actions, ...this.closeIfComplete()];
  }

  private closeIfComplete(): SwitchAction[] {
    const { state } = this;
    return state.clients.every((c) => state.received.has(c)) ? this.close() : this.graceIfEnough();
  }

  /** Under the straggler policy, once enough of the round's clients are in: forward after the grace (as at the deadline), without the rest. */
  private graceIfEnough(): SwitchAction[] {
    const early = earlyCloseAt(this.selected.length, this.stragglers);
    const { state } = this;
    // Two reporters at least (its own clients, switches below), where two are in the round: one switch's sum alone does not cut the others short.
    const reporters = [...state.received].filter((c) => this.topology.reportsToRoot(c)).length + state.heard.size;
    const voices = reporters >= Math.min(2, this.selectedHere().length + this.switchesInRound().length);
    if (early === undefined || this.graceStarted || state.received.size < Math.max(early, this.minUpdates) || !voices) return [];
    this.graceStarted = true;
    const grace = this.stragglers!.grace_ms;
    return [
      { type: 'log', level: 'info', message: `round ${state.round}: ${state.received.size} of ${this.selected.length} clients in (${early} asked); forwarding in ${grace} ms without the rest` },
      { type: 'start-timer', attempt: state.attempt, ms: grace },
    ];
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
