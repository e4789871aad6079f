/** Runs side by side: the charts hold every run, the table only the settings that differ. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { testbedConfig } from '../../../src/config/testbed';
import type { RoundMetrics } from '../../../src/outputs';
import { comparisonCharts, differingSettings, readRun, writeComparison } from '../../../src/report/compare';
import { tempDir } from '../../helpers/temp-dir';

const tmp = () => tempDir('fl-compare-');

/** An experiment's outputs folder as the aggregator leaves it: config.json and metrics.json. */
function experiment(root: string, name: string, change: (config: Record<string, any>) => void, accuracy: number, roundMs: number, epsilon?: number): string {
  const config = testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }) as Record<string, any>;
  config.experiment = name;
  change(config);
  const rows: (RoundMetrics & { epsilon?: number })[] = [1, 2, 3].map((round) => ({
    round, accuracy: accuracy + round / 100, loss: 1 / round, clients: 2, samples: 200, round_ms: roundMs, selection_ms: 10, training_ms: roundMs - 200, waiting_ms: 0,
    aggregation_ms: 100, evaluation_ms: 90, bytes_up: 5e6, bytes_down: 4e6 * round, retries: 0, missing: [], ...(epsilon ? { epsilon: epsilon * round } : {}),
  }));
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ rounds: rows }));
  return dir;
}

describe('compare', () => {
  it('lists only the settings that differ (machine addresses and names aside), with each run\'s value', () => {
    const root = tmp();
    const a = readRun(experiment(root, 'fedavg', () => undefined, 0.8, 1000));
    const b = readRun(experiment(root, 'fedavgm', (c) => ((c.training.strategy = 'fedavgm'), (c.training.server_momentum = 0.9)), 0.85, 1500));
    assert.deepEqual(differingSettings([a, b]), [
      { setting: 'training.server_momentum', values: ['—', '0.9'] },
      { setting: 'training.strategy', values: ['"fedavg"', '"fedavgm"'] },
    ]);
  });

  it('charts every run: accuracy against round and against summed round time, bytes per round, phases; ε only where a run has it', () => {
    const root = tmp();
    const runs = [readRun(experiment(root, 'slow', () => undefined, 0.8, 2000)), readRun(experiment(root, 'fast', () => undefined, 0.8, 500))];
    const charts = comparisonCharts(runs);
    assert.deepEqual(Object.keys(charts), ['accuracy', 'accuracy-time', 'bytes', 'phases']);
    const values = (charts['accuracy-time'] as { data: { values: { run: string; seconds: number }[] } }).data.values;
    assert.deepEqual(values.filter((v) => v.run === 'slow').map((v) => v.seconds), [2, 4, 6]);
    assert.deepEqual(values.filter((v) => v.run === 'fast').map((v) => v.seconds), [0.5, 1, 1.5]);
    const bytes = (charts.bytes as { data: { values: { run: string; MB: number }[] } }).data.values;
    assert.deepEqual(bytes.filter((v) => v.run === 'fast').map((v) => v.MB), [9, 13, 17]);
    const private_ = readRun(experiment(root, 'dp', () => undefined, 0.7, 500, 0.5));
    assert.ok('epsilon' in comparisonCharts([...runs, private_]));
  });

  it('writes compare.html (offline) and a PNG of each chart', async () => {
    const root = tmp();
    const dirs = [experiment(root, 'a', () => undefined, 0.8, 1000), experiment(root, 'b', (c) => (c.training.epochs = 3), 0.9, 3000)];
    const out = join(root, 'compare');
    const { html, pngs } = await writeComparison(dirs, out);
    const page = readFileSync(html, 'utf8');
    assert.equal((page.match(/<svg/g) ?? []).length, 4);
    assert.doesNotMatch(page, /<script|src="http|href="http/);
    assert.match(page, /<tr><th>training\.epochs<\/th><td>1<\/td><td>3<\/td><\/tr>/);
    assert.match(page, /<tr><td>b<\/td><td>3<\/td><td>93\.00%<\/td><td>9\.0<\/td>/);
    assert.equal(pngs.length, 4);
    for (const png of pngs) assert.ok(existsSync(png), png);
    await assert.rejects(writeComparison([dirs[0]], out), /compare takes two experiments or more/);
    await assert.rejects(writeComparison([dirs[0], root], out), /config\.json is missing: is .* an experiment's outputs folder\?/);
  });
});
