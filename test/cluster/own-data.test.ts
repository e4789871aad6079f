/**
 * Federated runs on a lab's own files, every format, on loopback: one file every client slices,
 * files of each client's own, and a client whose file does not fit the model (named before round 1).
 * The files are made from the shipped digits (test/helpers/data-files.ts): nothing is downloaded.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { parseExperimentConfig } from '../../src/config/load';
import { inputOf } from '../../src/config/data-schema';
import { testbedConfig } from '../../src/config/testbed';
import { createModel } from '../../src/model/model';
import { saveModel } from '../../src/model/store';
import { MAIN, node, runExperiment, Testbed } from '../helpers/cluster';
import { someDigits, writeCifar, writeCsv, writeIdx, writePngFolder } from '../../src/data/sample-files';
import { tempDir } from '../helpers/temp-dir';

const dir = tempDir('fl-own-data-');
const digits = someDigits(1200);
const idx = writeIdx(join(dir, 'idx'), digits, true);
const formats: Record<string, Record<string, unknown>> = {
  idx: { source: 'idx', path: idx.images, labels_path: idx.labels, shape: [28, 28, 1], classes: 10 },
  csv: { source: 'csv', path: writeCsv(join(dir, 'pooled.csv'), digits), shape: [49], classes: 10 },
  cifar: { source: 'cifar', path: writeCifar(join(dir, 'batch.bin'), digits), shape: [32, 32, 3], classes: 10 },
  png: { source: 'png', path: writePngFolder(join(dir, 'png'), digits), shape: [28, 28, 1], classes: 10 },
};

function experiment(name: string, data: Record<string, unknown>, edit?: (config: Record<string, any>) => void) {
  return new Testbed({ nodes: 5, switches: 1, rounds: 2, trainSize: 'all' }, (config: Record<string, any>) => {
    config.experiment = name;
    config.model = { architecture: 'mlp', hidden_units: 32 };
    config.he = { enabled: false };
    config.training = { ...config.training, learning_rate: 0.3 };
    config.data = { ...config.data, test_size: 200, ...data };
    edit?.(config);
  });
}

const rows = (testbed: Testbed, name: string): RoundMetrics[] => JSON.parse(readFileSync(join(testbed.outputs, name, 'metrics.json'), 'utf8')).rounds;
const clientLog = (testbed: Testbed, address: string) => readFileSync(join(testbed.logs, `${address.replace(':', '-')}.log`), 'utf8');

describe('federated runs on files in each format (one file, sliced by every client)', () => {
  const testbeds: Testbed[] = [];
  after(() => Promise.all(testbeds.map((t) => t.down())));
  for (const [format, data] of Object.entries(formats)) {
    it(`${format}: learns, and each client says what it read`, { timeout: 180_000 }, async () => {
      // The table gets the small tabular MLP.
      const testbed = experiment(`own-${format}`, data, format === 'csv' ? (config) => (config.model = { architecture: 'tabular', hidden_units: 32 }) : undefined);
      testbeds.push(testbed);
      assert.equal((await testbed.up()).code, 0);
      const run = await runExperiment(testbed);
      assert.equal(run.code, 0, run.output);
      const done = rows(testbed, `own-${format}`);
      assert.equal(done.length, 2);
      assert.ok(done[1].accuracy > 0.4, `${format}: accuracy ${done[1].accuracy} after 2 rounds (chance is 0.1)`);
      const [client] = testbed.addresses('client');
      assert.match(clientLog(testbed, client), new RegExp(`ready: \\d+ samples from ${format === 'cifar' ? 'CIFAR-10' : format.toUpperCase()} `));
      if (format === 'csv') assert.match(clientLog(testbed, client), /each column standardised with this file's mean±std: p0 /);
      // Each client's classes, as it said at check-in, and the report's chart of them.
      const histograms = JSON.parse(readFileSync(join(testbed.outputs, `own-${format}`, 'clients.json'), 'utf8')) as Record<string, number[]>;
      assert.deepEqual(Object.keys(histograms).sort(), [...testbed.addresses('client')].sort());
      const total = Object.values(histograms).reduce((n, h) => n + h.reduce((a, b) => a + b, 0), 0);
      assert.equal(total, done[1].samples, 'the histograms count the samples the round trained on');
      assert.ok(existsSync(join(testbed.outputs, `own-${format}`, 'charts', 'classes.png')));
      assert.match(readFileSync(join(testbed.outputs, `own-${format}`, 'report.html'), 'utf8'), /Samples per class on each client/);
    });
  }
});

describe('files of each client\'s own, and one that does not fit', () => {
  const testbeds: Testbed[] = [];
  after(() => Promise.all(testbeds.map((t) => t.down())));

  it('each client trains on its own IDX files ({index} in the path), the HE key at the clients: they score the model on their own held-out tenth', { timeout: 180_000 }, async () => {
    for (let i = 0; i < 3; i++) writeIdx(join(dir, `client-${i}`), someDigits(300 + i * 10));
    const held = writeIdx(join(dir, 'held-out'), someDigits(200));
    const testbed = experiment('own-files', {
      source: 'idx',
      path: join(dir, 'client-{index}', 'images-idx3-ubyte'),
      labels_path: join(dir, 'client-{index}', 'labels-idx1-ubyte'),
      test: { path: held.images, labels_path: held.labels },
      shape: [28, 28, 1],
      classes: 10,
    }, (config) => (config.he = { enabled: true, key_holder: 'clients' }));
    testbeds.push(testbed);
    assert.equal((await testbed.up()).code, 0);
    const run = await runExperiment(testbed);
    assert.equal(run.code, 0, run.output);
    // 300, 310 and 320 digits: a tenth of each held out for federated evaluation, the rest trained on.
    const samples = rows(testbed, 'own-files')[1].samples;
    assert.equal(samples, 270 + 279 + 288);
    const clients = testbed.addresses('client');
    assert.match(clientLog(testbed, clients[2]), /ready: 288 samples from IDX .*client-2.* \(its own; 288 to train on, 32 held out\)/);
    // Federated evaluation: the accuracy is the clients' own, on their held-out tenths.
    const last = rows(testbed, 'own-files')[1];
    assert.ok(last.accuracy > 0.3, JSON.stringify(last));
  });

  it('a client whose file has the wrong shape is named, with the file and why, and the experiment goes on without it', { timeout: 180_000 }, async () => {
    const narrow = join(dir, 'narrow.csv');
    const rowsOf = readFileSync(writeCsv(join(dir, 'wide.csv'), someDigits(300)), 'utf8').split('\n');
    // 48 features: one column fewer than the model takes.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(narrow, rowsOf.map((line) => line.split(',').slice(1).join(',')).join('\n'));
    let odd = '';
    const testbed = experiment('misfit', { ...formats.csv }, (config) => {
      odd = Object.keys(config.others).find((a) => config.others[a].type === 'client')!;
      config.others[odd].data = { path: narrow };
    });
    testbeds.push(testbed);
    assert.equal((await testbed.up()).code, 0);
    const run = await runExperiment(testbed);
    assert.equal(run.code, 0, run.output);
    // It fails while it prepares, before it can check in: the push waits for that, and names it, and why, never "configured".
    const escaped = odd.replace(/\./g, '\\.');
    assert.match(run.output, new RegExp(`NO\\s+${escaped}\\s+client\\s+failed to start: it could not prepare: .*narrow\\.csv: its samples have shape \\[48\\], but data\\.shape is \\[49\\]`));
    assert.doesNotMatch(run.output, new RegExp(`ok\\s+${escaped}\\s+client\\s+configured`));
    assert.match(run.output, new RegExp(`- client ${escaped} failed: it could not prepare`));
    // Two clients in every round: the misfit in none.
    assert.deepEqual(rows(testbed, 'misfit').map((r) => r.clients), [2, 2]);
  });
});

describe('a model from a file', () => {
  const testbeds: Testbed[] = [];
  after(() => Promise.all(testbeds.map((t) => t.down())));

  it('every node loads the same layers model (here a CNN saved by this project) and trains it, encrypted, on IDX files', { timeout: 240_000 }, async () => {
    const folder = join(dir, 'my-model');
    const tf = await import('@tensorflow/tfjs');
    // A model of the lab's own: not one of the built-ins (two convolutions of 4 and 8 filters, no hidden dense layer).
    // Seeded, so every run starts from the same weights (the run is then as repeatable as the built-ins').
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const mine = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(3) }),
      ],
    });
    await saveModel(mine, folder);
    const parameters = mine.countParams();
    mine.dispose();
    const testbed = experiment('own-model', formats.idx, (config) => {
      config.model = { architecture: 'file', path: join(folder, 'model.json') };
      config.he = { enabled: true, key_holder: 'aggregator' };
      // A convolutional net wants a gentler step than the MLPs' 0.3, and two passes over the data a round.
      config.training = { ...config.training, learning_rate: 0.2, epochs: 2 };
    });
    testbeds.push(testbed);
    assert.equal((await testbed.up()).code, 0);
    const run = await runExperiment(testbed);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, new RegExp(`running 2 rounds of fedavg on file \\(${parameters} parameters\\)`));
    const done = rows(testbed, 'own-model');
    assert.ok(done[1].accuracy > 0.3, `accuracy ${done[1].accuracy} after 2 rounds`);
    // The saved rounds are the same model, and eval scores them.
    const saved = join(testbed.outputs, 'own-model', 'models', 'round-002');
    const evaluated = await node([MAIN, 'eval', saved]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    assert.match(evaluated.stdout, new RegExp(`accuracy ${(done[1].accuracy * 100).toFixed(2)}%`));
  });

  it('names a model file that does not fit the data', async () => {
    const config = parseExperimentConfig({ ...testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }), model: { architecture: 'file', path: join(dir, 'my-model') }, data: formats.csv });
    await assert.rejects(createModel(config.model, 1, inputOf(config.data)), /my-model: the model takes \[28, 28, 1\] and tells 10 classes apart; data.shape is \[49\]/);
    assert.throws(() => parseExperimentConfig({ ...testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }), model: { architecture: 'file' } }), /model\.path: needed with architecture "file"/);
    // The shipped digits are what they are: a shape or class count for them is a mistake, said so.
    assert.throws(() => parseExperimentConfig({ ...testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }), data: { classes: 5 } }), /data\.classes: is for files of your own/);
  });
});
