/** The models on TensorFlow.js (wasm): parameter counts, seeds, training, saving, and the CNN's gradient. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadMnist, subset } from '../../../src/data/mnist';
import { holdOut } from '../../../src/data/partition';
import { initBackend } from '../../../src/model/backend';
import { buildModel, correctedStep, evaluate, getFlatWeights, parameterCount, proximalStep, setFlatWeights, stepsOf, train } from '../../../src/model/model';
import { type ModelInput, expectedParameterCount } from '../../../src/model/size';
import { loadModel, saveModel } from '../../../src/model/store';
import { tempDir } from '../../helpers/temp-dir';

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

  it('builds the large ones with the parameters counted without building them: the CIFAR CNN 1.1M, ResNet-18 11.2M (as published)', async () => {
    await initBackend('cnn');
    const cifar = { shape: [32, 32, 3], classes: 10 };
    const cases: ['cifar_cnn' | 'resnet18', ModelInput, number][] = [
      ['cifar_cnn', cifar, 1_116_970],
      ['cifar_cnn', { shape: [28, 28, 1], classes: 10 }, 870_634],
      // Odd sides: pooled twice, 17x23 leaves 4x5 of 64 channels (1,280 into 256 units).
      ['cifar_cnn', { shape: [17, 23, 3], classes: 10 }, 396_074],
      // torchvision's resnet18 has 11,689,512 for 1000 classes. Less its 513,000-weight head, and its
      // 7x7 stem for a 3x3 one (9,408 weights for 1,728); plus the 9,600 moving statistics of its
      // 4,800 batch-norm channels (buffers there, weights here) and a head of 10 (5,130): 11,183,562.
      ['resnet18', cifar, 11_689_512 - 513_000 - 9_408 + 1_728 + 9_600 + 5_130],
    ];
    for (const [architecture, input, expected] of cases) {
      const spec = { architecture, hidden_units: 128 };
      const model = buildModel(spec, 1, input);
      assert.equal(parameterCount(model), expected, `${architecture} on ${input.shape}`);
      assert.equal(expectedParameterCount(spec, input), expected);
      model.dispose();
    }
    assert.throws(() => expectedParameterCount({ architecture: 'resnet18', hidden_units: 1 }, { shape: [8, 8, 1], classes: 2 }), /resnet18 needs images of at least 16x16/);
  });

  it("reads a batch norm's moving variance below 0 (noise, an attacker) as 0, so predictions stay numbers", async () => {
    await initBackend();
    // Named, as a model from a file has its layers: a second one in the process gets "moving_variance_1".
    const named = () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, name: 'in' }), tf.layers.batchNormalization({ name: 'norm' }), tf.layers.dense({ units: 2, activation: 'softmax', name: 'out' })] });
    const first = named();
    const model = named();
    assert.notEqual(model.weights.find((w) => /moving_variance/.test(w.name))!.name, first.weights.find((w) => /moving_variance/.test(w.name))!.name, 'the second got a suffix');
    first.dispose();
    const flat = getFlatWeights(model);
    const variance = model.weights.findIndex((w) => /moving_variance/.test(w.name));
    const at = model.weights.slice(0, variance).reduce((n, w) => n + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
    flat.fill(-0.5, at, at + 3);
    setFlatWeights(model, flat);
    assert.deepEqual([...getFlatWeights(model).subarray(at, at + 3)], [0, 0, 0]);
    const predicted = tf.tidy(() => (model.predict(tf.ones([1, 4])) as tf.Tensor).dataSync());
    assert.ok([...predicted].every(Number.isFinite), `${predicted}`);
    model.dispose();
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
    const dir = join(tempDir('model-'), 'm');
    await saveModel(model, dir);
    assert.deepEqual(evaluate(await loadModel(dir), test), after);
  });

  it('saves what LayersModel.save would, byte for byte (its topology, its weights named, shaped and typed, their values), a tensor at a time', async () => {
    await initBackend('cnn');
    // A functional model with batch norm as ResNet's blocks have it (its moving statistics are weights too, not trained), and the built-ins.
    const input = tf.input({ shape: [8, 8, 1] });
    const normed = tf.layers.batchNormalization().apply(tf.layers.conv2d({ filters: 4, kernelSize: 3 }).apply(input)) as tf.SymbolicTensor;
    const functional = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 10, activation: 'softmax' }).apply(tf.layers.flatten().apply(normed)) as tf.SymbolicTensor });
    for (const model of [functional, buildModel({ architecture: 'cnn', hidden_units: 8 }, 5), buildModel({ architecture: 'mlp', hidden_units: 8 }, 6)]) {
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(tf.io.withSaveHandler(async (artifacts) => ((saved = artifacts), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
      const dir = join(tempDir('model-'), 'm');
      await saveModel(model, dir);
      const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      assert.deepEqual(manifest.modelTopology, JSON.parse(JSON.stringify(saved!.modelTopology)));
      assert.equal(manifest.generatedBy, saved!.generatedBy);
      assert.deepEqual(manifest.weightsManifest[0].weights, saved!.weightSpecs);
      assert.deepEqual(readFileSync(join(dir, 'weights.bin')), Buffer.from(saved!.weightData as ArrayBuffer));
      const back = await loadModel(dir);
      assert.deepEqual(getFlatWeights(back), getFlatWeights(model));
      back.dispose();
      model.dispose();
    }
  });

  it('trains no step once its signal says its role stopped, and stops after the step under way when it says so meanwhile', async () => {
    await initBackend();
    const data = subset(loadMnist(), Array.from({ length: 320 }, (_, i) => i * 31));
    const options = { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 1 }; // 10 steps, in one call to fit
    const [stopped, stopping, whole] = [1, 2, 3].map(() => buildModel({ architecture: 'mlp', hidden_units: 16 }, 1));
    const initial = getFlatWeights(stopped);
    await train(stopped, data, { ...options, signal: AbortSignal.abort() });
    assert.deepEqual(getFlatWeights(stopped), initial, 'a stopped role took a step');
    const stop = new AbortController();
    setImmediate(() => stop.abort()); // each step yields to the event loop: this comes after the first
    await train(stopping, data, { ...options, signal: stop.signal });
    await train(whole, data, options);
    const [partly, fully] = [getFlatWeights(stopping), getFlatWeights(whole)];
    assert.notDeepEqual(partly, initial, 'no step before the stop');
    assert.notDeepEqual(partly, fully, 'all 10 steps despite the stop');
    for (const model of [stopped, stopping, whole]) model.dispose();
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

describe("FedProx's proximal term", () => {
  it('pulls each weight toward the model training started from: w ← (w + ημ·w₀) / (1 + ημ)', async () => {
    await initBackend();
    const model = buildModel({ architecture: 'mlp', hidden_units: 8 }, 2);
    const start = getFlatWeights(model);
    const step = proximalStep(model, 1);
    setFlatWeights(model, Float32Array.from(start, (w) => w + 2));
    step.step();
    const pulled = getFlatWeights(model);
    pulled.forEach((w, i) => assert.ok(Math.abs(w - (start[i] + 1)) < 1e-5, `weight ${i}: ${w}, expected ${start[i] + 1}`));
    step.dispose();
    model.dispose();
  });

  it('keeps a client nearer the global model the larger μ is, and leaves no tensors behind', async () => {
    await initBackend();
    const data = subset(loadMnist(), Array.from({ length: 600 }, (_, i) => i * 13));
    const drift = async (proximalMu: number) => {
      const model = buildModel({ architecture: 'mlp', hidden_units: 16 }, 4);
      const start = getFlatWeights(model);
      await train(model, data, { epochs: 2, batchSize: 32, learningRate: 0.1, seed: 1, proximalMu });
      const end = getFlatWeights(model);
      model.dispose();
      return Math.sqrt(end.reduce((s, w, i) => s + (w - start[i]) ** 2, 0));
    };
    const before = tf.memory().numTensors;
    const free = await drift(0);
    const plain = tf.memory().numTensors - before; // what a model and its optimizer leave, with or without the term
    const held = await drift(10);
    assert.ok(held < free / 2, `drift ${held} with μ 10 against ${free} without`);
    assert.equal(tf.memory().numTensors - before, 2 * plain, 'the proximal term leaves nothing of its own');
  });
});

describe("SCAFFOLD's corrected step", () => {
  it('moves every weight by −η·(c − c_i) after each SGD step', async () => {
    await initBackend();
    const model = buildModel({ architecture: 'mlp', hidden_units: 8 }, 2);
    const start = getFlatWeights(model);
    const correction = Float32Array.from(start, (_, i) => (i % 7) - 3);
    const step = correctedStep(model, correction, 0.5);
    step.step();
    getFlatWeights(model).forEach((w, i) => assert.ok(Math.abs(w - (start[i] - 0.5 * correction[i])) < 1e-6, `weight ${i}`));
    step.dispose();
    assert.throws(() => correctedStep(model, new Float32Array(3), 0.5), /the correction has 3 values; the model 6370/);
    // In training, one that does not fit fails it, and frees the proximal step made before it.
    const data = subset(loadMnist(), [0, 1, 2, 3]);
    await assert.rejects(train(model, data, { epochs: 1, batchSize: 4, learningRate: 0.1, seed: 1, correction: new Float32Array(3) })); // its optimizer made
    const before = tf.memory().numTensors;
    await assert.rejects(train(model, data, { epochs: 1, batchSize: 4, learningRate: 0.1, seed: 1, proximalMu: 0.1, correction: new Float32Array(3) }), /the correction has 3 values/);
    assert.equal(tf.memory().numTensors, before, 'nothing of the proximal step left');
    model.dispose();
  });

  it('in training, shifts the model by about K·η·(c − c_i) against plain SGD, and leaves no tensors behind', async () => {
    await initBackend();
    const data = subset(loadMnist(), Array.from({ length: 320 }, (_, i) => i * 13));
    const options = { epochs: 1, batchSize: 32, learningRate: 0.05, seed: 1 };
    const trained = async (correction?: Float32Array) => {
      const model = buildModel({ architecture: 'mlp', hidden_units: 16 }, 4);
      await train(model, data, { ...options, correction });
      const end = getFlatWeights(model);
      model.dispose();
      return end;
    };
    const before = tf.memory().numTensors;
    const plain = await trained();
    const left = tf.memory().numTensors - before;
    const shifted = await trained(new Float32Array(plain.length).fill(0.01));
    assert.equal(tf.memory().numTensors - before, 2 * left, 'the correction leaves nothing of its own');
    // 10 steps of 0.05 × 0.01: 0.005 each; the gradients along the shifted path differ a little.
    const expected = stepsOf(data.size, options) * options.learningRate * 0.01;
    const mean = plain.reduce((s, w, i) => s + (w - shifted[i]), 0) / plain.length;
    assert.ok(Math.abs(mean - expected) < 0.1 * expected, `mean shift ${mean}, expected ${expected}`);
  });
});

describe('CNN on the wasm backend', () => {
  it('the composed Conv2D gradient (also the fused convolution\'s) matches the cpu backend\'s kernel, for valid and same padding and strides', async () => {
    // 11x11 under 5x5 filters pads evenly; ResNet's 8x8 under 3x3 at stride 2 pads one side only, and its 1x1 none.
    const cases = [['valid', 1, 11, 5], ['same', 1, 11, 5], ['valid', 2, 11, 5], ['same', 2, 11, 5], ['same', 2, 8, 3], ['same', 2, 8, 1], ['same', 1, 8, 3]] as const;
    for (const [pad, stride, side, size] of cases) {
      // The fused convolution (a layer without activation: ResNet's, before its batch norm) calls the filter kernel itself.
      const loss = (x: tf.Tensor, w: tf.Tensor) =>
        tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad).square().sum().add(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: stride, pad }).sum());
      await tf.setBackend('cpu');
      const x = tf.randomNormal([2, side, side, 3], 0, 1, 'float32', 1);
      const w = tf.randomNormal([size, size, 3, 4], 0, 1, 'float32', 2);
      const reference = await Promise.all(tf.grads(loss)([x, w]).map((g) => g.data() as Promise<Float32Array>));
      const xs = [await x.data(), await w.data()];
      assert.equal(await initBackend('cnn'), 'wasm');
      const composed = await Promise.all(tf.grads(loss)([tf.tensor(xs[0], x.shape), tf.tensor(xs[1], w.shape)]).map((g) => g.data() as Promise<Float32Array>));
      for (const k of [0, 1]) {
        const worst = reference[k].reduce((m, v, i) => Math.max(m, Math.abs(v - composed[k][i]) / (1 + Math.abs(v))), 0);
        assert.ok(worst < 1e-4, `${pad} stride ${stride}, ${side}x${side} by ${size}x${size}: ${k ? 'filter' : 'input'} gradient off by ${worst}`);
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
