/** A client's training as the round asks it: under DP its change is clipped and it weighs 1; an attack works on what it sends; a sealed model scored by the model it trains. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { inputOf } from '../../../../src/config/data-schema';
import { createModel, evaluate, setFlatWeights } from '../../../../src/model/model';
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

  it('scores the weights it is given, as a model built for them would, and a score asked during training leaves what training returns alone', async () => {
    const config = clientConfig(() => undefined);
    const trainer = await Trainer.load(config);
    const start = new Float32Array(trainer.parameters).map((_, i) => Math.sin(i) / 10);
    const scored = new Float32Array(trainer.parameters).map((_, i) => Math.cos(i) / 10);
    const opening = { round: 1, attempt: 'a' };
    const alone = await trainer.train(start, opening, instructions, 1);
    // Asked while it trains, the score waits for its turn and sets the model's weights when that comes.
    const training = trainer.train(start, opening, instructions, 1);
    const score = await trainer.score(scored, 'tag');
    const { weights } = await training;
    assert.deepEqual(weights, alone.weights, 'the trained weights are read in the turn that trained them');

    const reference = await createModel(config.settings.model, config.settings.data.seed, inputOf(config.settings.data));
    setFlatWeights(reference, scored);
    assert.deepEqual(score, evaluate(reference, trainer.test));
    reference.dispose();
    assert.equal(trainer.keptModel('tag'), scored);

    // Its role stops while the score waits behind a training: skipped, and the training's weights are its own.
    const stopping = new AbortController();
    const trainingAgain = trainer.train(start, opening, instructions, 1);
    const skipped = trainer.score(scored, undefined, stopping.signal);
    stopping.abort();
    await assert.rejects(skipped, /stopped before its turn/);
    assert.deepEqual((await trainingAgain).weights, alone.weights);
    trainer.dispose();
  });

  it('under SCAFFOLD, a round whose training goes beyond the range fails and forgets the control variate it kept: the next trains as a client started anew', async () => {
    const config = clientConfig((c) => (c.training = { ...c.training, strategy: 'scaffold' }));
    const [trainer, anew] = [await Trainer.load(config), await Trainer.load(config)];
    const vector = (control: number) => new Float32Array(2 * trainer.parameters).fill(control, trainer.parameters);
    await trainer.train(vector(0.5), { round: 1, attempt: 'a' }, instructions, 1);
    // Round 1 counted it, so it keeps its c_i; then a made-up server c drives training past the range.
    await assert.rejects(trainer.train(vector(1e5), { round: 2, attempt: 'b', countedIn: 1 }, instructions, 1), /beyond ±1000000, which no honest training reaches: its control variate is reset to zero, as after a restart/);
    const after = await trainer.train(vector(0), { round: 3, attempt: 'c' }, instructions, 1);
    assert.deepEqual(after.weights, (await anew.train(vector(0), { round: 3, attempt: 'c' }, instructions, 1)).weights);
    trainer.dispose();
    anew.dispose();
  });
});
