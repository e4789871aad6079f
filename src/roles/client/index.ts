/**
 * A client, as wiring: its stage machine (protocol/client.ts) says what a model, a stand-by or the
 * end of a round does; the `Trainer` holds its data and model and trains; the `KeyHolder` holds its
 * HE key; the `UpdateEncoder` makes its update. Each round it trains the global model it is sent,
 * reports the result and its sample count upstream, then checks in for the next round.
 */
import { inputOf } from '../../config/schema';
import { type ClientNodeConfig } from '../../config/node-config';
import type { HeSession } from '../../he/keys';
import { HttpError, refused } from '../../net/errors';
import { describeFailure } from '../../net/peers';
import { ClientMachine, type ClientAction } from '../../protocol/client';
import { upstreamRoute } from '../../topology/tree';
import { Kind, WIRE_CONTENT_TYPE, type Message } from '../../wire/codec';
import { readControl, standbySchema } from '../../wire/control';
import { readMessage } from '../../wire/receive';
import type { ClientInstructions } from '../../strategy/strategy';
import { Role } from '../role';
import { KeyHolder } from './key-holder';
import { Trainer } from './trainer';
import { UpdateEncoder } from './update-encoder';

/** What a model message carries besides the parameters. */
interface RoundMeta extends ClientInstructions {
  /** Encrypted updates are pre-scaled by samples × weight_scale (1 / the round's selected samples). */
  weight_scale?: number;
  /** An encrypted global model decrypts to the average once multiplied by this. */
  factor?: number;
  /** Which opening of the round this is; the update carries it back. */
  attempt?: string;
  /** Which public key to encrypt under (key_holder "aggregator"). */
  he_key?: string;
  /** Names a sealed model (key_holder "clients"); a model reference trains from the one kept under it. */
  model_tag?: string;
}

export class ClientRole extends Role<ClientNodeConfig> {
  private readonly machine = new ClientMachine();
  private readonly keys = new KeyHolder({
    config: this.config,
    parameters: this.parameters,
    keyFile: this.node.heKeyFile,
    logger: this.node.logger,
    // The aggregator makes its key pair as it starts: asked until it answers.
    fetchPublicKey: () =>
      this.persist(() => this.node.peers.get<ArrayBuffer>(this.config.aggregator, '/a/he/public-key', { responseType: 'arraybuffer', signal: this.abort.signal })),
  });
  private trainer?: Trainer;
  private encoder?: UpdateEncoder;
  private lastLoss?: number;

  override start(): void {
    this.keys.readSecretKey();
    void this.prepare()
      .then(() => this.act(this.machine.handle({ type: 'prepared' })))
      .catch((err) => !this.isStopped && this.markFailed(`it could not prepare: ${(err as Error)?.message ?? err}`));
  }

  override heQueueDepth(): number {
    return this.keys.queued;
  }

  status() {
    const { client_number, index, upstream, experiment } = this.config;
    return {
      role: 'client',
      experiment,
      slice: { index, of: client_number },
      samples: this.trainer?.data.size ?? null,
      upstream,
      stage: this.machine.stage,
      round: this.machine.round,
      last_loss: this.lastLoss ?? null,
      backend: this.trainer?.backend ?? null,
      rounds_done: this.iterations.rounds.length,
    };
  }

  /** POST /c/round: the global model for a round. Answers at once; training runs after. */
  receiveModel(body: Buffer): { round: number; samples: number } {
    const trainer = this.trainer;
    if (!trainer) throw refused(this.machine.refusalFor({ type: 'model', round: 0 })!);
    const message = this.decodeModel(body, trainer);
    const meta = message.meta as unknown as RoundMeta;
    // A reference trains from the model this client kept when it scored it; taken now, as a later evaluation may keep another.
    const kept = message.kind === Kind.ModelReference ? trainer.keptModel(meta.model_tag) : undefined;
    const missing = message.kind === Kind.ModelReference && !kept ? String(meta.model_tag) : undefined;
    this.act(this.machine.handle({ type: 'model', round: message.round, missing }), () =>
      this.runRound(message, meta, kept).catch((err) => {
        this.node.logger.error(`round ${message.round} failed: ${(err as Error).stack ?? err}`);
        if (!this.isStopped) this.act(this.machine.handle({ type: 'round-over' })); // free again: the next round can have it
      }),
    );
    return { round: message.round, samples: trainer.data.size };
  }

  override reconnected(): void {
    this.act(this.machine.handle({ type: 'reconnected' }));
  }

  /** POST /c/standby: not in this round (not selected, or selected behind a switch that could not open it). */
  standBy(body: unknown): void {
    const { round } = readControl(standbySchema, body, 'expected {"round": <number>}');
    this.node.logger.info(`standing by in round ${round}`);
    this.act(this.machine.handle({ type: 'standby' }));
  }

  /** POST /c/evaluate (key_holder "clients"): the encrypted global model, scored on this client's test share. */
  async evaluateModel(body: Buffer): Promise<{ round: number; accuracy: number; loss: number; samples: number }> {
    const he = this.keys.session;
    const trainer = this.trainer;
    if (!he || !trainer) throw new HttpError(409, 'conflict', 'this client holds no HE key to evaluate an encrypted model with');
    const message = readMessage(body, { kinds: [Kind.EncryptedModel], modelId: trainer.modelId, parameters: this.parameters, he: expectation(he) });
    const factor = Number(message.meta?.factor);
    if (!(factor > 0)) throw new HttpError(400, 'bad message', 'an encrypted model needs a positive "factor"');
    const weights = Float32Array.from(await he.pool.decrypt(message.ciphertexts!, this.parameters, factor));
    // Kept: the next round's model is this one, and then only its instructions come down.
    const score = await trainer.score(weights, message.meta?.model_tag);
    return { round: message.round, ...score, samples: trainer.test.size };
  }

  private decodeModel(body: Buffer, trainer: Trainer): Message {
    const he = this.keys.session;
    const sealed = he && this.config.settings.he.key_holder === 'clients';
    const kinds = sealed ? [Kind.Model, Kind.EncryptedModel, Kind.ModelReference] : [Kind.Model];
    const message = readMessage(body, { kinds, modelId: trainer.modelId, parameters: this.parameters, he: he && expectation(he) });
    const meta = message.meta ?? {};
    for (const key of ['epochs', 'batchSize', 'learningRate', ...(he ? ['weight_scale'] : []), ...(message.ciphertexts ? ['factor'] : [])]) {
      if (typeof meta[key] !== 'number' || !(Number(meta[key]) > 0)) throw new HttpError(400, 'bad message', `instructions lack a positive "${key}"`);
    }
    return message;
  }

  private async prepare(): Promise<void> {
    const trainer = await Trainer.load(this.config);
    try {
      this.encoder = new UpdateEncoder(this.config.settings.he, trainer.sizes);
      await this.keys.start(trainer.sizes);
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    if (this.isStopped) {
      trainer.dispose();
      await this.keys.close();
      return;
    }
    this.trainer = trainer;
    this.node.logger.info(`ready: ${trainer.data.size} samples from ${trainer.from}, backend ${trainer.backend}`);
  }

  /** `kept`: the model this round trains from, when it came as a reference to the one this client scored. */
  private async runRound(message: Message, meta: RoundMeta, kept?: Float32Array): Promise<void> {
    const trainer = this.trainer!;
    const { round } = message;
    this.iterations.beginRound(round);
    const he = await this.keys.keyFor(meta.he_key);
    const decryptStart = performance.now();
    const global = kept ?? (message.ciphertexts ? Float32Array.from(await he!.pool.decrypt(message.ciphertexts, this.parameters, meta.factor)) : message.parameters);
    // Only a model that came down encrypted (clients hold the key) has a decrypt phase.
    const decryptMs = message.ciphertexts ? performance.now() - decryptStart : undefined;
    const trainStart = performance.now();
    const { loss, weights } = await trainer.train(global, round, meta);
    this.lastLoss = loss;
    const trainMs = performance.now() - trainStart;
    if (this.isStopped) return;

    this.act(this.machine.handle({ type: 'trained' }));
    const encryptStart = performance.now();
    const source = { round, attempt: meta.attempt, sender: this.config.address, modelId: trainer.modelId, samples: trainer.data.size, weights, global, weightScale: meta.weight_scale };
    const { update, clipped } = await this.encoder!.encode(source, he);
    const encryptMs = performance.now() - encryptStart;
    const sendStart = performance.now();
    const outcome = await this.send(round, update);
    this.iterations.endRound({
      ...(he ? { encrypt_ms: Math.round(encryptMs) } : {}),
      ...(decryptMs !== undefined ? { decrypt_ms: Math.round(decryptMs) } : {}),
      train_ms: Math.round(trainMs),
      send_ms: Math.round(performance.now() - sendStart),
      samples: trainer.data.size,
      loss,
      update_bytes: update.length,
      ...(clipped !== undefined ? { clipped } : {}),
      outcome,
    });
    this.keys.stockZeros();
    this.act(this.machine.handle({ type: 'round-over' }));
  }

  /** The update, upstream; what became of it, for the iteration log. */
  private async send(round: number, update: Buffer): Promise<string> {
    const { upstream } = this.config;
    try {
      await this.node.peers.post(upstream, upstreamRoute(this.config, 'receive'), update, { headers: { 'Content-Type': WIRE_CONTENT_TYPE }, signal: this.abort.signal });
      return 'accepted';
    } catch (err) {
      const failure = describeFailure(err);
      this.node.logger.warn(`round ${round}: update not taken by ${upstream}: ${failure.reason}`);
      return `${failure.kind}: ${failure.reason}`;
    }
  }

  /**
   * Carries out the stage machine's actions: `train` starts the round (its model is the caller's);
   * a refusal is thrown, after what comes with it, and a check-in that comes with one goes after the
   * answer, so the refusal reaches its sender first.
   */
  private act(actions: ClientAction[], train?: () => Promise<void>): void {
    const refusal = actions.find((a) => a.type === 'refuse');
    for (const action of actions) {
      if (action.type === 'train') void train?.();
      if (action.type === 'forget-kept') this.trainer?.forget();
      if (action.type === 'check-in' && refusal) setImmediate(() => void this.checkIn());
      else if (action.type === 'check-in') void this.checkIn();
    }
    if (refusal) throw refused(refusal);
  }

  /** Tells the aggregator this client is ready for a round; retried until it answers. */
  private async checkIn(): Promise<void> {
    const trainer = this.trainer;
    // What it holds, so the aggregator can refuse a misfit before a round and chart the classes.
    const holds = trainer
      ? { samples: trainer.data.size, shape: inputOf(this.config.settings.data).shape, histogram: trainer.histogram, model: trainer.modelId, ...(trainer.keeps ? { keeps: trainer.keeps } : {}) }
      : { samples: 0 };
    try {
      await this.persist(() => this.node.peers.post(this.config.aggregator, '/a/checkin', { client: this.config.address, ...holds }, { signal: this.abort.signal }));
    } catch (err) {
      this.node.logger.error(`the aggregator refused the check-in: ${describeFailure(err).reason}`);
    }
  }

  override async stop(): Promise<void> {
    await super.stop();
    if (this.machine.stage !== 'training') this.trainer?.dispose();
    await this.keys.close();
  }
}

const expectation = (he: HeSession) => ({ id: he.id, chunks: he.chunks });
