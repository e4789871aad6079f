/**
 * What goes into the aggregator's round machine (events: messages, deadlines, health checks, the
 * round's tail done) and what comes out (actions the role carries out). No IO here.
 */
import type { Refusal } from '../refusal';
import type { Weights } from '../weights';

/** The machine's phases, in the order a round runs them. */
export type Stage = 'idle' | 'selection' | 'training' | 'closing' | 'done';

/** The phases that own a deadline. */
export type TimedStage = 'selection' | 'training';

/** One opening of a round: a retried round, or one run again by a resumed aggregator, gets a new attempt. */
export type Opening = { round: number; attempt: string };

/** One update that made the round: a switch's sum (or a direct client's own update). */
export interface Reported {
  from: string;
  /** The clients whose updates are in it. */
  clients: string[];
  /** Samples behind it. */
  weight: number;
  /** A bundle's samples behind each update in it (robust rules through switches): each must be its client's. */
  updateWeights?: Weights;
}

export type Event =
  | { type: 'start' }
  /** A client is free for a round, holding `samples` training samples. */
  | { type: 'checkin'; client: string; samples: number }
  /** A phase's deadline: dropped unless its phase and attempt are the current ones. */
  | { type: 'deadline'; phase: TimedStage; attempt: string }
  | ({ type: 'report' } & Reported & Opening)
  /** A switch forwards nothing this round (no update, or too few to leave it under HE). */
  | ({ type: 'withheld'; from: string; clients: string[]; reason: string } & Opening)
  /** The model never reached a selected client (refused, or no answer): it cannot report this round. */
  | ({ type: 'undelivered'; client: string; reason: string } & Opening)
  /** A selected client took the model and cannot use it (it said so): it will not report this round. */
  | ({ type: 'declined'; client: string; reason: string } & Opening)
  /** A worker stopped answering (`failed`: its role cannot work). */
  | { type: 'node-down'; node: string; reason: string; failed?: boolean }
  /** `resumed`: the same process answers again (it hung); otherwise it was started anew and checks in itself. */
  | { type: 'node-up'; node: string; reason?: string; resumed?: boolean }
  /** The round's tail (aggregate, evaluate, checkpoint) is done. */
  | ({ type: 'closed'; /** No round after this one (the DP budget is spent). */ last?: true } & Opening)
  /** The round's sum cannot be read (an update in it was corrupt): nothing was kept of it. */
  | ({ type: 'unreadable'; reason: string } & Opening)
  /** No client could score the round's new model: nothing was kept of it, and nobody is suspected. */
  | ({ type: 'unscored'; reason: string } & Opening);

export type { Refusal } from '../refusal';

export type Action =
  /** Before the model goes down: what the round's selected clients are told (the strategy's configureFit). */
  | ({ type: 'configure-fit'; selected: Weights } & Opening)
  /** `weights`: of the clients beneath the switch: their updates, and its sum, must carry the same. */
  | ({ type: 'open-switch-round'; switch: string; clients: string[]; weights: Weights } & Opening)
  /**
   * The model goes to each reporter (a switch under the aggregator, which relays it, or a direct
   * client) for its clients, each told its weight; only once the switch has its round open (an
   * update must not arrive first). Each client's share is its weight over `samples`, the selected
   * clients' total (configure-fit): the shares of a round add up to 1 by construction.
   */
  | ({ type: 'send-model'; to: { reporter: string; clients: string[]; weights: Weights }[]; samples: number } & Opening)
  /** Not in this opening of the round: they check in again. */
  | ({ type: 'standby'; clients: string[] } & Opening)
  /** A selected client went down: its switch stops waiting for it. */
  | ({ type: 'drop-client'; switch: string; client: string } & Opening)
  | { type: 'start-timer'; phase: TimedStage; attempt: string; ms: number }
  /** Leaving a phase: every timer it set is void. */
  | { type: 'cancel-timers' }
  | ({ type: 'accept-report'; from: string } & Opening)
  | Refusal
  /**
   * The round closes: aggregate what `results` hold, evaluate, checkpoint, in that order, then say
   * `closed`. `missing`: the selected clients whose updates are not in; `samples` as for send-model.
   */
  | ({ type: 'close-round'; results: Reported[]; missing: string[]; samples: number } & Opening)
  | { type: 'discard-round'; round: number }
  /** A node found to spoil the round's sums was left out of the experiment (it counts as failed, with why): the run goes on without it, if it can. */
  | { type: 'leave-out'; node: string; reason: string }
  | { type: 'finish' }
  /** The round failed too many times: the experiment ends, saying why. */
  | { type: 'give-up'; reason: string }
  /** Selection goes on waiting: `missing` are the clients not ready (the role says what they last said). */
  | { type: 'waiting'; round: number; ready: number; needed: number; missing: string[] }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

