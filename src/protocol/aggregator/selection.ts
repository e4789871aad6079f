/**
 * Selection: clients check in; once enough can report, the strategy picks the round's clients and
 * training begins. At its deadline selection goes on with what is ready, if that is enough, or says
 * who it is waiting for and waits on. Before the first round (Idle, below) clients check in already.
 */
import type { Action, Event } from './events';
import { quorum } from '../../config/quorum';
import { Phase, STAY, type Step } from './phase';

export class Selection extends Phase {
  readonly stage = 'selection';

  override enter(): Step {
    return this.selectIfReady() ?? { actions: [this.deadline()] };
  }

  handle(event: Event): Step {
    switch (event.type) {
      case 'checkin':
      case 'node-up':
      case 'node-down':
        return this.selectIfReady() ?? STAY;
      case 'deadline':
        return event.phase === 'selection' && event.attempt === this.attempt ? this.atDeadline() : STAY;
      default:
        return STAY;
    }
  }

  private deadline(): Action {
    return { type: 'start-timer', phase: 'selection', attempt: this.attempt, ms: this.ctx.rules.deadlineMs };
  }

  /**
   * Closes once the goal count is ready (under over-selection, the count wanted), or, with workers
   * down, every client that can still report (never fewer than the quorum: below it the round waits
   * for workers to come back).
   */
  private selectIfReady(): Step | undefined {
    const { rules, members } = this.ctx;
    const attainable = Math.min(rules.wanted ?? rules.goal, this.unbenched(members.canTakePart()).length);
    const needed = Math.max(attainable, quorum(rules.goal, rules.minFraction));
    return this.ready().length >= needed ? this.close() : undefined;
  }

  /** The waiting clients that can take part now, but for those the suspect search benched for this opening. */
  private ready(): string[] {
    return this.unbenched(this.ctx.members.ready());
  }

  private unbenched(clients: string[]): string[] {
    const benched = this.ctx.suspects.benched;
    return clients.filter((client) => !benched.includes(client));
  }

  private atDeadline(): Step {
    const { rules, topology, round } = this.ctx;
    const needed = quorum(rules.goal, rules.minFraction);
    const ready = this.ready();
    if (ready.length >= needed) return this.close();
    const missing = topology.clients.filter((client) => !ready.includes(client));
    return { actions: [{ type: 'waiting', round, ready: ready.length, needed, missing }, this.deadline()] };
  }

  private close(): Step {
    const { rules, members, round } = this.ctx;
    const ready = this.ready();
    const chosen = this.ctx.select(round, ready, rules.goal);
    // Whatever the strategy says, a round takes only ready clients, each once, at most the goal.
    const selected = [...new Set(chosen)].filter((client) => ready.includes(client)).slice(0, rules.goal);
    return { actions: [], next: { stage: 'training', selected: members.take(selected) } };
  }
}

export class Idle extends Phase {
  readonly stage = 'idle';

  handle(event: Event): Step {
    return event.type === 'start' ? { actions: [], next: { stage: 'selection', after: 'start' } } : STAY;
  }
}
