/**
 * How a federated round is configured, its results combined, and the new model judged.
 * FedAvg and its variants plug in side by side; `createStrategy` picks one from config.json.
 */
import type { Settings } from '../config/schema';
import type { Evaluation } from '../model/model';
import type { WeightedTotal } from './update-buffer';

/** What each selected client is told to do in a round. */
export interface ClientInstructions {
  epochs: number;
  batchSize: number;
  learningRate: number;
}

export interface Strategy {
  readonly name: string;
  configureRound(round: number): ClientInstructions;
  /** The next global model from the current one and the round's weighted total. */
  aggregate(round: number, global: Float32Array, total: WeightedTotal): Float32Array;
  evaluate(round: number, parameters: Float32Array): Evaluation;
  /** State carried from round to round (kept in checkpoints), and putting it back on resume. */
  snapshot(): Record<string, Float32Array>;
  restore(state: Record<string, Float32Array>): void;
}

export type Evaluator = (parameters: Float32Array) => Evaluation;

/** Federated averaging weighted by samples (McMahan et al. 2017). */
export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';

  constructor(
    protected readonly training: Settings['training'],
    private readonly evaluator: Evaluator,
  ) {}

  configureRound(): ClientInstructions {
    const { epochs, batch_size, learning_rate } = this.training;
    return { epochs, batchSize: batch_size, learningRate: learning_rate };
  }

  aggregate(_round: number, _global: Float32Array, total: WeightedTotal): Float32Array {
    if (!(total.weight > 0)) throw new Error('no samples behind this round; nothing to average');
    const average = new Float32Array(total.sum.length);
    for (let i = 0; i < average.length; i++) average[i] = total.sum[i] / total.weight;
    return average;
  }

  evaluate(_round: number, parameters: Float32Array): Evaluation {
    return this.evaluator(parameters);
  }

  snapshot(): Record<string, Float32Array> {
    return {};
  }

  restore(_state: Record<string, Float32Array>): void {}
}

/** FedAvg with server momentum (Hsu et al. 2019): the averaged step is smoothed across rounds. */
export class FedAvgM extends FedAvg {
  override readonly name = 'fedavgm';
  private velocity?: Float32Array;

  override aggregate(round: number, global: Float32Array, total: WeightedTotal): Float32Array {
    const average = super.aggregate(round, global, total);
    const momentum = this.training.server_momentum;
    this.velocity ??= new Float32Array(global.length);
    const next = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) {
      this.velocity[i] = momentum * this.velocity[i] + (global[i] - average[i]);
      next[i] = global[i] - this.velocity[i];
    }
    return next;
  }

  override snapshot(): Record<string, Float32Array> {
    return this.velocity ? { velocity: this.velocity } : {};
  }

  override restore(state: Record<string, Float32Array>): void {
    this.velocity = state.velocity && Float32Array.from(state.velocity);
  }
}

export function createStrategy(training: Settings['training'], evaluator: Evaluator): Strategy {
  switch (training.strategy) {
    case 'fedavg':
      return new FedAvg(training, evaluator);
    case 'fedavgm':
      return new FedAvgM(training, evaluator);
  }
}
