/** The pieces of a round that are pure computation: wire codec, sums, strategies, data splits, models. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLASSES, loadMnist, subset } from '../src/data/mnist';
import { holdOut, partition } from '../src/data/partition';
import { initBackend } from '../src/model/backend';
import { buildModel, evaluate, expectedParameterCount, getFlatWeights, parameterCount, setFlatWeights, train } from '../src/model/model';
import { loadModel, saveModel } from '../src/model/store';
import { FedAvg, FedAvgM, type GlobalParameters } from '../src/strategy/strategy';
import { UpdateBuffer } from '../src/strategy/update-buffer';
import { decode, encode, HEADER_BYTES, Kind, WireError } from '../src/wire/codec';

const message = (parameters = Float32Array.from([1.5, -2, 3.25])) => ({
  kind: Kind.Update,
  round: 7,
  modelId: 0xdeadbeef,
  contributors: 1,
  weight: 667,
  sender: '127.0.1.3:5000',
  meta: { epochs: 2 },
  parameters,
});

describe('wire codec', () => {
  it('round-trips every field, with float32 payload and a small header', () => {
    const encoded = encode(message());
    assert.deepEqual(decode(encoded), { ...message(), count: 3 });
    assert.equal(encoded.length, HEADER_BYTES + 16 + 12 + 3 * 4); // sender padded to 16, metadata 12, payload 12
  });

  it('decodes from an unaligned buffer', () => {
    const encoded = encode(message());
    const shifted = Buffer.alloc(encoded.length + 1).subarray(1);
    encoded.copy(shifted);
    assert.deepEqual(decode(shifted).parameters, message().parameters);
  });

  it('round-trips a list of ciphertexts for the encrypted kinds', () => {
    const ciphertexts = [Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5, 6, 7, 8])];
    const encrypted = { ...message(new Float32Array(0)), kind: Kind.EncryptedUpdate, ciphertexts, count: 101_770, meta: { he: 'abc' } };
    const back = decode(encode(encrypted));
    assert.deepEqual(back.ciphertexts, ciphertexts);
    assert.equal(back.count, 101_770);
    assert.equal(back.parameters.length, 0);
    const damaged = encode(encrypted);
    damaged.writeUInt32LE(9, damaged.length - 8 - 4 * 2 - 4); // the ciphertext count
    assert.throws(() => decode(damaged), /ciphertext count of 9/);
    assert.throws(() => encode({ ...encrypted, ciphertexts: undefined }), /needs ciphertexts/);
  });

  const corrupt: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['a truncated body', (b) => b.subarray(0, b.length - 4), /announces \d+ bytes, the body has/],
    ['trailing bytes', (b) => Buffer.concat([b, Buffer.alloc(4)]), /announces/],
    ['a bad magic', (b) => (b.writeUInt32LE(0, 0), b), /bad magic/],
    ['another version', (b) => (b.writeUInt8(9, 4), b), /wire version 9/],
    ['an unknown kind', (b) => (b.writeUInt8(77, 5), b), /unknown message kind 77/],
    ['a count that disagrees with the payload', (b) => (b.writeUInt32LE(4, 12), b), /cannot hold 4 float32/],
    ['a negative weight', (b) => (b.writeDoubleLE(-1, 24), b), /weight must be/],
    ['less than a header', () => Buffer.alloc(10), /40-byte header/],
  ];
  for (const [name, damage, reason] of corrupt) {
    it(`refuses ${name}`, () => assert.throws(() => decode(damage(encode(message()))), (e: Error) => e instanceof WireError && reason.test(e.message)));
  }
});

describe('update buffer', () => {
  it('sums weight·values of plain updates and adds pre-scaled sums as they are', () => {
    const buffer = new UpdateBuffer(2);
    buffer.add('b', { values: Float32Array.from([1, 2]), weight: 10, contributors: 1, preScaled: false });
    buffer.add('a', { values: Float32Array.from([30, 40]), weight: 20, contributors: 3, preScaled: true });
    const total = buffer.total();
    assert.deepEqual([...total.sum], [40, 60]);
    assert.equal(total.weight, 30);
    assert.equal(total.contributors, 4);
    assert.deepEqual(total.senders, ['a', 'b']);
  });

  it('gives the same bits whatever order the updates arrive in', () => {
    const values = Array.from({ length: 6 }, (_, i) => Float32Array.from({ length: 1000 }, (_, j) => Math.sin(i * 1000 + j) * 1e-3 * (i + 1)));
    const sumIn = (order: number[]) => {
      const buffer = new UpdateBuffer(1000);
      for (const i of order) buffer.add(`c${i}`, { values: values[i], weight: 100 + i * 37, contributors: 1, preScaled: false });
      return buffer.total().sum;
    };
    assert.deepEqual(sumIn([0, 1, 2, 3, 4, 5]), sumIn([5, 3, 1, 0, 4, 2]));
  });

  it('refuses an update of the wrong size', () => {
    assert.throws(() => new UpdateBuffer(3).add('a', { values: new Float32Array(2), weight: 1, contributors: 1, preScaled: false }), /2 parameters, the model 3/);
  });
});

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

describe('data splits', () => {
  const data = loadMnist();

  it('loads the 10,000 real digits of the mnist package, every class present', () => {
    assert.equal(data.size, 10_000);
    assert.equal(new Set(data.labels).size, CLASSES);
    assert.ok(data.images.every((v) => v >= 0 && v <= 1));
  });

  it('holds out a test set no client trains on, the same for the same seed', () => {
    const split = holdOut(data.size, 2000, 42);
    assert.equal(split.test.length, 2000);
    assert.equal(new Set([...split.test, ...split.train]).size, data.size);
    assert.deepEqual(holdOut(data.size, 2000, 42), split);
    assert.notDeepEqual(holdOut(data.size, 2000, 43).test, split.test);
  });

  for (const split of ['iid', 'dirichlet', 'classes'] as const) {
    it(`${split}: disjoint slices from the training set, repeatable from the seed`, () => {
      const { train: pool } = holdOut(data.size, 2000, 42);
      const settings = { split, alpha: 0.3, classes_per_client: 2, seed: 42 };
      const slices = partition(pool, data.labels, 12, settings);
      assert.equal(slices.length, 12);
      const all = slices.flat();
      assert.equal(new Set(all).size, all.length, 'slices overlap');
      const poolSet = new Set(pool);
      assert.ok(all.every((i) => poolSet.has(i)), 'a slice holds a test sample');
      assert.deepEqual(partition(pool, data.labels, 12, settings), slices);
    });
  }

  it('iid gives equal slices with every class; the skewed splits do not', () => {
    const { train: pool } = holdOut(data.size, 2000, 42);
    const classesIn = (slice: number[]) => new Set(slice.map((i) => data.labels[i])).size;
    const iid = partition(pool, data.labels, 12, { split: 'iid', alpha: 1, classes_per_client: 2, seed: 1 });
    assert.ok(iid.every((s) => s.length === Math.floor(pool.length / 12) && classesIn(s) === 10));
    const shards = partition(pool, data.labels, 12, { split: 'classes', alpha: 1, classes_per_client: 2, seed: 1 });
    assert.ok(shards.every((s) => classesIn(s) <= 4), 'two shards of sorted data span at most a few classes');
    const dirichlet = partition(pool, data.labels, 12, { split: 'dirichlet', alpha: 0.1, classes_per_client: 2, seed: 1 });
    const sizes = dirichlet.map((s) => s.length);
    assert.ok(Math.max(...sizes) > 2 * Math.min(...sizes), `alpha 0.1 should skew sizes: ${sizes}`);
    assert.equal(sizes.reduce((a, b) => a + b, 0), pool.length);
  });
});

describe('model', () => {
  it('has the parameter count the settings promise, for both architectures', async () => {
    await initBackend();
    for (const spec of [{ architecture: 'mlp' as const, hidden_units: 128 }, { architecture: 'cnn' as const, hidden_units: 32 }]) {
      const model = buildModel(spec, 1);
      assert.equal(parameterCount(model), expectedParameterCount(spec));
      model.dispose();
    }
    assert.equal(expectedParameterCount({ architecture: 'mlp', hidden_units: 128 }), 101_770);
  });

  it('is built identically from the same seed, and flat weights round-trip', async () => {
    await initBackend();
    const a = buildModel({ architecture: 'mlp', hidden_units: 16 }, 5);
    const b = buildModel({ architecture: 'mlp', hidden_units: 16 }, 5);
    assert.deepEqual(getFlatWeights(a), getFlatWeights(b));
    const flat = getFlatWeights(a).map((_, i) => i * 1e-4);
    setFlatWeights(b, flat);
    assert.deepEqual(getFlatWeights(b), flat);
    assert.throws(() => setFlatWeights(b, new Float32Array(3)), /parameters, got 3/);
  });

  it('learns digits, and a saved model loads back with the same accuracy', async () => {
    await initBackend();
    const data = loadMnist();
    const split = holdOut(data.size, 1000, 3);
    const model = buildModel({ architecture: 'mlp', hidden_units: 64 }, 3);
    const test = subset(data, split.test);
    const before = evaluate(model, test).accuracy;
    await train(model, subset(data, split.train.slice(0, 3000)), { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 3 });
    const after = evaluate(model, test);
    assert.ok(before < 0.3 && after.accuracy > 0.7, `accuracy ${before} -> ${after.accuracy}`);
    const dir = join(mkdtempSync(join(tmpdir(), 'model-')), 'm');
    await saveModel(model, dir);
    assert.deepEqual(evaluate(await loadModel(dir), test), after);
  });

  it('keeps no tensors behind from round to round', async () => {
    await initBackend();
    const data = subset(loadMnist(), Array.from({ length: 200 }, (_, i) => i * 31));
    const model = buildModel({ architecture: 'mlp', hidden_units: 16 }, 1);
    const counts: number[] = [];
    for (let round = 0; round < 4; round++) {
      setFlatWeights(model, getFlatWeights(model));
      await train(model, data, { epochs: 1, batchSize: 32, learningRate: 0.1 + round / 100, seed: round });
      evaluate(model, data);
      counts.push(tf.memory().numTensors);
    }
    assert.deepEqual(counts, [counts[0], counts[0], counts[0], counts[0]]);
    model.dispose();
  });
});

describe('CNN on the wasm backend', () => {
  it('the composed Conv2D gradient matches the cpu backend\'s kernel, for valid and same padding and strides', async () => {
    for (const [pad, stride] of [['valid', 1], ['same', 1], ['valid', 2], ['same', 2]] as const) {
      const loss = (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad).square().sum();
      await tf.setBackend('cpu');
      const x = tf.randomNormal([2, 11, 11, 3], 0, 1, 'float32', 1);
      const w = tf.randomNormal([5, 5, 3, 4], 0, 1, 'float32', 2);
      const reference = await Promise.all(tf.grads(loss)([x, w]).map((g) => g.data() as Promise<Float32Array>));
      const xs = [await x.data(), await w.data()];
      assert.equal(await initBackend('cnn'), 'wasm');
      const composed = await Promise.all(tf.grads(loss)([tf.tensor(xs[0], x.shape), tf.tensor(xs[1], w.shape)]).map((g) => g.data() as Promise<Float32Array>));
      for (const k of [0, 1]) {
        const worst = reference[k].reduce((m, v, i) => Math.max(m, Math.abs(v - composed[k][i]) / (1 + Math.abs(v))), 0);
        assert.ok(worst < 1e-4, `${pad} stride ${stride}: ${k ? 'filter' : 'input'} gradient off by ${worst}`);
      }
    }
  });

  it('trains a CNN on wasm', async () => {
    assert.equal(await initBackend('cnn'), 'wasm');
    const data = loadMnist();
    const split = holdOut(data.size, 500, 9);
    const model = buildModel({ architecture: 'cnn', hidden_units: 32 }, 9);
    const test = subset(data, split.test);
    await train(model, subset(data, split.train.slice(0, 1500)), { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 9 });
    assert.ok(evaluate(model, test).accuracy > 0.6);
    model.dispose();
  });
});

