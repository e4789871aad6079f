/**
 * Attackers built in, against a robust rule and against FedAvg: seven clients reporting to the
 * aggregator directly (robust rules read each update), two of them sending their change to the
 * model reversed and four times over (config.json: `"attack": {"kind": "sign_flip", "scale": 4}`).
 * The same seed, the same attackers: the median holds, the mean does not. Every round, line and
 * report says who attacked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { completedRun, Testbed } from '../helpers/cluster';

const ROUNDS = 5;

async function attacked(strategy: string): Promise<{ rows: RoundMetrics[]; output: string; report: string; attackers: string[]; clientLog: string }> {
  const experiment = `attacked-${strategy}`;
  let attackers: string[] = [];
  const testbed = new Testbed({ nodes: 8, switches: 0, rounds: ROUNDS, he: false, experiment }, (config) => {
    config.model = { architecture: 'mlp', hidden_units: 32 };
    config.training = { ...(config.training as object), strategy };
    config.min_report_fraction = 1;
    const others = config.others as Record<string, Record<string, unknown>>;
    attackers = Object.keys(others).filter((a) => others[a].type === 'client').slice(-2);
    for (const address of attackers) others[address].attack = { kind: 'sign_flip', scale: 4 };
  });
  try {
    const { rows, output, report } = await completedRun(testbed, experiment, 300_000);
    const clientLog = readFileSync(join(testbed.logs, `${attackers[0].replace(':', '-')}.log`), 'utf8');
    return { rows, output, report, attackers, clientLog };
  } finally {
    await testbed.down();
  }
}

describe('two of seven clients attacking (sign flip ×4)', () => {
  it('a robust rule (the median) holds where FedAvg does not, and every round says who attacked', { timeout: 900_000 }, async () => {
    const median = await attacked('fedmedian');
    const mean = await attacked('fedavg');
    const final = (rows: RoundMetrics[]) => rows.at(-1)!.accuracy;
    console.log(`# accuracy by round: median ${median.rows.map((r) => r.accuracy).join(', ')}; FedAvg ${mean.rows.map((r) => r.accuracy).join(', ')}`);
    assert.equal(median.rows.length, ROUNDS);
    assert.equal(mean.rows.length, ROUNDS);
    assert.ok(final(median.rows) > 0.8, `the median reached ${final(median.rows)}`);
    assert.ok(final(mean.rows) < final(median.rows) - 0.3, `FedAvg reached ${final(mean.rows)}, the median ${final(median.rows)}`);
    for (const { rows, output, report, attackers, clientLog } of [median, mean]) {
      for (const row of rows) assert.deepEqual([...(row.attackers ?? [])].sort(), [...attackers].sort(), `round ${row.round}`);
      assert.equal(output.match(/\[2 attacking\]/g)?.length, ROUNDS, output);
      assert.match(report, new RegExp(`<th>attackers</th><td>[^<]*${attackers[0].replace(/\./g, '\\.')} \\(sign_flip ×4\\)`));
      assert.match(clientLog, /this client attacks \(config\.json\): sign_flip ×4/);
    }
    assert.match(median.report, /<th>strategy<\/th><td>FedMedian \(coordinate-wise median\)<\/td>/);
  });
});
