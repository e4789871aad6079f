/** A round's tail on its own, the global model faked: aggregate, evaluate, checkpoint, in that order, once. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PlaintextAccumulator } from '../../../../src/aggregation/accumulator';
import { CheckpointStore } from '../../../../src/checkpoint';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { AggregatorNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { IterationLog } from '../../../../src/log/iteration-log';
import { WireMeter } from '../../../../src/net/wire-meter';
import { ExperimentOutputs } from '../../../../src/outputs';
import { UnreadableSum, UnscoredModel, type GlobalModel } from '../../../../src/roles/aggregator/global-model';
import { epsilonAfter } from '../../../../src/privacy/dp';
import type { Prepared } from '../../../../src/roles/aggregator/preparation';
import { RoundClock } from '../../../../src/roles/aggregator/round-clock';
import { RoundTail, TailFailure, type CloseRound } from '../../../../src/roles/aggregator/round-tail';
import { tempDir } from '../../../helpers/temp-dir';

/** The HE these tests run under: distributed DP is accounted by how its noise is drawn (floats under unquantized HE). */
const SEALED = { enabled: true, quantize: undefined };

const aggregatorOf = (raw: Record<string, unknown>) => [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is AggregatorNodeConfig => n.type === 'aggregator')!;
const defaultConfig = aggregatorOf(testbedConfig({ base: '127.0.9', nodes: 6, switches: 1, rounds: 3 }));
const close: CloseRound = { type: 'close-round', round: 1, attempt: 's:1.0', results: [{ from: 's1', clients: ['c1', 'c2'], weight: 10 }], missing: ['c3'], samples: 15 };

/** A tail whose global model records what it is asked; `fail` makes one of its steps throw; `stopAt` stops the role there. */
async function tail(options: { fail?: 'update' | 'evaluate'; stopAt?: 'update'; unreadable?: 'update' | 'evaluate'; config?: AggregatorNodeConfig; sealed?: boolean; unscoredFirst?: boolean } = {}) {
  const dir = tempDir('fl-tail-');
  const calls: string[] = [];
  const lines: string[] = [];
  let stopped = false;
  const step = (name: string) => {
    calls.push(name);
    if (options.fail === name) throw new Error(`${name} broke`);
    if (options.unreadable === name) throw new UnreadableSum(`${name}: it does not decrypt`);
    if (options.stopAt === name) stopped = true;
  };
  let evaluations = 0;
  const global = {
    scoredByClients: options.sealed ?? false,
    update: async () => step('update'),
    evaluate: async () => {
      step('evaluate');
      if (options.unscoredFirst && evaluations++ === 0) throw new UnscoredModel('no client could score the new model');
      return { accuracy: 0.9, loss: 0.25 };
    },
    saveRound: async (outputs: ExperimentOutputs, header: { round: number }, metrics: never) => (step('save'), outputs.saveRound(header.round, { encrypted: Buffer.from('sealed') }, metrics)),
    snapshot: () => ({ plain: Float32Array.from([1, 2, 3]) }),
  } as unknown as GlobalModel;
  const accumulator = new PlaintextAccumulator(3);
  const arrive = () => accumulator.add({ round: 1, sender: 's1', values: Float32Array.from([10, 20, 30]), weight: 10, contributors: 2, preScaled: true }, { check: () => undefined, commit: (store) => store() });
  await arrive();
  const prepared = { global, accumulator, strategy: { snapshot: () => ({}) } } as unknown as Prepared;
  const config = options.config ?? defaultConfig;
  const outputs = new ExperimentOutputs(dir, config.experiment);
  const checkpoints = new CheckpointStore(join(dir, 'checkpoints'));
  const iterations = new IterationLog(join(dir, 'logs'), 'agg', config.experiment, new WireMeter());
  iterations.beginRound(1);
  const run = new RoundTail({
    config,
    prepared: () => prepared,
    clock: new RoundClock(),
    iterations,
    outputs,
    checkpoints,
    header: (round) => ({ round, modelId: 7, sender: config.address, parameters: 3 }),
    retries: () => 0,
    changed: (what) => calls.push(`changed ${what}`),
    print: (line) => lines.push(line),
    isStopped: () => stopped,
  });
  return { run, calls, lines, checkpoints, outputs, accumulator, arrive };
}

describe("a round's tail", () => {
  it('ends the run rather than let a round run again release a model past the budget', async () => {
    const dp = { mode: 'distributed' as const, clip: 1, noise_multiplier: 1, delta: 1e-5 };
    const raw = { ...testbedConfig({ base: '127.0.9', nodes: 6, switches: 1, rounds: 3 }), he: { enabled: true, key_holder: 'clients' }, dp: { ...dp, max_epsilon: epsilonAfter({ dp, he: SEALED }, 1) + 0.01 } };
    const { run, arrive, outputs } = await tail({ config: aggregatorOf(raw), sealed: true, unscoredFirst: true });
    assert.deepEqual(await run.run(close), { unscored: 'no client could score the new model' });
    await arrive();
    await assert.rejects(run.run(close), (err) => err instanceof TailFailure && /it ran again after 1 noised models were released; another would pass dp\.max_epsilon/.test(err.message));
    assert.equal(outputs.rows.length, 0);
  });

  it('counts under DP every model the clients decrypted, a round run again included, and stops before one more would pass the budget', async () => {
    const dp = { mode: 'distributed' as const, clip: 1, noise_multiplier: 1, delta: 1e-5 };
    // The budget affords two releases: two rounds as planned, but round 1 ran again after its model was decrypted.
    const raw = { ...testbedConfig({ base: '127.0.9', nodes: 6, switches: 1, rounds: 3 }), he: { enabled: true, key_holder: 'clients' }, dp: { ...dp, max_epsilon: epsilonAfter({ dp, he: SEALED }, 2) + 0.01 } };
    const { run, lines, outputs, arrive } = await tail({ config: aggregatorOf(raw), sealed: true, unscoredFirst: true });
    assert.deepEqual(await run.run(close), { unscored: 'no client could score the new model' });
    await arrive();
    assert.equal(await run.run(close), 'last');
    assert.deepEqual([outputs.rows[0].dp_releases, outputs.rows[0].epsilon], [2, epsilonAfter({ dp, he: SEALED }, 2)]);
    assert.match(lines.join('\n'), /2 noised models released in 1 rounds \(1 by rounds run again after the clients decrypted theirs\), ε \d+\.\d\d; another would pass it: the run stops after round 1/);
  });

  it('aggregates, evaluates, then saves and checkpoints the round, each step shown as it begins, and prints the round', async () => {
    const { run, calls, lines, checkpoints, outputs, accumulator } = await tail();
    assert.equal(await run.run(close), 'closed');
    assert.deepEqual(calls, ['changed stage', 'update', 'changed stage', 'evaluate', 'changed stage', 'save', 'changed round']);
    assert.equal(checkpoints.files().length, 1);
    assert.deepEqual([outputs.rows[0].clients, outputs.rows[0].samples, outputs.rows[0].missing], [2, 10, ['c3']]);
    assert.match(lines[0], /^round {3}1\/3 {2}accuracy 90\.00% {2}loss 0\.2500 {2}2 clients/);
    assert.deepEqual(run.participants, ['s1', 'c1', 'c2']);
    assert.deepEqual(checkpoints.latest().checkpoint?.header.counted, { s1: 1, c1: 1, c2: 1 }, 'who counted in round 1, for a resumed aggregator');
    assert.equal(await accumulator.total(), undefined, 'the next round adds from nothing');
  });

  it('names the step that failed, and saves nothing after it', async () => {
    const { run, calls, checkpoints } = await tail({ fail: 'evaluate' });
    await assert.rejects(run.run(close), (err) => err instanceof TailFailure && err.what === 'evaluation of round 1 failed' && /evaluate broke/.test(err.message));
    assert.deepEqual(calls.filter((c) => !c.startsWith('changed')), ['update', 'evaluate']);
    assert.equal(checkpoints.files().length, 0);
  });

  for (const step of ['update', 'evaluate'] as const) {
    it(`says why when the sum cannot be read (found in ${step}), keeping nothing of the round`, async () => {
      const { run, calls, checkpoints, outputs, lines } = await tail({ unreadable: step });
      assert.deepEqual(await run.run(close), { unreadable: `${step}: it does not decrypt` });
      assert.ok(!calls.includes('save'));
      assert.deepEqual([checkpoints.files().length, outputs.rows.length, lines.length], [0, 0, 0]);
    });
  }

  it('runs the round again, suspecting nobody, when its sum was lost before it was read (an HE thread keeping part of it died), and starts the next from nothing', async () => {
    const { run, calls, checkpoints, accumulator, arrive } = await tail();
    const original = accumulator.total.bind(accumulator);
    accumulator.total = () => Promise.reject(new Error('the HE thread 1 died holding part of the sum'));
    assert.deepEqual(await run.run(close), { unscored: 'its sum could not be read: the HE thread 1 died holding part of the sum' });
    assert.ok(!calls.includes('update'), 'no model was made of it');
    assert.equal(checkpoints.files().length, 0);
    accumulator.total = original;
    assert.equal(await accumulator.total(), undefined, 'reset: the round run again adds from nothing');
    await arrive();
    assert.equal(await run.run(close), 'closed');
  });

  it('stops between steps when the role stops, closing nothing', async () => {
    const { run, calls, checkpoints } = await tail({ stopAt: 'update' });
    assert.equal(await run.run(close), 'stopped');
    assert.deepEqual(calls.filter((c) => !c.startsWith('changed')), ['update']);
    assert.equal(checkpoints.files().length, 0);
  });
});
