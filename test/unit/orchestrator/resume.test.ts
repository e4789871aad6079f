/** `agg --resume`: which checkpoint it goes on from, what settings it may change, and state carried over. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { asFloat32, CheckpointStore, float32Bytes } from '../../../src/checkpoint';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import { nodeConfigSchema } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { findCheckpoint, ResumeError } from '../../../src/orchestrator/resume';
import { CHECKPOINTS_DIR } from '../../../src/roles/aggregator';
import { FedAvgM } from '../../../src/strategy/strategy';
import { trainingSchema } from '../../../src/config/schema';
import { tempDir } from '../../helpers/temp-dir';


const temp = () => tempDir('fl-ckpt-');
const weights = (seed: number, n = 1000) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));

describe('resuming', () => {
  const config = (edit: (c: Record<string, any>) => void = () => undefined) => {
    const raw = testbedConfig({ base: '127.0.0', nodes: 5, switches: 1, experiment: 'resume-me', rounds: 6 }) as Record<string, any>;
    edit(raw);
    return parseExperimentConfig(raw);
  };
  const outputsWithCheckpoint = (round: number) => {
    const outputs = temp();
    const { experiment, others: _others, ...settings } = config();
    new CheckpointStore(join(outputs, experiment, CHECKPOINTS_DIR)).save(round, { experiment, settings, rows: [], strategy_state: [] }, { global: float32Bytes(weights(1)) });
    return outputs;
  };
  const lines: string[] = [];
  const print = (line: string) => lines.push(line);

  it('starts from round 1 when there is no checkpoint yet', () => {
    assert.equal(findCheckpoint(config(), temp(), print), undefined);
    assert.match(lines.at(-1)!, /no checkpoint in .* yet; starting from round 1/);
  });

  it('goes on from the newest checkpoint, and may run more rounds or wait longer than before', () => {
    const outputs = outputsWithCheckpoint(3);
    const more = config((c) => ((c.rounds = 10), (c.timeouts = { round_ms: 5000 })));
    assert.equal(findCheckpoint(more, outputs, print)!.round, 3);
  });

  it('takes the settings the aggregator saved after its node config went over the wire (keys in another order)', () => {
    for (const he of [{ enabled: true }, { enabled: true, quantize: { bits: 8 } }]) {
      const experiment = config((c) => (c.he = he));
      const [aggregator] = [...resolveNodeConfigs(experiment).values()].filter((n) => n.type === 'aggregator');
      const { settings } = nodeConfigSchema.parse(JSON.parse(JSON.stringify(aggregator))); // as POST /config takes it
      // And whatever order a node writes them in (the checkpoint's JSON is not ours to order).
      const reordered = { ...settings, he: Object.fromEntries(Object.entries(settings.he).reverse()) };
      assert.notEqual(JSON.stringify(reordered.he), JSON.stringify(experiment.he));
      for (const saved of [settings, reordered]) {
        const outputs = temp();
        new CheckpointStore(join(outputs, experiment.experiment, CHECKPOINTS_DIR)).save(2, { experiment: experiment.experiment, settings: saved, rows: [], strategy_state: [] }, { global: float32Bytes(weights(1)) });
        assert.equal(findCheckpoint(experiment, outputs, print)!.round, 2);
      }
    }
  });

  it('refuses a config whose settings differ from the checkpoint, naming them', () => {
    const outputs = outputsWithCheckpoint(3);
    const other = config((c) => ((c.training = { ...c.training, learning_rate: 0.01 }), (c.he = { enabled: false })));
    assert.throws(() => findCheckpoint(other, outputs, print), (err: Error) => err instanceof ResumeError && /training, he differ/.test(err.message));
  });

  it('refuses fewer rounds than are done', () => {
    const outputs = outputsWithCheckpoint(3);
    assert.throws(() => findCheckpoint(config((c) => (c.rounds = 2)), outputs, print), /3 rounds are done already, but rounds is 2/);
  });

  it('refuses to start over silently when every checkpoint is damaged', () => {
    const outputs = outputsWithCheckpoint(3);
    const file = join(outputs, 'resume-me', CHECKPOINTS_DIR, 'round-003.ckpt');
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    assert.throws(() => findCheckpoint(config(), outputs, print), /no readable checkpoint .* \(1 damaged\)/);
  });

  it("FedAvgM's momentum survives a restart: the next round matches an uninterrupted run", () => {
    const training = trainingSchema.parse({ epochs: 1, batch_size: 32, learning_rate: 0.1, strategy: 'fedavgm', server_momentum: 0.9 });
    const evaluate = () => ({ accuracy: 0, loss: 0 });
    const total = (seed: number) => ({ kind: 'plain' as const, sum: Float64Array.from(weights(seed), (v) => v * 10), weight: 10, contributors: 2 });
    const step = (strategy: FedAvgM, round: number, values: Float32Array) => {
      const next = strategy.aggregateFit(round, { kind: 'plain', values }, total(round), [], []);
      return next.kind === 'plain' ? next.values : assert.fail('FedAvgM gave an encrypted model');
    };
    const steady = new FedAvgM(training, evaluate);
    let global: Float32Array = weights(0);
    global = step(steady, 1, global);
    const restarted = new FedAvgM(training, evaluate);
    restarted.restore(Object.fromEntries(Object.entries(steady.snapshot()).map(([k, v]) => [k, asFloat32(float32Bytes(Float32Array.from(v)))])));
    const resumed = step(restarted, 2, global);
    assert.notDeepEqual(resumed, step(new FedAvgM(training, evaluate), 2, global), 'the momentum must matter, or this test shows nothing');
    assert.deepEqual(resumed, step(steady, 2, global));
  });
});
