/**
 * Plaintext updates quantized as encrypted ones are (he.quantize with HE off): each value clipped to
 * its tensor's ±clip and rounded to a signed integer of `bits` (8 or fewer: a byte each; up to 16: two).
 * The unit of each tensor travels in the message's meta, so a switch reads it without the model.
 */
import { clipSegments, type QuantizeSpec } from '../he/quantized';

/** meta.quantized of a Kind.QuantizedUpdate: the bits, and [end, unit] for each run of values. */
export interface QuantizedMeta {
  bits: number;
  units: [number, number][];
}

export const bytesPerValue = (bits: number) => (bits <= 8 ? 1 : 2);

/** The meta for `count` values quantized by `spec` (tensor sizes when the clip is per tensor). */
export function quantizedMeta(spec: Pick<QuantizeSpec, 'bits' | 'clip'>, count: number, sizes?: readonly number[]): QuantizedMeta {
  if (spec.bits > 16) throw new Error(`he.quantize.bits: ${spec.bits}; a plaintext update holds at most 16 bits a value`);
  const levels = 2 ** (spec.bits - 1) - 1;
  return { bits: spec.bits, units: clipSegments(spec, sizes).map(({ end, clip }) => [Math.min(end, count), clip / levels]) };
}

/** Problems with a meta.quantized that arrived, or undefined. */
export function quantizedMetaProblem(meta: unknown, count: number): string | undefined {
  const q = meta as Partial<QuantizedMeta> | undefined;
  if (!q || !Number.isInteger(q.bits) || q.bits! < 2 || q.bits! > 16) return 'a quantized update needs meta.quantized.bits between 2 and 16';
  if (!Array.isArray(q.units) || !q.units.length) return 'a quantized update needs meta.quantized.units';
  let end = 0;
  for (const unit of q.units) {
    if (!Array.isArray(unit) || !(unit[0] > end) || !(unit[1] > 0 && Number.isFinite(unit[1]))) return 'meta.quantized.units must be [end, unit] pairs, ends rising, units positive';
    end = unit[0];
  }
  return end === count ? undefined : `meta.quantized.units end at ${end}, but the update has ${count} values`;
}

/** The integers for `values` (clipped, rounded to the nearest unit). */
export function quantizeValues(values: Float32Array, meta: QuantizedMeta): Int8Array | Int16Array {
  const out = meta.bits <= 8 ? new Int8Array(values.length) : new Int16Array(values.length);
  const top = 2 ** (meta.bits - 1) - 1;
  let at = 0;
  for (const [end, unit] of meta.units) {
    // Stochastic rounding: unbiased, so a change smaller than a unit still counts on average.
    for (; at < end; at++) {
      if (!Number.isFinite(values[at])) throw new Error(`value ${values[at]} at ${at} cannot be quantized`);
      out[at] = Math.max(-top, Math.min(top, Math.floor(values[at] / unit + Math.random())));
    }
  }
  return out;
}

export function dequantizeValues(integers: Int8Array | Int16Array, meta: QuantizedMeta): Float32Array {
  const out = new Float32Array(integers.length);
  let at = 0;
  for (const [end, unit] of meta.units) {
    for (; at < end; at++) out[at] = integers[at] * unit;
  }
  return out;
}
