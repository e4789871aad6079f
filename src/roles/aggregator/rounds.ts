/**
 * The aggregator's work in each round the machine runs (RoundWork, as the executor calls it): the
 * model message each reporter is sent, what a switch is told as its round opens, the round's tail,
 * and where the round is (the clock), as the machine moves.
 */
import type { EventEmitter } from 'node:events';
import type { CheckpointStore } from '../../checkpoint';
import type { AggregatorNodeConfig } from '../../config/node-config';
import type { IterationLog } from '../../log/iteration-log';
import type { ExperimentOutputs } from '../../outputs';
import type { Stage } from '../../protocol/aggregator/events';
import type { RoundMachine } from '../../protocol/aggregator/machine';
import { weightOf, type Weights } from '../../protocol/weights';
import { carriesControl } from '../../model/layout';
import type { FitPlan } from '../../strategy/strategy';
import { withMeta } from '../../wire/codec';
import { clientFit, instructionOverridesSchema, openingInstructions, selectionPass, type InstructionOverrides, type RoundInstructions } from '../../wire/control';
import type { RoundWork } from './executor';
import type { ModelHeader } from './global-model';
import type { Prepared } from './preparation';
import { RoundClock, type RoundStage } from './round-clock';
import { RoundTail, TailFailure, type CloseRound, type TailOutcome } from './round-tail';
import { describeWorkers, type Change } from './view';

export interface RoundsIo {
  config: AggregatorNodeConfig;
  parameters: number;
  machine: RoundMachine;
  /** Set once the role has prepared: rounds run only after. */
  prepared(): Prepared;
  iterations: IterationLog;
  outputs: ExperimentOutputs;
  checkpoints: CheckpointStore;
  changes: EventEmitter<{ change: [Change] }>;
  print?: (line: string) => void;
  isStopped(): boolean;
  finish(): void;
  fail(what: string, err: unknown): void;
  /** A node found to spoil sums: its role counts as failed. */
  leaveOut(node: string, reason: string): void;
  /** The ticket a client checked in with last: its copy of the model carries its pass, made with it. */
  ticketOf(client: string): string | undefined;
}

export class Rounds implements RoundWork {
  private readonly clock = new RoundClock();
  private readonly tail: RoundTail;
  /** The strategy's instructions for the opening under way (configureFit). */
  private plan?: RoundInstructions & { attempt: string; common: FitPlan['common']; weights: Weights };

  constructor(private readonly io: RoundsIo) {
    this.tail = new RoundTail({
      ...io,
      clock: this.clock,
      header: (round) => this.header(round),
      retries: () => io.machine.retries,
      changed: (what) => io.changes.emit('change', what),
    });
  }

  /** Where the round is, as the dashboard and /a/status show it. */
  get stage(): RoundStage {
    return this.clock.stage;
  }

  /** The workers whose updates are in the latest aggregated round: switches, and clients in their sums. */
  get participants(): string[] {
    return this.tail.participants;
  }

  /** Resumed: the last round each worker counted in, as the checkpoint kept it. */
  restoreCounted(counted: Record<string, number>): void {
    for (const [worker, round] of Object.entries(counted)) if (Number.isInteger(round) && round > 0) this.tail.counted.set(worker, round);
  }

  /** Updates made the sum (RoundClock.reported). */
  reported(waitedMs: number, clients: readonly string[], agesMs?: readonly number[]): void {
    this.clock.reported(waitedMs, clients, agesMs);
  }

  moved(before: { stage: Stage; round: number }): void {
    const { stage, round } = this.io.machine;
    if (stage === before.stage && round === before.round) return;
    const newRound = round !== before.round || before.stage === 'idle';
    if (newRound) this.io.iterations.beginRound(round);
    if (newRound && stage !== 'selection') this.clock.enter('selection', true); // selection closed at once
    // Closing is entered, and shown, step by step by the round's tail.
    if (stage === 'closing') return;
    this.clock.enter(stage, newRound && stage === 'selection');
    this.io.changes.emit('change', 'stage');
  }

  private header(round: number): ModelHeader {
    return { round, modelId: this.io.prepared().modelId, sender: this.io.config.address, parameters: this.io.parameters };
  }

  /**
   * The strategy's plan for the opening, its per-client parts checked as a client will read them. Each
   * client's share, its weight over the round's samples, is added where its copy is sent from
   * (clientFit): the round's sum is read back by the same total (1 / samples, round-tail.ts), so the
   * shares add up to 1; a strategy never sets them (they are how HE scales an update).
   */
  configureFit(round: number, attempt: string, selected: Weights): void {
    const { common, each } = this.io.prepared().strategy.configureFit(round, selected);
    const samples = weightOf(selected);
    if (!(samples > 0)) throw new Error(`round ${round}: the selected clients weigh nothing`);
    const overrides: Record<string, InstructionOverrides> = {};
    for (const client of Object.keys(selected).filter((c) => each[c])) {
      const checked = instructionOverridesSchema.safeParse(each[client]);
      if (!checked.success) throw new Error(`strategy ${this.io.prepared().strategy.name} told ${client} what no client takes: ${checked.error.message}`);
      overrides[client] = checked.data;
    }
    const passes: Record<string, string> = {};
    for (const client of Object.keys(selected)) {
      // Its ticket as it was selected: a check-in after it took this opening's model brings the next.
      const ticket = this.io.ticketOf(client);
      // Only a client that checked in is selected; without its ticket its model would be refused.
      if (!ticket) throw new Error(`round ${round}: ${client} was selected, but no check-in of its brought a ticket`);
      passes[client] = selectionPass(ticket, attempt);
    }
    this.plan = { attempt, common, overrides, passes, samples, weights: selected };
  }

  /**
   * What all clients get goes in the model, the same bytes for every recipient: it names no client,
   * nor who is in the round (under SCAFFOLD it says the last round each worker counted in: past
   * rounds, public in the rows). Each client's own part (its share: encrypted updates come pre-scaled by it, as the
   * aggregator cannot scale ciphertexts, and the shares add up to 1) is added to its copy alone: by
   * its switch, from the opening, or here for a direct client.
   */
  modelFor(round: number, attempt: string, weights: Weights, direct?: string): Buffer | Buffer[] {
    const { he, global } = this.io.prepared();
    const plan = this.planOf(attempt);
    const key = he?.keyId ? { he_key: he.keyId } : {};
    const counted = carriesControl(this.io.config.settings) ? { counted: Object.fromEntries(this.tail.counted) } : {};
    const message = global.message(this.header(round), { ...plan.common, attempt, ...key, ...counted }, Object.keys(weights));
    return direct ? withMeta(message, { fit: clientFit(direct, plan.weights[direct], plan) }) : message;
  }

  switchOpening(round: number, attempt: string, weights: Weights): Record<string, unknown> {
    const deadline_ms = this.io.machine.rules.deadlineMs;
    const clients = Object.keys(weights);
    return { round, attempt, clients, weights, ...openingInstructions(this.planOf(attempt), clients), deadline_ms, parameters: this.io.parameters, model_id: this.io.prepared().modelId };
  }

  private planOf(attempt: string): NonNullable<Rounds['plan']> {
    if (this.plan?.attempt !== attempt) throw new Error(`no instructions were made for ${attempt} (configureFit comes first)`);
    return this.plan;
  }

  async closeRound(close: CloseRound): Promise<TailOutcome> {
    try {
      return await this.tail.run(close);
    } catch (err) {
      const failure = err instanceof TailFailure ? err : new TailFailure(`closing round ${close.round} failed`, err);
      if (!this.io.isStopped()) this.io.fail(failure.what, failure.error);
      return 'stopped';
    }
  }

  discard(): void {
    this.io.prepared().accumulator.reset();
  }

  leaveOut(node: string, reason: string): void {
    this.io.leaveOut(node, reason);
  }

  finish(): void {
    this.io.finish();
  }

  fail(what: string, err: unknown): void {
    this.io.fail(what, err);
  }

  describe(addresses: string[]): string {
    return describeWorkers(this.io.machine, addresses);
  }
}
