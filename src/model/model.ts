/** The model every node shares: built the same way everywhere, exchanged as one flat float32 vector. */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { buildLarge } from './architectures';
import { DIGITS, imageShape, isLarge, modelFolder, tabularSecond, valuesPerSample, type ModelInput } from './size';
import { noteStep, timedStep } from './stall';
import { loadModel } from './store';
import type { Settings } from '../config/schema';
import type { Dataset } from '../data/mnist';
import { seededRandom, shuffle } from '../data/random';

export type ModelSettings = Settings['model'];

/**
 * The experiment's model: a built-in, built from the seed, or (architecture "file") the layers
 * model at `spec.path`, loaded with its own weights, which every node then starts from.
 */
export async function createModel(spec: ModelSettings, seed: number, input: ModelInput = DIGITS): Promise<tf.LayersModel> {
  if (spec.architecture !== 'file') return buildModel(spec, seed, input);
  const model = await loadModel(modelFolder(spec.path!));
  const [, ...shape] = model.inputs[0].shape;
  const fits = shape.reduce<number>((a, b) => a * (b ?? 1), 1) === valuesPerSample(input) && classesOf(model) === input.classes;
  if (!fits) {
    model.dispose();
    throw new Error(`${spec.path}: the model takes [${shape.join(', ')}] and tells ${classesOf(model)} classes apart; data.shape is [${input.shape.join(', ')}] and data.classes ${input.classes}`);
  }
  return model;
}

export function buildModel(spec: ModelSettings, seed: number, input: ModelInput = DIGITS): tf.LayersModel {
  if (spec.architecture === 'file') throw new Error('a model from a file is loaded (createModel), not built');
  let next = seed;
  const init = () => tf.initializers.glorotUniform({ seed: next++ });
  // He's initialization ahead of ReLUs keeps a deep network's signal from fading (He et al. 2015).
  if (isLarge(spec.architecture)) return buildLarge(spec.architecture, input, (before) => (before === 'relu' ? tf.initializers.heNormal({ seed: next++ }) : init()));
  const model = tf.sequential();
  if (spec.architecture === 'mlp') {
    model.add(tf.layers.dense({ inputShape: [valuesPerSample(input)], units: spec.hidden_units, activation: 'relu', kernelInitializer: init() }));
  } else if (spec.architecture === 'tabular') {
    model.add(tf.layers.dense({ inputShape: [valuesPerSample(input)], units: spec.hidden_units, activation: 'relu', kernelInitializer: init() }));
    model.add(tf.layers.dense({ units: tabularSecond(spec.hidden_units), activation: 'relu', kernelInitializer: init() }));
  } else {
    const [height, across, channels] = imageShape(input, 'the CNN');
    model.add(tf.layers.reshape({ inputShape: [valuesPerSample(input)], targetShape: [height, across, channels] }));
    model.add(tf.layers.conv2d({ filters: 8, kernelSize: 5, activation: 'relu', kernelInitializer: init() }));
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    model.add(tf.layers.conv2d({ filters: 16, kernelSize: 5, activation: 'relu', kernelInitializer: init() }));
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    model.add(tf.layers.flatten());
    model.add(tf.layers.dense({ units: spec.hidden_units, activation: 'relu', kernelInitializer: init() }));
  }
  model.add(tf.layers.dense({ units: input.classes, activation: 'softmax', kernelInitializer: init() }));
  return model;
}

/** A 32-bit id of the architecture (layer shapes), carried in every update so a stranger's is refused. */
export function modelId(model: tf.LayersModel): number {
  const shapes = model.getWeights().map((w) => w.shape.join('x')).join(',');
  return createHash('sha256').update(shapes).digest().readUInt32LE(0);
}

export function parameterCount(model: tf.LayersModel): number {
  return model.getWeights().reduce((n, w) => n + w.size, 0);
}

/** Each weight tensor's size, in the order of the flat vector (he.quantize.clip may name one range each). */
export function tensorSizes(model: tf.LayersModel): number[] {
  return model.getWeights().map((w) => w.size);
}

export function getFlatWeights(model: tf.LayersModel): Float32Array {
  const weights = model.getWeights();
  const flat = new Float32Array(weights.reduce((n, w) => n + w.size, 0));
  let at = 0;
  for (const w of weights) {
    flat.set(w.dataSync() as Float32Array, at);
    at += w.size;
  }
  return flat;
}

export function setFlatWeights(model: tf.LayersModel, flat: Float32Array): void {
  const current = model.getWeights();
  const total = current.reduce((n, w) => n + w.size, 0);
  if (flat.length !== total) throw new Error(`model has ${total} parameters, got ${flat.length}`);
  let at = 0;
  const variables = model.weights; // in getWeights' order
  const tensors = current.map((w, i) => {
    const values = flat.subarray(at, at + w.size);
    at += w.size;
    // A batch norm's moving variance below 0 makes every prediction NaN (its rsqrt): DP's noise, a
    // server optimizer's step or an attacker can take the averaged one there. It is read as 0 at least.
    // By the name its layer gave it: a second model of the same layer names in a process gets "_1" after it.
    return tf.tidy(() => (/moving_variance$/.test(variables[i].originalName) ? tf.relu(tf.tensor(values, w.shape)) : tf.tensor(values, w.shape)));
  });
  model.setWeights(tensors);
  tf.dispose(tensors);
}

/** How many classes a model tells apart: the width of its last layer. */
const classesOf = (model: tf.LayersModel) => model.outputs[0].shape[1] as number;

function tensors(model: tf.LayersModel, data: Dataset, order?: readonly number[]): { x: tf.Tensor; y: tf.Tensor2D } {
  const classes = classesOf(model);
  // In the model's own input shape: the built-ins take flat rows, a model from a file may take images.
  const [, ...shape] = model.inputs[0].shape;
  return tf.tidy(() => {
    let x: tf.Tensor = tf.tensor2d(data.images, [data.size, data.images.length / data.size]);
    if (shape.length > 1) x = x.reshape([data.size, ...shape.map((d) => d ?? 1)]);
    let labels = tf.tensor1d(data.labels, 'int32');
    if (order) {
      const index = tf.tensor1d(order as number[], 'int32');
      x = tf.gather(x, index);
      labels = tf.gather(labels, index);
    }
    return { x, y: tf.oneHot(labels, classes) as tf.Tensor2D };
  });
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Seeds the order of samples in each epoch. */
  seed: number;
  /** FedProx: μ of the proximal term μ/2·‖w − w_global‖² (0 or absent: plain SGD). */
  proximalMu?: number;
  /** SCAFFOLD: c − c_i, one value per weight (flat, as getFlatWeights), added to every step's gradient. */
  correction?: Float32Array;
  /** Its role stopped: training ends after the step under way, and what shares its turns goes on. */
  signal?: AbortSignal;
}

/** The SGD steps `train` takes: one a batch, every epoch. */
export const stepsOf = (samples: number, options: Pick<TrainOptions, 'epochs' | 'batchSize'>) => options.epochs * Math.ceil(samples / options.batchSize);

const optimizers = new WeakMap<tf.LayersModel, tf.SGDOptimizer>();

/** Compiles once per model: a new optimizer every round would leave its variables behind. */
function sgdFor(model: tf.LayersModel, learningRate: number): void {
  const existing = optimizers.get(model);
  if (existing) return existing.setLearningRate(learningRate);
  const optimizer = tf.train.sgd(learningRate);
  optimizers.set(model, optimizer);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
}

/**
 * Between batches the event loop gets a turn: a training client still answers its health checks
 * (fit() otherwise runs a whole epoch without one, and a busy machine would see it as hung).
 */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** SGD over seeded shuffles (with FedProx's or SCAFFOLD's step after each); returns the mean loss of the last epoch. */
export async function train(model: tf.LayersModel, data: Dataset, options: TrainOptions): Promise<number> {
  sgdFor(model, options.learningRate);
  const random = seededRandom(options.seed);
  // Made one by one inside the try: one that throws (a correction of the wrong length) frees those made before it.
  const afterStep: AfterStep[] = [];
  // A batch holds the event loop from one yield to the next: that is a step (see stall.ts).
  let stepStarted = performance.now();
  const onBatchEnd = async () => {
    for (const fix of afterStep) fix.step();
    if (options.signal?.aborted) model.stopTraining = true;
    noteStep(performance.now() - stepStarted);
    await yieldToEventLoop();
    stepStarted = performance.now();
  };
  let loss = NaN;
  try {
    if (options.proximalMu) afterStep.push(proximalStep(model, options.learningRate * options.proximalMu));
    if (options.correction) afterStep.push(correctedStep(model, options.correction, options.learningRate));
    for (let epoch = 0; epoch < options.epochs && !options.signal?.aborted; epoch++) {
      const order = shuffle(Array.from({ length: data.size }, (_, i) => i), random);
      const { x, y } = tensors(model, data, order);
      stepStarted = performance.now();
      const history = await model.fit(x, y, { epochs: 1, batchSize: options.batchSize, shuffle: false, verbose: 0, callbacks: { onBatchEnd } });
      loss = history.history.loss[0] as number;
      tf.dispose([x, y]);
    }
  } finally {
    for (const fix of afterStep) fix.dispose();
  }
  return loss;
}

/** What runs after each SGD step, and what it holds. */
interface AfterStep {
  step(): void;
  dispose(): void;
}

/**
 * FedProx's term μ/2·‖w − w₀‖² (w₀ the weights training starts from: the global model), as the
 * proximal operator after each SGD step: w ← (w + η·μ·w₀) / (1 + η·μ). Proximal SGD on the same
 * objective as FedProx's (Li et al. 2020), with the term applied exactly rather than by its gradient.
 */
export function proximalStep(model: tf.LayersModel, etaMu: number): AfterStep {
  const variables = model.trainableWeights;
  const anchors = variables.map((v) => tf.keep(v.read().clone()));
  return {
    step: () =>
      tf.tidy(() => {
        variables.forEach((v, i) => v.write(v.read().add(anchors[i].mul(etaMu)).div(1 + etaMu)));
      }),
    dispose: () => tf.dispose(anchors),
  };
}

/**
 * SCAFFOLD's corrected step y ← y − η(g − c_i + c), as plain SGD's step followed by y ← y − η(c − c_i):
 * the same update, exactly, since SGD's step is linear in the gradient.
 */
export function correctedStep(model: tf.LayersModel, correction: Float32Array, learningRate: number): AfterStep {
  const variables = model.weights; // in getFlatWeights' order
  const sizes = variables.map((v) => v.shape.reduce<number>((a, b) => a * (b ?? 1), 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== correction.length) throw new RangeError(`the correction has ${correction.length} values; the model ${total}`);
  let at = 0;
  const shifts = variables.map((v, i) => {
    const shift = tf.tidy(() => tf.tensor(correction.subarray(at, at + sizes[i]), v.shape as number[]).mul(learningRate));
    at += sizes[i];
    return tf.keep(shift);
  });
  return {
    step: () => tf.tidy(() => variables.forEach((v, i) => v.trainable && v.write(v.read().sub(shifts[i])))),
    dispose: () => tf.dispose(shifts),
  };
}

export interface Evaluation {
  accuracy: number;
  loss: number;
}

export function evaluate(model: tf.LayersModel, data: Dataset): Evaluation {
  return timedStep(() => tf.tidy(() => {
    const { x, y } = tensors(model, data);
    const predicted = model.predict(x, { batchSize: 500 }) as tf.Tensor2D;
    const loss = tf.metrics.categoricalCrossentropy(y, predicted.clipByValue(1e-7, 1)).mean().dataSync()[0];
    const hits = tf.equal(predicted.argMax(1), y.argMax(1)).sum().dataSync()[0];
    return { accuracy: hits / data.size, loss };
  }));
}
