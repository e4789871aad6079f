/**
 * The aggregator: runs the round machine, carries out what it decides (models down, switch
 * rounds opened, timers), combines the reports with the configured strategy, evaluates the new
 * global model on the held-out digits and checkpoints it.
 */
import type * as tf from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { z } from 'zod';
import { asFloat32, CheckpointStore, float32Bytes, type Checkpoint } from '../checkpoint';
import type { AggregatorNodeConfig } from '../config/schema';
import { loadMnist, subset, type Dataset } from '../data/mnist';
import { testIndices } from '../data/partition';
import { logBatchSchema } from '../log/central';
import { ClusterLog, type WorkerRole } from '../log/cluster-log';
import { initBackend } from '../model/backend';
import { buildModel, evaluate, expectedParameterCount, getFlatWeights, modelId, setFlatWeights } from '../model/model';
import { describeIssues } from '../config/load';
import { badRequest, HttpError, refused } from '../net/errors';
import { describeFailure } from '../net/peers';
import { ExperimentOutputs, type RoundMetrics } from '../outputs';
import { RoundMachine } from '../protocol/aggregator/machine';
import type { Action, Event, Stage } from '../protocol/aggregator/state';
import { createStrategy, type Strategy } from '../strategy/strategy';
import { UpdateBuffer } from '../strategy/update-buffer';
import { decode, encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../wire/codec';
import { attemptOf, readMessage } from '../wire/receive';
import { startKeyHolderSession, startSession, type HeSession } from '../he/keys';
import { Role } from './role';

const checkinSchema = z.object({ client: z.string(), samples: z.number().int().min(0).default(0) }).strict();

/** The round's encrypted sum so far (ciphertext addition is exact: order does not matter). */
interface EncryptedTotal {
  ciphertexts?: Uint8Array[];
}

/** The global model when only the clients can decrypt it: ciphertexts that average once multiplied by factor. */
interface EncryptedGlobal {
  round: number;
  ciphertexts: Uint8Array[];
  factor: number;
}

interface Prepared {
  model: tf.Sequential;
  test: Dataset;
  modelId: number;
  backend: string;
  he?: HeSession;
}

export interface ExperimentSummary {
  experiment: string;
  rounds: RoundMetrics[];
  outputs: string;
}

/** What a checkpoint's header holds besides the blobs (global, strategy state, encrypted model). */
export interface CheckpointHeader {
  experiment: string;
  settings: AggregatorNodeConfig['settings'];
  rows: RoundMetrics[];
  strategy_state: string[];
  saved_at: string;
}

/** What the health checks last said of a worker (the dashboard shows it). */
export interface WorkerHealth {
  state: 'up' | 'down';
  since: string;
  reason?: string;
}

/** What changed, for whoever shows the experiment live (dashboard, progress bars). */
export type Change = 'stage' | 'round' | 'logs' | 'health';

export const CHECKPOINTS_DIR = 'checkpoints';
/** The aggregator's HE key pair (key_holder "aggregator"), owner-only, beside its checkpoints. */
export const KEY_PAIR_FILE = 'he-keypair.json';

export class AggregatorRole extends Role<AggregatorNodeConfig> {
  readonly parameters = expectedParameterCount(this.config.settings.model);
  readonly encrypted = this.config.settings.he.enabled;
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
  private readonly he = this.config.settings.he;
  /** Samples each client said it holds, from its check-in. */
  private readonly samplesOf = new Map<string, number>();
  /** The selected clients' samples this round: encrypted updates are pre-scaled by 1/roundSamples. */
  private roundSamples = 1;
  private encryptedSum: EncryptedTotal = {};
  private encryptedGlobal?: EncryptedGlobal;
  private heQueue: Promise<unknown> = Promise.resolve();
  private roundMissing: string[] = [];
  readonly checkpoints: CheckpointStore;
  /** Every worker of the experiment, by address, with its role. */
  readonly workers: ReadonlyMap<string, WorkerRole>;
  /** Every worker's records, shipped here as rounds finish. */
  readonly cluster: ClusterLog;
  readonly health = new Map<string, WorkerHealth>();
  readonly changes = new EventEmitter<{ change: [Change] }>();
  private done = false;
  /** The workers whose updates are in the latest aggregated round: switches, and clients in their sums. */
  participants: string[] = [];

  constructor(
    config: AggregatorNodeConfig,
    node: ConstructorParameters<typeof Role<AggregatorNodeConfig>>[1],
    /** A checkpoint to go on from (`agg --resume`); without one the experiment starts over. */
    private readonly resumeFrom?: Checkpoint,
  ) {
    super(config, node);
    const { settings, address } = this.config;
    const upstreamOf = new Map(Object.entries(this.config.clients));
    const machineRules = {
      rounds: settings.rounds,
      goal: settings.clients_per_round ?? upstreamOf.size,
      minFraction: settings.min_report_fraction,
      deadlineMs: settings.timeouts.round_ms,
      session: randomBytes(4).toString('hex'),
    };
    this.machine = new RoundMachine(machineRules, { upstreamOf, self: address }, (resumeFrom?.round ?? 0) + 1);
    this.outputs = new ExperimentOutputs(this.node.outputsDir, this.config.experiment);
    this.checkpoints = new CheckpointStore(join(this.outputs.dir, CHECKPOINTS_DIR));
    this.workers = new Map([
      ...this.config.switches.map((s) => [s, 'switch'] as const),
      ...Object.keys(this.config.clients).map((c) => [c, 'client'] as const),
    ]);
    this.cluster = new ClusterLog(this.node.logsDir, this.config.experiment, this.workers, resumeFrom !== undefined);
    this.changes.setMaxListeners(0); // one per dashboard page open
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    this.finished.catch(() => undefined); // observed by whoever awaits it; not an unhandled rejection
  }

  override start(): void {
    void this.prepare()
      .then(() => (this.machine.state.round > this.machine.rules.rounds ? this.finish() : this.dispatch({ type: 'start' })))
      .catch((err) => this.fail('the aggregator failed to prepare', err));
  }

  /** The health checks saw a worker stop answering, or answer again. */
  workerDown(address: string, reason = 'not answering'): void {
    this.noteHealth(address, 'down', reason);
    this.dispatch({ type: 'node-down', node: address });
  }

  workerUp(address: string, how?: string): void {
    this.noteHealth(address, 'up', how);
    this.dispatch({ type: 'node-up', node: address });
  }

  noteHealth(address: string, state: WorkerHealth['state'], reason?: string): void {
    this.health.set(address, { state, since: new Date().toISOString(), reason });
    this.changes.emit('change', 'health');
  }

  /** POST /a/logs: a worker's iteration entries, warnings and errors (central logging). */
  receiveLogs(body: unknown): { taken: number; duplicates: number } {
    const parsed = logBatchSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, 'invalid log batch', 'the batch failed validation; nothing was written', describeIssues(parsed.error.issues));
    const outcome = this.cluster.receive(parsed.data);
    if (outcome.taken) this.changes.emit('change', 'logs');
    return outcome;
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
      attempt: this.machine.state.attempt,
      down: [...this.machine.state.down],
      switches,
      clients: Object.keys(clients).length,
      backend: this.prepared?.backend ?? null,
      last: this.lastMetrics ?? null,
      rounds_done: this.outputs.rows.length,
    };
  }

  /** GET /a/he/public-key: what clients encrypt with when the aggregator holds the key. */
  publicKey(): Buffer {
    if (!this.he.enabled || this.he.key_holder !== 'aggregator') {
      throw new HttpError(404, 'not found', 'this experiment has no aggregator-held HE key');
    }
    const key = this.prepared?.he?.publicKey;
    if (!key) throw new HttpError(503, 'not ready', 'the aggregator is still making its keys');
    return Buffer.from(key);
  }

  /** POST /a/checkin: a client is ready for a round. */
  checkIn(body: unknown): { status: string; round: number } {
    const parsed = checkinSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"client": "<address>", "samples": <count>}');
    const { client, samples } = parsed.data;
    this.dispatch({ type: 'checkin', client });
    this.samplesOf.set(client, samples);
    return { status: 'queued', round: this.machine.state.round };
  }

  /** POST /a/receive: a switch's weighted sum, or a direct client's update. */
  async receive(body: unknown): Promise<{ round: number }> {
    const prepared = this.prepared;
    if (!prepared) throw new HttpError(503, 'not ready', 'the aggregator is still preparing');
    const he = prepared.he;
    const message = readMessage(body, {
      kinds: he ? [Kind.EncryptedSum, Kind.EncryptedUpdate] : [Kind.WeightedSum, Kind.Update],
      modelId: prepared.modelId,
      parameters: this.parameters,
      he: he && { id: he.id, chunks: he.chunks },
    });
    const direct = message.kind === Kind.Update || message.kind === Kind.EncryptedUpdate;
    if (direct && this.machine.topology.upstreamOf.get(message.sender) !== this.config.address) {
      throw new HttpError(403, 'forbidden', `${message.sender} does not report to the aggregator directly`);
    }
    if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
    const report = this.reportOf(message, direct);
    if (he) {
      const step = this.heQueue.then(() => this.addEncrypted(he, report, message.ciphertexts!));
      this.heQueue = step.catch(() => undefined);
      await step;
      return { round: message.round };
    }
    this.dispatch(report, () =>
      this.buffer.add(message.sender, { values: message.parameters, weight: message.weight, contributors: message.contributors, preScaled: !direct }),
    );
    return { round: message.round };
  }

  /** The report event for a message: a switch names the clients in its sum; a direct client is its own. */
  private reportOf(message: Message, direct: boolean): Extract<Event, { type: 'report' }> {
    const named = message.meta?.clients;
    if (!direct && !(Array.isArray(named) && named.every((c) => typeof c === 'string'))) {
      throw badRequest('a switch sum must name its clients in meta.clients');
    }
    const clients = direct ? [message.sender] : (named as string[]);
    if (clients.length !== message.contributors) {
      throw badRequest(`the sum claims ${message.contributors} updates but names ${clients.length} clients`);
    }
    return { type: 'report', round: message.round, attempt: attemptOf(message), from: message.sender, clients, weight: message.weight };
  }

  /** Adds a switch's encrypted sum to the round's; one that SEAL cannot parse is refused, the sum unchanged. */
  private async addEncrypted(he: HeSession, report: Extract<Event, { type: 'report' }>, ciphertexts: Uint8Array[]): Promise<void> {
    const refusal = this.machine.refusalFor(report);
    if (refusal) throw refused(refusal);
    const before = this.encryptedSum.ciphertexts;
    let sum: Uint8Array[];
    try {
      sum = await he.pool.sum(before ? [before, ciphertexts] : [ciphertexts]);
    } catch (err) {
      throw new HttpError(400, 'bad ciphertext', `the update does not parse under this experiment's HE parameters: ${(err as Error).message}`);
    }
    this.dispatch(report, () => (this.encryptedSum = { ciphertexts: sum }));
  }

  private async startHe(): Promise<HeSession | undefined> {
    if (!this.he.enabled) return undefined;
    // Holding the key, the aggregator makes the pair (kept for a resume); otherwise it holds none and can only add.
    if (this.he.key_holder === 'clients') return startSession(this.he, this.parameters, {});
    return startKeyHolderSession(this.he, this.parameters, join(this.checkpoints.dir, KEY_PAIR_FILE), this.resumeFrom !== undefined);
  }

  private async prepare(): Promise<void> {
    const { settings } = this.config;
    if (!this.resumeFrom) {
      // Starting over: an earlier run's checkpoints and rounds must not mix with this one's.
      this.checkpoints.clear();
      this.outputs.clearRounds();
      this.iterations.keepRounds(0);
    }
    const he = await this.startHe();
    const backend = await initBackend(settings.model.architecture);
    const all = loadMnist();
    const test = subset(all, testIndices(all, settings.data));
    const model = buildModel(settings.model, settings.data.seed);
    this.global = getFlatWeights(model);
    this.prepared = { model, test, modelId: modelId(model), backend, he };
    this.strategy = createStrategy(settings.training, (parameters) => {
      setFlatWeights(model, parameters);
      return evaluate(model, test);
    });
    if (this.resumeFrom) this.restore(this.resumeFrom);
    const encryption = he ? `CKKS N=${this.he.poly_modulus_degree}, ${he.chunks} ciphertexts per update, key held by the ${this.he.key_holder}` : 'no encryption';
    const ready = `TensorFlow.js backend ${backend}; ${test.size} held-out test digits; strategy ${this.strategy.name}; ${encryption}`;
    this.node.logger.info(ready);
    this.node.print?.(ready);
  }

  /** Puts back what a checkpoint holds: the global model, the strategy's state, the rounds done. */
  private restore(checkpoint: Checkpoint): void {
    const header = checkpoint.header as unknown as CheckpointHeader;
    const { global, encrypted_model } = checkpoint.blobs;
    if (encrypted_model) {
      const message = decode(Buffer.from(encrypted_model));
      this.encryptedGlobal = { round: checkpoint.round, ciphertexts: message.ciphertexts!, factor: Number(message.meta?.factor) };
    } else {
      this.global = Float32Array.from(asFloat32(global));
    }
    this.strategy!.restore(Object.fromEntries(header.strategy_state.map((name) => [name, asFloat32(checkpoint.blobs[`strategy.${name}`])])));
    this.outputs.restoreRounds(header.rows);
    this.lastMetrics = header.rows.at(-1);
    this.iterations.keepRounds(checkpoint.round);
    const line = `resumed from ${checkpoint.file}: ${checkpoint.round} rounds done, going on with round ${checkpoint.round + 1}`;
    this.node.logger.info(line);
    this.node.print?.(line);
  }

  /** Feeds an event to the machine and carries out what it decides. */
  private dispatch(event: Event, onAccept?: () => void): void {
    const before = { stage: this.machine.state.stage, round: this.machine.state.round };
    const actions = this.machine.handle(event);
    this.notePhase(before);
    if (this.machine.state.stage !== before.stage) this.changes.emit('change', 'stage');
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
        throw refused(action);
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
          attempt: action.attempt,
          clients: action.clients,
          deadline_ms: this.machine.rules.deadlineMs,
          parameters: this.parameters,
          model_id: this.prepared!.modelId,
        });
        return;
      case 'send-model':
        this.sendModel(action.round, action.attempt, action.clients);
        return;
      case 'standby':
        for (const client of action.clients) void this.post(client, '/c/standby', { round: action.round });
        return;
      case 'discard-round':
        this.buffer = new UpdateBuffer(this.parameters);
        this.encryptedSum = {};
        return;
      case 'aggregate':
        this.participants = [...action.from, ...this.machine.state.selected.filter((c) => !action.missing.includes(c))];
        this.aggregate(action.round, action.missing).catch((err) => this.fail(`aggregation of round ${action.round} failed`, err));
        return;
      case 'evaluate':
        this.evaluateRound(action.round).catch((err) => this.fail(`evaluation of round ${action.round} failed`, err));
        return;
      case 'checkpoint':
        this.checkpoint(action.round).catch((err) => this.fail(`checkpoint of round ${action.round} failed`, err));
        return;
      case 'finish':
        this.finish();
        return;
    }
  }

  private sendModel(round: number, attempt: string, clients: string[]): void {
    this.roundSamples = clients.reduce((n, c) => n + (this.samplesOf.get(c) ?? 0), 0) || 1;
    const he = this.prepared!.he;
    const encryption = he ? { weight_scale: 1 / this.roundSamples, ...(he.keyId ? { he_key: he.keyId } : {}) } : {};
    const instructions = { ...this.strategy!.configureRound(round), attempt, ...encryption };
    const message = this.modelMessage(round, instructions);
    for (const client of clients) void this.post(client, '/c/round', message, { 'Content-Type': WIRE_CONTENT_TYPE });
  }

  /** The global model for a round: plaintext, or (clients holding the key) the encrypted average. */
  private modelMessage(round: number, meta: Record<string, unknown>): Buffer {
    const base = { round, modelId: this.prepared!.modelId, contributors: 0, weight: 0, sender: this.config.address };
    const global = this.encryptedGlobal;
    if (global) {
      const he = this.prepared!.he!;
      return encode({
        ...base,
        kind: Kind.EncryptedModel,
        meta: { ...meta, he: he.id, factor: global.factor },
        parameters: new Float32Array(0),
        ciphertexts: global.ciphertexts,
        count: this.parameters,
      });
    }
    return encode({ ...base, kind: Kind.Model, meta, parameters: this.global });
  }

  private async post(address: string, path: string, body: unknown, headers?: Record<string, string>): Promise<void> {
    try {
      await this.node.peers.post(address, path, body, { headers, signal: this.abort.signal });
    } catch (err) {
      if (this.isStopped) return;
      this.node.logger.warn(`${path} to ${address} failed: ${describeFailure(err).reason}`);
    }
  }

  private async aggregate(round: number, missing: string[]): Promise<void> {
    this.roundMissing = missing;
    const he = this.prepared!.he;
    const reported = [...this.machine.state.reported.values()];
    const weight = reported.reduce((n, r) => n + r.weight, 0);
    const contributors = reported.reduce((n, r) => n + r.clients.length, 0);
    this.roundTotals = { clients: contributors, samples: weight };
    if (!he) {
      const total = this.buffer.total();
      this.global = this.strategy!.aggregate(round, this.global, total);
    } else if (this.he.key_holder === 'aggregator') {
      // Only the sum over every switch is ever decrypted; scaled back from 1/roundSamples to samples.
      const sum = await he.pool.decrypt(this.encryptedSum.ciphertexts!, this.parameters, this.roundSamples);
      this.global = this.strategy!.aggregate(round, this.global, { sum, weight, contributors, senders: [] });
    } else {
      this.encryptedGlobal = { round, ciphertexts: this.encryptedSum.ciphertexts!, factor: this.roundSamples / weight };
    }
    this.buffer = new UpdateBuffer(this.parameters);
    this.encryptedSum = {};
    this.dispatch({ type: 'aggregated', round });
  }

  private async evaluateRound(round: number): Promise<void> {
    this.evaluation = this.encryptedGlobal ? await this.federatedEvaluation(round) : this.strategy!.evaluate(round, this.global);
    this.dispatch({ type: 'evaluated', round });
  }

  /** Clients decrypt the new model and score it on their share of the held-out digits; the results are combined by count. */
  private async federatedEvaluation(round: number): Promise<{ accuracy: number; loss: number }> {
    const message = this.modelMessage(round, {});
    const clients = Object.keys(this.config.clients);
    const answers = await Promise.all(
      clients.map((client) =>
        this.node.peers
          .post<{ accuracy: number; loss: number; samples: number }>(client, '/c/evaluate', message, {
            headers: { 'Content-Type': WIRE_CONTENT_TYPE },
            signal: this.abort.signal,
          })
          .catch((err) => {
            this.node.logger.warn(`round ${round}: no evaluation from ${client}: ${describeFailure(err).reason}`);
            return undefined;
          }),
      ),
    );
    const scored = answers.filter((a): a is NonNullable<typeof a> => a !== undefined && a.samples > 0);
    const samples = scored.reduce((n, a) => n + a.samples, 0);
    if (!samples) throw new Error(`round ${round}: no client could evaluate the model`);
    return {
      accuracy: scored.reduce((s, a) => s + a.accuracy * a.samples, 0) / samples,
      loss: scored.reduce((s, a) => s + a.loss * a.samples, 0) / samples,
    };
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
    const entry = this.iterations.endRound({ ...timings, accuracy, loss, ...this.roundTotals, retries, missing: this.roundMissing })!;
    const metrics: RoundMetrics = {
      round,
      accuracy,
      loss,
      ...this.roundTotals,
      ...timings,
      bytes_up: entry.byte_received,
      bytes_down: entry.byte_send,
      retries,
      missing: this.roundMissing,
    };
    if (this.encryptedGlobal) {
      // Without the key the aggregator can only keep the ciphertexts; `main.js eval --he-key` opens them.
      await this.outputs.saveRound(round, { encrypted: this.modelMessage(round, {}) }, metrics);
    } else {
      setFlatWeights(this.prepared!.model, this.global);
      await this.outputs.saveRound(round, { model: this.prepared!.model }, metrics);
    }
    this.saveCheckpoint(round);
    this.lastMetrics = metrics;
    this.node.print?.(
      `round ${String(round).padStart(3)}/${this.machine.rules.rounds}  accuracy ${(metrics.accuracy * 100).toFixed(2)}%  loss ${metrics.loss.toFixed(4)}  ` +
        `${metrics.clients} clients  ${(metrics.round_ms / 1000).toFixed(1)} s  up ${(metrics.bytes_up / 1e6).toFixed(1)} MB  down ${(metrics.bytes_down / 1e6).toFixed(1)} MB`,
    );
    this.changes.emit('change', 'round');
    this.dispatch({ type: 'checkpointed', round });
  }

  /** The round is finished once this is on disk: a resumed aggregator goes on from here. */
  private saveCheckpoint(round: number): void {
    const blobs: Record<string, Uint8Array> = {};
    if (this.encryptedGlobal) blobs.encrypted_model = this.modelMessage(round, {});
    else blobs.global = float32Bytes(this.global);
    const state = this.strategy!.snapshot();
    for (const [name, values] of Object.entries(state)) blobs[`strategy.${name}`] = float32Bytes(values);
    const header: CheckpointHeader = {
      experiment: this.config.experiment,
      settings: this.config.settings,
      rows: this.outputs.rows,
      strategy_state: Object.keys(state),
      saved_at: new Date().toISOString(),
    };
    this.checkpoints.save(round, header as unknown as Record<string, unknown>, blobs);
  }

  get isFinished(): boolean {
    return this.done;
  }

  private finish(): void {
    this.done = true;
    this.changes.emit('change', 'stage');
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
    await this.prepared?.he?.pool.close();
  }
}
