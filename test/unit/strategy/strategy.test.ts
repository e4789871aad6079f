/** The strategies: FedAvg and FedAvgM on plain and encrypted totals, selection, federated evaluation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createStrategy } from '../../../src/strategy/create';
import { FedAvg, FedAvgM, type GlobalParameters } from '../../../src/strategy/strategy';
import { ROBUST_STRATEGIES, STRATEGIES, trainingSchema, type Settings } from '../../../src/config/schema';
import { forwardsEachUpdate } from '../../../src/wire/receive';

describe('strategies', () => {
  const training = trainingSchema.parse({ epochs: 1, batch_size: 32, learning_rate: 0.1, strategy: 'fedavg', server_momentum: 0.5 });
  const total = (sum: number[], weight: number) => ({ kind: 'plain' as const, sum: Float64Array.from(sum), weight, contributors: 2 });
  const noEval = () => ({ accuracy: 0, loss: 0 });
  const plain = (values: Float32Array) => ({ kind: 'plain' as const, values });
  const valuesOf = (next: GlobalParameters) => (next.kind === 'plain' ? [...next.values] : assert.fail('expected a plaintext model'));

  it("says it needs each update exactly when switches forward each (a robust rule: config's ROBUST_STRATEGIES, which the wire reads)", () => {
    for (const name of STRATEGIES) {
      const needs = createStrategy(trainingSchema.parse({ strategy: name, num_clients_to_keep: 1 }), noEval).needs;
      assert.equal(needs === 'updates', ROBUST_STRATEGIES.includes(name), name);
      assert.equal(forwardsEachUpdate({ he: { enabled: false } as Settings['he'], training: { strategy: name } as Settings['training'] }), needs === 'updates', name);
    }
  });

  it('FedAvg divides the weighted sum by the samples behind it', () => {
    const next = new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(2)), total([30, 60], 30), [], []);
    assert.deepEqual(valuesOf(next), [1, 2]);
  });

  it('FedAvg refuses a round with no samples', () => {
    assert.throws(() => new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(1)), total([0], 0), [], []), /no samples/);
  });

  it('FedAvg makes a sealed total the next model as it is, to be divided by its weight where it is read', () => {
    const sealedSum = { anything: 'the strategy cannot look into' };
    const next = new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(1)), { kind: 'sealed', sum: sealedSum, weight: 300, contributors: 3 }, [], []);
    assert.deepEqual(next, { kind: 'sealed', sum: sealedSum, weight: 300 });
  });

  it('FedAvgM carries momentum from round to round, and refuses a model it cannot read', () => {
    const strategy = new FedAvgM(training, noEval);
    const first = valuesOf(strategy.aggregateFit(1, plain(Float32Array.from([1])), total([0], 1), [], [])); // the average is 0: a step of -1
    assert.deepEqual(first, [0]);
    const second = valuesOf(strategy.aggregateFit(2, plain(Float32Array.from(first)), total([0], 1), [], [])); // no new step; momentum 0.5 keeps going
    assert.deepEqual(second, [-0.5]);
    const sealed = { kind: 'sealed' as const, sum: new Float64Array(1), weight: 1 };
    assert.throws(() => strategy.aggregateFit(3, sealed, total([0], 1), [], []), /plaintext/);
  });

  it('selects the first ready clients up to the goal, and configures each round from the training settings', () => {
    const fedavg = new FedAvg(training, noEval);
    assert.deepEqual(fedavg.selectClients(1, ['b', 'a', 'c'], 2), ['b', 'a']);
    assert.deepEqual(fedavg.configureFit(1, { a: 300, b: 100 }), { common: { epochs: 1, batchSize: 32, learningRate: 0.1 }, each: {} });
  });

  it('combines federated evaluations weighted by the samples each client scored', () => {
    const fedavg = new FedAvg(training, noEval);
    const results = [
      { client: 'a', accuracy: 1, loss: 0, samples: 300 },
      { client: 'b', accuracy: 0, loss: 2, samples: 100 },
      { client: 'c', accuracy: 0.5, loss: 9, samples: 0 },
    ];
    assert.deepEqual(fedavg.aggregateEvaluate(1, results, ['d']), { accuracy: 0.75, loss: 0.5 });
    assert.throws(() => fedavg.aggregateEvaluate(1, [], ['a']), /no client could evaluate/);
  });
});

describe('robust strategies', () => {
  const noEval = () => ({ accuracy: 0, loss: 0 });
  const plain = { kind: 'plain' as const, values: new Float32Array(1) };
  const updates = [1, 2, 3, 4, 5, 6, 1000].map((v) => ({ values: Float32Array.from([v]), weight: 10 }));
  const total = { kind: 'plain' as const, sum: Float64Array.from([10_210]), weight: 70, contributors: 7, updates };
  const strategy = (raw: Record<string, unknown>) => createStrategy(trainingSchema.parse(raw), noEval);
  const next = (raw: Record<string, unknown>) => {
    const model = strategy(raw).aggregateFit(1, plain, total, [], []);
    return model.kind === 'plain' ? [...model.values] : assert.fail('expected a plaintext model');
  };

  it("reads each client's update, where FedAvg follows the one far off", () => {
    assert.deepEqual([strategy({ strategy: 'fedavg' }).needs, strategy({ strategy: 'krum' }).needs], ['sum', 'updates']);
    assert.deepEqual(next({ strategy: 'fedavg' }), [Math.fround(10_210 / 70)]);
    assert.deepEqual(next({ strategy: 'fedmedian' }), [4]);
    assert.deepEqual(next({ strategy: 'fedtrimmedavg', beta: 0.2 }), [4]); // ⌊0.2·7⌋ = 1 cut at each end: 2..6
    assert.deepEqual(next({ strategy: 'krum', num_malicious_clients: 1 }), [3]); // 3 and 4 tie; the earlier
    assert.deepEqual(next({ strategy: 'multikrum', num_malicious_clients: 1, num_clients_to_keep: 3 }), [3]); // 3, 4 and 2
    assert.deepEqual(next({ strategy: 'bulyan', num_malicious_clients: 1 }), [3]);
  });

  it('refuses a round that has only a sum', () => {
    assert.throws(() => strategy({ strategy: 'fedmedian' }).aggregateFit(1, plain, { ...total, updates: undefined }, [], []), /fedmedian needs each client's update in plaintext; this round has only their sum/);
  });
});

describe('FedOpt: a server optimizer on the round average (Reddi et al. 2021, as Flower has it)', () => {
  const noEval = () => ({ accuracy: 0, loss: 0 });
  // One parameter at 0; the clients' average is 1: Δ = 1.
  const step = (raw: Record<string, unknown>, round = 1) => {
    const model = createStrategy(trainingSchema.parse(raw), noEval).aggregateFit(round, { kind: 'plain', values: new Float32Array(1) }, { kind: 'plain', sum: Float64Array.from([10]), weight: 10, contributors: 2 }, [], []);
    return model.kind === 'plain' ? model.values[0] : assert.fail('expected a plaintext model');
  };

  it('takes one step of each, worked by hand with Flower\'s defaults', () => {
    // Adam: m 0.1, v 0.01, η 0.1·√(1 − 0.99²)/(1 − 0.9²) = 0.0742459; x = η·m/(√v + 1e-9).
    assert.ok(Math.abs(step({ strategy: 'fedadam' }) - 0.0742459) < 1e-6, `${step({ strategy: 'fedadam' })}`);
    // Yogi: m 0.1, v 0 − 0.01·1·sign(0 − 1) = 0.01, η 0.01, τ 1e-3: 0.001 / 0.101.
    assert.ok(Math.abs(step({ strategy: 'fedyogi' }) - 0.001 / 0.101) < 1e-7, `${step({ strategy: 'fedyogi' })}`);
    // Adagrad: β₁ 0, so m 1, v 1, η 0.1.
    assert.ok(Math.abs(step({ strategy: 'fedadagrad' }) - 0.1) < 1e-7, `${step({ strategy: 'fedadagrad' })}`);
    // The config's own: Adam with η 1, β₁ 0.5, β₂ 0.5 in round 1: m 0.5, v 0.5, η·√0.75/0.75.
    assert.ok(Math.abs(step({ strategy: 'fedadam', eta: 1, beta_1: 0.5, beta_2: 0.5 }) - (Math.sqrt(0.75) / 0.75) * (0.5 / Math.sqrt(0.5))) < 1e-6);
  });

  it('keeps its moments across rounds in its checkpoint state', () => {
    const strategy = createStrategy(trainingSchema.parse({ strategy: 'fedyogi' }), noEval);
    const total = { kind: 'plain' as const, sum: Float64Array.from([10]), weight: 10, contributors: 2 };
    strategy.aggregateFit(1, { kind: 'plain', values: new Float32Array(1) }, total, [], []);
    const state = strategy.snapshot();
    assert.deepEqual(Object.keys(state).sort(), ['m', 'v']);
    const again = createStrategy(trainingSchema.parse({ strategy: 'fedyogi' }), noEval);
    again.restore(state);
    const global = { kind: 'plain' as const, values: Float32Array.from([0.5]) };
    assert.deepEqual(again.aggregateFit(2, global, total, [], []), strategy.aggregateFit(2, global, total, [], []));
  });
});
