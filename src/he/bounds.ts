/**
 * How large a value of an experiment can honestly be, so what is larger is refused where it is read
 * (a model, an update, a sum) and a decrypted round that holds one is known to be corrupt:
 * - under HE with a value to a coefficient, what the encoder takes: |value| below 2^(prime - scale - 1),
 *   the first prime's half over the scale (a client could not have sent more, shares being at most 1);
 * - quantized, the clip: every value a client packs is clipped to it, so their average stays within
 *   it but for the rounding the headroom allows (`levels + clients` units over `levels`) and, under
 *   distributed DP, the room kept for the clients' noise (8 of its standard deviations);
 * - otherwise a bound far beyond any model trained here (MNIST's weights stay within ±10), which a
 *   flipped exponent bit (1e38, 2^64) does not pass.
 */
import type { Settings } from '../config/schema';
import { packedUnit, widestClip, type QuantizeSpec } from './quantized';

/** The largest |value| of a plaintext model or update when nothing tighter applies. */
export const PLAIN_VALUE_LIMIT = 1e6;

export interface ValueLimits {
  /** A model's values (what a client is sent, and trains from). */
  model: number;
  /** The round's average update (weights, or with he.quantize at the aggregator their change): a decrypted sum beyond it is corrupt. */
  average: number;
  /** Why, for the refusals that name the limit. */
  why: string;
  /**
   * A value to a coefficient: the limit is the whole range a ciphertext holds, and a sum holding one
   * not made under the key decrypts to values spread evenly over it (RLWE's noise), not beyond it.
   */
  spread?: true;
}

/** How far the average of clipped, stochastically rounded shares can reach: the clip, the room for DP noise, and less than a step for each share in it. */
export function quantizedReach(spec: Pick<QuantizeSpec, 'bits' | 'clip' | 'clients' | 'noise_reserve'>): number {
  const clip = widestClip(spec.clip);
  return clip + (spec.noise_reserve ?? 0) + spec.clients * packedUnit(spec, clip);
}

/** he.quantize as the config reader filled it in (defaults for settings that did not come from it), and why its values are bounded. */
function quantizedBound(quantize: NonNullable<Settings['he']['quantize']>): { reach: number; why: string } {
  const reach = quantizedReach({ bits: quantize.bits, clip: quantize.clip ?? 1, clients: quantize.clients ?? 1, noise_reserve: quantize.noise_reserve });
  const room = quantize.noise_reserve ? `, and ${quantize.noise_reserve.toPrecision(3)} is kept beside it for distributed DP's noise` : '';
  return { reach, why: `he.quantize.clip ${JSON.stringify(quantize.clip)}: every value is clipped to it${room}` };
}

export function valueLimits(he: Settings['he']): ValueLimits {
  const { quantize } = he;
  const plain = { model: PLAIN_VALUE_LIMIT, average: PLAIN_VALUE_LIMIT, why: 'no model trained here comes near it' };
  // Quantized in plaintext: what a client sends is clipped all the same.
  if (!he.enabled) {
    if (!quantize) return plain;
    const { reach, why } = quantizedBound(quantize);
    return { ...plain, average: reach, why };
  }
  if (!quantize) {
    const bits = he.coeff_modulus_bits[0] - he.scale_bits - 1;
    const limit = 2 ** bits;
    return { model: limit, average: limit, why: `what the HE scale 2^${he.scale_bits} leaves in a ${he.coeff_modulus_bits[0]}-bit prime`, spread: true };
  }
  const { reach, why } = quantizedBound(quantize);
  // With the key at the aggregator, clients quantize their change to the model: the model itself is not clipped.
  return he.key_holder === 'aggregator' ? { model: PLAIN_VALUE_LIMIT, average: reach, why } : { model: reach, average: reach, why };
}

/**
 * Why decrypted values cannot be what the clients sent, or undefined: one beyond the limit, or (a
 * value to a coefficient) values spread over the whole range. A model's values cluster near zero;
 * noise is uniform over ±limit, its median |value| half of it: beyond a quarter, it is noise.
 * `per`: values weigh that many samples each (a sum, not an average).
 */
export function corruption(values: Float64Array, limits: Pick<ValueLimits, 'spread' | 'why'> & { limit: number }, per = 1): string | undefined {
  const { limit, why } = limits;
  const beyond = firstBeyond(values, limit * per * (1 + 1e-6));
  if (beyond >= 0) return `it decrypts to ${values[beyond] / per} at ${beyond}, beyond the ±${limit} its clients could have sent (${why})`;
  if (!limits.spread || !values.length) return undefined;
  const median = Float64Array.from(values, (v) => Math.abs(v / per)).sort()[values.length >> 1];
  if (median > limit / 4) return `it decrypts to values spread over the whole range (median |value| ${median.toPrecision(3)} of ±${limit}): noise, not a model; a ciphertext in it was not made under the key`;
  return undefined;
}

/**
 * How far training can honestly take a value: a model's range (an update beyond it would be
 * refused); quantized, where the clip bounds only what is packed, the plain limit, which only a run
 * gone wild passes.
 */
export const trainedLimit = (he: Settings['he']): number => (he.quantize ? PLAIN_VALUE_LIMIT : valueLimits(he).model);

/** The index of the first value beyond ±limit (NaN included), or -1. */
export function firstBeyond(values: ArrayLike<number>, limit: number): number {
  for (let i = 0; i < values.length; i++) if (!(Math.abs(values[i]) <= limit)) return i;
  return -1;
}
