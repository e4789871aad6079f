/**
 * What travels as "the model" and as an update: the model's weights, one flat vector, and under
 * SCAFFOLD (Karimireddy et al. 2020) the control variate after them, of the same shapes. Sums,
 * encryption, switches and checkpoints work on the whole vector alike; only what trains or scores
 * a model takes its weights apart (`weightsOf`).
 */
import { inputOf } from '../config/data-schema';
import type { Settings } from '../config/schema';
import { expectedParameterCount } from './size';

type Layout = Pick<Settings, 'model' | 'data' | 'training'>;

/** SCAFFOLD's control variates travel with the weights, up and down. */
export const carriesControl = (settings: Pick<Settings, 'training'>): boolean => settings.training.strategy === 'scaffold';

/** The model's parameters (its weights alone). */
export const modelParameters = (settings: Layout): number => expectedParameterCount(settings.model, inputOf(settings.data));

/** The values a model or an update carries: the weights, and as many control variates under SCAFFOLD. */
export const vectorLength = (settings: Layout): number => modelParameters(settings) * (carriesControl(settings) ? 2 : 1);

/** The vector's tensors in order (he.quantize.clip may name one range each): the model's, then again for the control variate. */
export const vectorSizes = (settings: Pick<Settings, 'training'>, tensorSizes: readonly number[]): number[] =>
  carriesControl(settings) ? [...tensorSizes, ...tensorSizes] : [...tensorSizes];

/** The model's weights at the head of a vector of `parameters` weights (and a control variate after them). */
export function weightsOf(vector: Float32Array, parameters: number): Float32Array {
  if (vector.length !== parameters && vector.length !== 2 * parameters) throw new RangeError(`a vector of ${vector.length} values holds no model of ${parameters} parameters`);
  return vector.length === parameters ? vector : vector.subarray(0, parameters);
}

/** The control variate after the weights, or undefined when the vector holds none. */
export function controlOf(vector: Float32Array, parameters: number): Float32Array | undefined {
  return vector.length === 2 * parameters ? vector.subarray(parameters) : undefined;
}

/** Weights followed by a control variate (zeros when none yet): SCAFFOLD's first global vector. */
export function withControl(weights: Float32Array, control: Float32Array = new Float32Array(weights.length)): Float32Array {
  const vector = new Float32Array(weights.length * 2);
  vector.set(weights);
  vector.set(control, weights.length);
  return vector;
}
