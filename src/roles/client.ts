/**
 * A client: holds its slice of the data, trains the global model it is sent, reports the
 * result and its sample count to its switch, then checks in for the next round.
 */
import type * as tf from '@tensorflow/tfjs';
import { inputOf, type ClientNodeConfig } from '../config/schema';
import type { Dataset } from '../data/mnist';
import { classHistogram } from '../data/formats/labelled';
import { clientData } from '../data/source';
import { DEFAULT_KEY_FILE, readSecretKey, startSession, type HeSession } from '../he/keys';
import { clipsFor, countClipped, quantizesChange, type QuantizeSpec } from '../he/quantized';
import { quantizedMeta } from '../wire/quantized';
import { initBackend } from '../model/backend';
import { createModel, evaluate, expectedParameterCount, getFlatWeights, modelId, setFlatWeights, tensorSizes, train } from '../model/model';
import { describeFailure } from '../net/peers';
import { HttpError } from '../net/errors';
import type { ClientInstructions } from '../strategy/strategy';
import { encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../wire/codec';
import { readMessage } from '../wire/receive';
import { Role } from './role';

type Stage = 'preparing' | 'waiting' | 'training' | 'reporting';

interface Prepared {
  model: tf.LayersModel;
  data: Dataset;
  /** This client's share of the held-out digits, for federated evaluation. */
  test: Dataset;
  modelId: number;
  /** Its training samples per class: told at every check-in. */
  histogram: number[];
  backend: string;
  he?: HeSession;
  /** The model's weight tensor sizes, and he.quantize's clip checked against them (when quantized). */
  sizes: number[];
  clip?: Pick<QuantizeSpec, 'clip'>;
}

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
  readonly parameters = expectedParameterCount(this.config.settings.model, inputOf(this.config.settings.data));
  readonly encrypted = this.config.settings.he.enabled;
  private prepared?: Prepared;
  private stage: Stage = 'preparing';
  private round = 0;
  private lastLoss?: number;
  /** The sealed model this client last scored, decrypted (key_holder "clients"): the next round trains from it. */
  private kept?: { tag: string; weights: Float32Array };

  /** Read at start: without it (clients holding the key) this client cannot work, and the push says so. */
  private secretKey?: Uint8Array;

  override start(): void {
    const he = this.config.settings.he;
    if (he.enabled && he.key_holder === 'clients') this.secretKey = readSecretKey(he, this.node.heKeyFile ?? DEFAULT_KEY_FILE);
    void this.prepare()
      .then(() => this.checkIn())
      .catch((err) => !this.isStopped && this.markFailed(`it could not prepare: ${(err as Error)?.message ?? err}`));
  }

  override heQueueDepth(): number {
    return this.prepared?.he?.pool.queued ?? 0;
  }

  status() {
    const { client_number, index, upstream, experiment } = this.config;
    return {
      role: 'client',
      experiment,
      slice: { index, of: client_number },
      samples: this.prepared?.data.size ?? null,
      upstream,
      stage: this.stage,
      round: this.round,
      last_loss: this.lastLoss ?? null,
      backend: this.prepared?.backend ?? null,
      rounds_done: this.iterations.rounds.length,
    };
  }

  /** POST /c/round: the global model for a round. Answers at once; training runs after. */
  receiveModel(body: Buffer): { round: number; samples: number } {
    const prepared = this.prepared;
    if (!prepared) throw new HttpError(503, 'not ready', 'this client is still loading its data; try again shortly');
    const message = this.decodeModel(body, prepared);
    if (this.stage === 'training' || this.stage === 'reporting') {
      throw new HttpError(409, 'busy', `this client is still working on round ${this.round}`);
    }
    const tag = message.meta?.model_tag;
    if (message.kind === Kind.ModelReference && (typeof tag !== 'string' || tag !== this.kept?.tag)) {
      // It keeps no such model (started anew since it scored one): it checks in saying so, and is sent the model next time.
      this.kept = undefined;
      setImmediate(() => void this.checkIn());
      throw new HttpError(409, 'conflict', `this client keeps no model ${String(tag)} to train from; it checks in again for the whole model`);
    }
    this.round = message.round;
    this.stage = 'training';
    // The kept model is taken now: a later evaluation may keep another while this round runs.
    const kept = message.kind === Kind.ModelReference ? this.kept!.weights : undefined;
    void this.runRound(message, message.meta as unknown as RoundMeta, kept).catch((err) => {
      this.node.logger.error(`round ${message.round} failed: ${(err as Error).stack ?? err}`);
      this.stage = 'waiting';
      if (!this.isStopped) void this.checkIn(); // free again: the next round can have it
    });
    return { round: message.round, samples: prepared.data.size };
  }

  override reconnected(): void {
    if (this.stage === 'waiting') void this.checkIn();
  }

  /**
   * POST /c/standby: not in this round (not selected, or selected behind a switch that could not open
   * it). Checking in again costs nothing when still queued, and puts back one that was not.
   */
  standBy(round: number): void {
    this.node.logger.info(`standing by in round ${round}`);
    if (this.stage === 'waiting') void this.checkIn();
  }

  /** POST /c/evaluate (key_holder "clients"): the encrypted global model, scored on this client's test share. */
  async evaluateModel(body: Buffer): Promise<{ round: number; accuracy: number; loss: number; samples: number }> {
    const prepared = this.prepared;
    if (!prepared?.he) throw new HttpError(409, 'conflict', 'this client holds no HE key to evaluate an encrypted model with');
    const message = readMessage(body, { kinds: [Kind.EncryptedModel], modelId: prepared.modelId, parameters: this.parameters, he: this.heExpectation(prepared.he) });
    const factor = Number(message.meta?.factor);
    if (!(factor > 0)) throw new HttpError(400, 'bad message', 'an encrypted model needs a positive "factor"');
    const weights = Float32Array.from(await prepared.he.pool.decrypt(message.ciphertexts!, this.parameters, factor));
    const tag = message.meta?.model_tag;
    // Kept: the next round's model is this one, and then only its instructions come down.
    if (typeof tag === 'string') this.kept = { tag, weights };
    const evaluator = await createModel(this.config.settings.model, this.config.settings.data.seed, inputOf(this.config.settings.data));
    try {
      setFlatWeights(evaluator, weights);
      return { round: message.round, ...evaluate(evaluator, prepared.test), samples: prepared.test.size };
    } finally {
      evaluator.dispose();
    }
  }

  private heExpectation(he: HeSession) {
    return { id: he.id, chunks: he.chunks };
  }

  private decodeModel(body: Buffer, prepared: Prepared) {
    const he = prepared.he;
    const encryptedModels = he && this.config.settings.he.key_holder === 'clients';
    const message = readMessage(body, {
      kinds: encryptedModels ? [Kind.Model, Kind.EncryptedModel, Kind.ModelReference] : [Kind.Model],
      modelId: prepared.modelId,
      parameters: this.parameters,
      he: he && this.heExpectation(he),
    });
    const meta = message.meta ?? {};
    for (const key of ['epochs', 'batchSize', 'learningRate', ...(he ? ['weight_scale'] : []), ...(message.ciphertexts ? ['factor'] : [])]) {
      if (typeof meta[key] !== 'number' || !(Number(meta[key]) > 0)) throw new HttpError(400, 'bad message', `instructions lack a positive "${key}"`);
    }
    return message;
  }

  /** The key this client encrypts (and in "clients" mode decrypts) with. */
  private async startHe(sizes: number[]): Promise<HeSession | undefined> {
    const he = this.config.settings.he;
    if (!he.enabled) return undefined;
    if (he.key_holder === 'clients') {
      return startSession(he, this.parameters, { secretKey: this.secretKey! }, sizes);
    }
    // The aggregator makes its key pair as it starts: wait for it.
    const publicKey = await this.persist(() =>
      this.node.peers.get<ArrayBuffer>(this.config.aggregator, '/a/he/public-key', { responseType: 'arraybuffer', signal: this.abort.signal }),
    );
    if (!publicKey) return undefined;
    const session = await startSession(he, this.parameters, { publicKey: new Uint8Array(publicKey) }, sizes);
    this.stockZeros(session);
    return session;
  }

  /** The next update's encryptions of zero, made in the HE threads while this client waits (public key only). */
  private stockZeros(he: HeSession | undefined): void {
    he?.pool.prepare(this.parameters).catch((err) => this.node.logger.debug(`encryptions of zero not made ahead: ${(err as Error).message}`));
  }

  private async prepare(): Promise<void> {
    const { settings, client_number, index } = this.config;
    const backend = await initBackend(settings.model.architecture);
    const { train: data, test, from } = clientData(settings.data, this.config.data, client_number, index);
    const model = await createModel(settings.model, settings.data.seed, inputOf(settings.data));
    const sizes = tensorSizes(model);
    // A clip list that does not fit the model is named now, where the push reports it, not at every round.
    const clipThenHe = async () => ({ clip: settings.he.quantize && clipsFor(settings.he.quantize, sizes), he: await this.startHe(sizes) });
    const { clip, he } = await clipThenHe().catch((err) => {
      model.dispose();
      throw err;
    });
    if (this.isStopped) {
      model.dispose();
      await he?.pool.close();
      return;
    }
    this.prepared = { model, data, test, modelId: modelId(model), histogram: classHistogram(data.labels, inputOf(settings.data).classes), backend, he, sizes, clip };
    this.stage = 'waiting';
    this.node.logger.info(`ready: ${data.size} samples from ${from}, backend ${backend}`);
  }

  /** The aggregator made a new key pair (it started over): encrypt under its new public key. */
  private async keyFor(keyId: string | undefined): Promise<HeSession | undefined> {
    const prepared = this.prepared!;
    const current = prepared.he;
    if (!current || !keyId || current.keyId === keyId) return current;
    this.node.logger.warn(`the aggregator's public key changed (${current.keyId} -> ${keyId}); fetching the new one`);
    const fresh = await this.startHe(prepared.sizes);
    if (fresh?.keyId !== keyId) {
      await fresh?.pool.close();
      throw new Error(`the aggregator sent a model for HE key ${keyId} but serves key ${fresh?.keyId}`);
    }
    prepared.he = fresh;
    await current.pool.close();
    return fresh;
  }

  /** `kept`: the model this round trains from, when it came as a reference to the one this client scored. */
  private async runRound(message: Message, meta: RoundMeta, kept?: Float32Array): Promise<void> {
    const { model, data } = this.prepared!;
    const round = message.round;
    this.iterations.beginRound(round);
    const he = await this.keyFor(meta.he_key);
    const decryptStart = performance.now();
    const global = kept ?? (message.ciphertexts ? Float32Array.from(await he!.pool.decrypt(message.ciphertexts, this.parameters, meta.factor)) : message.parameters);
    // Only a model that came down encrypted (clients hold the key) has a decrypt phase.
    const decryptMs = message.ciphertexts ? performance.now() - decryptStart : undefined;
    const trainStart = performance.now();
    setFlatWeights(model, global);
    this.lastLoss = await train(model, data, {
      epochs: meta.epochs,
      batchSize: meta.batchSize,
      learningRate: meta.learningRate,
      seed: this.config.settings.data.seed * 7919 + round * 131 + this.config.index,
    });
    const trainMs = performance.now() - trainStart;
    if (this.isStopped) return;

    this.stage = 'reporting';
    const encryptStart = performance.now();
    const weights = getFlatWeights(model);
    const { update, clipped } = await this.updateMessage(round, weights, global, meta, he);
    const encryptMs = performance.now() - encryptStart;
    const sendStart = performance.now();
    const path = this.config.upstream === this.config.aggregator ? '/a/receive' : '/s/receive';
    let outcome = 'accepted';
    try {
      await this.node.peers.post(this.config.upstream, path, update, {
        headers: { 'Content-Type': WIRE_CONTENT_TYPE },
        signal: this.abort.signal,
      });
    } catch (err) {
      const failure = describeFailure(err);
      outcome = `${failure.kind}: ${failure.reason}`;
      this.node.logger.warn(`round ${round}: update not taken by ${this.config.upstream}: ${failure.reason}`);
    }
    this.iterations.endRound({
      ...(he ? { encrypt_ms: Math.round(encryptMs) } : {}),
      ...(decryptMs !== undefined ? { decrypt_ms: Math.round(decryptMs) } : {}),
      train_ms: Math.round(trainMs),
      send_ms: Math.round(performance.now() - sendStart),
      samples: data.size,
      loss: this.lastLoss,
      update_bytes: update.length,
      ...(clipped !== undefined ? { clipped } : {}),
      outcome,
    });
    this.stage = 'waiting';
    this.stockZeros(he);
    await this.checkIn();
  }

  /**
   * The round's update: the weights, or (he.quantize) their change to the model sent when the
   * aggregator can add it back (quantizesChange), quantized; encrypted under HE. With how many values
   * were clipped, when quantized.
   */
  private async updateMessage(round: number, weights: Float32Array, global: Float32Array, meta: RoundMeta, he: HeSession | undefined): Promise<{ update: Buffer; clipped?: number }> {
    const { data, modelId: id, sizes, clip } = this.prepared!;
    const settings = this.config.settings.he;
    const quantize = settings.quantize;
    const sent = quantize && quantizesChange(settings) ? minus(weights, global) : weights;
    const clipped = clip ? countClipped(sent, clip, sizes) : undefined;
    const base = { round, modelId: id, contributors: 1, weight: data.size, sender: this.config.address, count: weights.length };
    if (he) {
      const ciphertexts = await he.pool.encrypt(sent, data.size * meta.weight_scale!);
      return { update: encode({ ...base, kind: Kind.EncryptedUpdate, meta: { he: he.id, attempt: meta.attempt }, parameters: new Float32Array(0), ciphertexts }), clipped };
    }
    if (!quantize || !clip) return { update: encode({ ...base, kind: Kind.Update, meta: { attempt: meta.attempt }, parameters: weights }) };
    const quantized = quantizedMeta({ bits: quantize.bits, ...clip }, sent.length, sizes);
    return { update: encode({ ...base, kind: Kind.QuantizedUpdate, meta: { attempt: meta.attempt, quantized }, parameters: sent }), clipped };
  }

  /** Tells the aggregator this client is ready for a round; retried until it answers. */
  private async checkIn(): Promise<void> {
    const prepared = this.prepared;
    // What it holds, so the aggregator can refuse a misfit before a round and chart the classes.
    const holds = prepared
      ? { samples: prepared.data.size, shape: inputOf(this.config.settings.data).shape, histogram: prepared.histogram, model: prepared.modelId, ...(this.kept ? { keeps: this.kept.tag } : {}) }
      : { samples: 0 };
    try {
      await this.persist(() => this.node.peers.post(this.config.aggregator, '/a/checkin', { client: this.config.address, ...holds }, { signal: this.abort.signal }));
    } catch (err) {
      this.node.logger.error(`the aggregator refused the check-in: ${describeFailure(err).reason}`);
    }
  }

  override async stop(): Promise<void> {
    await super.stop();
    if (this.stage !== 'training') this.prepared?.model.dispose();
    await this.prepared?.he?.pool.close();
  }
}

/** a - b, element by element. */
function minus(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}
