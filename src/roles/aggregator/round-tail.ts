/**
 * A round's tail, in order, as one sequence: the accumulator's total becomes the next global model
 * through the strategy (aggregation), the model is scored (evaluation), the round's model, metrics
 * and checkpoint are written (checkpoint). It belongs to the attempt it closes: it stops with the
 * role, and the round counts as closed only once all three are done.
 */
import { plannedRounds, PrivacyLedger } from '../../privacy/dp';
import { aggregatorCheckpoint, type CheckpointStore } from '../../checkpoint';
import type { AggregatorNodeConfig } from '../../config/node-config';
import type { IterationLog } from '../../log/iteration-log';
import type { ExperimentOutputs, RoundMetrics } from '../../outputs';
import type { Action } from '../../protocol/aggregator/events';
import { UnreadableSum, UnscoredModel, type CollectedTotal, type ModelHeader } from './global-model';
import type { Prepared } from './preparation';
import type { RoundClock, TailStep } from './round-clock';
import { roundLine } from './view';

export type CloseRound = Extract<Action, { type: 'close-round' }>;

/** How a round's tail ended. */
/** `last`: closed, and the DP budget affords no other round. */
export type TailOutcome = 'closed' | 'last' | 'stopped' | { unreadable: string } | { unscored: string };

export interface TailIo {
  config: AggregatorNodeConfig;
  /** Set once the role has prepared: rounds close only after. */
  prepared(): Prepared;
  clock: RoundClock;
  iterations: IterationLog;
  outputs: ExperimentOutputs;
  checkpoints: CheckpointStore;
  header(round: number): ModelHeader;
  /** How many times the round was started again. */
  retries(): number;
  /** The tail moved to `step`, or wrote a round. */
  changed(what: 'stage' | 'round'): void;
  print?: (line: string) => void;
  isStopped(): boolean;
}

/** A step of the tail that failed: the experiment cannot go on from it. */
export class TailFailure extends Error {
  constructor(
    readonly what: string,
    readonly error: unknown,
  ) {
    super(`${what}: ${(error as Error)?.message ?? error}`);
  }
}

export class RoundTail {
  /** The workers whose updates are in the latest aggregated round: switches, and clients in their sums. */
  participants: string[] = [];
  private privacy?: PrivacyLedger;
  /** The last closed round each worker's update was in (SCAFFOLD's clients keep their control variate by it). */
  readonly counted = new Map<string, number>();

  constructor(private readonly io: TailIo) {}

  /**
   * Runs the tail: `closed`, or `stopped` when the role stopped before its end, or why the round's
   * sum cannot be read (nothing was kept of it: the round runs again). A step that fails otherwise
   * throws a TailFailure.
   */
  async run(close: CloseRound): Promise<TailOutcome> {
    const { round } = close;
    try {
      const aggregated = await this.step('aggregation', round, () => this.aggregate(close));
      if (this.io.isStopped()) return 'stopped';
      const { global } = this.io.prepared();
      // The clients decrypt the model to score it: released, whatever becomes of the round (one
      // run again after a release may find the budget spent: the run ends rather than pass it).
      if (global.scoredByClients) this.release(round);
      const scored = await this.step('evaluation', round, () => global.evaluate(round, this.io.header(round)));
      if (this.io.isStopped()) return 'stopped';
      if (!global.scoredByClients) this.ledger()?.release();
      await this.step('checkpoint', round, () => this.checkpoint(round, { ...aggregated, ...scored }));
    } catch (err) {
      if (err instanceof UnreadableSum) return { unreadable: err.message };
      if (err instanceof UnscoredModel) return { unscored: err.message };
      throw err;
    }
    if (this.io.isStopped()) return 'stopped';
    return this.budgetSpent(round) ? 'last' : 'closed';
  }

  /** DP's count of noised models released, from the rounds done (a resumed run) on. */
  private ledger(): PrivacyLedger | undefined {
    const { settings } = this.io.config;
    if (!settings.dp) return undefined;
    return (this.privacy ??= PrivacyLedger.fromRows(settings, this.io.outputs.rows));
  }

  /** One more noised model goes to the clients, or (the budget spent by rounds run again) the run ends here. */
  private release(round: number): void {
    const ledger = this.ledger();
    if (!ledger) return;
    if (!ledger.affordsAnother()) {
      throw new TailFailure(`round ${round}`, new Error(`it ran again after ${ledger.released} noised models were released; another would pass dp.max_epsilon ${this.io.config.settings.dp!.max_epsilon} (ε ${ledger.epsilon.toFixed(2)} now), so the run ends before its clients decrypt one more`));
    }
    ledger.release();
  }

  /** ε spent so far and the releases behind it, for the round's row (DP runs only). */
  private privacySpent(): Pick<RoundMetrics, 'epsilon' | 'dp_releases'> {
    const ledger = this.ledger();
    return ledger ? { epsilon: ledger.epsilon, dp_releases: ledger.released } : {};
  }

  /** A round before the last closed, and another would pass dp.max_epsilon (rounds ran again, releasing more): said, and the run stops. */
  private budgetSpent(round: number): boolean {
    const ledger = this.ledger();
    if (!ledger || ledger.affordsAnother() || round >= plannedRounds(this.io.config.settings)) return false;
    const extra = ledger.released - round;
    this.io.print?.(`dp.max_epsilon ${this.io.config.settings.dp!.max_epsilon}: ${ledger.released} noised models released in ${round} rounds (${extra} by rounds run again after the clients decrypted theirs), ε ${ledger.epsilon.toFixed(2)}; another would pass it: the run stops after round ${round}`);
    return true;
  }

  private async step<T>(step: TailStep, round: number, work: () => Promise<T>): Promise<T> {
    this.io.clock.enter(step);
    this.io.changed('stage');
    try {
      return await work();
    } catch (err) {
      if (err instanceof UnreadableSum || err instanceof UnscoredModel) throw err;
      throw new TailFailure(`${step} of round ${round} failed`, err);
    }
  }

  private async aggregate({ round, results, missing, samples }: CloseRound) {
    const { accumulator, global } = this.io.prepared();
    const total = await accumulator.total().catch((err: Error) => {
      accumulator.reset();
      throw new UnscoredModel(`its sum could not be read: ${err.message}`);
    });
    if (!total) throw new Error('no update arrived this round');
    // Encrypted updates came pre-scaled by samples / the selected clients' samples.
    const roundTotal: CollectedTotal = total.kind === 'encrypted' ? { ...total, scale: 1 / samples } : total;
    const from = results.map((r) => r.from);
    this.participants = [...from, ...results.flatMap((r) => r.clients).filter((c) => !from.includes(c))];
    await global.update(round, roundTotal, results, missing);
    accumulator.reset();
    const attacking = this.io.config.attackers ?? {};
    const attackers = results.flatMap((r) => r.clients).filter((client) => client in attacking);
    return { clients: total.contributors, samples: total.weight, missing, attackers };
  }

  private async checkpoint(round: number, done: { clients: number; samples: number; missing: string[]; attackers: string[]; accuracy: number; loss: number; scored_by?: RoundMetrics['scored_by'] }): Promise<void> {
    const { config, outputs, iterations, checkpoints } = this.io;
    const prepared = this.io.prepared();
    const { accuracy, loss, clients, samples, missing, attackers, scored_by } = done;
    const timings = this.io.clock.timings(missing.length > 0);
    const retries = this.io.retries();
    const entry = iterations.endRound({ ...timings, accuracy, loss, clients, samples, retries, missing })!;
    const link = entry.link_byte_received === undefined ? {} : { link_bytes_up: entry.link_byte_received as number, link_bytes_down: entry.link_byte_send as number };
    const metrics: RoundMetrics = { round, accuracy, loss, clients, samples, ...timings, bytes_up: entry.byte_received, bytes_down: entry.byte_send, ...link, retries, missing, ...(attackers.length ? { attackers } : {}), ...(scored_by ? { scored_by } : {}), ...this.privacySpent() };
    const header = this.io.header(round);
    await prepared.global.saveRound(outputs, header, metrics);
    for (const worker of this.participants) this.counted.set(worker, round);
    const saved = aggregatorCheckpoint({
      header: { experiment: config.experiment, settings: config.settings, rows: outputs.rows, saved_at: new Date().toISOString(), counted: Object.fromEntries(this.counted) },
      global: prepared.global.snapshot(header),
      strategy: prepared.strategy.snapshot(),
    });
    // The round is finished once this is on disk: a resumed aggregator goes on from here.
    checkpoints.save(round, saved.header, saved.blobs);
    this.io.print?.(roundLine(metrics, plannedRounds(config.settings), outputs.events().filter((e) => e.round === round)));
    this.io.changed('round');
  }
}


