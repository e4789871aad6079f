/**
 * Closing: the round's tail (aggregate, evaluate, checkpoint) runs as one sequence the role carries
 * out; once it says the round is closed, the next round begins, or the experiment is done (Done).
 * When it says the round's sum cannot be read, the round runs again, without about half of those
 * who may have spoiled it (suspects.ts); a node found to spoil sums again and again is left out.
 */
import type { Action, Event, Reported } from './events';
import { benchRoom, Phase, retryOrGiveUp, STAY, type RoundContext, type Step } from './phase';
import type { SearchStep } from './suspects';

/** A phase after training: the round's clients, and how many reported, stay in view. */
abstract class AfterTraining extends Phase {
  constructor(
    ctx: RoundContext,
    attempt: string,
    private readonly clients: readonly string[],
    private readonly reported: number,
  ) {
    super(ctx, attempt);
  }

  override get selected(): readonly string[] {
    return this.clients;
  }

  override get reports(): number {
    return this.reported;
  }
}

export class Closing extends AfterTraining {
  readonly stage = 'closing';

  constructor(
    ctx: RoundContext,
    attempt: string,
    clients: readonly string[],
    private readonly results: Reported[],
    private readonly missing: string[],
    private readonly samples: number,
  ) {
    super(ctx, attempt, clients, results.length);
  }

  override enter(): Step {
    const { round } = this.ctx;
    const { attempt, results, missing, samples } = this;
    return {
      actions: [
        ...(missing.length ? [{ type: 'log' as const, level: 'warn' as const, message: `round ${round}: no update from ${missing.join(', ')}` }] : []),
        { type: 'close-round', round, attempt, results, missing, samples },
      ],
    };
  }

  handle(event: Event): Step {
    if ((event.type !== 'closed' && event.type !== 'unreadable' && event.type !== 'unscored') || event.round !== this.ctx.round || event.attempt !== this.attempt) return STAY;
    if (event.type === 'unscored') return this.unscored(event.reason);
    const room = benchRoom(this.ctx);
    const clients = this.results.flatMap((r) => r.clients);
    if (event.type === 'unreadable') return this.unreadable(event.reason, this.ctx.suspects.unreadable(clients, room, event.reason));
    const said = this.said(this.ctx.suspects.readable(clients, room));
    const last = this.ctx.round >= this.ctx.rules.rounds || (event.type === 'closed' && event.last);
    return { actions: said, next: last ? { stage: 'done' } : { stage: 'selection', after: 'round' } };
  }

  /** Nothing of the round is kept, and nobody is suspected: it runs again with every suspect in, or the experiment gives up on it. */
  private unscored(reason: string): Step {
    this.ctx.suspects.stalled();
    const retry = retryOrGiveUp(this.ctx, reason);
    return { actions: [{ type: 'log', level: 'warn', message: `round ${this.ctx.round}: ${reason}; the round runs again` }, ...retry.actions], next: retry.next };
  }

  /** Nothing of the round is kept: it runs again, without the bench, or the experiment gives up on it. */
  private unreadable(reason: string, search: SearchStep): Step {
    const { round } = this.ctx;
    const without = search.benched.length ? ` without ${search.benched.join(', ')}` : '';
    const suspects = search.found ? '' : `; suspects: ${search.suspects.join(', ')}`;
    const message = `round ${round}: the sum cannot be read: ${reason}${suspects}; the round runs again${without}`;
    const retry = retryOrGiveUp(this.ctx, `the sum could not be read: ${reason}`);
    return { actions: [{ type: 'log', level: 'warn', message }, ...this.said(search), ...retry.actions], next: retry.next };
  }

  /** A spoiler found is named, and left out of the experiment: failed, before the next opening is selected. */
  private said(search: SearchStep): Action[] {
    if (!search.found) return [];
    const { node, spoiled, last, among } = search.found;
    const what = this.ctx.topology.isClient(node) ? 'its updates' : 'the sums through it';
    const apart = among?.length ? `; of ${among.join(', ')} beneath it, none could be told from the others` : '';
    const reason = `${what} made ${spoiled} of the round's sums unreadable (the last: ${last})${apart}`;
    this.ctx.members.leaveOut(node, reason);
    return [
      { type: 'log', level: 'warn', message: `round ${this.ctx.round}: ${node} is left out of the experiment: ${reason}` },
      { type: 'leave-out', node, reason },
    ];
  }
}

/** The last round is closed. */
export class Done extends AfterTraining {
  readonly stage = 'done';

  override enter(): Step {
    return { actions: [{ type: 'finish' }] };
  }

  handle(): Step {
    return STAY;
  }
}
