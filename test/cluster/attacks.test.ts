/**
 * Attackers built in, against a robust rule and against FedAvg, through switches of switches: seven
 * clients on two rack switches under a spine, two of them (on the same rack, where they are its
 * majority) sending their change to the model reversed and four times over (config.json:
 * `"attack": {"kind": "sign_flip", "scale": 4}`). Under the median each switch forwards every update
 * it holds, unsummed, so the aggregator's median reads all seven; under FedAvg each forwards one sum.
 * The same seed, the same attackers: the median holds, the mean does not. Every round, line and
 * report says who attacked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RoundMetrics } from '../../src/outputs';
import { runAgain, Testbed } from '../helpers/cluster';

const ROUNDS = 5;

const PARAMETERS = 784 * 32 + 32 + 32 * 10 + 10; // the MLP below

interface Attacked {
  rows: RoundMetrics[];
  output: string;
  report: string;
  attackers: string[];
  clientLog: string;
  /** What the spine sent up, each round it forwarded. */
  spineRows: { update_bytes: number; clients_reported: number }[];
}

/** The median, then FedAvg, on one testbed started once (each experiment's aggregator pushes the workers their part). */
async function attacked(strategies: string[]): Promise<Attacked[]> {
  let attackers: string[] = [];
  let spine = '';
  // 7 clients (.1-.7): .1-.4 on rack .8, .5-.7 on rack .9; spine .10 over both; the aggregator .11.
  const testbed = new Testbed({ nodes: 11, switches: 3, spines: 1, rounds: ROUNDS, he: false }, (config) => {
    config.model = { architecture: 'mlp', hidden_units: 32 };
    config.min_report_fraction = 1;
    const others = config.others as Record<string, Record<string, unknown>>;
    attackers = Object.keys(others).filter((a) => others[a].type === 'client').slice(-2);
    for (const address of attackers) others[address].attack = { kind: 'sign_flip', scale: 4 };
    spine = Object.keys(others).find((a) => others[a].type === 'switch' && others[a].switch === undefined)!;
  });
  try {
    assert.equal((await testbed.up()).code, 0);
    const runs: Attacked[] = [];
    for (const strategy of strategies) {
      const experiment = `attacked-${strategy}`;
      const { rows, output, report } = await runAgain(testbed, experiment, { training: { ...(testbed.config.training as object), strategy } }, 300_000);
      const clientLog = readFileSync(join(testbed.logs, `${attackers[0].replace(':', '-')}.log`), 'utf8');
      const spineLog = JSON.parse(readFileSync(join(testbed.logs, `${spine.replace(':', '-')}_${experiment}.json`), 'utf8')) as { iteration: Attacked['spineRows'] };
      runs.push({ rows, output, report, attackers, clientLog, spineRows: spineLog.iteration.filter((r) => r.clients_reported > 0) });
    }
    return runs;
  } finally {
    await testbed.down();
  }
}

describe('two of seven clients attacking (sign flip ×4), through switches of switches', () => {
  it('a robust rule (the median) holds where FedAvg does not, and every round says who attacked', { timeout: 900_000 }, async () => {
    const [median, mean] = await attacked(['fedmedian', 'fedavg']);
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
    // The spine forwards every update it holds under the median (seven, all but a late one's), one sum under FedAvg.
    const within = (bytes: number, floats: number) => bytes >= floats * 4 && bytes < floats * 4 + 4096;
    assert.ok(median.spineRows.length >= ROUNDS && mean.spineRows.length >= ROUNDS);
    for (const { update_bytes, clients_reported } of median.spineRows) assert.ok(within(update_bytes, clients_reported * PARAMETERS), `the spine sent ${update_bytes} bytes for ${clients_reported} updates under the median`);
    for (const { update_bytes } of mean.spineRows) assert.ok(within(update_bytes, PARAMETERS), `the spine sent ${update_bytes} bytes under FedAvg`);
    assert.ok(median.spineRows.some((r) => r.clients_reported === 7));
  });
});
