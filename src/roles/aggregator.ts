/**
 * The aggregator: runs the round machine, carries out what it decides (models down, switch
 * rounds opened, timers), combines the reports with the configured strategy, evaluates the new
 * global model on the held-out digits and checkpoints it.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { AggregatorNodeConfig } from '../config/schema';
import { loadMnist, subset, type Dataset } from '../data/mnist';
import { testIndices } from '../data/partition';
import { initBackend } from '../model/backend';
import { buildModel, evaluate, expectedParameterCount, getFlatWeights, modelId, setFlatWeights } from '../model/model';
import { badRequest, HttpError } from '../net/errors';
import { describeFailure } from '../net/peers';
import { ExperimentOutputs, type RoundMetrics } from '../outputs';
import { RoundMachine } from '../protocol/aggregator/machine';
import type { Action, Event, Stage } from '../protocol/aggregator/state';
import { createStrategy, type Strategy } from '../strategy/strategy';
import { UpdateBuffer } from '../strategy/update-buffer';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../wire/codec';
import { readMessage } from '../wire/receive';
import { Role } from './role';

const checkinSchema = z.object({ client: z.string() }).strict();

interface Prepared {
  model: tf.Sequential;
  test: Dataset;
  modelId: number;
  backend: string;
}

export interface ExperimentSummary {
  experiment: string;
  rounds: RoundMetrics[];
  outputs: string;
}

export class AggregatorRole extends Role<AggregatorNodeConfig> {
  readonly parameters = expectedParameterCount(this.config.settings.model);
  readonly machine: RoundMachine;
  readonly outputs: ExperimentOutputs;
  /** Resolves when the last round is checkpointed. */
  readonly finished: Promise<ExperimentSummary>;
  private resolveFinished!: (summary: ExperimentSummary) => void;
  private rejectFinished!: (err: Error) => void;
  private prepared?: Prepared;
  private strategy?: Strategy;
  private global: Float32Array = new Float32Array(0);
  private buffer = new UpdateBuffer(this.parameters);
  private phaseStart = new Map<Stage, number>();
  private roundStartedAt = 0;
  private lastMetrics?: RoundMetrics;
  private roundTotals = { clients: 0, samples: 0 };
  private evaluation = { accuracy: 0, loss: 0 };

  constructor(...args: ConstructorParameters<typeof Role<AggregatorNodeConfig>>) {
    super(...args);
    const { settings, address } = this.config;
    const upstreamOf = new Map(Object.entries(this.config.clients));
    const machineRules = {
      rounds: settings.rounds,
      goal: settings.clients_per_round ?? upstreamOf.size,
      minFraction: settings.min_report_fraction,
      deadlineMs: settings.timeouts.round_ms,
    };
    this.machine = new RoundMachine(machineRules, { upstreamOf, self: address });
    this.outputs = new ExperimentOutputs(this.node.outputsDir, this.config.experiment);
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    this.finished.catch(() => undefined); // observed by whoever awaits it; not an unhandled rejection
  }

  override start(): void {
    void this.prepare()
      .then(() => this.dispatch({ type: 'start' }))
      .catch((err) => this.fail('the aggregator failed to prepare', err));
  }

  status() {
    const { switches, clients, experiment, settings } = this.config;
    const { stage, round, pool, selected, reported, retries } = this.machine.state;
    return {
      role: 'aggregator',
      experiment,
      stage,
      round,
      rounds: settings.rounds,
      strategy: settings.training.strategy,
      waiting_clients: pool.length,
      selected: selected.length,
      reports: reported.size,
      retries,
      switches,
      clients: Object.keys(clients).length,
      backend: this.prepared?.backend ?? null,
      last: this.lastMetrics ?? null,
      rounds_done: this.outputs.rows.length,
    };
  }

  /** POST /a/checkin: a client is ready for a round. */
  checkIn(body: unknown): { status: string; round: number } {
    const parsed = checkinSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"client": "<address>"}');
    this.dispatch({ type: 'checkin', client: parsed.data.client });
    return { status: 'queued', round: this.machine.state.round };
  }

  /** POST /a/receive: a switch's weighted sum, or a direct client's update. */
  receive(body: unknown): { round: number } {
    if (!this.prepared) throw new HttpError(503, 'not ready', 'the aggregator is still preparing');
    const message = readMessage(body, { kinds: [Kind.WeightedSum, Kind.Update], modelId: this.prepared.modelId, parameters: this.parameters });
    const direct = message.kind === Kind.Update;
    if (direct && this.machine.topology.upstreamOf.get(message.sender) !== this.config.address) {
      throw new HttpError(403, 'forbidden', `${message.sender} does not report to the aggregator directly`);
    }
    if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
    this.dispatch(
      { type: 'report', round: message.round, from: message.sender, contributors: message.contributors, weight: message.weight },
      () => this.buffer.add(message.sender, { values: message.parameters, weight: message.weight, contributors: message.contributors, preScaled: !direct }),
    );
    return { round: message.round };
  }

  private async prepare(): Promise<void> {
    const { settings } = this.config;
    const backend = await initBackend(settings.model.architecture);
    const all = loadMnist();
    const test = subset(all, testIndices(all, settings.data));
    const model = buildModel(settings.model, settings.data.seed);
    this.global = getFlatWeights(model);
    this.prepared = { model, test, modelId: modelId(model), backend };
    this.strategy = createStrategy(settings.training, (parameters) => {
      setFlatWeights(model, parameters);
      return evaluate(model, test);
    });
    const ready = `TensorFlow.js backend ${backend}; ${test.size} held-out test digits; strategy ${this.strategy.name}`;
    this.node.logger.info(ready);
    this.node.print?.(ready);
  }

  /** Feeds an event to the machine and carries out what it decides. */
  private dispatch(event: Event, onAccept?: () => void): void {
    const before = { stage: this.machine.state.stage, round: this.machine.state.round };
    const actions = this.machine.handle(event);
    this.notePhase(before);
    for (const action of actions) this.execute(action, onAccept);
  }

  /** Timestamps each stage; a round may go from checkpoint straight to training when its clients are already waiting. */
  private notePhase(before: { stage: Stage; round: number }): void {
    const { stage, round } = this.machine.state;
    if (stage === before.stage && round === before.round) return;
    const now = performance.now();
    if (round !== before.round || before.stage === 'idle') {
      this.roundStartedAt = now;
      this.phaseStart.set('selection', now);
      this.iterations.beginRound(round);
    }
    this.phaseStart.set(stage, now);
  }

  private execute(action: Action, onAccept?: () => void): void {
    switch (action.type) {
      case 'refuse':
        throw new HttpError(action.status, action.status === 403 ? 'forbidden' : action.status === 400 ? 'bad request' : 'conflict', action.reason);
      case 'accept-report':
        onAccept?.();
        return;
      case 'log':
        this.node.logger[action.level](action.message);
        return;
      case 'start-timer':
        this.after(action.ms, () => this.dispatch({ type: action.timer === 'selection' ? 'selection-deadline' : 'report-deadline', round: action.round }));
        return;
      case 'open-switch-round':
        void this.post(action.switch, '/s/round', {
          round: action.round,
          clients: action.clients,
          deadline_ms: this.machine.rules.deadlineMs,
          parameters: this.parameters,
          model_id: this.prepared!.modelId,
        });
        return;
      case 'send-model':
        this.sendModel(action.round, action.clients);
        return;
      case 'standby':
        for (const client of action.clients) void this.post(client, '/c/standby', { round: action.round });
        return;
      case 'discard-round':
        this.buffer = new UpdateBuffer(this.parameters);
        return;
      case 'aggregate':
        this.aggregate(action.round);
        return;
      case 'evaluate':
        this.evaluateRound(action.round);
        return;
      case 'checkpoint':
        this.checkpoint(action.round).catch((err) => this.fail(`checkpoint of round ${action.round} failed`, err));
        return;
      case 'finish':
        this.finish();
        return;
    }
  }

  private sendModel(round: number, clients: string[]): void {
    const message = encode({
      kind: Kind.Model,
      round,
      modelId: this.prepared!.modelId,
      contributors: 0,
      weight: 0,
      sender: this.config.address,
      meta: { ...this.strategy!.configureRound(round) },
      parameters: this.global,
    });
    for (const client of clients) void this.post(client, '/c/round', message, { 'Content-Type': WIRE_CONTENT_TYPE });
  }

  private async post(address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<void> {
    try {
      await this.node.peers.post(address, path, body, { headers, signal: this.abort.signal });
    } catch (err) {
      if (this.isStopped) return;
      this.node.logger.warn(`${path} to ${address} failed: ${describeFailure(err).reason}`);
    }
  }

  private aggregate(round: number): void {
    const total = this.buffer.total();
    this.global = this.strategy!.aggregate(round, this.global, total);
    this.roundTotals = { clients: total.contributors, samples: total.weight };
    this.buffer = new UpdateBuffer(this.parameters);
    this.dispatch({ type: 'aggregated', round });
  }

  private evaluateRound(round: number): void {
    this.evaluation = this.strategy!.evaluate(round, this.global);
    this.dispatch({ type: 'evaluated', round });
  }

  private async checkpoint(round: number): Promise<void> {
    const now = performance.now();
    const phase = (from: Stage, to?: Stage) => Math.round((to ? this.phaseStart.get(to)! : now) - this.phaseStart.get(from)!);
    const timings = {
      round_ms: Math.round(now - this.roundStartedAt),
      selection_ms: phase('selection', 'training'),
      training_ms: phase('training', 'aggregation'),
      aggregation_ms: phase('aggregation', 'evaluation'),
      evaluation_ms: phase('evaluation', 'checkpoint'),
    };
    const { accuracy, loss } = this.evaluation;
    const retries = this.machine.state.retries;
    const entry = this.iterations.endRound({ ...timings, accuracy, loss, ...this.roundTotals, retries })!;
    const metrics: RoundMetrics = {
      round,
      accuracy,
      loss,
      ...this.roundTotals,
      ...timings,
      bytes_up: entry.byte_received,
      bytes_down: entry.byte_send,
      retries,
    };
    setFlatWeights(this.prepared!.model, this.global);
    await this.outputs.saveRound(round, this.prepared!.model, metrics);
    this.lastMetrics = metrics;
    this.node.print?.(
      `round ${String(round).padStart(3)}/${this.machine.rules.rounds}  accuracy ${(metrics.accuracy * 100).toFixed(2)}%  loss ${metrics.loss.toFixed(4)}  ` +
        `${metrics.clients} clients  ${(metrics.round_ms / 1000).toFixed(1)} s  up ${(metrics.bytes_up / 1e6).toFixed(1)} MB  down ${(metrics.bytes_down / 1e6).toFixed(1)} MB`,
    );
    this.dispatch({ type: 'checkpointed', round });
  }

  private finish(): void {
    this.node.logger.info(`experiment ${this.config.experiment} finished after ${this.outputs.rows.length} rounds`);
    this.resolveFinished({ experiment: this.config.experiment, rounds: this.outputs.rows, outputs: this.outputs.dir });
  }

  /** An error the experiment cannot go on from: logged, and the experiment ends with it. */
  private fail(what: string, err: unknown): void {
    this.node.logger.error(`${what}: ${(err as Error)?.stack ?? err}`);
    this.rejectFinished(new Error(`${what}: ${(err as Error)?.message ?? err}`));
  }

  override async stop(): Promise<void> {
    await super.stop();
    this.prepared?.model.dispose();
  }
}
