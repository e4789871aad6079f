/**
 * Closing: the round's tail (aggregate, evaluate, checkpoint) runs as one sequence the role carries
 * out; once it says the round is closed, the next round begins, or the experiment is done (Done).
 */
import type { Event, Reported } from './events';
import { Phase, STAY, type RoundContext, type Step } from './phase';

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
    if (event.type !== 'closed' || event.round !== this.ctx.round || event.attempt !== this.attempt) return STAY;
    return { actions: [], next: this.ctx.round >= this.ctx.rules.rounds ? { stage: 'done' } : { stage: 'selection', after: 'round' } };
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
