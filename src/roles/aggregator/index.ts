/**
 * The aggregator role, as wiring: HTTP calls become round-machine events (`RoundExecutor` carries
 * out what it decides), updates go into the round's accumulator, the global model of this key mode
 * turns the total into the next model through the strategy, the round clock times each phase, and
 * each finished round is saved and checkpointed.
 */
import type * as tf from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { z } from 'zod';
import { aggregatorCheckpoint, aggregatorState, CHECKPOINTS_DIR, CheckpointStore, KEY_PAIR_FILE, type Checkpoint } from '../../checkpoint';
import { describeIssues } from '../../config/load';
import { inputOf, type AggregatorNodeConfig } from '../../config/schema';
import { heldOutData } from '../../data/source';
import { startKeyHolderSession, startSession, type HeSession } from '../../he/keys';
import { quantizesChange } from '../../he/quantized';
import { logBatchSchema } from '../../log/central';
import { ClusterLog, type WorkerRole } from '../../log/cluster-log';
import { initBackend } from '../../model/backend';
import { createModel, evaluate, expectedParameterCount, getFlatWeights, modelId, setFlatWeights, tensorSizes } from '../../model/model';
import { badRequest, HttpError, refused } from '../../net/errors';
import { ExperimentOutputs, type RoundMetrics } from '../../outputs';
import { RoundMachine } from '../../protocol/aggregator/machine';
import { chainOf, quorum, reachable, reporterOf, type Event, type Stage } from '../../protocol/aggregator/state';
import { createStrategy, type FitResult, type Strategy } from '../../strategy/strategy';
import { Kind, type Message } from '../../wire/codec';
import { attemptOf, readMessage } from '../../wire/receive';
import { Role } from '../role';
import { EncryptedAccumulator, PlaintextAccumulator, type UpdateAccumulator } from './accumulator';
import { RoundExecutor, type RoundWork } from './executor';
import { ReadableGlobal, SealedGlobal, type GlobalModel, type ModelHeader } from './global-model';
import { RoundClock } from './round-clock';
import { askToEvaluate } from '../federated-evaluation';
import { namedClients, withheldSchema } from '../switch';
import { describeWorkers, statusView } from './view';

export { CHECKPOINTS_DIR, KEY_PAIR_FILE, type CheckpointHeader } from '../../checkpoint';

const anotherModel = (theirs: number, own: number) => `its model is another (id ${theirs}; the aggregator's is ${own}): every node must load the same model (model.path)`;

const checkinSchema = z
  .object({
    client: z.string(),
    samples: z.number().int().min(0).default(0),
    /** One sample's shape, and how many of its samples each class has: checked against the model, kept for the report. */
    shape: z.array(z.number().int().positive()).max(3).optional(),
    histogram: z.array(z.number().int().min(0)).max(256).optional(),
    /** Its model's id (layer shapes): every node must have loaded the same model. */
    model: z.number().int().min(0).optional(),
    /** The sealed model it scored and keeps (key at the clients): it is then sent a reference, not the model again. */
    keeps: z.string().max(100).optional(),
  })
  .strict();

/** Set up once the role has started: the pieces that need the backend, the data and the keys. */
interface Prepared {
  model: tf.LayersModel;
  modelId: number;
  backend: string;
  strategy: Strategy;
  global: GlobalModel;
  accumulator: UpdateAccumulator;
  he?: HeSession;
}

export interface ExperimentSummary {
  experiment: string;
  rounds: RoundMetrics[];
  outputs: string;
}

/** What the health checks last said of a worker (the dashboard shows it). */
export interface WorkerHealth {
  state: 'up' | 'down' | 'failed';
  since: string;
  reason?: string;
}

/** What changed, for whoever shows the experiment live (dashboard, progress bars). */
export type Change = 'stage' | 'round' | 'logs' | 'health';

export class AggregatorRole extends Role<AggregatorNodeConfig> implements RoundWork {
  readonly parameters = expectedParameterCount(this.config.settings.model, inputOf(this.config.settings.data));
  readonly encrypted = this.config.settings.he.enabled;
  readonly machine: RoundMachine;
  readonly outputs: ExperimentOutputs;
  readonly checkpoints: CheckpointStore;
  /** Resolves when the last round is checkpointed. */
  readonly finished: Promise<ExperimentSummary>;
  /** Every worker of the experiment, by address, with its role. */
  readonly workers: ReadonlyMap<string, WorkerRole>;
  /** Every worker's records, shipped here as rounds finish. */
  readonly cluster: ClusterLog;
  readonly health = new Map<string, WorkerHealth>();
  /** Workers whose role could not start, with their reason: they will not take part. */
  readonly failed = new Map<string, string>();
  readonly changes = new EventEmitter<{ change: [Change] }>();
  /** The workers whose updates are in the latest aggregated round: switches, and clients in their sums. */
  participants: string[] = [];
  private resolveFinished!: (summary: ExperimentSummary) => void;
  private rejectFinished!: (err: Error) => void;
  private readonly executor: RoundExecutor;
  private readonly clock = new RoundClock();
  private prepared?: Prepared;
  private done = false;
  /** Samples each client said it holds, from its check-in. */
  private readonly samplesOf = new Map<string, number>();
  /** Each client's model id, as it said at check-in (checked once this node has its own). */
  private readonly modelOf = new Map<string, number>();
  /** Each client's samples per class, as it said at check-in: the report's class chart. */
  readonly histograms = new Map<string, number[]>();
  /** Encrypted updates are pre-scaled by samples × this (1 / the selected clients' samples). */
  private roundScale = 1;
  private round = { clients: 0, samples: 0, missing: [] as string[], accuracy: 0, loss: 0 };

  constructor(
    config: AggregatorNodeConfig,
    node: ConstructorParameters<typeof Role<AggregatorNodeConfig>>[1],
    /** A checkpoint to go on from (`agg --resume`); without one the experiment starts over. */
    private readonly resumeFrom?: Checkpoint,
  ) {
    super(config, node);
    const { settings, address } = this.config;
    const upstreamOf = new Map(Object.entries(this.config.clients));
    const switchUpstreamOf = new Map(Object.entries(this.config.switches));
    const rules = {
      rounds: settings.rounds,
      goal: settings.clients_per_round ?? upstreamOf.size,
      minFraction: settings.min_report_fraction,
      deadlineMs: settings.timeouts.round_ms,
      session: randomBytes(4).toString('hex'),
      // The strategy chooses among the ready clients; it exists once the role has prepared.
      select: (round: number, ready: readonly string[], goal: number) => this.prepared!.strategy.selectClients(round, ready, goal),
    };
    this.machine = new RoundMachine(rules, { upstreamOf, switchUpstreamOf, self: address }, (resumeFrom?.round ?? 0) + 1);
    this.executor = new RoundExecutor(this.machine, this.executorIo(), this);
    this.outputs = new ExperimentOutputs(this.node.outputsDir, this.config.experiment);
    this.checkpoints = new CheckpointStore(join(this.outputs.dir, CHECKPOINTS_DIR));
    this.workers = new Map([
      ...Object.keys(this.config.switches).map((s) => [s, 'switch'] as const),
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

  private executorIo() {
    return {
      peers: this.node.peers,
      logger: this.node.logger,
      signal: this.abort.signal,
      after: (ms: number, fn: () => void) => this.after(ms, fn),
      cancel: (timer: NodeJS.Timeout) => this.cancel(timer),
      isStopped: () => this.isStopped,
      print: this.node.print,
    };
  }

  override start(): void {
    void this.prepare()
      .then(() => {
        if (this.isStopped) return;
        if (this.machine.state.round > this.machine.rules.rounds) this.finish();
        else this.executor.dispatch({ type: 'start' });
      })
      .catch((err) => this.fail('the aggregator failed to prepare', err));
  }

  get backend(): string | undefined {
    return this.prepared?.backend;
  }

  get isFinished(): boolean {
    return this.done;
  }

  // ---- what the health checks and the push saw ----

  workerDown(address: string, reason = 'not answering'): void {
    this.noteHealth(address, 'down', reason);
    this.executor.dispatch({ type: 'node-down', node: address });
  }

  /** `resumed`: the same process answers again (it had hung); a client waiting then is selectable again at once. */
  workerUp(address: string, how?: string, resumed = false): void {
    this.failed.delete(address);
    this.noteHealth(address, 'up', how);
    this.executor.dispatch({ type: 'node-up', node: address, resumed });
  }

  /** Its role cannot work: the experiment goes on without it while the quorum holds, and stops when it does not. */
  workerFailed(address: string, reason: string, announce = true): void {
    this.failed.set(address, reason);
    this.noteHealth(address, 'failed', reason);
    this.executor.dispatch({ type: 'node-down', node: address });
    const { goal, minFraction } = this.machine.rules;
    const able = this.clientsAble();
    const needed = quorum(goal, minFraction);
    if (able.length < needed) {
      const why = [...this.failed].map(([worker, reason]) => `  - ${worker}: ${reason}`).join('\n');
      this.fail('the experiment cannot go on', new Error(`${able.length} clients can still take part, a round needs ${needed}; failed to start:\n${why}`));
      return;
    }
    if (!announce) return;
    const line = `going on without ${address} (${able.length} clients can still take part, a round needs ${needed})`;
    this.node.logger.warn(line);
    this.node.print?.(line);
  }

  /** Clients that answer now, through switches that do (none down or failed): those asked to score a model only they can read. */
  private clientsUp(): string[] {
    const { state, topology } = this.machine;
    return reachable(state, topology, Object.keys(this.config.clients)).filter((client) => !this.failed.has(client));
  }

  /** Clients neither failed themselves nor beneath a failed switch. */
  private clientsAble(): string[] {
    const { topology } = this.machine;
    return [...topology.upstreamOf.keys()].filter((client) => ![client, ...chainOf(topology, client)].some((node) => this.failed.has(node)));
  }

  noteHealth(address: string, state: WorkerHealth['state'], reason?: string): void {
    this.health.set(address, { state, since: new Date().toISOString(), reason });
    this.changes.emit('change', 'health');
  }

  override peerHealth(): ReadonlyMap<string, WorkerHealth['state']> {
    return new Map([...this.health].map(([address, said]) => [address, said.state]));
  }

  override heQueueDepth(): number {
    return this.prepared?.he?.pool.queued ?? 0;
  }

  /** Each worker with what it last said: for lines that name who a round waits for. */
  describe(addresses: string[]): string {
    return describeWorkers(this, addresses);
  }

  // ---- HTTP ----

  /** POST /a/logs: a worker's iteration entries, warnings and errors (central logging). */
  receiveLogs(body: unknown): { taken: number; duplicates: number } {
    const parsed = logBatchSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, 'invalid log batch', 'the batch failed validation; nothing was written', describeIssues(parsed.error.issues));
    const outcome = this.cluster.receive(parsed.data);
    if (outcome.taken) this.changes.emit('change', 'logs');
    return outcome;
  }

  status() {
    return statusView(this);
  }

  /** GET /a/he/public-key: what clients encrypt with when the aggregator holds the key. */
  publicKey(): Buffer {
    const he = this.config.settings.he;
    if (!he.enabled || he.key_holder !== 'aggregator') throw new HttpError(404, 'not found', 'this experiment has no aggregator-held HE key');
    const key = this.prepared?.he?.publicKey;
    if (!key) throw new HttpError(503, 'not ready', 'the aggregator is still making its keys');
    return Buffer.from(key);
  }

  /** POST /a/checkin: a client is ready for a round. */
  checkIn(body: unknown): { status: string; round: number } {
    const parsed = checkinSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"client": "<address>", "samples": <count>}');
    const { client, samples, shape, histogram, model, keeps } = parsed.data;
    const input = inputOf(this.config.settings.data);
    const own = this.prepared?.modelId;
    if (model !== undefined) this.modelOf.set(client, model);
    const misfit =
      model !== undefined && own !== undefined && model !== own
        ? anotherModel(model, own)
        : shape && shape.join('x') !== input.shape.join('x')
        ? `its samples have shape [${shape.join(', ')}]; the model takes [${input.shape.join(', ')}] (data.shape)`
        : histogram && histogram.length !== input.classes
          ? `it counts ${histogram.length} classes; the model tells ${input.classes} apart (data.classes)`
          : undefined;
    if (misfit) {
      // Not selectable, ever: the experiment goes on without it while the quorum holds.
      this.workerFailed(client, misfit);
      throw new HttpError(422, 'data does not fit', `${client}: ${misfit}`);
    }
    if (histogram) this.histograms.set(client, histogram);
    this.prepared?.global.keeps?.(client, keeps);
    // Before the event: the check-in that closes selection must count in the round's HE pre-scaling.
    this.samplesOf.set(client, samples);
    this.executor.dispatch({ type: 'checkin', client });
    return { status: 'queued', round: this.machine.state.round };
  }

  /** POST /a/withheld: a switch forwards nothing this round; the round stops waiting for it. */
  withheld(body: unknown): void {
    const parsed = withheldSchema.safeParse(body);
    if (!parsed.success) throw badRequest('expected {"round", "attempt", "switch", "clients", "reason"}', describeIssues(parsed.error.issues));
    const { switch: from, ...notice } = parsed.data;
    this.executor.dispatch({ type: 'withheld', from, ...notice });
  }

  /** POST /a/receive: a switch's weighted sum, or a direct client's update. */
  async receive(body: unknown): Promise<{ round: number }> {
    const prepared = this.prepared;
    if (!prepared) throw new HttpError(503, 'not ready', 'the aggregator is still preparing');
    const he = prepared.he;
    const message = readMessage(body, {
      kinds: he ? [Kind.EncryptedSum, Kind.EncryptedUpdate] : [Kind.WeightedSum, this.config.settings.he.quantize ? Kind.QuantizedUpdate : Kind.Update],
      modelId: prepared.modelId,
      parameters: this.parameters,
      he: he && { id: he.id, chunks: he.chunks },
    });
    const direct = message.kind === Kind.Update || message.kind === Kind.QuantizedUpdate || message.kind === Kind.EncryptedUpdate;
    if (direct && this.machine.topology.upstreamOf.get(message.sender) !== this.config.address) {
      throw new HttpError(403, 'forbidden', `${message.sender} does not report to the aggregator directly`);
    }
    if (!(message.weight > 0)) throw badRequest('an update needs a positive sample count');
    const report = this.reportOf(message, direct);
    const waited = Number(message.meta?.waited_ms) || 0;
    const arrival = { sender: message.sender, weight: message.weight, contributors: message.contributors, preScaled: !direct, values: message.parameters, ciphertexts: message.ciphertexts };
    await prepared.accumulator.add(arrival, {
      check: () => {
        const refusal = this.machine.refusalFor(report);
        if (refusal) throw refused(refusal);
      },
      commit: (store) =>
        this.executor.dispatch(report, () => {
          store();
          this.clock.reported(waited);
        }),
    });
    return { round: message.round };
  }

  /** The report event for a message: a switch names the clients in its sum; a direct client is its own. */
  private reportOf(message: Message, direct: boolean): Extract<Event, { type: 'report' }> {
    const clients = direct ? [message.sender] : namedClients(message);
    if (direct && message.contributors !== 1) throw badRequest(`the sum claims ${message.contributors} updates but names 1 clients`);
    return { type: 'report', round: message.round, attempt: attemptOf(message), from: message.sender, clients, weight: message.weight };
  }

  // ---- preparing, and resuming ----

  private async startHe(sizes: number[]): Promise<HeSession | undefined> {
    const he = this.config.settings.he;
    if (!he.enabled) return undefined;
    // Holding the key, the aggregator makes the pair (kept for a resume); otherwise it holds none and can only add.
    if (he.key_holder === 'clients') return startSession(he, this.parameters, {});
    return startKeyHolderSession(he, this.parameters, join(this.checkpoints.dir, KEY_PAIR_FILE), this.resumeFrom !== undefined, sizes);
  }

  private async prepare(): Promise<void> {
    const { settings } = this.config;
    if (!this.resumeFrom) {
      // Starting over: an earlier run's checkpoints and rounds must not mix with this one's.
      this.checkpoints.clear();
      this.outputs.clearRounds();
      this.iterations.keepRounds(0);
    }
    const backend = await initBackend(settings.model.architecture);
    const { test, from } = heldOutData(settings.data);
    const model = await createModel(settings.model, settings.data.seed, inputOf(settings.data));
    const he = await this.startHe(tensorSizes(model)).catch((err) => {
      model.dispose();
      throw err;
    });
    if (this.isStopped) {
      // Stopped while the keys were made.
      model.dispose();
      return void (await he?.pool.close());
    }
    this.node.logger.info(`held-out set: ${test.size} samples from ${from}`);
    const strategy = createStrategy(settings.training, (parameters) => {
      setFlatWeights(model, parameters);
      return evaluate(model, test);
    });
    const initial = getFlatWeights(model);
    const sealed = he && settings.he.key_holder === 'clients';
    const global: GlobalModel = sealed
      ? new SealedGlobal(initial, strategy, he, (round, message, clients) => this.askToEvaluate(round, message, clients), () => this.clientsUp())
      : new ReadableGlobal(initial, strategy, model, he, quantizesChange(settings.he));
    const accumulator = he ? new EncryptedAccumulator(he) : new PlaintextAccumulator(this.parameters);
    this.prepared = { model, modelId: modelId(model), backend, strategy, global, accumulator, he };
    // Clients that checked in while this node prepared: their models are checked now.
    for (const [client, id] of this.modelOf) if (id !== this.prepared.modelId) this.workerFailed(client, anotherModel(id, this.prepared.modelId));
    if (this.resumeFrom) this.restore(this.resumeFrom);
    const packing = settings.he.quantize ? `quantized to ${settings.he.quantize.bits} bits (±${settings.he.quantize.clip}), ${he?.pool.perCiphertext} values a ciphertext` : 'a value to a coefficient';
    const encryption = he ? `CKKS N=${settings.he.poly_modulus_degree}, ${he.chunks} ciphertexts per update (${packing}), key held by the ${settings.he.key_holder}` : 'no encryption';
    const ready = `TensorFlow.js backend ${backend}; ${test.size} held-out test digits; strategy ${strategy.name}; ${encryption}`;
    this.node.logger.info(ready);
    this.node.print?.(ready);
  }

  /** The sealed model goes once to each switch under the aggregator, which asks the clients beneath it. */
  private askToEvaluate(round: number, message: Buffer, clients: string[]) {
    const within = this.config.settings.timeouts.request_ms;
    return askToEvaluate(this.node, this.abort.signal, round, message, clients, (client) => reporterOf(this.machine.topology, client), within);
  }

  /** Puts back what a checkpoint holds: the global model, the strategy's state, the rounds done. */
  private restore(checkpoint: Checkpoint): void {
    const { header, global, strategy } = aggregatorState(checkpoint);
    this.prepared!.global.restore(global);
    this.prepared!.strategy.restore(strategy);
    this.outputs.restoreRounds(header.rows as RoundMetrics[]);
    this.iterations.keepRounds(checkpoint.round);
    const line = `resumed from ${checkpoint.file}: ${checkpoint.round} rounds done, going on with round ${checkpoint.round + 1}`;
    this.node.logger.info(line);
    this.node.print?.(line);
  }

  // ---- the round's work (RoundWork), as the executor calls it ----

  moved(before: { stage: Stage; round: number }): void {
    const { stage, round } = this.machine.state;
    if (stage === before.stage && round === before.round) return;
    const newRound = round !== before.round || before.stage === 'idle';
    if (newRound) this.iterations.beginRound(round);
    if (newRound && stage !== 'selection') this.clock.enter('selection', true); // selection closed at once
    this.clock.enter(stage, newRound && stage === 'selection');
    this.changes.emit('change', 'stage');
  }

  private header(round: number): ModelHeader {
    return { round, modelId: this.prepared!.modelId, sender: this.config.address, parameters: this.parameters };
  }

  modelFor(round: number, attempt: string, clients: string[], recipients: string[]): Buffer {
    const { he, strategy, global } = this.prepared!;
    const samples = clients.reduce((n, c) => n + (this.samplesOf.get(c) ?? 0), 0) || 1;
    this.roundScale = 1 / samples;
    const encryption = he ? { weight_scale: this.roundScale, ...(he.keyId ? { he_key: he.keyId } : {}) } : {};
    return global.message(this.header(round), { ...strategy.configureFit(round), attempt, ...encryption }, recipients);
  }

  switchOpening(round: number, attempt: string, clients: string[]): Record<string, unknown> {
    const deadline_ms = this.machine.rules.deadlineMs;
    return { round, attempt, clients, deadline_ms, parameters: this.parameters, model_id: this.prepared!.modelId };
  }

  discard(): void {
    this.prepared?.accumulator.reset();
  }

  async aggregate(round: number, from: string[], missing: string[]): Promise<void> {
    const { accumulator, global } = this.prepared!;
    const reported = this.machine.state.reported;
    const results: FitResult[] = from.map((sender) => ({ from: sender, ...reported.get(sender)! }));
    const total = accumulator.total(this.roundScale);
    this.participants = [...from, ...results.flatMap((r) => r.clients).filter((c) => !from.includes(c))];
    this.round = { ...this.round, clients: total.contributors, samples: total.weight, missing };
    await global.update(round, total, results, missing);
    accumulator.reset();
    this.executor.dispatch({ type: 'aggregated', round });
  }

  async evaluate(round: number): Promise<void> {
    const { accuracy, loss } = await this.prepared!.global.evaluate(round, this.header(round));
    this.round = { ...this.round, accuracy, loss };
    this.executor.dispatch({ type: 'evaluated', round });
  }

  async checkpoint(round: number): Promise<void> {
    const { accuracy, loss, clients, samples, missing } = this.round;
    const timings = this.clock.timings(missing.length > 0);
    const retries = this.machine.state.retries;
    const entry = this.iterations.endRound({ ...timings, accuracy, loss, clients, samples, retries, missing })!;
    const link = entry.link_byte_received === undefined ? {} : { link_bytes_up: entry.link_byte_received as number, link_bytes_down: entry.link_byte_send as number };
    const metrics: RoundMetrics = { round, accuracy, loss, clients, samples, ...timings, bytes_up: entry.byte_received, bytes_down: entry.byte_send, ...link, retries, missing };
    const { global, strategy } = this.prepared!;
    await global.saveRound(this.outputs, this.header(round), metrics);
    const saved = aggregatorCheckpoint({
      header: { experiment: this.config.experiment, settings: this.config.settings, rows: this.outputs.rows, saved_at: new Date().toISOString() },
      global: global.snapshot(this.header(round)),
      strategy: strategy.snapshot(),
    });
    // The round is finished once this is on disk: a resumed aggregator goes on from here.
    this.checkpoints.save(round, saved.header, saved.blobs);
    this.node.print?.(roundLine(metrics, this.machine.rules.rounds));
    this.changes.emit('change', 'round');
    this.executor.dispatch({ type: 'checkpointed', round });
  }

  finish(): void {
    this.done = true;
    this.changes.emit('change', 'stage');
    this.node.logger.info(`experiment ${this.config.experiment} finished after ${this.outputs.rows.length} rounds`);
    this.resolveFinished({ experiment: this.config.experiment, rounds: this.outputs.rows, outputs: this.outputs.dir });
  }

  /** An error the experiment cannot go on from: logged, and the experiment ends with it. */
  fail(what: string, err: unknown): void {
    this.node.logger.error(`${what}: ${(err as Error)?.stack ?? err}`);
    this.rejectFinished(new Error(`${what}: ${(err as Error)?.message ?? err}`));
  }

  override async stop(): Promise<void> {
    await super.stop();
    this.prepared?.model.dispose();
    await this.prepared?.he?.pool.close();
  }
}

function roundLine(m: RoundMetrics, rounds: number): string {
  const waiting = m.waiting_ms ? `  (${(m.waiting_ms / 1000).toFixed(1)} s waiting for ${m.missing.length} missing)` : '';
  return (
    `round ${String(m.round).padStart(3)}/${rounds}  accuracy ${(m.accuracy * 100).toFixed(2)}%  loss ${m.loss.toFixed(4)}  ` +
    `${m.clients} clients  ${(m.round_ms / 1000).toFixed(1)} s  up ${(m.bytes_up / 1e6).toFixed(1)} MB  down ${(m.bytes_down / 1e6).toFixed(1)} MB${waiting}`
  );
}
