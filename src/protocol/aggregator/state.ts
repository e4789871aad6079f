/**
 * The aggregator's round, as a state machine apart from IO: events in, actions out.
 * The stages run in order each round: selection, training (the model goes down, updates come
 * back through the switches), aggregation, evaluation, checkpoint; then the next round.
 * `phases.ts` declares which stage may follow which; every stage change goes through it.
 */

export type Stage = 'idle' | 'selection' | 'training' | 'aggregation' | 'evaluation' | 'checkpoint' | 'done';

/** The stages that own a deadline. */
export type TimedStage = 'selection' | 'training';

export interface Topology {
  /** Every client and where it reports: its switch, or the aggregator itself. */
  upstreamOf: Map<string, string>;
  /** Switches that report to another switch, and which (one missing here reports to the aggregator). */
  switchUpstreamOf?: Map<string, string>;
  /** This aggregator's own address (the upstream of direct clients). */
  self: string;
}

/** The switches a client's update passes through on its way here, nearest first (none for a direct client). */
export function chainOf(topology: Topology, client: string): string[] {
  const chain: string[] = [];
  for (let at = topology.upstreamOf.get(client); at !== undefined && at !== topology.self && !chain.includes(at); at = topology.switchUpstreamOf?.get(at) ?? topology.self) {
    chain.push(at);
  }
  return chain;
}

/** Who hands a client's update to the aggregator: the top switch of its chain, or the client itself. */
export const reporterOf = (topology: Topology, client: string): string => chainOf(topology, client).at(-1) ?? client;

export interface RoundRules {
  rounds: number;
  /** How many clients a round wants. */
  goal: number;
  /** The share of selected clients whose updates must arrive for a round to count. */
  minFraction: number;
  /** How long selection and training may each take before the round goes on without the rest. */
  deadlineMs: number;
  /** Names this run of the aggregator (a restart gets a new one); part of every attempt id. */
  session?: string;
  /**
   * Which of the ready clients (in check-in order) make the round, at most `goal`: the strategy's
   * choice. First come, first served when not given.
   */
  select?: (round: number, ready: readonly string[], goal: number) => string[];
}

export interface RoundState {
  stage: Stage;
  round: number;
  /**
   * Names one opening of a round: a retried round, or one run again by a resumed aggregator, gets a
   * new one, so an update, a notice or a deadline of an earlier opening is dropped.
   */
  attempt: string;
  /** Clients that checked in and wait to be selected, in arrival order. */
  pool: string[];
  selected: string[];
  /** Who must report this round: a switch (for its selected clients still alive) or a direct client. */
  expected: Map<string, string[]>;
  /** Of those, who the round still waits for. */
  awaiting: Set<string>;
  /** Who reported, for which of its clients, with how many samples behind the update. */
  reported: Map<string, { clients: string[]; weight: number }>;
  /** Selected clients the round stopped waiting for (down, or withheld by their switch). */
  dropped: Set<string>;
  /** How many times this round was started again after too few updates came in. */
  retries: number;
  /** Workers that stopped answering: their clients are not selected, and a round does not wait for them. */
  down: Set<string>;
  /** Clients that were waiting to be selected when they went down: back in the pool if the same process answers again. */
  parked: Set<string>;
}

type Opening = { round: number; attempt: string };

export type Event =
  | { type: 'start' }
  | { type: 'checkin'; client: string }
  /** A phase's deadline: dropped unless its phase and attempt are the current ones. */
  | { type: 'deadline'; phase: TimedStage; attempt: string }
  | ({ type: 'report'; from: string; clients: string[]; weight: number } & Opening)
  /** A switch forwards nothing this round (no update, or too few to leave it under HE). */
  | ({ type: 'withheld'; from: string; clients: string[]; reason: string } & Opening)
  | { type: 'node-down'; node: string }
  /** The model never reached a selected client (refused, or no answer): it cannot report this round. */
  | ({ type: 'undelivered'; client: string; reason: string } & Opening)
  /** `resumed`: the same process answers again (it hung); otherwise it was started anew and checks in itself. */
  | { type: 'node-up'; node: string; resumed?: boolean }
  | { type: 'aggregated'; round: number }
  | { type: 'evaluated'; round: number }
  | { type: 'checkpointed'; round: number };

export type Action =
  | ({ type: 'open-switch-round'; switch: string; clients: string[] } & Opening)
  /** Sent only once every switch of these clients has its round open (an update must not arrive first). */
  | ({ type: 'send-model'; clients: string[] } & Opening)
  | { type: 'standby'; round: number; clients: string[] }
  /** A selected client went down: its switch stops waiting for it. */
  | ({ type: 'drop-client'; switch: string; client: string } & Opening)
  | { type: 'start-timer'; phase: TimedStage; attempt: string; ms: number }
  /** Leaving a phase: every timer it set is void. */
  | { type: 'cancel-timers' }
  | ({ type: 'accept-report'; from: string } & Opening)
  | { type: 'refuse'; status: number; reason: string }
  /** `missing`: the selected clients whose updates are not in the sum. */
  | { type: 'aggregate'; round: number; from: string[]; missing: string[] }
  | { type: 'discard-round'; round: number }
  | { type: 'evaluate'; round: number }
  | { type: 'checkpoint'; round: number }
  | { type: 'finish' }
  /** Selection goes on waiting: `missing` are the clients not ready (the role says what they last said). */
  | { type: 'waiting'; round: number; ready: number; needed: number; missing: string[] }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export const initialState = (): RoundState => ({
  stage: 'idle',
  round: 0,
  attempt: '',
  pool: [],
  selected: [],
  expected: new Map(),
  awaiting: new Set(),
  reported: new Map(),
  dropped: new Set(),
  retries: 0,
  down: new Set(),
  parked: new Set(),
});

/** Clients that can take part now: neither they nor any switch they report through are down. */
export function reachable(state: RoundState, topology: Topology, clients: Iterable<string>): string[] {
  return [...clients].filter(
    (client) => topology.upstreamOf.has(client) && !state.down.has(client) && !chainOf(topology, client).some((sw) => state.down.has(sw)),
  );
}

/** Reports needed for the round to count: the minimum share of the selected clients, at least one. */
export const quorum = (selected: number, minFraction: number) => Math.max(1, Math.ceil(selected * minFraction - 1e-9));
