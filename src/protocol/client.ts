/**
 * A client's stage, apart from IO. It prepares (data, model, keys), then waits for a model; a model
 * starts its round: training, then reporting the update upstream. Once the update is sent (taken or
 * not) or the round failed, it is free again and checks in. While it waits, a stand-by (not in this
 * opening of the round) or a config pushed again (the aggregator may be new) makes it check in again,
 * which costs nothing when it is still queued and puts it back when it was not.
 *
 * Every model and stand-by names the opening of the round it is for (its attempt). The client keeps
 * the latest opening it heard of, from the aggregator's answer to its check-in and from the models it
 * took, and whether that opening is still one it can be in: a message for an earlier opening, or for
 * one whose selection closed before its check-in, is stale and refused (a stand-by for attempt n must
 * not pull a client out of attempt n+1), and a model it took once is not trained twice.
 *
 * Every check-in carries the client's *ticket*, a random secret it makes anew each time it takes a
 * model, which only the aggregator learns. The model it is selected for carries the opening's *pass*,
 * the attempt signed with that ticket (wire/control.ts selectionPass); a model without it is refused.
 * The switches that carry a pass learn no other, so a switch cannot make a client train an opening
 * the aggregator did not select it for (before, one made-up model after another, each of a session of
 * its own making, or one of a far later round that made the true ones stale): it can only replace the
 * model of the opening it carries.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isEarlier, sessionOf } from '../wire/attempt';
import { selectionPass } from '../wire/control';

export type ClientStage = 'preparing' | 'waiting' | 'training' | 'reporting';

export type ClientEvent =
  | { type: 'prepared' }
  /**
   * A model for a round's opening; `pass`: the one its instructions carry; `missing`: it came as a
   * reference to a model this client does not keep.
   */
  | { type: 'model'; round: number; attempt: string; pass?: string; missing?: string }
  | { type: 'trained' }
  /** The update went upstream (taken or not), or the round failed: free again. */
  | { type: 'round-over' }
  | { type: 'standby'; attempt: string }
  /**
   * The aggregator took its check-in while at `attempt` ('' before its first opening); `open`: still
   * selecting for it (else the check-in is for a later one); `session`: the aggregator's.
   */
  | { type: 'checked-in'; attempt: string; open: boolean; session?: string }
  | { type: 'reconnected' };

export type ClientAction =
  | { type: 'refuse'; status: number; reason: string; kind?: string }
  | { type: 'train'; round: number; attempt: string }
  /** The model it kept (the sealed one it scored) is not the one named: it keeps none now. */
  | { type: 'forget-kept' }
  | { type: 'check-in' };

export class ClientMachine {
  private current: ClientStage = 'preparing';
  private latest = 0;
  /** The latest opening of a round this client heard of. */
  private heard = '';
  /** Whether that opening is over for this client: a message for it is stale. */
  private over = false;
  /** The opening whose model it took last. */
  private took = '';
  private ticketNow: string;
  /**
   * The session of the aggregator's latest answer to a check-in (only the aggregator answers one): a
   * model of another is refused, so a pass a switch held back from before the aggregator started
   * again does not pass once the client has heard from the new one.
   */
  private answeredIn = '';

  /** `mint`: a new ticket, which nobody else can guess. */
  constructor(private readonly mint: () => string = () => randomBytes(16).toString('hex')) {
    this.ticketNow = mint();
  }

  get stage(): ClientStage {
    return this.current;
  }

  /** The round it last took a model for. */
  get round(): number {
    return this.latest;
  }

  /** The latest opening of a round it heard of. */
  get attempt(): string {
    return this.heard;
  }

  /** What its next check-in carries: the pass of the model it is selected for is made with it. */
  get ticket(): string {
    return this.ticketNow;
  }

  handle(event: ClientEvent): ClientAction[] {
    switch (event.type) {
      case 'prepared':
        return this.free();
      case 'model':
        return this.model(event);
      case 'trained':
        if (this.current === 'training') this.current = 'reporting';
        return [];
      case 'round-over':
        return this.free();
      case 'standby':
        return this.standby(event.attempt);
      case 'checked-in':
        this.answeredIn = event.session ?? sessionOf(event.attempt);
        if (event.attempt && !this.isStale(event.attempt)) [this.heard, this.over] = [event.attempt, !event.open];
        return [];
      case 'reconnected':
        // The aggregator may have started again: its openings are not ordered with the last one's.
        [this.heard, this.over] = ['', false];
        return this.current === 'waiting' ? [{ type: 'check-in' }] : [];
    }
  }

  /** The refusal a model gets now (still preparing, busy with a round, stale, taken already), or undefined. */
  refusalFor(event: Extract<ClientEvent, { type: 'model' }>): Extract<ClientAction, { type: 'refuse' }> | undefined {
    if (this.current === 'preparing') return { type: 'refuse', status: 503, reason: 'this client is still loading its data; try again shortly' };
    if (event.attempt === this.took) return { type: 'refuse', status: 409, kind: 'taken', reason: `this client took the model of ${event.attempt} already` };
    if (this.current !== 'waiting') return { type: 'refuse', status: 409, kind: 'busy', reason: `this client is still working on round ${this.latest}` };
    if (this.isStale(event.attempt)) return this.stale('model', event.attempt);
    if (this.answeredIn && sessionOf(event.attempt) !== this.answeredIn) {
      const reason = `the model of ${event.attempt} is of another session than ${this.answeredIn}, in which the aggregator answered its last check-in`;
      return { type: 'refuse', status: 409, kind: 'stale', reason };
    }
    if (!this.passes(event)) {
      const carried = event.pass === undefined ? 'no pass' : 'a pass not made with the ticket this client checks in with, for this opening';
      return { type: 'refuse', status: 409, kind: 'not selected', reason: `the model of ${event.attempt} carries ${carried}: the aggregator did not select this client for it` };
    }
    if (event.missing !== undefined) return { type: 'refuse', status: 409, reason: `this client keeps no model ${event.missing} to train from; it checks in again for the whole model` };
    return undefined;
  }

  private model(event: Extract<ClientEvent, { type: 'model' }>): ClientAction[] {
    const refusal = this.refusalFor(event);
    // Started anew since it scored that model: it checks in saying it keeps none, and is sent the whole model next time.
    if (refusal && event.missing !== undefined && this.current === 'waiting' && !refusal.kind) return [{ type: 'forget-kept' }, { type: 'check-in' }, refusal];
    if (refusal) return [refusal];
    this.current = 'training';
    this.latest = event.round;
    [this.took, this.heard, this.over] = [event.attempt, event.attempt, false];
    this.ticketNow = this.mint(); // its passes are spent: a switch that holds one back cannot use it later
    return [{ type: 'train', round: event.round, attempt: event.attempt }];
  }

  /**
   * Not in this opening: check in again, unless the notice is older than what it heard since, or it is
   * in the round already. A stand-by is no news of which opening is the latest (only the aggregator's
   * answer to a check-in and a model taken are): one for a far later round, from a switch that lies,
   * made every true model stale until the aggregator started again. (A model for a far later round
   * needs the client's pass for that opening, which only the aggregator makes.) The cost: a late
   * model of an earlier opening that comes before the check-in's answer is trained, and its update
   * refused as stale.
   */
  private standby(attempt: string): ClientAction[] {
    if (this.isStale(attempt)) return [this.stale('stand-by', attempt)];
    return this.current === 'waiting' ? [{ type: 'check-in' }] : [];
  }

  /** Whether the model carries this client's pass for its opening (made with its ticket now). */
  private passes({ attempt, pass }: Extract<ClientEvent, { type: 'model' }>): boolean {
    const expected = Buffer.from(selectionPass(this.ticketNow, attempt));
    return pass !== undefined && Buffer.byteLength(pass) === expected.length && timingSafeEqual(Buffer.from(pass), expected);
  }

  /** An opening before the latest it heard of, or that one once it is over for this client. */
  private isStale(attempt: string): boolean {
    return isEarlier(attempt, this.heard) || (attempt === this.heard && this.over);
  }

  private stale(what: string, attempt: string): Extract<ClientAction, { type: 'refuse' }> {
    const since = attempt === this.heard ? `${attempt} was over for it when it checked in` : `it has heard of ${this.heard} since`;
    return { type: 'refuse', status: 409, kind: 'stale', reason: `the ${what} is for ${attempt}, but ${since}` };
  }

  private free(): ClientAction[] {
    this.current = 'waiting';
    return [{ type: 'check-in' }];
  }
}
