/**
 * What the aggregator's phases share, and which phase may follow which. Each phase is a type of its
 * own with its own state (selection.ts, training.ts, closing.ts); it handles the events that
 * concern it and says which phase comes next. The machine (machine.ts) is the one place that builds
 * the next phase, after checking the move against TRANSITIONS.
 */
import { quorum } from '../../config/quorum';
import type { StragglerPolicy } from '../../config/schema';
import type { Topology } from '../../topology/tree';
import type { Action, Event, Opening, Refusal, Reported, Stage } from './events';
import type { Membership } from './membership';
import type { BenchRoom, SuspectSearch } from './suspects';

export interface RoundRules {
  rounds: number;
  /** How many clients a round selects at most. */
  goal: number;
  /**
   * Under over-selection (stragglers.over_select), how many it needs: selection closes once this many
   * are ready, taking every ready one up to `goal`, rather than wait for a slow client still busy
   * with the last round. Absent: the goal.
   */
  wanted?: number;
  /** The share of selected clients whose updates must arrive for a round to count. */
  minFraction: number;
  /** How long selection and training may each take before the round goes on without the rest. */
  deadlineMs: number;
  /** Names this run of the aggregator (a restart gets a new one); part of every attempt id. */
  session: string;
  /** The fewest updates a switch under the aggregator forwards (protocol/switch.ts); 1 when absent. */
  leastPerSwitch?: number;
  /** The deadline policy for stragglers: close once enough clients are in and a grace has passed. */
  stragglers?: StragglerPolicy;
}

/** What every phase reads. */
export interface RoundContext {
  readonly rules: RoundRules;
  readonly topology: Topology;
  readonly members: Membership;
  /** Who spoils the sums, when some cannot be read; its bench sits the next opening out. */
  readonly suspects: SuspectSearch;
  /**
   * Which of the ready clients (in check-in order) make the round, at most `goal`: the strategy's
   * choice. The round takes only ready clients, each once, whatever it returns.
   */
  readonly select: (round: number, ready: readonly string[], goal: number) => string[];
  round: number;
  /** How many times this round was started again after too few updates came in. */
  retries: number;
}

/** The phase that comes next, described; the machine builds it. */
export type Next =
  /** `after`: the experiment starts, the round starts again (too few updates), or the next round begins. */
  | { stage: 'selection'; after: 'start' | 'retry' | 'round' }
  /** The selected clients, with the samples each said it holds. */
  | { stage: 'training'; selected: ReadonlyMap<string, number> }
  | { stage: 'closing'; selected: readonly string[]; results: Reported[]; missing: string[]; samples: number }
  | { stage: 'done' };

export interface Step {
  actions: Action[];
  next?: Next;
}

export const STAY: Step = { actions: [] };

/** Which phase may follow which. */
export const TRANSITIONS: Readonly<Record<Stage, readonly Stage[]>> = {
  idle: ['selection'],
  selection: ['training'],
  training: ['closing', 'selection'], // back to selection: too few updates, the round starts again
  closing: ['selection', 'done'],
  done: [],
};

export function checkTransition(from: Stage, to: Stage): void {
  if (!TRANSITIONS[from].includes(to)) throw new Error(`round machine: no transition from ${from} to ${to}`);
}

export abstract class Phase {
  abstract readonly stage: Stage;

  constructor(
    protected readonly ctx: RoundContext,
    /** The opening of the round this phase belongs to ('' before the first). */
    readonly attempt: string,
  ) {}

  /** What entering this phase does; it may hand over to the next at once. */
  enter(): Step {
    return STAY;
  }

  abstract handle(event: Event): Step;

  /** The clients of the round in hand (none before selection closes). */
  get selected(): readonly string[] {
    return [];
  }

  /** Who reported so far: switches and direct clients. */
  get reports(): number {
    return 0;
  }

  /** Who the round still waits for. */
  get awaiting(): readonly string[] {
    return [];
  }

  /** The refusal a report or a withheld notice gets now; only training takes any. */
  reportRefusal(event: Opening): Refusal | undefined {
    return notOpen(event, this.ctx.round, this.stage);
  }
}

export function notOpen(event: Opening, round: number, stage: Stage): Refusal {
  const when = event.round < round || stage !== 'training' ? 'is over or not open' : 'has not started';
  return { type: 'refuse', status: 409, reason: `round ${event.round} ${when} (the aggregator is in round ${round}, ${stage})` };
}


/**
 * How many times one round may be opened again before the experiment gives up on it, saying why:
 * enough for the suspect search to halve the clients down to one, twice over, and some failures more.
 */
export const retryLimit = (clients: number) => 8 + 2 * Math.ceil(Math.log2(Math.max(2, clients)));

/** The round opens again, or, opened too often already, the experiment ends with why. */
export function retryOrGiveUp(ctx: RoundContext, why: string): Step {
  const limit = retryLimit(ctx.topology.clients.length);
  if (ctx.retries + 1 >= limit) {
    return { actions: [{ type: 'give-up', reason: `round ${ctx.round} was opened ${ctx.retries + 1} times and never closed (the last: ${why})` }] };
  }
  return { actions: [{ type: 'discard-round', round: ctx.round }], next: { stage: 'selection', after: 'retry' } };
}

/** The clients that can be in the next opening, how many may sit it out with the quorum kept, and which benches leave every switch able to forward. */
export function benchRoom(ctx: RoundContext): BenchRoom {
  const { members, rules, topology } = ctx;
  const pool = members.canTakePart();
  const least = rules.leastPerSwitch ?? 1;
  const viable = (bench: readonly string[]) =>
    topology.switches.filter((sw) => topology.reportsToRoot(sw)).every((sw) => {
      const left = topology.clientsBeneath(sw).filter((c) => pool.includes(c) && !bench.includes(c)).length;
      return left === 0 || left >= least;
    });
  return { pool, room: Math.max(0, pool.length - quorum(rules.goal, rules.minFraction)), viable };
}
