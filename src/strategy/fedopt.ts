/**
 * FedOpt (Reddi et al. 2021, "Adaptive Federated Optimization"): the round's average, less the
 * global model, is a pseudo-gradient that an adaptive optimizer at the aggregator applies, as
 * Flower's FedAdam, FedYogi and FedAdagrad do (flwr/server/strategy/fedadam.py and its siblings):
 *   Δ = average − x;  m ← β₁·m + (1 − β₁)·Δ;
 *   v ← β₂·v + (1 − β₂)·Δ² (Adam),  v − (1 − β₂)·Δ²·sign(v − Δ²) (Yogi),  v + Δ² (Adagrad);
 *   x ← x + η·m / (√v + τ), η bias-corrected for Adam: η·√(1 − β₂^(t+1)) / (1 − β₁^(t+1)).
 * The optimizer's state is not linear in the updates: the model must be readable at the aggregator.
 */
import type { Settings } from '../config/schema';
import { FedAvg, type Evaluator, type FitResult, type GlobalParameters, type RoundTotal } from './strategy';

type Kind = 'fedadam' | 'fedyogi' | 'fedadagrad';

/** Flower's defaults for each (eta, beta_1, beta_2, tau). */
const DEFAULTS: Record<Kind, { eta: number; beta_1: number; beta_2: number; tau: number }> = {
  fedadam: { eta: 0.1, beta_1: 0.9, beta_2: 0.99, tau: 1e-9 },
  fedyogi: { eta: 0.01, beta_1: 0.9, beta_2: 0.99, tau: 1e-3 },
  fedadagrad: { eta: 0.1, beta_1: 0, beta_2: 0.99, tau: 1e-9 },
};

export class FedOpt extends FedAvg {
  private m?: Float32Array;
  private v?: Float32Array;
  private readonly eta: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly tau: number;

  constructor(
    override readonly name: Kind,
    training: Settings['training'],
    evaluator: Evaluator,
  ) {
    super(training, evaluator);
    const defaults = DEFAULTS[name];
    this.eta = training.eta ?? defaults.eta;
    this.beta1 = training.beta_1 ?? defaults.beta_1;
    this.beta2 = training.beta_2 ?? defaults.beta_2;
    this.tau = training.tau ?? defaults.tau;
  }

  override aggregateFit<Sealed>(round: number, global: GlobalParameters<Sealed>, total: RoundTotal<Sealed>, results: FitResult[], failures: string[]): GlobalParameters<Sealed> {
    if (global.kind !== 'plain' || total.kind !== 'plain') throw new Error(`${this.name} needs the average in plaintext at the aggregator; with he.key_holder "clients" use fedavg`);
    const average = (super.aggregateFit(round, global, total, results, failures) as { values: Float32Array }).values;
    const x = global.values;
    const m = (this.m ??= new Float32Array(x.length));
    const v = (this.v ??= new Float32Array(x.length));
    const { beta1, beta2, tau } = this;
    const eta = this.name === 'fedadam' ? (this.eta * Math.sqrt(1 - beta2 ** (round + 1))) / (1 - beta1 ** (round + 1)) : this.eta;
    const next = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const delta = average[i] - x[i];
      const squared = delta * delta;
      m[i] = beta1 * m[i] + (1 - beta1) * delta;
      if (this.name === 'fedadam') v[i] = beta2 * v[i] + (1 - beta2) * squared;
      else if (this.name === 'fedyogi') v[i] = v[i] - (1 - beta2) * squared * Math.sign(v[i] - squared);
      else v[i] = v[i] + squared;
      next[i] = x[i] + (eta * m[i]) / (Math.sqrt(v[i]) + tau);
    }
    return { kind: 'plain', values: next };
  }

  override snapshot(): Record<string, Float32Array> {
    return this.m && this.v ? { m: this.m, v: this.v } : {};
  }

  override restore(state: Record<string, Float32Array>): void {
    this.m = state.m && Float32Array.from(state.m);
    this.v = state.v && Float32Array.from(state.v);
  }
}
