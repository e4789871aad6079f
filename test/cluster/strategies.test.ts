/**
 * A linear strategy in the hardest mode it supports: FedProx (each client's proximal term) with the
 * clients holding the HE key, quantized packing, through a 2-level tree of switches. The server
 * side is FedAvg's on sealed sums; the term travels as an instruction with the model.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { runExperiment, Testbed } from '../helpers/cluster';

describe('FedProx under quantized HE, the key at the clients, through a spine and two racks', () => {
  it('runs every round and learns', { timeout: 600_000 }, async () => {
    const experiment = 'fedprox-sealed';
    const testbed = new Testbed({ nodes: 9, switches: 3, spines: 1, rounds: 3, experiment }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.training = { ...(config.training as object), strategy: 'fedprox', proximal_mu: 0.1 };
      config.he = { enabled: true, key_holder: 'clients', quantize: { bits: 16 } };
    });
    try {
      assert.equal((await testbed.up()).code, 0);
      const run = await runExperiment(testbed, 540_000, ['--log-level', 'info']);
      assert.equal(run.code, 0, run.output);
      assert.match(run.output, /running 3 rounds of fedprox/);
      const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;
      assert.equal(rows.length, 3);
      assert.deepEqual(rows.map((r) => r.clients), [5, 5, 5]);
      assert.ok(rows.at(-1)!.accuracy > 0.8, `accuracy ${rows.at(-1)!.accuracy}`);
      const report = readFileSync(join(testbed.outputs, experiment, 'report.html'), 'utf8');
      assert.match(report, /<th>strategy<\/th><td>FedProx \(proximal μ 0\.1\)<\/td>/);
    } finally {
      await testbed.down();
    }
  });
});
