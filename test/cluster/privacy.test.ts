/**
 * DP-FedAvg in real runs. Central: clients clip their change and weigh 1, the aggregator adds noise
 * to the round's sum, ε is accounted after each round, and a budget stops the run cleanly before the
 * round that would pass it. Distributed: under HE with the key at the clients, through a switch,
 * each client adds its share of the noise, so no node ever holds an un-noised sum. With quantized HE:
 * the clients clip short of dp.clip by what rounding can add, and distributed, draw their share of the
 * noise as a discrete Gaussian in the packing's steps.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { roundingReach } from '../../src/he/quantized';
import { epsilonAfter, noiseStd } from '../../src/privacy/dp';
import type { Settings } from '../../src/config/schema';
import { completedRun, runAgain, Testbed } from '../helpers/cluster';

/** The settings an experiment ran with, as the aggregator wrote them (he.quantize filled in from dp). */
function writtenSettings(testbed: Testbed, experiment: string): Settings {
  return JSON.parse(readFileSync(join(testbed.outputs, experiment, 'config.json'), 'utf8'));
}

describe('central differential privacy', () => {
  it('clips, adds noise, puts ε in every round line and row, and stops before the budget is passed', { timeout: 300_000 }, async () => {
    const experiment = 'private';
    const dp = { mode: 'central' as const, clip: 5, noise_multiplier: 0.5, delta: 1e-5, max_epsilon: 20 };
    const testbed = new Testbed({ nodes: 6, switches: 1, rounds: 10, he: false, experiment }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.dp = dp;
    });
    try {
      const { rows, ...run } = await completedRun(testbed, experiment, 240_000);
      // z 0.5 spends ε 10.7 in one round at δ 1e-5, 16.5 in two, 21.4 in three: a budget of 20 affords two of the ten.
      const planned = [1, 2, 3].filter((r) => epsilonAfter({ dp }, r) <= dp.max_epsilon).length;
      assert.equal(planned, 2);
      assert.equal(rows.length, planned, 'the run stopped before the round that would pass the budget');
      assert.match(run.output, /differential privacy: ε \d+\.\d\d at δ 0\.00001 after 2 rounds: dp\.max_epsilon 20 stops the run there, before round 3 of 10/);
      rows.forEach((row, i) => assert.equal(row.epsilon, epsilonAfter({ dp }, i + 1), `round ${row.round}`));
      assert.equal(run.output.match(/round +\d+\/2 .* ε \d+\.\d\d/g)?.length, 2, run.output);
      // Each client weighs 1: the round's samples are its clients.
      assert.deepEqual(rows.map((r) => r.samples), rows.map((r) => r.clients));
      // The noise is there: z·2C = 5 on the sum of 4 clients is 1.25 on each averaged weight, which swamps this MLP's (about 0.05).
      console.log(`# accuracy with central DP noise: ${rows.map((r) => r.accuracy).join(', ')}`);
      assert.ok(rows.at(-1)!.accuracy < 0.5, `accuracy ${rows.at(-1)!.accuracy}: was the noise added?`);
    } finally {
      await testbed.down();
    }
  });

  it('quantized HE (key at the aggregator), central then distributed: clients clip short of dp.clip by what rounding can add, and draw their noise in whole steps', { timeout: 600_000 }, async () => {
    const experiment = 'private-quantized';
    const dp = { mode: 'central' as const, clip: 5, noise_multiplier: 0.5, delta: 1e-5 };
    const testbed = new Testbed({ nodes: 6, switches: 1, rounds: 2, experiment }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.he = { enabled: true, key_holder: 'aggregator', quantize: { bits: 16 } };
      config.min_report_fraction = 1;
      config.dp = dp;
    });
    try {
      const { rows } = await completedRun(testbed, experiment, 360_000);
      assert.deepEqual(rows.map((r) => r.clients), [4, 4]);
      rows.forEach((row, i) => assert.equal(row.epsilon, epsilonAfter({ dp }, i + 1), `round ${row.round}`));
      // 16 bits for 4 clients: a step of 0.25/(2^17 − 5) in a share of ¼, four times that in the sum's units, in each of the MLP's 25,450 values.
      const reach = roundingReach({ enabled: true, quantize: { bits: 16, clip: 0.25, clients: 4 } }, 25_450);
      assert.ok(Math.abs(reach - ((4 * 0.25) / (2 ** 17 - 5)) * Math.sqrt(25_450)) < 1e-12);
      for (const client of testbed.addresses('client')) {
        const log = readFileSync(join(testbed.logs, `${client.replace(':', '-')}.log`), 'utf8');
        assert.match(log, new RegExp(`central DP: each update clipped to ${(5 - reach).toPrecision(4)} \\(dp\\.clip 5 less the ${reach.toPrecision(3)} quantizing can add\\)`), client);
      }
      console.log(`# accuracy with central DP noise, quantized HE: ${rows.map((r) => r.accuracy).join(', ')}`);
      assert.ok(rows.at(-1)!.accuracy < 0.5, `accuracy ${rows.at(-1)!.accuracy}: was the noise added?`);

      // Distributed on the same workers: each client adds σ/√4 = 2.5 as a discrete Gaussian in the packing's steps, into
      // room of 8σ/4 = 10 kept beside the clip in each value of the sum, so a step spans 0.25 + 10.
      const distributed = { ...dp, mode: 'distributed' as const };
      const again = await runAgain(testbed, `${experiment}-distributed`, { dp: distributed }, 360_000);
      assert.deepEqual(again.rows.map((r) => r.clients), [4, 4]);
      const settings = writtenSettings(testbed, `${experiment}-distributed`);
      assert.equal(settings.he.quantize?.noise_reserve, 10);
      again.rows.forEach((row, i) => assert.equal(row.epsilon, epsilonAfter(settings, i + 1), `round ${row.round}`));
      assert.equal(epsilonAfter(settings, 2), epsilonAfter({ dp: distributed, he: { enabled: true } }, 2), 'steps this fine cost what the Gaussian does');
      const roomy = roundingReach({ enabled: true, quantize: { bits: 16, clip: 0.25, clients: 4, noise_reserve: 10 } }, 25_450);
      assert.ok(Math.abs(roomy - ((4 * 10.25) / (2 ** 17 - 5)) * Math.sqrt(25_450)) < 1e-12);
      for (const client of testbed.addresses('client')) {
        const log = readFileSync(join(testbed.logs, `${client.replace(':', '-')}.log`), 'utf8');
        const clipped = `${(5 - roomy).toPrecision(4)} \\(dp\\.clip 5 less the ${roomy.toPrecision(3)} quantizing can add\\)`;
        assert.match(log, new RegExp(`distributed DP: each update clipped to ${clipped} and noised with standard deviation 2\\.50 in whole steps of the packing \\(a discrete Gaussian\\)`), client);
      }
      // σ 5 on the sum of 4 is 1.25 on each averaged weight, as central: swamped, though no node added it to the sum.
      console.log(`# accuracy with distributed DP noise in whole steps, quantized HE: ${again.rows.map((r) => r.accuracy).join(', ')}`);
      assert.ok(again.rows.at(-1)!.accuracy < 0.5, `accuracy ${again.rows.at(-1)!.accuracy}: was the noise added?`);
    } finally {
      await testbed.down();
    }
  });

  it('distributed: each client noises its own update under HE with the key at the clients, through a switch; then quantized, in whole steps', { timeout: 600_000 }, async () => {
    const experiment = 'private-sealed';
    const dp = { mode: 'distributed' as const, clip: 5, noise_multiplier: 0.5, delta: 1e-5 };
    // The ring quantized packing uses by default, so the clients' one key serves both runs.
    const ring = { poly_modulus_degree: 8192, coeff_modulus_bits: [60, 60, 60, 38] };
    const testbed = new Testbed({ nodes: 6, switches: 1, rounds: 2, experiment }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.he = { enabled: true, key_holder: 'clients', ...ring };
      config.min_report_fraction = 1;
      config.dp = dp;
    });
    try {
      const { rows } = await completedRun(testbed, experiment, 360_000);
      assert.deepEqual(rows.map((r) => r.clients), [4, 4]);
      rows.forEach((row, i) => assert.equal(row.epsilon, epsilonAfter(writtenSettings(testbed, experiment), i + 1), `round ${row.round}`));
      // A round closes only with all 4 (min_report_fraction 1): each adds σ/√4 so that their sum holds σ = z·2C = 5.
      const share = noiseStd({ ...dp }) / 2;
      for (const client of testbed.addresses('client')) {
        const log = readFileSync(join(testbed.logs, `${client.replace(':', '-')}.log`), 'utf8');
        assert.match(log, new RegExp(`distributed DP: each update clipped to 5 and noised with standard deviation ${share.toPrecision(3)},`), client);
      }
      // σ 5 on the sum of 4 is 1.25 on each averaged weight: the model the clients decrypt and score is swamped.
      console.log(`# accuracy with distributed DP noise: ${rows.map((r) => r.accuracy).join(', ')}`);
      assert.ok(rows.at(-1)!.accuracy < 0.5, `accuracy ${rows.at(-1)!.accuracy}: was the noise added?`);

      // Quantized with the key at the clients: they pack their weights (clip 1) and the noise in whole steps; nobody reads a sum but them.
      const quantized = await runAgain(testbed, `${experiment}-quantized`, { he: { enabled: true, key_holder: 'clients', quantize: { bits: 16 } } }, 360_000);
      assert.deepEqual(quantized.rows.map((r) => r.clients), [4, 4]);
      const settings = writtenSettings(testbed, `${experiment}-quantized`);
      quantized.rows.forEach((row, i) => assert.equal(row.epsilon, epsilonAfter(settings, i + 1), `round ${row.round}`));
      const reach = roundingReach({ enabled: true, quantize: { bits: 16, clip: 1, clients: 4, noise_reserve: 10 } }, 25_450);
      for (const client of testbed.addresses('client')) {
        const log = readFileSync(join(testbed.logs, `${client.replace(':', '-')}.log`), 'utf8');
        assert.match(log, new RegExp(`distributed DP: each update clipped to ${(5 - reach).toPrecision(4)} .* noised with standard deviation 2\\.50 in whole steps of the packing`), client);
      }
      console.log(`# accuracy with distributed DP noise in whole steps, key at the clients: ${quantized.rows.map((r) => r.accuracy).join(', ')}`);
      assert.ok(quantized.rows.at(-1)!.accuracy < 0.5, `accuracy ${quantized.rows.at(-1)!.accuracy}: was the noise added?`);
    } finally {
      await testbed.down();
    }
  });
});
