/** A client's training as the round asks it: under DP its change is clipped and it weighs 1; an attack works on what it sends. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { Trainer } from '../../../../src/roles/client/trainer';

function clientConfig(edit: (config: Record<string, any>) => void): ClientNodeConfig {
  const raw = testbedConfig({ base: '127.0.9', nodes: 4, switches: 0, he: false }) as Record<string, any>;
  raw.model = { architecture: 'mlp', hidden_units: 16 };
  edit(raw);
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is ClientNodeConfig => n.type === 'client')!;
}

const norm = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));
const instructions = { epochs: 1, batchSize: 32, learningRate: 0.5 };

describe('the trainer', () => {
  it('under DP clips its change to the clip and weighs 1; without, its change runs longer and it weighs its samples', async () => {
    const plain = await Trainer.load(clientConfig(() => undefined));
    const global = new Float32Array(plain.sizes.reduce((s, n) => s + n, 0));
    const free = await plain.train(global, { round: 1, attempt: 'a' }, instructions, plain.weight * 3);
    const clip = 0.1;
    const dp = await Trainer.load(clientConfig((c) => (c.dp = { mode: 'central', clip, noise_multiplier: 1 })));
    const clipped = await dp.train(global, { round: 1, attempt: 'a' }, instructions, 3);
    assert.ok(norm(free.weights, global) > 2 * clip, `the change without DP: ${norm(free.weights, global)}`);
    assert.ok(Math.abs(norm(clipped.weights, global) - clip) < 1e-4, `the change under DP: ${norm(clipped.weights, global)}`);
    assert.deepEqual([plain.weight, dp.weight], [plain.data.size, 1]);
    plain.dispose();
    dp.dispose();
  });
});
