/**
 * The round's updates, added up as they arrive, behind one interface: in plaintext (kept per
 * sender and summed in sender order, so network timing cannot change the model's bits) or
 * encrypted (ciphertexts added in the HE threads; addition is exact, so order does not matter).
 */
import type { HeSession } from '../../he/keys';
import { HePoolFailure } from '../../he/pool';
import { HttpError } from '../../net/errors';
import type { RoundTotal } from '../../strategy/strategy';
import { UpdateBuffer } from '../../strategy/update-buffer';

export interface Arrival {
  sender: string;
  weight: number;
  contributors: number;
  /** A switch's sum is scaled already; a direct client's plain update is scaled by its weight here. */
  preScaled: boolean;
  values?: Float32Array;
  ciphertexts?: Uint8Array[];
}

/**
 * How an arrival is judged: `check` throws the refusal it would get now (before slow work);
 * `commit` hands the machine the report and runs `store` only if it was accepted.
 */
export interface Gate {
  check(): void;
  commit(store: () => void): void;
}

export interface UpdateAccumulator {
  add(arrival: Arrival, gate: Gate): Promise<void>;
  /** The round's total so far; `scale` is what encrypted updates were multiplied by per sample. */
  total(scale: number): RoundTotal;
  /** A new round (or a retried one) starts from nothing. */
  reset(): void;
}

export class PlaintextAccumulator implements UpdateAccumulator {
  private buffer: UpdateBuffer;

  constructor(private readonly parameters: number) {
    this.buffer = new UpdateBuffer(parameters);
  }

  async add(arrival: Arrival, gate: Gate): Promise<void> {
    const { sender, values, weight, contributors, preScaled } = arrival;
    gate.commit(() => this.buffer.add(sender, { values: values!, weight, contributors, preScaled }));
  }

  total(_scale?: number): RoundTotal {
    const { sum, weight, contributors } = this.buffer.total();
    return { kind: 'plain', sum, weight, contributors };
  }

  reset(): void {
    this.buffer = new UpdateBuffer(this.parameters);
  }
}

export class EncryptedAccumulator implements UpdateAccumulator {
  private sum?: Uint8Array[];
  private weight = 0;
  private contributors = 0;
  /** One addition at a time: each reads the sum the one before wrote. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly he: HeSession) {}

  add(arrival: Arrival, gate: Gate): Promise<void> {
    const step = this.queue.then(() => this.addNow(arrival, gate));
    this.queue = step.catch(() => undefined);
    return step;
  }

  private async addNow(arrival: Arrival, gate: Gate): Promise<void> {
    gate.check();
    const before = this.sum;
    let sum: Uint8Array[];
    try {
      sum = await this.he.pool.sum(before ? [before, arrival.ciphertexts!] : [arrival.ciphertexts!]);
    } catch (err) {
      if (err instanceof HePoolFailure) throw new HttpError(503, 'HE unavailable', `the aggregator could not add the update: ${err.message}`);
      throw new HttpError(400, 'bad ciphertext', `the update does not parse under this experiment's HE parameters: ${(err as Error).message}`);
    }
    gate.commit(() => {
      this.sum = sum;
      this.weight += arrival.weight;
      this.contributors += arrival.contributors;
    });
  }

  total(scale: number): RoundTotal {
    if (!this.sum) throw new Error('no encrypted update arrived this round');
    return { kind: 'encrypted', ciphertexts: this.sum, scale, weight: this.weight, contributors: this.contributors };
  }

  reset(): void {
    this.sum = undefined;
    this.weight = 0;
    this.contributors = 0;
  }
}
