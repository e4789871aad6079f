/**
 * Quantized packing: several values to each plaintext coefficient, so an encrypted update can be
 * smaller than the float32 one. BatchCrypt's idea (Zhang et al., USENIX ATC 2020, for Paillier)
 * carried over to our RLWE ciphertexts.
 *
 * An update only has to survive a sum. Each value is clipped to ±clip, multiplied by its share of the
 * round (the client's samples over the round's, at most 1 in all) and rounded stochastically (down or
 * up, with the odds that make it exact on average) to a signed integer of `width` bits; `slots` of them sit side by side in one coefficient, above a few
 * low bits that take the encryption noise:
 *
 *   coefficient = Σ_s u_s · 2^(noiseBits + width·s)        (|u_s| < 2^(width-1))
 *
 * The unit is chosen so that the sum of the round's shares cannot leave ±2^(width-1): each share
 * rounds by less than one unit, so `clients` of them add at most `clients` units to a range of
 * 2^(width-1) - 1 - clients. With `bits` of precision per client and `clients` ≤ 2^h, width is
 * bits + h. Decoding reads the slots back as the balanced digits of the coefficient (each in
 * [-2^(width-1), 2^(width-1)), so signs borrow correctly; packed-reader.ts).
 *
 * The coefficient is an integer modulo Q, the product of the data primes, written as its residue
 * modulo each (SEAL's RNS form) and read back by the Chinese remainder theorem. With several
 * 60-bit primes a coefficient holds over a hundred bits; that is where the gain comes from.
 */
import { discreteGaussian } from '../privacy/discrete-gaussian';
import { secureUniform } from '../privacy/random';
import type { CoefficientLayout, Residues } from './coefficients';
import { PackedReader, type SlotGeometry } from './packed-reader';
import { PackedWriter } from './packed-writer';

/** What the experiment settings say (he.quantize), with `clients` filled in when the config is read. */
export interface QuantizeSpec {
  /** Precision of one client's value, in bits. */
  bits: number;
  /** Values are clipped to ±clip: one range for every weight tensor, or one per tensor (model order). */
  clip: number | number[];
  /** The most updates one sum holds (clients_per_round): the headroom. */
  clients: number;
  /**
   * Room each value of a sum keeps, in the values' units, for the noise distributed DP's clients add
   * in the integer domain (privacy/dp.ts noiseReserve; filled in when config.json is read).
   */
  noise_reserve?: number;
}

/**
 * The encryption noise of one ciphertext stays below 2^(BASE_NOISE_BITS - 1) in a coefficient
 * (measured: 2^9.7 at one 54-bit prime, 2^6.3 with a special prime; test/unit/he/quantized.test.ts checks a
 * sum), and the decoder rounds it away while it is below half of 2^noiseBits.
 */
const BASE_NOISE_BITS = 13;

/** How values sit in a coefficient (its fields are described where it is read: packed-reader.ts). */
export type Geometry = SlotGeometry;

const bitLength = (x: bigint) => x.toString(2).length;

/** The bits a slot keeps above a client's precision, so the sum of `clients` values cannot overflow it. */
const headroomBits = (clients: number) => Math.ceil(Math.log2(Math.max(2, clients)));

/**
 * What one integer step of a packed slot stands for under `clip`: a full share at the clip, plus the
 * room kept for DP noise, less the sum's rounding headroom, fills the slot.
 */
export const packedUnit = (spec: Pick<QuantizeSpec, 'bits' | 'clients' | 'noise_reserve'>, clip: number): number =>
  (clip + (spec.noise_reserve ?? 0)) / (2 ** (spec.bits + headroomBits(spec.clients) - 1) - 1 - spec.clients);

/** The largest of he.quantize.clip's ranges (one for all tensors, or one per tensor). */
export const widestClip = (clip: number | number[]): number => (typeof clip === 'number' ? clip : Math.max(...clip));

/**
 * The most rounding can move one DP client's update (it weighs 1), in L2 and in the sum's units:
 * less than one step a value. Encrypted, a value is rounded after it is scaled by its share of the
 * round, 1 / the round's clients, at least 1 / quantize.clients (the most a round holds), so a step
 * counts up to quantize.clients times; in plaintext it is rounded as it is. Per-tensor clips are
 * bounded by the widest. The config reader fills in the clip and the clients.
 */
export function roundingReach(he: { enabled: boolean; quantize?: Partial<QuantizeSpec> & { bits: number } }, values: number): number {
  const { quantize } = he;
  if (!quantize) return 0;
  if (quantize.clip === undefined || quantize.clients === undefined) throw new Error('he.quantize.clip and .clients are filled in when config.json is read; these settings did not come from it');
  const clip = widestClip(quantize.clip);
  const step = he.enabled ? quantize.clients * packedUnit({ ...quantize, clients: quantize.clients }, clip) : clip / (2 ** (quantize.bits - 1) - 1);
  return step * Math.sqrt(values);
}

/** How many values of a spec fit one coefficient modulo the product of `moduli`; throws when none does. */
export function geometryOf(spec: Pick<QuantizeSpec, 'bits' | 'clients'>, moduli: readonly bigint[]): Geometry {
  const headroom = headroomBits(spec.clients);
  const width = spec.bits + headroom;
  const noiseBits = BASE_NOISE_BITS + headroom;
  const modulus = moduli.reduce((a, b) => a * b, 1n);
  // The packed value and its noise stay below Q/2, so a centred read is exact.
  const usable = bitLength(modulus) - 2;
  const slots = Math.floor((usable - noiseBits) / width);
  if (width > 52 || noiseBits > 52) throw new Error(`he.quantize: ${spec.bits} bits for ${spec.clients} clients take slots of ${width} bits (noise ${noiseBits}), beyond the 52 a double holds exactly`);
  if (slots < 1) {
    throw new Error(`he.quantize: ${spec.bits} bits for ${spec.clients} clients take ${width + noiseBits} bits a value, more than the ${usable} a coefficient holds under these primes`);
  }
  return { width, slots, noiseBits };
}

/** The clip of each weight tensor, by value index: segments [end, clip). */
export function clipSegments(spec: Pick<QuantizeSpec, 'clip'>, sizes: readonly number[] | undefined): { end: number; clip: number }[] {
  if (typeof spec.clip === 'number') return [{ end: Infinity, clip: spec.clip }];
  if (!sizes || sizes.length !== spec.clip.length) {
    throw new Error(`he.quantize.clip: ${spec.clip.length} ranges, but the model has ${sizes?.length ?? 'an unknown number of'} weight tensors (give one number, or one per tensor; under SCAFFOLD the control variate's tensors follow the weights)`);
  }
  let end = 0;
  return sizes.map((size, i) => ({ end: (end += size), clip: (spec.clip as number[])[i] }));
}

/** he.quantize.clip when the config gives none: a round's change (MNIST MLP: under 0.25 but for a handful of values in round 1), or weights. */
export const DEFAULT_CHANGE_CLIP = 0.25;
export const DEFAULT_WEIGHT_CLIP = 1;

/**
 * What a client quantizes. With the key at the aggregator, its change to the model it was sent: the
 * aggregator knows that model and adds it back, and a change spans a far smaller range than the
 * weights, so the same bits resolve it far finer. With the key at the clients the aggregator never
 * sees the model, so nobody could add it back: the weights themselves are quantized.
 */
export function quantizesChange(he: { quantize?: unknown; key_holder: 'aggregator' | 'clients' }): boolean {
  return he.quantize !== undefined && he.key_holder === 'aggregator';
}

/** he.quantize's clip, checked against the model's tensors (the config reader fills it in; a list must have one range per tensor). */
export function clipsFor(quantize: { clip?: number | number[] }, sizes: readonly number[]): Pick<QuantizeSpec, 'clip'> {
  if (quantize.clip === undefined) throw new Error('he.quantize.clip is filled in when config.json is read; these settings did not come from it');
  clipSegments({ clip: quantize.clip }, sizes);
  return { clip: quantize.clip };
}

/** How many of `values` lie outside their tensor's ±clip (and are clipped when encrypted). */
export function countClipped(values: Float32Array, spec: Pick<QuantizeSpec, 'clip'>, sizes?: readonly number[]): number {
  let clipped = 0;
  let at = 0;
  for (const { end, clip } of clipSegments(spec, sizes)) {
    const stop = Math.min(end, values.length);
    for (; at < stop; at++) if (Math.abs(values[at]) > clip) clipped++;
  }
  return clipped;
}

export class QuantizedLayout implements CoefficientLayout {
  readonly perCoefficient: number;
  readonly geometry: Geometry;
  private readonly moduli: bigint[];
  /** Made when first needed: only a node with the secret key reads coefficients back. */
  private reader?: PackedReader;
  /** Made when first needed: a switch only adds, and needs no clip (nor the model's tensor sizes). */
  private segmentsMade?: { end: number; clip: number; unit: number }[];
  /** Made when first needed, for writing (toResidues): see PackedWriter. */
  private writer?: PackedWriter;

  constructor(
    private readonly spec: QuantizeSpec,
    moduli: readonly bigint[],
    private readonly sizes?: readonly number[],
  ) {
    this.geometry = geometryOf(spec, moduli);
    this.perCoefficient = this.geometry.slots;
    this.moduli = [...moduli];
    // With the model's tensor sizes at hand, a clip list that does not fit them is an error now, not at the first update.
    if (sizes) void this.segments;
  }

  private get segments(): { end: number; clip: number; unit: number }[] {
    return (this.segmentsMade ??= clipSegments(this.spec, this.sizes).map(({ end, clip }) => ({ end, clip, unit: packedUnit(this.spec, clip) })));
  }

  /**
   * Coefficients start..end of values·factor (factor: this update's share, at most 1), as residues.
   * `first` is the index of values[0] in the whole model (for its tensor's clip). `noise`: distributed
   * DP's share, the standard deviation this update adds to the values before the factor; it is drawn
   * as a discrete Gaussian in whole steps after rounding, so the sum's noise is the distributed
   * discrete Gaussian (Kairouz et al. 2021) whatever the clients' values.
   */
  toResidues(values: Float32Array | Float64Array, start: number, end: number, factor: number, first: number, out: Residues, noise = 0): void {
    if (!(factor > 0 && factor <= 1)) throw new Error(`a quantized encryption takes a share of the round (0 < factor <= 1), got ${factor}`);
    if (noise > 0 && !this.spec.noise_reserve) throw new Error('DP noise in a quantized update needs room in the sum: he.quantize.noise_reserve is filled in from dp when config.json is read');
    const uniform = secureUniform(); // draws nothing until noise asks
    const { slots } = this.geometry;
    const writer = (this.writer ??= new PackedWriter(this.moduli, this.geometry));
    const segments = this.segments;
    let segment = 0;
    const quantize = (i: number): number => {
      const index = first + i;
      // Values come in order: the tensor only steps forward.
      while (index >= segments[segment].end) segment++;
      const { clip, unit } = segments[segment];
      if (!Number.isFinite(values[i])) throw new Error(`value ${values[i]} at ${index} cannot be quantized`);
      const x = Math.max(-clip, Math.min(clip, values[i]));
      // Stochastic rounding: unbiased, so small changes every client makes survive. Math.random is
      // enough: DP's sensitivity counts the worst rounding (dpClip), not its odds.
      const rounded = Math.floor((x * factor) / unit + Math.random());
      return noise > 0 ? rounded + discreteGaussian((noise * factor) / unit, uniform) : rounded;
    };
    for (let c = 0; start + c * slots < end; c++) {
      const from = start + c * slots;
      const to = Math.min(end, from + slots);
      writer.clear();
      for (let s = 0; s < to - from; s++) writer.place(s, quantize(from + s));
      writer.write(out, c);
    }
  }

  /**
   * Reads coefficients back into out[start..end) as values·factor (packed-reader.ts). Under another
   * secret key the low bits hold no small noise but anything: that is refused rather than read as values.
   */
  fromResidues(residues: Residues, out: Float64Array, start: number, end: number, factor: number, first: number): void {
    const { slots, noiseBits } = this.geometry;
    const reader = (this.reader ??= new PackedReader(this.moduli, this.geometry));
    const loud = 2 ** (noiseBits - 2);
    let strays = 0;
    let coefficients = 0;
    const segments = this.segments;
    let segment = 0;
    const unitOf = (index: number) => {
      while (index >= segments[segment].end) segment++;
      return segments[segment].unit * factor;
    };
    for (let c = 0; start + c * slots < end; c++) {
      const noise = reader.read(residues, c);
      if (noise >= loud || noise <= -loud) strays++;
      coefficients++;
      const from = start + c * slots;
      const to = Math.min(end, from + slots);
      for (let s = 0; s < to - from; s++) out[from + s] = reader.slot(s) * unitOf(first + from + s);
    }
    // The right key leaves noise far below 2^(noiseBits - 2) everywhere; a wrong one, above it about half the time.
    if (strays > coefficients / 8) {
      throw new Error(`${strays} of ${coefficients} coefficients decrypt with noise in their low bits: these ciphertexts were not made under this secret key`);
    }
  }
}
