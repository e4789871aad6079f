/**
 * A client's update as it goes on the wire: its trained weights, or (he.quantize) their change to the
 * model it was sent when the aggregator can add that back (quantizesChange), quantized; encrypted
 * under HE, pre-scaled by its share of the round's samples.
 */
import type { Settings } from '../../config/schema';
import type { HeSession } from '../../he/keys';
import { clipsFor, countClipped, quantizesChange, type QuantizeSpec } from '../../he/quantized';
import { encodeParts, Kind } from '../../wire/codec';
import { quantizedMeta } from '../../wire/quantized';

export interface UpdateSource {
  round: number;
  /** Which opening of the round the model came with: the update carries it back. */
  attempt?: string;
  sender: string;
  modelId: number;
  samples: number;
  weights: Float32Array;
  /** The model it trained from. */
  global: Float32Array;
  /** Encrypted updates are pre-scaled by this: the client's share of the round (its weight over the round's). */
  share: number;
  /** Distributed DP under quantized HE: the noise's standard deviation, drawn in whole steps as it is encrypted. */
  noise?: number;
}

export class UpdateEncoder {
  /** he.quantize's clip checked against the model's tensors: a clip list that does not fit is named as the client prepares. */
  private readonly clip?: Pick<QuantizeSpec, 'clip'>;

  constructor(
    private readonly he: Settings['he'],
    private readonly sizes: number[],
  ) {
    this.clip = he.quantize && clipsFor(he.quantize, sizes);
  }

  /** The update message in parts (codec's encodeParts), with how many values were clipped when quantized. */
  async encode(source: UpdateSource, session: HeSession | undefined): Promise<{ update: Buffer[]; clipped?: number }> {
    const { round, attempt, sender, modelId, samples, weights, global, share, noise } = source;
    const { quantize } = this.he;
    const sent = quantize && quantizesChange(this.he) ? minus(weights, global) : weights;
    const clipped = this.clip ? countClipped(sent, this.clip, this.sizes) : undefined;
    const base = { round, modelId, contributors: 1, weight: samples, sender, count: weights.length };
    if (session) {
      const ciphertexts = await session.pool.encrypt(sent, share, noise);
      return { update: encodeParts({ ...base, kind: Kind.EncryptedUpdate, meta: { he: session.id, attempt }, parameters: new Float32Array(0), ciphertexts }), clipped };
    }
    if (noise) throw new Error('noise in whole steps is drawn as an update is encrypted; this one is not');
    if (!quantize || !this.clip) return { update: encodeParts({ ...base, kind: Kind.Update, meta: { attempt }, parameters: weights }) };
    const quantized = quantizedMeta({ bits: quantize.bits, ...this.clip }, sent.length, this.sizes);
    return { update: encodeParts({ ...base, kind: Kind.QuantizedUpdate, meta: { attempt, quantized }, parameters: sent }), clipped };
  }
}

/** a - b, element by element. */
function minus(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}
