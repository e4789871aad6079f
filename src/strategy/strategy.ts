/**
 * A strategy decides the federated parts of a round, in the spirit of Flower's `Strategy`: which
 * clients train, what they are told, how their results (and the failures) become the next global
 * model, who evaluates it and how their scores combine. The round machine and the aggregator role
 * carry out the rest (deadlines, transport, encryption, checkpoints).
 *
 * Variants override one method: FedAvgM, FedOpt (fedopt.ts) and the robust rules are FedAvg with
 * their own `aggregateFit`, FedProx with its own `configureFit`. `createStrategy` (create.ts) picks
 * one from config.json.
 */
import type { Settings } from '../config/schema';
import type { Evaluation } from '../model/model';
import type { Weights } from '../protocol/weights';
import type { ClientUpdate } from './robust';

/** What each selected client is told to do in a round. */
export interface ClientInstructions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** FedProx: each client keeps near the model it was sent, by μ/2·‖w − w_global‖² (0 or absent: none). */
  proximalMu?: number;
}

/**
 * What configureFit says: the instructions every selected client gets, and what any one of them is
 * told to do otherwise (its part; each client hears only its own). The aggregator adds each one's
 * share of the round to its part: that is how the round's sum is read back, not the strategy's to say.
 */
export interface FitPlan {
  common: ClientInstructions;
  each: Record<string, Partial<ClientInstructions>>;
}

/** One report that made the round: a switch's sum or bundle (or a direct client's own update). */
export interface FitResult {
  from: string;
  /** The clients whose updates are in it. */
  clients: string[];
  /** Samples behind it. */
  weight: number;
}

/**
 * The round's updates added up: Σ samples·w over `weight` = Σ samples. `plain`: values the strategy
 * reads (decrypted already, when the aggregator holds the key). `sealed` (HE, the key at the
 * clients): a sum nobody here can read, `Sealed` to the strategy; it can make it the next model
 * (the clients divide by the weight when they decrypt) or refuse. How it is sealed is not its business.
 */
export type RoundTotal<Sealed = unknown> =
  | { kind: 'plain'; sum: Float64Array; weight: number; contributors: number; updates?: readonly ClientUpdate[] }
  | { kind: 'sealed'; sum: Sealed; weight: number; contributors: number };

/** The global model: plain values, or (only the clients can read it) a sealed sum that is the model once divided by `weight`. */
export type GlobalParameters<Sealed = unknown> = { kind: 'plain'; values: Float32Array } | { kind: 'sealed'; sum: Sealed; weight: number };

/** A client's score of the global model on its share of the held-out data (federated evaluation). */
export interface EvaluateResult extends Evaluation {
  client: string;
  samples: number;
}

export interface Strategy {
  readonly name: string;
  /**
   * What `aggregateFit` works on: the round's sum (linear rules: plaintext or sealed, through
   * switches at any depth), or each client's own update (`total.updates`: robust rules, plaintext;
   * switches forward each update they hold, unsummed).
   */
  readonly needs: 'sum' | 'updates';
  /**
   * Which of the ready clients (in check-in order) train in `round`: at most `goal`. The round
   * machine calls it when selection closes; it may pick fewer, never clients that are not ready.
   */
  selectClients(round: number, ready: readonly string[], goal: number): string[];
  /**
   * What the selected clients are told to do in `round` (Flower's `configure_fit`): the same for
   * all, and each client's own part, from the weights the round assigned them (the samples each
   * said at check-in). Called once for each opening of a round, before the model goes down.
   */
  configureFit(round: number, selected: Weights): FitPlan;
  /**
   * The next global model from the current one and the round's total. `results` are the updates in
   * the total; `failures` the selected clients whose updates are not (down, late, withheld).
   */
  aggregateFit<Sealed>(round: number, global: GlobalParameters<Sealed>, total: RoundTotal<Sealed>, results: FitResult[], failures: string[]): GlobalParameters<Sealed>;
  /** Who scores the model when it can only be read at the clients (federated evaluation). */
  configureEvaluate(round: number, clients: readonly string[]): string[];
  /** The clients' scores combined; `failures` are the clients that gave none. */
  aggregateEvaluate(round: number, results: EvaluateResult[], failures: string[]): Evaluation;
  /** The model scored at the aggregator, on the held-out data (when it can read the model). */
  evaluate(round: number, parameters: Float32Array): Evaluation;
  /** State carried from round to round (kept in checkpoints), and putting it back on resume. */
  snapshot(): Record<string, Float32Array>;
  restore(state: Record<string, Float32Array>): void;
}

export type Evaluator = (parameters: Float32Array) => Evaluation;

/** Federated averaging weighted by samples (McMahan et al. 2017). */
export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  readonly needs: Strategy['needs'] = 'sum';

  constructor(
    protected readonly training: Settings['training'],
    private readonly evaluator: Evaluator,
  ) {}

  /** First come, first served: the clients that checked in first. */
  selectClients(_round: number, ready: readonly string[], goal: number): string[] {
    return ready.slice(0, goal);
  }

  /** The training settings, the same for all. */
  configureFit(_round: number, _selected: Weights): FitPlan {
    const { epochs, batch_size, learning_rate } = this.training;
    return { common: { epochs, batchSize: batch_size, learningRate: learning_rate }, each: {} };
  }

  aggregateFit<Sealed>(_round: number, _global: GlobalParameters<Sealed>, total: RoundTotal<Sealed>, _results: FitResult[], _failures: string[]): GlobalParameters<Sealed> {
    if (!(total.weight > 0)) throw new Error('no samples behind this round; nothing to average');
    // Sealed, the average is the sum over its weight, divided where it is read.
    if (total.kind === 'sealed') return { kind: 'sealed', sum: total.sum, weight: total.weight };
    const average = new Float32Array(total.sum.length);
    for (let i = 0; i < average.length; i++) average[i] = total.sum[i] / total.weight;
    return { kind: 'plain', values: average };
  }

  /** Every client the experiment has: each scores on its own share of the held-out digits. */
  configureEvaluate(_round: number, clients: readonly string[]): string[] {
    return [...clients];
  }

  /** Scores weighted by the samples each client scored on. */
  aggregateEvaluate(round: number, results: EvaluateResult[], _failures: string[]): Evaluation {
    const scored = results.filter((r) => r.samples > 0);
    const samples = scored.reduce((n, r) => n + r.samples, 0);
    if (!samples) throw new Error(`round ${round}: no client could evaluate the model`);
    return {
      accuracy: scored.reduce((s, r) => s + r.accuracy * r.samples, 0) / samples,
      loss: scored.reduce((s, r) => s + r.loss * r.samples, 0) / samples,
    };
  }

  evaluate(_round: number, parameters: Float32Array): Evaluation {
    return this.evaluator(parameters);
  }

  snapshot(): Record<string, Float32Array> {
    return {};
  }

  restore(_state: Record<string, Float32Array>): void {}
}

/**
 * FedProx (Li et al. 2020): FedAvg whose clients add μ/2·‖w − w_global‖² to their local loss, so
 * clients with skewed data drift less from the model they were sent. The server side is FedAvg's;
 * the term is the clients' (model.ts), so it works in every mode, HE and switches included.
 */
export class FedProx extends FedAvg {
  override readonly name = 'fedprox';

  override configureFit(round: number, selected: Weights): FitPlan {
    const plan = super.configureFit(round, selected);
    return { ...plan, common: { ...plan.common, proximalMu: this.training.proximal_mu } };
  }
}

/**
 * SCAFFOLD (Karimireddy et al. 2020, option II, global step size 1): each client corrects every
 * local step by c − c_i, the server's control variate less its own, and keeps c_i. What travels is
 * one vector (model/layout.ts): the weights, then the control variate. Each client sends its trained
 * weights y_i and, in the second half, c + (W/(N·w_i))·Δc_i (W the round's selected weight, N the
 * clients, w_i its own), so the round's sample-weighted average is the next model and c + (1/N)·ΣΔc_i,
 * SCAFFOLD's c update, at once: FedAvg's aggregation, linear, in every mode FedAvg runs. When selected
 * clients are missing from a round, c moves by W over the reporting weight times that step.
 */
export class Scaffold extends FedAvg {
  override readonly name = 'scaffold';
}

/** FedAvg with server momentum (Hsu et al. 2019): the averaged step is smoothed across rounds. */
export class FedAvgM extends FedAvg {
  override readonly name = 'fedavgm';
  private velocity?: Float32Array;

  override aggregateFit<Sealed>(round: number, global: GlobalParameters<Sealed>, total: RoundTotal<Sealed>, results: FitResult[], failures: string[]): GlobalParameters<Sealed> {
    if (global.kind !== 'plain' || total.kind !== 'plain') {
      throw new Error('fedavgm needs the average in plaintext at the aggregator; with he.key_holder "clients" use fedavg');
    }
    const average = (super.aggregateFit(round, global, total, results, failures) as { values: Float32Array }).values;
    const current = global.values;
    const momentum = this.training.server_momentum;
    this.velocity ??= new Float32Array(current.length);
    const next = new Float32Array(current.length);
    for (let i = 0; i < current.length; i++) {
      this.velocity[i] = momentum * this.velocity[i] + (current[i] - average[i]);
      next[i] = current[i] - this.velocity[i];
    }
    return { kind: 'plain', values: next };
  }

  override snapshot(): Record<string, Float32Array> {
    return this.velocity ? { velocity: this.velocity } : {};
  }

  override restore(state: Record<string, Float32Array>): void {
    this.velocity = state.velocity && Float32Array.from(state.velocity);
  }
}

/**
 * A robust rule over each client's update (Flower's FedMedian, FedTrimmedAvg, Krum, MultiKrum,
 * Bulyan; robust.ts): the rest as FedAvg. Updates are the clients' trained weights, all from the
 * same global model, so a rule over them is the same rule over their changes, moved by the model.
 */
export class RobustStrategy extends FedAvg {
  override readonly needs = 'updates';

  constructor(
    override readonly name: string,
    private readonly rule: (updates: readonly ClientUpdate[]) => Float32Array,
    training: Settings['training'],
    evaluator: Evaluator,
  ) {
    super(training, evaluator);
  }

  override aggregateFit<Sealed>(_round: number, _global: GlobalParameters<Sealed>, total: RoundTotal<Sealed>, _results: FitResult[], _failures: string[]): GlobalParameters<Sealed> {
    if (total.kind !== 'plain' || !total.updates?.length) throw new Error(`${this.name} needs each client's update in plaintext; this round has only their sum`);
    return { kind: 'plain', values: this.rule(total.updates) };
  }
}
