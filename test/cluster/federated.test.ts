/**
 * Federated training for real: worker processes on loopback, real MNIST digits, rounds through switches.
 * The numbers the project promises are measured here, not asserted as timings.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../src/config/load';
import type { ExperimentConfig } from '../../src/config/schema';
import { loadMnist, subset } from '../../src/data/mnist';
import { clientSlice, testIndices } from '../../src/data/partition';
import { initBackend } from '../../src/model/backend';
import { buildModel, evaluate, train } from '../../src/model/model';
import { expectedParameterCount } from '../../src/model/size';
import { loadModel } from '../../src/model/store';
import type { RoundMetrics } from '../../src/outputs';
import { node, ROOT, runExperiment, Testbed } from '../helpers/cluster';

/** config.local.json's settings (the demo's), on a loopback subnet of the test's own. */
function demoSettings(config: Record<string, unknown>): void {
  const { others: _others, ...settings } = JSON.parse(readFileSync(join(ROOT, 'config.local.json'), 'utf8'));
  Object.assign(config, settings, { others: config.others });
}

const metricsOf = (testbed: Testbed, experiment: string): RoundMetrics[] =>
  JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;

describe("the demo's experiment on a 15-node loopback testbed", () => {
  const testbed = new Testbed({ nodes: 15, switches: 2, trainSize: 'all' }, demoSettings);
  const config = parseExperimentConfig(testbed.config) as ExperimentConfig;
  let run: { code: number | null; output: string };
  let metrics: RoundMetrics[];

  before(async () => {
    assert.equal((await testbed.up()).code, 0);
    run = await runExperiment(testbed);
    metrics = metricsOf(testbed, config.experiment);
  });
  after(() => testbed.down());

  it('runs every round and prints each one, then a summary', () => {
    assert.equal(run.code, 0, run.output);
    assert.equal(metrics.length, config.rounds);
    for (let r = 1; r <= config.rounds; r++) assert.match(run.output, new RegExp(`round\\s+${r}/${config.rounds}\\s+accuracy`));
    assert.match(run.output, /final accuracy \d+\.\d+% after \d+ rounds/);
    assert.ok(metrics.every((m) => m.clients === 12 && m.samples > 7900));
  });

  it('reaches 90% on the 2,000 held-out digits within 20 rounds', () => {
    const best = Math.max(...metrics.map((m) => m.accuracy));
    const last = metrics[metrics.length - 1].accuracy;
    console.log(`# federated: ${metrics.map((m) => m.accuracy.toFixed(3)).join(' ')}`);
    assert.ok(config.rounds <= 20 && best >= 0.9 && last >= 0.9, `best ${best}, last ${last}`);
  });

  it('ends within 2 percentage points of the same model trained centrally on the same data, epochs and seed', async () => {
    await initBackend();
    const data = loadMnist();
    const clients = [...resolveNodeConfigs(config).values()].filter((n) => n.type === 'client');
    const union = clients.flatMap((c) => (c.type === 'client' ? clientSlice(data, config.data, c.client_number, c.index) : []));
    const central = buildModel(config.model, config.data.seed);
    const epochs = config.rounds * config.training.epochs;
    for (let epoch = 0; epoch < epochs; epoch++) {
      await train(central, subset(data, union), { epochs: 1, batchSize: config.training.batch_size, learningRate: config.training.learning_rate, seed: config.data.seed + epoch });
    }
    const centralAccuracy = evaluate(central, subset(data, testIndices(data, config.data))).accuracy;
    const federated = metrics[metrics.length - 1].accuracy;
    console.log(`# central ${centralAccuracy.toFixed(4)} after ${epochs} epochs; federated ${federated.toFixed(4)} after ${config.rounds} rounds`);
    assert.ok(Math.abs(centralAccuracy - federated) <= 0.02, `central ${centralAccuracy}, federated ${federated}`);
  });

  it('saves every round as a model that loads and scores what the metrics say', async () => {
    await initBackend();
    const dir = join(testbed.outputs, config.experiment);
    assert.equal(readdirSync(join(dir, 'models')).length, config.rounds);
    const data = loadMnist();
    const test = subset(data, testIndices(data, config.data));
    for (const round of [1, config.rounds]) {
      const model = await loadModel(join(dir, 'models', `round-${String(round).padStart(3, '0')}`));
      assert.equal(evaluate(model, test).accuracy, metrics[round - 1].accuracy);
    }
    const last = join(dir, 'models', `round-${String(config.rounds).padStart(3, '0')}`);
    const cli = await node(['main.js', 'eval', last]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`accuracy ${(metrics[config.rounds - 1].accuracy * 100).toFixed(2)}%`));
    const csv = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, config.rounds + 1);
    assert.match(csv[0], /^round,accuracy,loss,.*round_ms.*bytes_up,bytes_down/);
    // As the aggregator loaded it: the certificates' folder is beside config.json, and the transport as it ran.
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { ...config, certs: join(testbed.dir, 'certs'), tls: false });
  });

  it('every node logs every round with the bytes it moved', () => {
    const files = readdirSync(testbed.logs).filter((f) => f.endsWith(`_${config.experiment}.json`));
    assert.equal(files.length, 15);
    // The model as float32 (round 1's downlink is no measure of it: it carries each client's public key too).
    const modelBytes = 4 * expectedParameterCount(config.model);
    for (const file of files) {
      const { iteration } = JSON.parse(readFileSync(join(testbed.logs, file), 'utf8'));
      assert.equal(iteration.length, config.rounds, file);
      for (const entry of iteration) {
        assert.ok(Date.parse(entry.start_time) <= Date.parse(entry.end_time));
        // Every node moves at least one model's worth of float32 bytes each round, one way or the other.
        assert.ok(entry.byte_received + entry.byte_send > modelBytes, `${file} round ${entry.round}`);
      }
    }
  });
});

describe('another topology: direct clients, a non-IID split, FedAvgM, clients standing by', () => {
  const experiment = 'skewed';
  const testbed = new Testbed({ nodes: 8, switches: 1, experiment, rounds: 4 }, (config: Record<string, any>) => {
    // 6 clients: the first two report to the aggregator directly, the rest through the switch.
    for (const address of Object.keys(config.others).slice(0, 2)) delete config.others[address].switch;
    config.clients_per_round = 5;
    config.he = { enabled: false }; // direct clients and FedAvgM: both need the plaintext path
    config.data.split = 'dirichlet';
    config.data.alpha = 0.5;
    config.training.strategy = 'fedavgm';
    config.training.server_momentum = 0.5;
    config.training.learning_rate = 0.1;
  });

  it('trains every round with the goal count of clients and learns', async () => {
    try {
      assert.equal((await testbed.up()).code, 0);
      const run = await runExperiment(testbed);
      assert.equal(run.code, 0, run.output);
      const metrics = metricsOf(testbed, experiment);
      assert.equal(metrics.length, 4);
      assert.ok(metrics.every((m) => m.clients === 5), `clients per round: ${metrics.map((m) => m.clients)}`);
      assert.ok(metrics[3].accuracy > 0.6 && metrics[3].accuracy > metrics[0].accuracy - 0.05, metrics.map((m) => m.accuracy).join(' '));
      const logs = readdirSync(testbed.logs).filter((f) => f.endsWith(`_${experiment}.json`));
      assert.equal(logs.length, 8);
    } finally {
      await testbed.down();
    }
  });
});
