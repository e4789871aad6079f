/**
 * Carries out what the round machine decides: timers that belong to the phase that set them,
 * switch rounds opened before the model goes down, the model sent once to each switch under the
 * aggregator (which relays it) and to each direct client, stand-by notices, clients dropped from
 * their switch's round, waiting named, and the round's tail run to its end. The work itself
 * (encoding the model, the tail) is the role's, through `RoundWork`.
 */
import { refused } from '../../net/errors';
import { tryPost, type CallerIo } from '../../net/peers';
import type { Action, Event, Stage } from '../../protocol/aggregator/events';
import type { RoundMachine } from '../../protocol/aggregator/machine';
import type { Weights } from '../../protocol/weights';
import { WIRE_CONTENT_TYPE } from '../../wire/codec';

import type { CloseRound, TailOutcome } from './round-tail';

export interface RoundWork {
  /** What the opening's selected clients are told (the strategy's configureFit), for the calls below. */
  configureFit(round: number, attempt: string, selected: Weights): void;
  /**
   * The model message for `weights`' clients, beneath one reporter: the global model with the
   * instructions all get, or only those when every recipient keeps that model already; for a direct
   * client (`direct`), with its own part added.
   */
  modelFor(round: number, attempt: string, weights: Weights, direct?: string): Buffer | Buffer[];
  /** What a switch is told when its round opens: its clients, the weight of each, and each one's part of the instructions. */
  switchOpening(round: number, attempt: string, weights: Weights): Record<string, unknown>;
  /** The round's tail (aggregate, evaluate, checkpoint): closed, stopped, or why the round's sum cannot be read. */
  closeRound(close: CloseRound): Promise<TailOutcome>;
  /** The round starts again: what was added up for it is void. */
  discard(): void;
  /** A node found to spoil the round's sums was left out: the experiment goes on without it while the quorum holds. */
  leaveOut(node: string, reason: string): void;
  finish(): void;
  /** An error the experiment cannot go on from. */
  fail(what: string, err: unknown): void;
  /** Each of these workers with what it last said (for lines naming who the round waits for). */
  describe(addresses: string[]): string;
  /** The machine moved: from `before` to where it is now. */
  moved(before: { stage: Stage; round: number }): void;
}

export interface ExecutorIo extends CallerIo {
  /** A timer owned by the role (cleared when it stops), and cancelling one. */
  after(ms: number, fn: () => void): NodeJS.Timeout;
  cancel(timer: NodeJS.Timeout): void;
  print?: (line: string) => void;
}

export class RoundExecutor {
  /** The current phase's timers: leaving the phase cancels them. */
  private readonly phaseTimers = new Set<NodeJS.Timeout>();
  /** Each switch's opening of the current attempt: true once it took it. Its clients get the model, and drops go, after. */
  private openings = new Map<string, Promise<boolean>>();

  constructor(
    private readonly machine: RoundMachine,
    private readonly io: ExecutorIo,
    private readonly work: RoundWork,
  ) {}

  /**
   * Feeds an event to the machine and carries out what it decides; a refusal is thrown to the caller.
   * Anything else that throws (a strategy, an encoder) ends the experiment with its reason: a round
   * half carried out cannot go on, and the timer or request that brought the event cannot handle it.
   */
  dispatch(event: Event, onAccept?: () => void): void {
    const before = { stage: this.machine.stage, round: this.machine.round };
    let actions: Action[];
    try {
      actions = this.machine.handle(event);
      this.work.moved(before);
    } catch (err) {
      return this.work.fail(`the round machine failed on ${event.type}`, err);
    }
    for (const action of actions) {
      if (action.type === 'refuse') throw refused(action);
      try {
        this.execute(action, onAccept);
      } catch (err) {
        return this.work.fail(`round ${this.machine.round}: carrying out ${action.type} failed`, err);
      }
    }
  }

  private execute(action: Action, onAccept?: () => void): void {
    const { work, io } = this;
    switch (action.type) {
      case 'refuse':
        return; // thrown by dispatch
      case 'accept-report':
        onAccept?.();
        return;
      case 'log':
        io.logger[action.level](action.message);
        // A round going on without someone is news where the user looks, not only in the log.
        if (action.level === 'warn') io.print?.(action.message);
        return;
      case 'waiting':
        return this.sayWaiting(action);
      case 'start-timer': {
        const timer = io.after(action.ms, () => {
          this.phaseTimers.delete(timer);
          this.dispatch({ type: 'deadline', phase: action.phase, attempt: action.attempt });
        });
        this.phaseTimers.add(timer);
        return;
      }
      case 'cancel-timers':
        for (const timer of this.phaseTimers) io.cancel(timer);
        this.phaseTimers.clear();
        return;
      case 'configure-fit':
        this.work.configureFit(action.round, action.attempt, action.selected);
        return;
      case 'open-switch-round':
        // The opening is made now: one that cannot be made ends the experiment (see dispatch), not a promise no one awaits.
        this.openings.set(action.switch, this.open(action, this.work.switchOpening(action.round, action.attempt, action.weights)));
        return;
      case 'send-model':
        return this.sendModel(action);
      case 'standby':
        return this.standby(action.round, action.attempt, action.clients);
      case 'drop-client': {
        // After the opening: a drop the switch got before its round would be refused, and the switch would wait.
        const opened = this.openings.get(action.switch) ?? Promise.resolve(true);
        void opened.then((ok) => {
          if (ok) return this.post(action.switch, '/s/drop', { round: action.round, attempt: action.attempt, client: action.client });
        });
        return;
      }
      case 'discard-round':
        work.discard();
        return;
      case 'leave-out':
        work.leaveOut(action.node, action.reason);
        return;
      case 'give-up':
        work.fail('the experiment cannot go on', new Error(action.reason));
        return;
      case 'close-round':
        void work.closeRound(action).then((outcome) => {
          const { round, attempt } = action;
          if (outcome === 'closed' || outcome === 'last') this.dispatch({ type: 'closed', round, attempt, ...(outcome === 'last' ? { last: true as const } : {}) });
          else if (outcome === 'stopped') return;
          else if ('unreadable' in outcome) this.dispatch({ type: 'unreadable', round, attempt, reason: outcome.unreadable });
          else this.dispatch({ type: 'unscored', round, attempt, reason: outcome.unscored });
        });
        return;
      case 'finish':
        work.finish();
        return;
    }
  }

  /**
   * A switch's round opened. One that does not take it (unreachable, refusing) cannot report: the
   * round stops waiting for it, as if it had said it has nothing, and its clients stand by.
   */
  private async open(action: Extract<Action, { type: 'open-switch-round' }>, opening: Record<string, unknown>): Promise<boolean> {
    const { round, attempt, clients } = action;
    const failure = await this.post(action.switch, '/s/round', opening);
    if (!failure) return true;
    if (this.io.isStopped()) return false;
    const reason = `its round could not be opened (${failure})`;
    try {
      this.dispatch({ type: 'withheld', round, attempt, from: action.switch, clients: [], reason });
    } catch {
      // refused: that opening of the round is over already
    }
    this.standby(round, attempt, clients);
    return false;
  }

  /**
   * The model goes once to each switch under the aggregator, once it took the round (an update must
   * not reach a switch before its round), and the switch relays it down; and to each direct client.
   * A selected client must hear something, or it waits for a model for ever and never checks in
   * again: the model; or, when the opening failed (`open` told it), came too late for this attempt,
   * or the model did not reach it, a stand-by. A model a direct client did not take drops it from
   * the round; a switch that did not take it sends nothing, and its clients stand by.
   */
  private sendModel({ round, attempt, to }: Extract<Action, { type: 'send-model' }>): void {
    for (const { reporter, clients: group, weights } of to) {
      const direct = group.length === 1 && group[0] === reporter;
      const opened = direct ? Promise.resolve(true) : (this.openings.get(reporter) ?? Promise.resolve(true));
      // Encoded now, not in the promise below: an encoder that throws ends the experiment (see dispatch).
      const message = this.work.modelFor(round, attempt, weights, direct ? reporter : undefined);
      void opened.then(async (ok) => {
        if (!ok) return;
        if (this.machine.attempt !== attempt) return this.standby(round, attempt, group);
        // A timeout may also mean it has the model but answered late: it trains, and the stand-by finds it busy.
        const failure = await this.post(reporter, direct ? '/c/round' : '/s/model', message, { 'Content-Type': WIRE_CONTENT_TYPE });
        if (!failure || this.io.isStopped()) return;
        this.standby(round, attempt, group);
        try {
          if (direct) this.dispatch({ type: 'undelivered', round, attempt, client: reporter, reason: failure });
          else this.dispatch({ type: 'withheld', round, attempt, from: reporter, clients: [], reason: `it did not take the model (${failure})` });
        } catch {
          // refused: that attempt is over already
        }
      });
    }
  }

  private standby(round: number, attempt: string, clients: string[]): void {
    for (const client of clients) void this.post(client, '/c/standby', { round, attempt });
  }

  private sayWaiting(action: Extract<Action, { type: 'waiting' }>): void {
    const line = `round ${action.round}: ${action.ready} clients ready, ${action.needed} needed; still waiting for ${this.work.describe(action.missing)}`;
    this.io.logger.warn(line);
    this.io.print?.(line);
  }

  private post(address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<string | undefined> {
    return tryPost(this.io, address, path, body, headers);
  }
}
