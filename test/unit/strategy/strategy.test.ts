/** The strategies: FedAvg and FedAvgM on plain and encrypted totals, selection, federated evaluation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedAvg, FedAvgM, type GlobalParameters } from '../../../src/strategy/strategy';

describe('strategies', () => {
  const training = { epochs: 1, batch_size: 32, learning_rate: 0.1, strategy: 'fedavg' as const, server_momentum: 0.5 };
  const total = (sum: number[], weight: number) => ({ kind: 'plain' as const, sum: Float64Array.from(sum), weight, contributors: 2 });
  const noEval = () => ({ accuracy: 0, loss: 0 });
  const plain = (values: Float32Array) => ({ kind: 'plain' as const, values });
  const valuesOf = (next: GlobalParameters) => (next.kind === 'plain' ? [...next.values] : assert.fail('expected a plaintext model'));

  it('FedAvg divides the weighted sum by the samples behind it', () => {
    const next = new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(2)), total([30, 60], 30), [], []);
    assert.deepEqual(valuesOf(next), [1, 2]);
  });

  it('FedAvg refuses a round with no samples', () => {
    assert.throws(() => new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(1)), total([0], 0), [], []), /no samples/);
  });

  it('FedAvg averages an encrypted total by a factor the key holders apply: 1 / (scale x samples)', () => {
    const ciphertexts = [new Uint8Array([1, 2, 3])];
    const next = new FedAvg(training, noEval).aggregateFit(1, plain(new Float32Array(1)), { kind: 'encrypted', ciphertexts, scale: 1 / 400, weight: 300, contributors: 3 }, [], []);
    assert.deepEqual(next, { kind: 'encrypted', ciphertexts, factor: 400 / 300 });
  });

  it('FedAvgM carries momentum from round to round, and refuses a model it cannot read', () => {
    const strategy = new FedAvgM(training, noEval);
    const first = valuesOf(strategy.aggregateFit(1, plain(Float32Array.from([1])), total([0], 1), [], [])); // the average is 0: a step of -1
    assert.deepEqual(first, [0]);
    const second = valuesOf(strategy.aggregateFit(2, plain(Float32Array.from(first)), total([0], 1), [], [])); // no new step; momentum 0.5 keeps going
    assert.deepEqual(second, [-0.5]);
    const sealed = { kind: 'encrypted' as const, ciphertexts: [], factor: 1 };
    assert.throws(() => strategy.aggregateFit(3, sealed, total([0], 1), [], []), /plaintext/);
  });

  it('selects the first ready clients up to the goal, and configures each round from the training settings', () => {
    const fedavg = new FedAvg(training, noEval);
    assert.deepEqual(fedavg.selectClients(1, ['b', 'a', 'c'], 2), ['b', 'a']);
    assert.deepEqual(fedavg.configureFit(1), { epochs: 1, batchSize: 32, learningRate: 0.1 });
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
