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
  /** Names this run of the aggregator (a restart gets a new one); part of every attempt id. */
  session?: string;
}

export interface RoundState {
  stage: Stage;
  round: number;
  /**
   * Names one opening of a round: a retried round, or one run again by a resumed aggregator, gets a
   * new one, so an update trained for an earlier opening is refused rather than summed.
   */
  attempt: string;
  /** Clients that checked in and wait to be selected, in arrival order. */
  pool: string[];
  selected: string[];
  /** Who must report this round: a switch (for its selected clients) or a direct client. */
  expected: Map<string, string[]>;
  /** Who reported, for which of its clients, with how many samples behind the update. */
  reported: Map<string, { clients: string[]; weight: number }>;
  /** How many times this round was started again after too few updates came in. */
  retries: number;
  /** Workers that stopped answering: their clients are not selected, and a round does not wait for them. */
  down: Set<string>;
}

export type Event =
  | { type: 'start' }
  | { type: 'checkin'; client: string }
  | { type: 'selection-deadline'; round: number }
  | { type: 'report'; round: number; attempt: string; from: string; clients: string[]; weight: number }
  | { type: 'report-deadline'; round: number }
  | { type: 'node-down'; node: string }
  | { type: 'node-up'; node: string }
  | { type: 'aggregated'; round: number }
  | { type: 'evaluated'; round: number }
  | { type: 'checkpointed'; round: number };

export type Action =
  | { type: 'open-switch-round'; round: number; attempt: string; switch: string; clients: string[] }
  | { type: 'send-model'; round: number; attempt: string; clients: string[] }
  | { type: 'standby'; round: number; clients: string[] }
  | { type: 'start-timer'; timer: 'selection' | 'report'; round: number; ms: number }
  | { type: 'accept-report'; round: number; from: string }
  | { type: 'refuse'; status: number; reason: string }
  /** `missing`: the selected clients whose updates are not in the sum. */
  | { type: 'aggregate'; round: number; from: string[]; missing: string[] }
  | { type: 'discard-round'; round: number }
  | { type: 'evaluate'; round: number }
  | { type: 'checkpoint'; round: number }
  | { type: 'finish' }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export const initialState = (): RoundState => ({
  stage: 'idle',
  round: 0,
  attempt: '',
  pool: [],
  selected: [],
  expected: new Map(),
  reported: new Map(),
  retries: 0,
  down: new Set(),
});

/** Clients that can take part now: neither they nor the switch they report through are down. */
export function reachable(state: RoundState, topology: Topology, clients: Iterable<string>): string[] {
  return [...clients].filter((client) => {
    const upstream = topology.upstreamOf.get(client);
    return !state.down.has(client) && upstream !== undefined && (upstream === topology.self || !state.down.has(upstream));
  });
}

/** Reports needed for the round to count: the minimum share of the selected clients, at least one. */
export const quorum = (selected: number, minFraction: number) => Math.max(1, Math.ceil(selected * minFraction - 1e-9));
