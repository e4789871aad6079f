/**
 * The aggregator's round, as a state machine apart from IO: events in, actions out.
 * The stages run in order each round: selection, training (the model goes down, updates come
 * back through the switches), aggregation, evaluation, checkpoint; then the next round.
 */

export type Stage = 'idle' | 'selection' | 'training' | 'aggregation' | 'evaluation' | 'checkpoint' | 'done';

export interface Topology {
  /** Every client and where it reports: its switch, or the aggregator itself. */
  upstreamOf: Map<string, string>;
  /** This aggregator's own address (the upstream of direct clients). */
  self: string;
}

export interface RoundRules {
  rounds: number;
  /** How many clients a round wants (first come, first served). */
  goal: number;
  /** The share of selected clients whose updates must arrive for a round to count. */
  minFraction: number;
  /** How long selection and reporting may each take before the round goes on without the rest. */
  deadlineMs: number;
}

export interface RoundState {
  stage: Stage;
  round: number;
  /** Clients that checked in and wait to be selected, in arrival order. */
  pool: string[];
  selected: string[];
  /** Who must report this round: a switch (for its selected clients) or a direct client. */
  expected: Map<string, string[]>;
  reported: Map<string, { contributors: number; weight: number }>;
  /** How many times this round was started again after too few updates came in. */
  retries: number;
}

export type Event =
  | { type: 'start' }
  | { type: 'checkin'; client: string }
  | { type: 'selection-deadline'; round: number }
  | { type: 'report'; round: number; from: string; contributors: number; weight: number }
  | { type: 'report-deadline'; round: number }
  | { type: 'aggregated'; round: number }
  | { type: 'evaluated'; round: number }
  | { type: 'checkpointed'; round: number };

export type Action =
  | { type: 'open-switch-round'; round: number; switch: string; clients: string[] }
  | { type: 'send-model'; round: number; clients: string[] }
  | { type: 'standby'; round: number; clients: string[] }
  | { type: 'start-timer'; timer: 'selection' | 'report'; round: number; ms: number }
  | { type: 'accept-report'; round: number; from: string }
  | { type: 'refuse'; status: number; reason: string }
  | { type: 'aggregate'; round: number; from: string[]; missing: string[] }
  | { type: 'discard-round'; round: number }
  | { type: 'evaluate'; round: number }
  | { type: 'checkpoint'; round: number }
  | { type: 'finish' }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export const initialState = (): RoundState => ({
  stage: 'idle',
  round: 0,
  pool: [],
  selected: [],
  expected: new Map(),
  reported: new Map(),
  retries: 0,
});

/** Reports needed for the round to count: the minimum share of the selected clients, at least one. */
export const quorum = (selected: number, minFraction: number) => Math.max(1, Math.ceil(selected * minFraction - 1e-9));
