/**
 * What goes into the aggregator's round machine (events: messages, deadlines, health checks, the
 * round's tail done) and what comes out (actions the role carries out). No IO here.
 */

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
  /** A worker stopped answering (`failed`: its role cannot work). */
  | { type: 'node-down'; node: string; reason: string; failed?: boolean }
  /** `resumed`: the same process answers again (it hung); otherwise it was started anew and checks in itself. */
  | { type: 'node-up'; node: string; reason?: string; resumed?: boolean }
  /** The round's tail (aggregate, evaluate, checkpoint) is done. */
  | ({ type: 'closed' } & Opening);

export type Refusal = { type: 'refuse'; status: number; reason: string };

export type Action =
  | ({ type: 'open-switch-round'; switch: string; clients: string[] } & Opening)
  /**
   * The model goes to each reporter (a switch under the aggregator, which relays it, or a direct
   * client) for its clients; only once the switch has its round open (an update must not arrive
   * first). Updates come back pre-scaled by samples / `samples`, the selected clients' total.
   */
  | ({ type: 'send-model'; to: { reporter: string; clients: string[] }[]; samples: number } & Opening)
  | { type: 'standby'; round: number; clients: string[] }
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
  | { type: 'finish' }
  /** Selection goes on waiting: `missing` are the clients not ready (the role says what they last said). */
  | { type: 'waiting'; round: number; ready: number; needed: number; missing: string[] }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

