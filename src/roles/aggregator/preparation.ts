/**
 * What the aggregator sets up before its first round: the TensorFlow.js backend, the held-out data,
 * the model, the HE session of its key mode, the strategy, the global model and the round's
 * accumulator. Resuming, it puts back what its checkpoint holds.
 */
import { noiseStd } from '../../privacy/dp';
import type * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { EncryptedAccumulator, PlaintextAccumulator, type Accumulator } from '../../aggregation/accumulator';
import { aggregatorState, KEY_PAIR_FILE, type Checkpoint, type CheckpointHeader } from '../../checkpoint';
import { inputOf } from '../../config/data-schema';
import type { Settings } from '../../config/schema';
import { heldOutData, sampleNoun } from '../../data/source';
import { valueLimits } from '../../he/bounds';
import { startKeyHolderSession, startSession, type HeSession } from '../../he/keys';
import { quantizesChange } from '../../he/quantized';
import { initBackend } from '../../model/backend';
import { carriesControl, vectorSizes, weightsOf, withControl } from '../../model/layout';
import { createModel, evaluate, getFlatWeights, modelId, parameterCount, setFlatWeights, tensorSizes } from '../../model/model';
import { createStrategy } from '../../strategy/create';
import type { Strategy } from '../../strategy/strategy';
import { ReadableGlobal, SealedGlobal, type FederatedEvaluation, type GlobalModel } from './global-model';

export interface Prepared {
  model: tf.LayersModel;
  modelId: number;
  backend: string;
  strategy: Strategy;
  global: GlobalModel;
  accumulator: Accumulator;
  he?: HeSession;
  /** The line that says what was prepared (the console prints it). */
  summary: string;
}

export interface PrepareOptions {
  settings: Settings;
  parameters: number;
  /** Where the key pair is kept when the aggregator holds the key; kept, not made again, when resuming. */
  checkpointsDir: string;
  resuming: boolean;
  isStopped: () => boolean;
  /** Key at the clients: asks them to score the sealed model, and who can now. */
  askToEvaluate: FederatedEvaluation;
  clientsUp: () => readonly string[];
  /** The most held-out samples a client's score may count. */
  scoreCap: (client: string) => number;
  log: (line: string) => void;
}

/** Everything set up, or undefined when the role stopped meanwhile (what was made is released). */
export async function prepare(options: PrepareOptions): Promise<Prepared | undefined> {
  const { settings, parameters } = options;
  const backend = await initBackend(settings.model.architecture);
  const { test, from } = heldOutData(settings.data);
  const model = await createModel(settings.model, settings.data.seed, inputOf(settings.data));
  const he = await startHe(options, vectorSizes(settings, tensorSizes(model))).catch((err) => {
    model.dispose();
    throw err;
  });
  if (options.isStopped()) {
    model.dispose();
    await he?.pool.close();
    return undefined;
  }
  options.log(`held-out set: ${test.size} samples from ${from}`);
  const strategy = createStrategy(settings.training, (values) => {
    setFlatWeights(model, weightsOf(values, parameterCount(model)));
    return evaluate(model, test);
  });
  const initial = carriesControl(settings) ? withControl(getFlatWeights(model)) : getFlatWeights(model);
  const global: GlobalModel =
    he && settings.he.key_holder === 'clients'
      ? new SealedGlobal(initial, strategy, he, options.askToEvaluate, options.clientsUp, options.scoreCap)
      : new ReadableGlobal(initial, strategy, model, valueLimits(settings.he), he, quantizesChange(settings.he), centralNoise(settings));
  const accumulator = he ? new EncryptedAccumulator(he, 'aggregator') : new PlaintextAccumulator(parameters);
  const packing = settings.he.quantize ? `quantized to ${settings.he.quantize.bits} bits (±${settings.he.quantize.clip}), ${he?.pool.perCiphertext} values a ciphertext` : 'a value to a coefficient';
  const encryption = he ? `CKKS N=${settings.he.poly_modulus_degree}, ${he.chunks} ciphertexts per update (${packing}), key held by the ${settings.he.key_holder}` : 'no encryption';
  const summary = `TensorFlow.js backend ${backend}; ${test.size} held-out test ${sampleNoun(settings.data)}; strategy ${strategy.name}; ${encryption}`;
  return { model, modelId: modelId(model), backend, strategy, global, accumulator, he, summary };
}

/** Holding the key, the aggregator makes the pair (kept for a resume); otherwise it holds none and can only add. */
async function startHe({ settings, parameters, checkpointsDir, resuming }: PrepareOptions, sizes: number[]): Promise<HeSession | undefined> {
  const he = settings.he;
  if (!he.enabled) return undefined;
  if (he.key_holder === 'clients') return startSession(he, parameters, {});
  return startKeyHolderSession(he, parameters, join(checkpointsDir, KEY_PAIR_FILE), resuming, sizes);
}

/** Puts back what a checkpoint holds into the global model and the strategy; its header (the rows of the rounds done, who counted when) is returned. */
export function restore(prepared: Prepared, checkpoint: Checkpoint): CheckpointHeader {
  const { header, global, strategy } = aggregatorState(checkpoint);
  prepared.global.restore(global);
  prepared.strategy.restore(strategy);
  return header;
}

/** Central DP's noise on the round's sum (privacy/dp.ts); none without DP. */
function centralNoise({ dp }: Settings): number {
  return dp?.mode === 'central' ? noiseStd(dp) : 0;
}
