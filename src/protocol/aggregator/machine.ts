/**
 * The aggregator's round, as a state machine apart from IO: events in, actions out; the aggregator
 * role carries the actions out. The phases run in order each round: selection, training (the model
 * goes down, updates come back through the switches), closing (aggregate, evaluate, checkpoint, as
 * one sequence); then the next round. Each phase is its own type with its own state; this machine
 * keeps who can take part (Membership) across them, hands each event to the phase in force, and is
 * the one place that moves from one phase to the next.
 */
import type { Topology } from '../../topology/tree';
import { attemptId } from '../../wire/attempt';
import { Closing, Done } from './closing';
import type { Action, Event, Refusal, Stage } from './events';
import { Membership } from './membership';
import { checkTransition, type Next, type Phase, type RoundContext, type RoundRules, type Step } from './phase';
import { Idle, Selection } from './selection';
import { SuspectSearch } from './suspects';
import { Training } from './training';

export class RoundMachine {
  readonly members: Membership;
  private readonly ctx: RoundContext;
  private phase: Phase;

  constructor(
    readonly rules: RoundRules,
    readonly topology: Topology,
    /** The strategy's choice among the ready clients (see RoundContext.select). */
    select: RoundContext['select'],
    /** The round to start from (a resumed experiment starts after its last checkpoint). */
    firstRound = 1,
  ) {
    this.members = new Membership(topology);
    this.ctx = { rules, topology, members: this.members, suspects: new SuspectSearch(topology), select, round: firstRound, retries: 0 };
    this.phase = new Idle(this.ctx, '');
  }

  get stage(): Stage {
    return this.phase.stage;
  }

  get round(): number {
    return this.ctx.round;
  }

  /** How many times the round in hand was started again. */
  get retries(): number {
    return this.ctx.retries;
  }

  /** The opening of the round in hand: a message, a notice or a deadline of another is dropped. */
  get attempt(): string {
    return this.phase.attempt;
  }

  /** The round's clients, from the close of selection to the round's end. */
  get selected(): readonly string[] {
    return this.phase.selected;
  }

  /** Switches and direct clients that reported this round. */
  get reports(): number {
    return this.phase.reports;
  }

  /** Who the round still waits for, while it trains. */
  get awaiting(): readonly string[] {
    return this.phase.awaiting;
  }

  /** The refusal a check-in or a report would get now, without handling it (to check before storing or slow work). */
  refusalFor(event: Extract<Event, { type: 'checkin' | 'report' }>): Refusal | undefined {
    if (event.type === 'report') return this.phase.reportRefusal(event);
    if (!this.topology.isClient(event.client)) return { type: 'refuse', status: 403, reason: `${event.client} is not a client of this experiment` };
    // Failed: its role cannot work (the health checks bring it back once it runs anew), or it was left out for good.
    const health = this.members.healthOf(event.client);
    if (health?.state === 'failed') return { type: 'refuse', status: 403, reason: `${event.client} is out of the experiment: ${health.reason}` };
    return undefined;
  }

  handle(event: Event): Action[] {
    const early = this.membership(event);
    if (early !== undefined) return early;
    // A report or a notice the phase in force does not take is refused here, once, changing nothing.
    const refusal = (event.type === 'report' || event.type === 'withheld' || event.type === 'declined') && this.phase.reportRefusal(event);
    if (refusal) return [refusal];
    const step = this.phase.handle(event);
    return [...step.actions, ...this.advance(step.next)];
  }

  /** What every phase hears the same way: who is free, who went down, who came back; [] to stop here. */
  private membership(event: Event): Action[] | undefined {
    switch (event.type) {
      case 'checkin': {
        const refusal = this.refusalFor(event);
        if (refusal) return [refusal];
        this.members.checkIn(event.client, event.samples);
        return undefined;
      }
      case 'node-down':
        return this.members.down(event.node, event.reason, event.failed) ? undefined : [];
      case 'node-up':
        return this.members.up(event.node, event.reason, event.resumed) ? undefined : [];
      default:
        return undefined;
    }
  }

  /** Into the next phase (and the one after, when a phase hands over as it is entered). */
  private advance(next: Next | undefined): Action[] {
    const actions: Action[] = [];
    while (next) {
      checkTransition(this.phase.stage, next.stage);
      this.phase = this.build(next);
      // Leaving a phase voids every timer it set.
      const entered: Step = this.phase.enter();
      actions.push({ type: 'cancel-timers' }, ...entered.actions);
      next = entered.next;
    }
    return actions;
  }

  private build(next: Next): Phase {
    const { ctx } = this;
    switch (next.stage) {
      case 'selection':
        if (next.after === 'retry') ctx.retries++;
        if (next.after === 'round') [ctx.round, ctx.retries] = [ctx.round + 1, 0];
        return new Selection(ctx, attemptId(ctx.rules.session, ctx.round, ctx.retries));
      case 'training':
        return new Training(ctx, this.phase.attempt, next.selected);
      case 'closing':
        return new Closing(ctx, this.phase.attempt, next.selected, next.results, next.missing, next.samples);
      case 'done':
        return new Done(ctx, this.phase.attempt, this.phase.selected, this.phase.reports);
    }
  }
}
