/**
 * Linear strategies in the hardest mode they support: the clients holding the HE key, quantized
 * packing, through a 2-level tree of switches. FedProx's proximal term travels as an instruction
 * with the model; SCAFFOLD's control variates travel in the vector itself, up with each update and
 * down with each model, summed blind like the weights, and double what each update costs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runAgain, Testbed } from '../helpers/cluster';

const SEALED = { enabled: true, key_holder: 'clients', quantize: { bits: 16 } };

/**
 * A run of each strategy (with its training settings) on a spine and two racks of 5 clients, one
 * after the other on workers started once (3 rounds, sealed and quantized, every digit split evenly,
 * unless `more` says otherwise); each one's rows, output and report.
 */
async function treeRuns(runs: [string, Record<string, unknown>][], he: Record<string, unknown> = SEALED, more: { rounds?: number; data?: Record<string, unknown> } = {}) {
  const testbed = new Testbed({ nodes: 9, switches: 3, spines: 1, rounds: more.rounds ?? 3, trainSize: 'all' }, (config) => {
    config.model = { architecture: 'mlp', hidden_units: 32 };
    if (more.data) config.data = { ...(config.data as object), ...more.data };
    config.he = he;
  });
  try {
    assert.equal((await testbed.up()).code, 0);
    const results = [];
    for (const [strategy, training] of runs) {
      const changes = { training: { ...(testbed.config.training as object), strategy, ...training } };
      results.push(await runAgain(testbed, `${strategy}-${he.enabled ? 'sealed' : 'plain'}`, changes, 540_000));
    }
    return results;
  } finally {
    await testbed.down();
  }
}

describe('linear strategies under quantized HE, the key at the clients, through a spine and two racks', () => {
  it('FedProx and SCAFFOLD run every round and learn; the control variates fit the ciphertext the weights leave room in', { timeout: 900_000 }, async () => {
    const [fedprox, scaffold] = await treeRuns([['fedprox', { proximal_mu: 0.1 }], ['scaffold', {}]]);
    for (const [name, run] of Object.entries({ fedprox, scaffold })) {
      assert.match(run.output, new RegExp(`running 3 rounds of ${name}`));
      assert.deepEqual(run.rows.map((r) => r.clients), [5, 5, 5], name);
      assert.ok(run.rows.at(-1)!.accuracy > 0.8, `${name}: accuracy ${run.rows.at(-1)!.accuracy}`);
      // 16-bit values pack 65,536 to a ciphertext: the 25,450 weights, and SCAFFOLD's as many control variates, take one.
      assert.match(run.output, /1 ciphertexts per update \(quantized to 16 bits \(±1\), 65536 values a ciphertext\)/, name);
    }
    assert.match(fedprox.report, /<th>strategy<\/th><td>FedProx \(proximal μ 0\.1\)<\/td>/);
    assert.match(scaffold.report, /<th>strategy<\/th><td>SCAFFOLD \(control variates with every update and model\)<\/td>/);
    assert.match(scaffold.output, /on mlp \(25450 parameters, and as many control variates in every update and model\)/);
    const ratio = scaffold.rows[1].bytes_up / fedprox.rows[1].bytes_up;
    assert.ok(Math.abs(ratio - 1) < 0.01, `SCAFFOLD moved ${ratio.toFixed(3)}x FedProx's bytes up, in as many ciphertexts`);
  });

  it('SCAFFOLD in plaintext through the same tree beats FedAvg on clients of two digits each, for twice the bytes', { timeout: 600_000 }, async () => {
    // Each client holds two of the ten digits: the client drift SCAFFOLD's control variates correct (Karimireddy et al. 2020).
    const skewed = { rounds: 6, data: { split: 'classes', classes_per_client: 2 } };
    const training = { epochs: 2, learning_rate: 0.05 };
    const [fedavg, scaffold] = await treeRuns([['fedavg', training], ['scaffold', training]], { enabled: false }, skewed);
    const [a, b] = [fedavg, scaffold].map((run) => run.rows.map((r) => r.accuracy));
    console.log(`# accuracy, FedAvg: ${a.join(' ')}; SCAFFOLD: ${b.join(' ')}`);
    assert.equal(a[0], b[0], 'round 1 is the same: every control variate starts at zero');
    assert.ok(b.at(-1)! > a.at(-1)! + 0.03, `after 6 rounds SCAFFOLD ${b.at(-1)} against FedAvg ${a.at(-1)}`);
    for (const direction of ['bytes_up', 'bytes_down'] as const) {
      const ratio = scaffold.rows[1][direction] / fedavg.rows[1][direction];
      assert.ok(ratio > 1.9 && ratio < 2.1, `${direction}: SCAFFOLD moved ${ratio.toFixed(2)}x FedAvg's`);
    }
  });
});

describe('every other strategy, in the hardest mode it supports, through a spine and two racks of 7 clients', () => {
  const KEY_AT_AGGREGATOR = { enabled: true, key_holder: 'aggregator', quantize: { bits: 16 } };
  const PLAIN = { enabled: false };
  const runs: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
    ['fedavgm', {}, KEY_AT_AGGREGATOR, 'FedAvgM (server momentum 0.9)'],
    ['fedadam', {}, KEY_AT_AGGREGATOR, 'FedAdam (server optimizer)'],
    ['fedyogi', {}, KEY_AT_AGGREGATOR, 'FedYogi (server optimizer)'],
    ['fedadagrad', {}, KEY_AT_AGGREGATOR, 'FedAdagrad (server optimizer)'],
    ['fedtrimmedavg', { beta: 0.2 }, PLAIN, 'FedTrimmedAvg (β 0.2 cut at each end)'],
    ['krum', { num_malicious_clients: 1 }, PLAIN, 'Krum (f 1)'],
    ['multikrum', { num_malicious_clients: 1, num_clients_to_keep: 3 }, PLAIN, 'MultiKrum (f 1, 3 kept)'],
    // Bulyan withstands f of n when n ≥ 4f + 3: 7 clients, every one of them in every round.
    ['bulyan', { num_malicious_clients: 1 }, PLAIN, 'Bulyan (f 1)'],
  ];
  it('server optimizers under quantized HE with the key at the aggregator; robust rules over each update, forwarded unsummed', { timeout: 900_000 }, async () => {
    // One testbed, its workers started once: each experiment's aggregator pushes them its config.
    const testbed = new Testbed({ nodes: 11, switches: 3, spines: 1, rounds: 2, trainSize: 'all' }, (config) => {
      config.model = { architecture: 'mlp', hidden_units: 32 };
      config.min_report_fraction = 1;
    });
    try {
      assert.equal((await testbed.up()).code, 0);
      for (const [name, training, he, shown] of runs) {
        const changes = { he, training: { ...(testbed.config.training as object), strategy: name, ...training } };
        const { rows, report } = await runAgain(testbed, `${name}-${he.enabled ? 'sealed' : 'plain'}`, changes, 300_000);
        assert.deepEqual(rows.map((r) => r.clients), [7, 7], name);
        assert.ok(rows.at(-1)!.accuracy > 0.5, `${name}: accuracy ${rows.at(-1)!.accuracy}`);
        assert.ok(report.includes(`<th>strategy</th><td>${shown}</td>`), `${name}: the report's settings name ${shown}`);
        console.log(`# ${name}: accuracy ${rows.map((r) => r.accuracy).join(', ')}`);
      }
    } finally {
      await testbed.down();
    }
  });
});
