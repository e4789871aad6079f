/**
 * What the workers tell the aggregator in JSON, read and turned into round-machine events: a client
 * ready for a round (POST /a/checkin), a client that cannot use the model it took (/a/declined), a
 * switch that forwards nothing (/a/withheld). Each names a node, which must be its caller.
 */
import { actingAsItself } from '../../net/callers';
import { HttpError, refused } from '../../net/errors';
import type { Caller } from '../../net/identity';
import type { Event } from '../../protocol/aggregator/events';
import type { RoundMachine } from '../../protocol/aggregator/machine';
import { checkinSchema, declinedSchema, readControl, withheldSchema } from '../../wire/control';
import type { CheckIns } from './checkins';
import type { WorkerHealthReports } from './health';
import type { Prepared } from './preparation';

export interface NoticesIo {
  machine: RoundMachine;
  dispatch(event: Event): void;
  checkins: CheckIns;
  health: WorkerHealthReports;
  /** Undefined while the role prepares. */
  prepared(): Prepared | undefined;
}

/**
 * What the aggregator answers a check-in: the opening it is for (the one being selected, `open`, or
 * the one under way, which it is not in; none before the first), and its session, which a client
 * takes models of from then on.
 */
export interface CheckinAnswer {
  status: 'queued';
  round: number;
  attempt: string;
  open: boolean;
  session: string;
}

export class Notices {
  constructor(private readonly io: NoticesIo) {}

  /** A client is ready for a round. One whose data or model does not fit is refused (422), and never selected. */
  checkIn(body: unknown, caller: Caller): CheckinAnswer {
    const checkin = readControl(checkinSchema, body, 'expected {"client": "<address>", "samples": <count>}');
    const { client, samples, keeps } = checkin;
    actingAsItself(caller, 'client', client);
    const { machine, checkins, health } = this.io;
    // Nothing is kept for a name that is not the experiment's.
    const stranger = machine.refusalFor({ type: 'checkin', client, samples });
    if (stranger) throw refused(stranger);
    const contradiction = checkins.contradiction(checkin);
    if (contradiction) throw new HttpError(409, 'conflict', contradiction);
    const misfit = checkins.misfitOf(checkin, this.io.prepared()?.modelId);
    if (misfit) {
      // Not selectable, ever: the experiment goes on without it while the quorum holds.
      health.failed(client, misfit);
      throw new HttpError(422, 'data does not fit', `${client}: ${misfit}`);
    }
    checkins.accepted(checkin);
    this.io.prepared()?.global.keeps?.(client, keeps);
    // Before the check-in is handled: it may close selection, and the opening it joins is then the one
    // under way. One it is selected in is open to it too (checking in again before its model came).
    const { attempt, stage } = machine;
    const open = stage === 'selection' || stage === 'idle' || (stage === 'training' && machine.selected.includes(client));
    this.io.dispatch({ type: 'checkin', client, samples });
    return { status: 'queued', round: machine.round, attempt, open, session: machine.rules.session };
  }

  /** A selected client took the model and cannot use it: the round stops waiting for it. */
  declined(body: unknown, caller: Caller): void {
    const { client, ...notice } = readControl(declinedSchema, body, 'expected {"round", "attempt", "client", "reason"}');
    actingAsItself(caller, 'client', client);
    this.io.dispatch({ type: 'declined', client, ...notice });
  }

  /** A switch forwards nothing this round: the round stops waiting for it. */
  withheld(body: unknown, caller: Caller): void {
    const { switch: from, ...notice } = readControl(withheldSchema, body, 'expected {"round", "attempt", "switch", "clients", "reason"}');
    actingAsItself(caller, 'switch', from);
    this.io.dispatch({ type: 'withheld', from, ...notice });
  }
}
