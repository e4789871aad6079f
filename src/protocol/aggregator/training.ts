/**
 * Training: the switches under the aggregator learn which clients beneath them are in the round, the
 * model goes down, and each switch (or direct client) sends one update or says it has none. The round
 * closes when no one is left to wait for (all in, down, or withheld) or at its deadline: with enough
 * updates it goes on to closing, with too few it starts again.
 */
import { bundleRefusal, weightRefusal, type Weights } from '../weights';
import type { Action, Event, Refusal, Reported } from './events';
import { earlyCloseAt, quorum } from '../../config/quorum';
import { Phase, retryOrGiveUp, STAY, type RoundContext, type Step } from './phase';

type Report = Extract<Event, { type: 'report' | 'withheld' | 'declined' }>;

export class Training extends Phase {
  readonly stage = 'training';
  /** Who must report: a switch under the aggregator (for its selected clients) or a direct client (for itself). */
  private readonly expected = new Map<string, string[]>();
  /** Of those, who the round still waits for. */
  private readonly waitingFor: Set<string>;
  private readonly reported = new Map<string, Reported>();
  /** Selected clients the round stopped waiting for (down, or withheld by their switch). */
  private readonly dropped = new Set<string>();
  private readonly clients: string[];
  /** Each selected client's weight, from its check-in: the aggregator's, not what an update claims. */
  private readonly weights: ReadonlyMap<string, number>;
  /** The selected clients' samples: updates are pre-scaled by theirs over this. */
  private readonly samples: number;
  /** Under the straggler policy: enough clients are in, and the grace before closing has begun. */
  private graceStarted = false;

  constructor(ctx: RoundContext, attempt: string, selected: ReadonlyMap<string, number>) {
    super(ctx, attempt);
    this.clients = [...selected.keys()];
    this.weights = selected;
    this.samples = [...selected.values()].reduce((n, s) => n + s, 0) || 1;
    for (const client of this.clients) {
      const reporter = ctx.topology.reporterOf(client); // a direct client reports for itself
      this.expected.set(reporter, [...(this.expected.get(reporter) ?? []), client]);
    }
    this.waitingFor = new Set(this.expected.keys());
  }

  override get selected(): readonly string[] {
    return this.clients;
  }

  override get reports(): number {
    return this.reported.size;
  }

  override get awaiting(): readonly string[] {
    return [...this.waitingFor];
  }

  /** The deadline first: whatever happens to the sends below, the round cannot hang without one. */
  override enter(): Step {
    const { round, rules, members, topology } = this.ctx;
    const attempt = this.attempt;
    const actions: Action[] = [{ type: 'start-timer', phase: 'training', attempt, ms: rules.deadlineMs }, { type: 'configure-fit', round, attempt, selected: Object.fromEntries(this.weights) }];
    for (const [reporter, clients] of this.expected) {
      // a switch opens the round of the switches below it
      if (topology.isSwitch(reporter)) actions.push({ type: 'open-switch-round', round, attempt, switch: reporter, clients, weights: this.weightsOf(clients) });
    }
    const to = [...this.expected].map(([reporter, clients]) => ({ reporter, clients, weights: this.weightsOf(clients) }));
    actions.push({ type: 'send-model', round, attempt, to, samples: this.samples });
    const others = members.waiting();
    if (others.length) actions.push({ type: 'standby', round, attempt, clients: others });
    return { actions };
  }

  private weightsOf(clients: readonly string[]): Weights {
    return Object.fromEntries(clients.map((client) => [client, this.weights.get(client)!]));
  }

  handle(event: Event): Step {
    switch (event.type) {
      case 'report':
        return this.onReport(event);
      case 'withheld':
        return this.onWithheld(event);
      case 'undelivered':
        if (event.round !== this.ctx.round || event.attempt !== this.attempt) return STAY;
        return this.dropClient(event.client, `did not take the model (${event.reason})`);
      case 'declined':
        return this.dropClient(event.client, `cannot use the model: ${event.reason}`);
      case 'node-down':
        return this.onNodeDown(event.node);
      case 'deadline':
        return event.phase === 'training' && event.attempt === this.attempt ? this.closeOrRetry() : STAY;
      default:
        return STAY;
    }
  }

  override reportRefusal(event: Report): Refusal | undefined {
    const round = this.ctx.round;
    if (event.round !== round) return super.reportRefusal(event);
    if (event.attempt !== this.attempt) {
      return { type: 'refuse', status: 409, reason: `the message belongs to another opening of round ${event.round} (${event.attempt}, now ${this.attempt})` };
    }
    if (event.type === 'declined') {
      if (!this.clients.includes(event.client)) return { type: 'refuse', status: 403, reason: `${event.client} is not in round ${event.round}` };
      return undefined;
    }
    const clients = this.expected.get(event.from);
    if (!clients) return { type: 'refuse', status: 403, reason: `${event.from} has no clients in round ${event.round}` };
    if (this.reported.has(event.from)) return { type: 'refuse', status: 409, reason: `${event.from} already reported for round ${event.round}` };
    const strangers = event.clients.filter((c) => !clients.includes(c));
    const empty = event.type === 'report' && !event.clients.length;
    if (empty || strangers.length || new Set(event.clients).size !== event.clients.length) {
      const reason = `${event.from} can sum the updates of ${clients.join(', ')} in round ${event.round}, not of [${event.clients.join(', ')}]`;
      return { type: 'refuse', status: 400, reason };
    }
    if (event.type === 'report') {
      const assigned = this.weightsOf(event.clients);
      return weightRefusal(event.from, event.weight, assigned, this.ctx.topology.isClient(event.from) ? 'update' : 'sum') ?? bundleRefusal(event.from, event.updateWeights, assigned);
    }
    return undefined;
  }

  /** A report the machine found acceptable (reportRefusal). */
  private onReport(event: Extract<Event, { type: 'report' }>): Step {
    this.reported.set(event.from, { from: event.from, clients: [...event.clients], weight: event.weight });
    this.waitingFor.delete(event.from);
    // A client dropped a moment ago may still have made its switch's sum: then it is in.
    for (const client of event.clients) this.dropped.delete(client);
    const accepted: Action = { type: 'accept-report', round: event.round, attempt: this.attempt, from: event.from };
    return this.closeIfNoneAwaited([accepted]);
  }

  private onWithheld(event: Extract<Event, { type: 'withheld' }>): Step {
    if (!this.waitingFor.delete(event.from)) return STAY;
    for (const client of this.expected.get(event.from)!) this.dropped.add(client);
    return this.closeIfNoneAwaited([{ type: 'log', level: 'warn', message: `round ${this.ctx.round}: ${event.from} forwards nothing (${event.reason})` }]);
  }

  /**
   * A worker that went down mid-round will not report: the round stops waiting for it at once. A
   * selected client down is dropped from its switch's round, so the switch forwards without it. A
   * switch down takes the clients beneath it out of the round; they stand by, since the model it
   * relays may never have reached them (they check in again, and wait there until it is back).
   */
  private onNodeDown(node: string): Step {
    const { round, topology } = this.ctx;
    if (this.clients.includes(node)) return this.dropClient(node, 'went down');
    const beneath = this.clients.filter((c) => topology.chainOf(c).includes(node) && this.waitingFor.has(topology.reporterOf(c)));
    if (!beneath.length) return STAY;
    const actions: Action[] = [
      { type: 'log', level: 'warn', message: `round ${round}: ${node} went down; the round goes on without the clients beneath it (${beneath.join(', ')})` },
      { type: 'standby', round, attempt: this.attempt, clients: beneath },
    ];
    if (this.waitingFor.delete(node)) {
      for (const client of this.expected.get(node)!) this.dropped.add(client);
      return this.closeIfNoneAwaited(actions);
    }
    // A switch further down: the switch above it stops waiting for these clients.
    for (const client of beneath) {
      const step = this.dropClient(client, `is beneath ${node}, which went down`);
      actions.push(...step.actions);
      if (step.next) return { actions, next: step.next };
    }
    return { actions };
  }

  private dropClient(client: string, why: string): Step {
    if (!this.clients.includes(client) || this.dropped.has(client)) return STAY;
    const reporter = this.ctx.topology.reporterOf(client);
    if (!this.waitingFor.has(reporter)) return STAY; // its update is in already
    this.dropped.add(client);
    const { round } = this.ctx;
    const actions: Action[] = [{ type: 'log', level: 'warn', message: `round ${round}: client ${client} ${why}; the round goes on without it` }];
    // A switch is still awaited: it may hold the update already, and forwards or says it has nothing.
    if (reporter !== client) actions.push({ type: 'drop-client', round, attempt: this.attempt, switch: reporter, client });
    else this.waitingFor.delete(client);
    return this.closeIfNoneAwaited(actions);
  }

  private closeIfNoneAwaited(actions: Action[]): Step {
    if (this.waitingFor.size) return { actions: [...actions, ...this.graceIfEnough()] };
    const closing = this.closeOrRetry();
    return { actions: [...actions, ...closing.actions], next: closing.next };
  }

  /** Under the straggler policy, once enough of the round's clients are in: the round closes after the grace (as at its deadline), without the rest. */
  private graceIfEnough(): Action[] {
    const { round, rules } = this.ctx;
    // Never below the quorum (the config checks see to it; a round closed below it would only start again).
    const fewest = earlyCloseAt(this.clients.length, rules.stragglers);
    const early = fewest === undefined ? undefined : Math.max(fewest, quorum(this.clients.length, rules.minFraction));
    const included = new Set([...this.reported.values()].flatMap((r) => r.clients)).size;
    // Two reporters at least, where two are expected: one switch's word alone (its sum may lie about who is in it) does not cut the others short.
    const voices = this.reported.size >= Math.min(2, this.expected.size);
    if (early === undefined || this.graceStarted || included < early || !voices) return [];
    this.graceStarted = true;
    const grace = rules.stragglers!.grace_ms;
    return [
      { type: 'log', level: 'info', message: `round ${round}: ${included} of ${this.clients.length} clients in (${early} asked); closing in ${grace} ms without the rest` },
      { type: 'start-timer', phase: 'training', attempt: this.attempt, ms: grace },
    ];
  }

  /** Goes on to closing when enough of the selected clients are in the sum; otherwise the round starts again. */
  private closeOrRetry(): Step {
    const { round, rules } = this.ctx;
    const results = [...this.reported.values()];
    const included = new Set(results.flatMap((r) => r.clients));
    const needed = quorum(this.clients.length, rules.minFraction);
    if (included.size >= needed) {
      const missing = this.clients.filter((c) => !included.has(c));
      return { actions: [], next: { stage: 'closing', selected: this.clients, results, missing, samples: this.samples } };
    }
    const message = `round ${round}: ${included.size} of ${this.clients.length} updates arrived, ${needed} needed; the round starts again`;
    this.ctx.suspects.stalled();
    const retry = retryOrGiveUp(this.ctx, `${included.size} of ${this.clients.length} updates arrived, ${needed} needed`);
    return { actions: [{ type: 'log', level: 'warn', message }, ...retry.actions], next: retry.next };
  }
}
