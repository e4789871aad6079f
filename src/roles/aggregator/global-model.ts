/**
 * The global model, one implementation per key mode, both going through the strategy:
 * - `ReadableGlobal`: plaintext runs and HE with the key at the aggregator (the round's sum is
 *   decrypted, never one client's update); scored on the held-out digits here.
 * - `SealedGlobal`: the key is at the clients only; the model stays ciphertexts here, goes down
 *   encrypted, and the clients score it (federated evaluation).
 */
import { addGaussianNoise } from '../../privacy/dp';
import type * as tf from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import type { AggregatorState } from '../../checkpoint';
import { corruption, type ValueLimits } from '../../he/bounds';
import type { HeSession } from '../../he/keys';
import { HePoolFailure } from '../../he/pool';
import { weightsOf } from '../../model/layout';
import { parameterCount, setFlatWeights, type Evaluation } from '../../model/model';
import type { ExperimentOutputs, RoundMetrics } from '../../outputs';
import type { Total } from '../../aggregation/accumulator';
import type { EvaluateResult, FitResult, GlobalParameters, RoundTotal, Strategy } from '../../strategy/strategy';
import { decode, encode, Kind } from '../../wire/codec';

export interface ModelHeader {
  round: number;
  modelId: number;
  sender: string;
  parameters: number;
}

/** The round's total as the accumulator made it; encrypted, with the `scale` its clients pre-scaled by (1 / the round's selected samples). */
export type CollectedTotal = Extract<Total, { kind: 'plain' }> | (Extract<Total, { kind: 'encrypted' }> & { scale: number });

/** A sum only the clients can read, as the strategy passes it on: ciphertexts of `scale` × Σ samples·w. */
interface SealedSum {
  ciphertexts: Uint8Array[];
  scale: number;
}

/** A federated evaluation that not every client asked could answer: how many did. */
export interface Coverage {
  scored_by?: { clients: number; of: number };
}

/** Asks the clients to score an encrypted model: their answers, who gave none, and who said it is unusable. */
export type FederatedEvaluation = (
  round: number,
  message: Buffer,
  clients: string[],
) => Promise<{ results: EvaluateResult[]; failures: string[]; unusable: { client: string; reason: string }[] }>;

/**
 * The round's sum cannot be read (it does not decrypt, or to values no client of the round could
 * have sent): an update in it was corrupt. The round is run again; the model stays as it was.
 */
export class UnreadableSum extends Error {}

/**
 * No client could score the round's new model (every one asked failed or timed out), or the round's
 * sum was lost before it was read or decrypted (an HE thread died): whether its sum was sound is not
 * known, and nobody is suspected. The round is run again; the model stays as it was.
 */
export class UnscoredModel extends Error {}

export interface GlobalModel {
  /** The clients decrypt and score each new model: every evaluation releases one (DP counts them). */
  readonly scoredByClients: boolean;
  /** The model message for `recipients` of a round, with `meta` (instructions) in it. */
  message(header: ModelHeader, meta: Record<string, unknown>, recipients?: readonly string[]): Buffer;
  /** A client said at check-in which model it keeps (none when started anew). */
  keeps?(client: string, tag: string | undefined): void;
  /** The next global model from the round's total, through the strategy. */
  update(round: number, total: CollectedTotal, results: FitResult[], failures: string[]): Promise<void>;
  evaluate(round: number, header: ModelHeader): Promise<Evaluation & Coverage>;
  saveRound(outputs: ExperimentOutputs, header: ModelHeader, metrics: RoundMetrics): Promise<void>;
  /** For the checkpoint, and back from it. */
  snapshot(header: ModelHeader): AggregatorState['global'];
  restore(global: AggregatorState['global']): void;
}

export class ReadableGlobal implements GlobalModel {
  readonly scoredByClients = false;

  constructor(
    private values: Float32Array,
    private readonly strategy: Strategy,
    private readonly model: tf.LayersModel,
    /** How far the round's average can honestly reach: beyond it, the sum is corrupt. */
    private readonly limits: ValueLimits,
    /** Set when updates arrive encrypted under the aggregator's key. */
    private readonly he?: HeSession,
    /** Clients send their change to the model they were sent, not their weights (he.quantize). */
    private readonly sentAsChange = false,
    /** Central DP: the standard deviation of the noise added to each round's sum (privacy/dp.ts). */
    private readonly noiseStd = 0,
  ) {}

  /** The last message made: every reporter of a round gets the same bytes (its clients' parts are added to their copies). */
  private lastMessage?: { values: Float32Array; key: string; bytes: Buffer };

  message(header: ModelHeader, meta: Record<string, unknown>): Buffer {
    // The model is replaced, never changed in place: the same array and instructions are the same message.
    const key = JSON.stringify([header, meta]);
    if (this.lastMessage?.values !== this.values || this.lastMessage.key !== key) {
      this.lastMessage = { values: this.values, key, bytes: encode({ ...header, kind: Kind.Model, contributors: 0, weight: 0, meta, parameters: this.values }) };
    }
    return this.lastMessage.bytes;
  }

  async update(round: number, total: CollectedTotal, results: FitResult[], failures: string[]): Promise<void> {
    const readable = total.kind === 'plain' ? total : await this.decrypt(total);
    const corrupt = corruption(readable.sum, { ...this.limits, limit: this.limits.average }, readable.weight);
    if (corrupt) throw new UnreadableSum(corrupt);
    // After the check: the noise is ours, and may reach past what a client could send.
    if (this.noiseStd > 0) addGaussianNoise(readable.sum, this.noiseStd);
    // Quantized, clients sent their change to this model (quantizesChange): it is added back, once per sample.
    if (this.sentAsChange) for (let i = 0; i < readable.sum.length; i++) readable.sum[i] += this.values[i] * readable.weight;
    const next = this.strategy.aggregateFit(round, { kind: 'plain', values: this.values }, readable, results, failures);
    if (next.kind !== 'plain') throw new Error(`strategy ${this.strategy.name} returned an encrypted model for a readable one`);
    this.values = next.values;
  }

  /** Only the sum over every switch is decrypted; scaled back from `scale` per sample to samples. One that does not decrypt is corrupt. */
  private async decrypt(total: Extract<CollectedTotal, { kind: 'encrypted' }>): Promise<Extract<RoundTotal, { kind: 'plain' }>> {
    try {
      const sum = await this.he!.pool.decrypt(total.ciphertexts, this.values.length, 1 / total.scale);
      return { kind: 'plain', sum, weight: total.weight, contributors: total.contributors };
    } catch (err) {
      // The pool failing is nobody's doing: the round runs again, suspecting no one.
      if (err instanceof HePoolFailure) throw new UnscoredModel(`its sum could not be decrypted: ${err.message}`);
      throw new UnreadableSum(`it does not decrypt: ${(err as Error).message}`);
    }
  }

  async evaluate(round: number): Promise<Evaluation> {
    return this.strategy.evaluate(round, this.values);
  }

  async saveRound(outputs: ExperimentOutputs, header: ModelHeader, metrics: RoundMetrics): Promise<void> {
    setFlatWeights(this.model, weightsOf(this.values, parameterCount(this.model)));
    await outputs.saveRound(header.round, { model: this.model }, metrics);
  }

  snapshot(): AggregatorState['global'] {
    return { plain: this.values };
  }

  restore(global: AggregatorState['global']): void {
    if (!('plain' in global)) throw new Error('the checkpoint holds an encrypted model, but this experiment reads its model');
    this.values = global.plain;
  }
}

export class SealedGlobal implements GlobalModel {
  readonly scoredByClients = true;
  /**
   * Undefined until the first round: the initial model goes down in plaintext (it says nothing about
   * anyone's data). `tag` names each sealed model: the clients that scored it keep it decrypted.
   */
  private sealed?: { ciphertexts: Uint8Array[]; factor: number; tag: string };
  /** Clients that scored the current sealed model and keep it: they are sent a reference to it, not it again. */
  private holders = new Set<string>();
  /** The model before this round's, until the clients have scored the new one: put back when they cannot use it. */
  private previous?: { sealed?: SealedGlobal['sealed']; holders: Set<string> };
  /** The last message made, by what it was made from. */
  private lastMessage?: { key: string; bytes: Buffer };
  /**
   * The round's model message without instructions, encoded once: the clients' evaluation, the saved
   * round and the checkpoint all take the same megabytes.
   */
  private bare?: { round: number; bytes: Buffer };

  constructor(
    private readonly initial: Float32Array,
    private readonly strategy: Strategy,
    private readonly he: HeSession,
    private readonly askClients: FederatedEvaluation,
    /** The clients that can score the model now (not down, not failed). */
    private readonly clients: () => readonly string[],
    /** The most held-out samples a client's score may count (it says how many it scored; it may lie). */
    private readonly scoreCap: (client: string) => number = () => Infinity,
  ) {}

  message(header: ModelHeader, meta: Record<string, unknown>, recipients: readonly string[] = []): Buffer {
    const reference = !!this.sealed && recipients.length > 0 && recipients.every((c) => this.holders.has(c));
    // A round sends the same message to every switch (and direct client): encoded once, not megabytes per recipient.
    const key = JSON.stringify([header, meta, reference, this.sealed?.tag]);
    if (this.lastMessage?.key !== key) this.lastMessage = { key, bytes: this.encodeMessage(header, meta, reference) };
    return this.lastMessage.bytes;
  }

  private encodeMessage(header: ModelHeader, meta: Record<string, unknown>, reference: boolean): Buffer {
    const base = { ...header, contributors: 0, weight: 0 };
    if (!this.sealed) return encode({ ...base, kind: Kind.Model, meta, parameters: this.initial });
    const { ciphertexts, factor, tag } = this.sealed;
    const none = new Float32Array(0);
    if (reference) return encode({ ...base, kind: Kind.ModelReference, meta: { ...meta, model_tag: tag }, parameters: none, count: header.parameters });
    return encode({ ...base, kind: Kind.EncryptedModel, meta: { ...meta, he: this.he.id, factor, model_tag: tag }, parameters: none, ciphertexts, count: header.parameters });
  }

  /**
   * Only "none" counts: a client keeps the model it scored until it is started anew, and a check-in
   * naming an older model was sent before that client scored this one (it checks in after its update).
   */
  keeps(client: string, tag: string | undefined): void {
    if (tag === undefined) this.holders.delete(client);
  }

  async update(round: number, total: CollectedTotal, results: FitResult[], failures: string[]): Promise<void> {
    if (total.kind !== 'encrypted') throw new Error('the round\'s total came in plaintext, but only the clients may read this model');
    // The model the clients hold is its ciphertexts times `factor`: a sum of weight 1, in units of 1 / factor.
    const current: GlobalParameters<SealedSum> = this.sealed ? { kind: 'sealed', sum: { ciphertexts: this.sealed.ciphertexts, scale: 1 / this.sealed.factor }, weight: 1 } : { kind: 'plain', values: this.initial };
    const sum: SealedSum = { ciphertexts: total.ciphertexts, scale: total.scale };
    const next = this.strategy.aggregateFit(round, current, { kind: 'sealed', sum, weight: total.weight, contributors: total.contributors }, results, failures);
    if (next.kind !== 'sealed') throw new Error(`strategy ${this.strategy.name} returned a plaintext model, but only the clients can read it`);
    this.previous = { sealed: this.sealed, holders: this.holders };
    // What the clients multiply by after decrypting: Σ samples·scale·w / (scale · Σ samples) is the average.
    this.sealed = { ciphertexts: next.sum.ciphertexts, factor: 1 / (next.sum.scale * next.weight), tag: newTag() };
    this.bare = undefined;
    this.holders = new Set();
  }

  private bareMessage(header: ModelHeader): Buffer {
    if (this.bare?.round !== header.round) this.bare = { round: header.round, bytes: this.encodeMessage(header, {}, false) };
    return this.bare.bytes;
  }

  /**
   * The clients score the new model; when more of them say it is unusable than score it, the round's
   * sum was corrupt (one client saying so alone is not enough: it may lie), and when none could score
   * it the round is no better known (UnscoredModel: no evidence against anyone): either way the model
   * before it is put back, and the round runs again. Those that scored it keep it now, not the one put back.
   */
  async evaluate(round: number, header: ModelHeader): Promise<Evaluation & Coverage> {
    const clients = this.strategy.configureEvaluate(round, this.clients());
    const { results, failures, unusable } = await this.askClients(round, this.bareMessage(header), clients);
    if (unusable.length > results.length) {
      this.putBack(results);
      throw new UnreadableSum(`${unusable.length} of ${clients.length} clients cannot use the model it makes (${unusable[0].client}: ${unusable[0].reason})`);
    }
    if (!results.length) {
      this.putBack(results);
      throw new UnscoredModel(`no client could score the new model (${failures.length} asked gave no score${failures.length ? `; ${failures[0]}` : ''})`);
    }
    this.previous = undefined;
    for (const { client } of results) this.holders.add(client);
    const capped = results.map((r) => ({ ...r, samples: Math.min(r.samples, this.scoreCap(r.client)) }));
    // Scored on the shares of only some clients: the round's row and line say so.
    const partly = results.length < clients.length ? { scored_by: { clients: results.length, of: clients.length } } : {};
    return { ...this.strategy.aggregateEvaluate(round, capped, failures), ...partly };
  }

  /** The model before the round's is the global model again; those that scored the round's keep that one. */
  private putBack(results: readonly EvaluateResult[]): void {
    if (this.previous) [this.sealed, this.holders] = [this.previous.sealed, this.previous.holders];
    for (const { client } of results) this.holders.delete(client);
    this.previous = undefined;
    this.bare = undefined;
  }

  async saveRound(outputs: ExperimentOutputs, header: ModelHeader, metrics: RoundMetrics): Promise<void> {
    // Without the key the aggregator can only keep the ciphertexts; `main.js decrypt --he-key` opens them.
    await outputs.saveRound(header.round, { encrypted: this.bareMessage(header) }, metrics);
  }

  snapshot(header: ModelHeader): AggregatorState['global'] {
    return { encryptedMessage: this.bareMessage(header) };
  }

  restore(global: AggregatorState['global']): void {
    if (!('encryptedMessage' in global)) throw new Error('the checkpoint holds a plaintext model, but only the clients may read this one');
    const message = decode(Buffer.from(global.encryptedMessage));
    // A tag of its own: clients that scored this round's model before the restart are sent it again.
    this.sealed = { ciphertexts: message.ciphertexts!, factor: Number(message.meta?.factor), tag: newTag() };
    this.bare = undefined;
    this.holders.clear();
  }
}

const newTag = () => randomBytes(6).toString('hex');
