/**
 * A client's learning: its slice of the data and its share of the held-out data, the model, training
 * the global model it is sent, and (with the key at the clients) scoring the sealed global model,
 * which it then keeps to train from when the next round sends only a reference to it.
 */
import { addGaussianNoise, clientNoise, clipChange, dpClip, noiseRoomProblem, quantizedClipProblem } from '../../privacy/dp';
import { attackedData, attackedWeights } from './attack';
import type * as tf from '@tensorflow/tfjs';
import { inputOf } from '../../config/data-schema';
import { type ClientNodeConfig } from '../../config/node-config';
import { classHistogram } from '../../data/formats/labelled';
import { subset, type Dataset } from '../../data/mnist';
import { clientData } from '../../data/source';
import { initBackend } from '../../model/backend';
import { createModel, evaluate, getFlatWeights, modelId, setFlatWeights, stepsOf, tensorSizes, train, type Evaluation } from '../../model/model';
import type { ClientInstructions } from '../../strategy/strategy';
import { controlOf, vectorSizes, weightsOf, withControl } from '../../model/layout';
import { ControlVariate } from './control-variate';
import { firstBeyond, trainedLimit } from '../../he/bounds';
import { guessStep, longestStepMs, stepsTimedFor, timeStepsFor } from '../../model/stall';
import { inTurn } from '../../model/turns';

/** The round and opening a model is for; under SCAFFOLD, the last round this client's update was counted in. */
export interface Opening {
  round: number;
  attempt: string;
  countedIn?: number;
}

export class Trainer {
  /** Its training samples per class: told at every check-in. */
  readonly histogram: number[];
  readonly modelId: number;
  /** The tensor sizes of what it sends, in order: the model's (and under SCAFFOLD its control variate's). */
  readonly sizes: number[];
  /** The model's parameters (what a vector holds before a control variate). */
  readonly parameters: number;
  /** SCAFFOLD: this client's control variate c_i. */
  private readonly control?: ControlVariate;
  /**
   * Distributed DP: the standard deviation of the noise this client adds to each update, and whether
   * it is drawn in whole steps as the update is encrypted (quantized HE) rather than here (privacy/dp.ts).
   */
  readonly noiseShare?: { std: number; inSteps: boolean };
  /** DP: the length it clips its change to: dp.clip, less what rounding can add when quantized (dpClip). */
  private readonly clip?: number;
  /** The sealed model this client last scored, decrypted: a model reference trains from it. */
  private kept?: { tag: string; weights: Float32Array };
  private disposed = false;

  private constructor(
    private readonly config: ClientNodeConfig,
    private readonly model: tf.LayersModel,
    readonly data: Dataset,
    /** This client's share of the held-out digits, for federated evaluation. */
    readonly test: Dataset,
    readonly backend: string,
    /** Where its data came from, for the log. */
    readonly from: string,
  ) {
    this.histogram = classHistogram(data.labels, inputOf(config.settings.data).classes);
    this.modelId = modelId(model);
    const sizes = tensorSizes(model);
    this.parameters = sizes.reduce((a, b) => a + b, 0);
    this.sizes = vectorSizes(config.settings, sizes);
    if (this.sizes.length > sizes.length) this.control = new ControlVariate(this.parameters, config.client_number, trainedLimit(config.settings.he));
    const { dp } = config.settings;
    this.noiseShare = clientNoise(config.settings, config.client_number);
    const roomless = noiseRoomProblem(config.settings, config.client_number);
    if (roomless) throw new Error(roomless);
    const tooCoarse = dp && quantizedClipProblem(dp, config.settings.he, this.parameters);
    if (tooCoarse) throw new Error(tooCoarse);
    if (dp) this.clip = dpClip(dp, config.settings.he, this.parameters);
  }

  static async load(config: ClientNodeConfig): Promise<Trainer> {
    const { settings, client_number, index } = config;
    const backend = await initBackend(settings.model.architecture);
    const { train: own, test, from } = clientData(settings.data, config.data, client_number, index);
    const data = attackedData(config.attack, own, inputOf(settings.data).classes);
    const { value: model } = await inTurn(() => createModel(settings.model, settings.data.seed, inputOf(settings.data)));
    const trainer = new Trainer(config, model, data, test, backend, from);
    // Checked in its turn, so of a process's clients only the first times a model and batch. The weights it moves are set from the global model at every round.
    const work = JSON.stringify([settings.model, Math.min(data.size, settings.training.batch_size), inputOf(settings.data).shape]);
    try {
      await inTurn(async () => {
        if (data.size && !stepsTimedFor(work)) await timeStepsFor(work, () => measureStep(model, data, settings));
      });
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    return trainer;
  }

  /** What its ready line says: its data, its backend, and under DP its clip (and, distributed, its share of the noise). */
  describe(): string {
    const { dp } = this.config.settings;
    const clip = dp && this.clip !== dp.clip ? `${this.clip!.toPrecision(4)} (dp.clip ${dp.clip} less the ${(dp.clip - this.clip!).toPrecision(3)} quantizing can add)` : `${dp?.clip}`;
    const share = this.noiseShare;
    const steps = share?.inSteps ? ' in whole steps of the packing (a discrete Gaussian)' : '';
    const noise = share ? `; distributed DP: each update clipped to ${clip} and noised with standard deviation ${share.std.toPrecision(3)}${steps}, this client's share of the round's` : '';
    const central = dp && !this.noiseShare ? `; central DP: each update clipped to ${clip}` : '';
    return `${this.data.size} samples from ${this.from}, backend ${this.backend}${noise}${central}`;
  }

  /** The tag of the model it keeps, if any (said at check-in). */
  get keeps(): string | undefined {
    return this.kept?.tag;
  }

  /** The kept model's weights, when `tag` names it. */
  keptModel(tag: unknown): Float32Array | undefined {
    return typeof tag === 'string' && tag === this.kept?.tag ? this.kept.weights : undefined;
  }

  forget(): void {
    this.kept = undefined;
  }

  /**
   * What its update weighs, and what it says at check-in: its samples; under DP, 1 (every client's
   * clipped change counts the same, so one client moves the sum by at most the clip).
   */
  get weight(): number {
    return this.config.settings.dp ? 1 : this.data.size;
  }

  /**
   * Trains `global` (the round's vector: the model, and under SCAFFOLD the server's control variate)
   * for a round; its loss, and the vector it sends: its weights (under DP clipped, and noised when
   * distributed, unless drawn as it is encrypted; then worked on by an attack), and under SCAFFOLD its
   * control variate's step.
   * `share`: its weight over the round's selected clients' (the aggregator's instructions).
   * `queuedMs`: how long it waited for the process's other clients to train first (model/turns.ts).
   */
  async train(global: Float32Array, opening: Opening, instructions: ClientInstructions, share: number, signal?: AbortSignal): Promise<{ loss: number; weights: Float32Array; queuedMs: number }> {
    const { round } = opening;
    this.control?.settle(round, opening.attempt, opening.countedIn);
    const start = weightsOf(global, this.parameters);
    const serverControl = controlOf(global, this.parameters);
    // The weights are read in the turn: the next turn (a score) sets the model's own.
    const { value: { loss, weights }, waitedMs } = await inTurn(async () => {
      setFlatWeights(this.model, start);
      const loss = await train(this.model, this.data, {
        ...instructions,
        seed: this.config.settings.data.seed * 7919 + round * 131 + this.config.index,
        ...(serverControl && this.control ? { correction: this.control.correction(serverControl) } : {}),
        signal,
      });
      return { loss, weights: getFlatWeights(this.model) };
    }, signal);
    const { attack, settings } = this.config;
    const limit = trainedLimit(settings.he);
    this.checkTrained(weights, limit);
    const trained = this.clip !== undefined ? clipChange(start, weights, this.clip) : weights;
    if (this.noiseShare && !this.noiseShare.inSteps) addGaussianNoise(trained, this.noiseShare.std);
    const steps = stepsOf(this.data.size, instructions);
    const sent = serverControl && this.control ? withControl(trained, this.control.step(opening, serverControl, start, trained, steps * instructions.learningRate, share)) : trained;
    const out = attack ? attackedWeights(attack, global, sent, round, this.config.index) : sent;
    // What it sends, noised, attacked and with SCAFFOLD's step, is held to the range too: refused here, not by whoever reads it.
    const beyond = firstBeyond(out, limit);
    if (beyond >= 0) throw new Error(`its update would hold ${out[beyond]} at ${beyond}, beyond the ±${limit} an update may hold`);
    return { loss, weights: out, queuedMs: waitedMs };
  }

  /**
   * Weights trained beyond `limit` (he/bounds.ts trainedLimit), or not finite, fail the round. Under
   * SCAFFOLD they came of a made-up control variate kept (or a wild server c): it is forgotten.
   */
  private checkTrained(weights: Float32Array, limit: number): void {
    const beyond = firstBeyond(weights, limit);
    if (beyond < 0) return;
    this.control?.reset();
    const forgotten = this.control ? ': its control variate is reset to zero, as after a restart' : '';
    throw new Error(`training took weight ${beyond} to ${weights[beyond]}, beyond ±${limit}, which no honest training reaches${forgotten}`);
  }

  /**
   * A sealed model's weights, decrypted, scored on this client's test share; kept under `tag`. Scored
   * by the model it trains (each training sets its weights anew): a second model would cost a build
   * and its weights' memory every round, for a 10M-parameter network 45 MB and its initialization.
   * `signal`: its role stopped, and the model may be disposed of, before its turn.
   */
  async score(weights: Float32Array, tag: unknown, signal?: AbortSignal): Promise<Evaluation> {
    if (typeof tag === 'string') this.kept = { tag, weights };
    const { value } = await inTurn(async () => {
      setFlatWeights(this.model, weightsOf(weights, this.parameters));
      return evaluate(this.model, this.test);
    }, signal);
    return value;
  }

  /** Once: the round that was training when its role stopped may get here after the role did. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/**
 * How long a step of training holds this process silent, found before any round, so GET /health
 * says it from the start and the aggregator does not count this client down while it trains (see
 * model/stall.ts). One sample's step, times the batch, is said first: for a heartbeat and a half when
 * it is longer than two, so the aggregator reads it before a whole batch holds the process. Then the
 * whole batch is timed. The guess is the second sample's: the first compiles the model's kernels,
 * and times the batch would be long enough to wait for nothing (the first is still noted as a step).
 */
async function measureStep(model: tf.LayersModel, data: Dataset, settings: ClientNodeConfig['settings']): Promise<void> {
  const { training, timeouts } = settings;
  const batch = Math.min(data.size, training.batch_size);
  const first = (samples: number) => train(model, subset(data, [...Array(samples).keys()]), { epochs: 1, batchSize: samples, learningRate: training.learning_rate, seed: 0 });
  await first(1);
  const started = performance.now();
  await first(1);
  guessStep((performance.now() - started) * batch);
  try {
    // The aggregator counts a worker down after three silent heartbeats: a batch shorter than two needs no word ahead.
    if (longestStepMs() > 2 * timeouts.heartbeat_ms) await new Promise((resolve) => setTimeout(resolve, 1.5 * timeouts.heartbeat_ms));
    await first(batch);
  } finally {
    guessStep(0);
  }
}
