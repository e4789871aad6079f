import type { NamedUpdate } from '../wire/receive';

/**
 * Updates held for one round, summed in sender order: floating-point addition is not associative,
 * so summing in arrival order would let network timing change the model's bits.
 */
export interface Contribution {
  /** Plain weights (scaled by `weight` when summed) or an already weighted sum. */
  values: Float32Array;
  weight: number;
  contributors: number;
  preScaled: boolean;
}

export interface WeightedTotal {
  sum: Float64Array;
  weight: number;
  contributors: number;
  senders: string[];
}

export class UpdateBuffer {
  private readonly entries = new Map<string, Contribution>();

  constructor(readonly size: number) {}

  has(sender: string): boolean {
    return this.entries.has(sender);
  }

  get senders(): string[] {
    return [...this.entries.keys()].sort();
  }

  get contributors(): number {
    let n = 0;
    for (const entry of this.entries.values()) n += entry.contributors;
    return n;
  }

  add(sender: string, contribution: Contribution): void {
    if (contribution.values.length !== this.size) {
      throw new Error(`update has ${contribution.values.length} parameters, the model ${this.size}`);
    }
    this.entries.set(sender, contribution);
  }

  /** Each client's own update (not a sum from below), in sender order: what a robust rule reads. */
  clientUpdates(): NamedUpdate[] {
    return this.senders.flatMap((client) => {
      const { preScaled, values, weight } = this.entries.get(client)!;
      return preScaled ? [] : [{ client, values, weight }];
    });
  }

  /** Σ weight·values (or Σ values for pre-scaled sums), Σ weight, in sender order. */
  total(): WeightedTotal {
    const sum = new Float64Array(this.size);
    let weight = 0;
    const senders = this.senders;
    for (const sender of senders) {
      const entry = this.entries.get(sender)!;
      const scale = entry.preScaled ? 1 : entry.weight;
      const values = entry.values;
      for (let i = 0; i < values.length; i++) sum[i] += scale * values[i];
      weight += entry.weight;
    }
    return { sum, weight, contributors: this.contributors, senders };
  }
}
