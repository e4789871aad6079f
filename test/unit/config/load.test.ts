/** Reading config.json: every mistake named, and the config each node receives. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { describeIssues } from '../../../src/config/issues';
import { ConfigError, parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import { releaseCost } from '../../../src/privacy/dp';
import { nodeConfigSchema } from '../../../src/config/node-config';
import { formatConfig, INIT_BITS, testbedConfig } from '../../../src/config/testbed';
import { ROOT } from '../../helpers/cluster';

const minimal = () => ({
  others: {
    '127.0.0.1': { type: 'client', client_number: 2, index: 0, switch: '127.0.0.3' },
    '127.0.0.2': { type: 'client', client_number: 2, index: 1, switch: '127.0.0.3:5000' },
    '127.0.0.3': { type: 'switch' },
    '127.0.0.4:6000': { type: 'aggregator' },
  } as Record<string, unknown>,
} as Record<string, any>);

function problemsOf(config: unknown): string[] {
  try {
    parseExperimentConfig(config);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('config.json validation', () => {
  it('accepts a small topology and fills the defaults', () => {
    const config = parseExperimentConfig(minimal());
    assert.equal(config.rounds, 20);
    assert.equal(config.model.architecture, 'mlp');
    assert.equal(config.timeouts.push_ms, 30_000);
  });

  const cases: { name: string; edit: (c: Record<string, any>) => void; expect: RegExp }[] = [
    { name: 'a wrong type', edit: (c) => (c.rounds = 'ten'), expect: /^rounds: .*expected number/ },
    { name: 'a misspelt key, with a hint', edit: (c) => (c.roudns = 3), expect: /unknown key "roudns" \(did you mean "rounds"\?\)/ },
    { name: 'a misspelt nested key', edit: (c) => (c.training = { learning_rat: 0.1 }), expect: /^training: unknown key "learning_rat" \(did you mean "learning_rate"\?\)/ },
    { name: 'an unknown role', edit: (c) => (c.others['127.0.0.9'] = { type: 'router' }), expect: /^others\["127.0.0.9"\].type: type must be "client", "switch" or "aggregator"/ },
    { name: 'a bad address key', edit: (c) => (c.others['10.0.0.300'] = { type: 'switch' }), expect: /^others\["10.0.0.300"\]: bad address: .*octet above 255/ },
    { name: 'index out of its slices', edit: (c) => (c.others['127.0.0.2'].index = 2), expect: /^others\["127.0.0.2"\].index: must be below client_number \(2\)/ },
    { name: 'a missing client_number', edit: (c) => delete c.others['127.0.0.2'].client_number, expect: /^others\["127.0.0.2"\].client_number: .*expected number/ },
    { name: 'two clients on one slice', edit: (c) => (c.others['127.0.0.2'].index = 0), expect: /takes slice 0 of 2, as does "127.0.0.1"/ },
    { name: 'a switch that is not in others', edit: (c) => (c.others['127.0.0.2'].switch = '127.0.0.8'), expect: /^others\["127.0.0.2"\].switch: "127.0.0.8" is not an entry of type "switch"/ },
    { name: 'no aggregator', edit: (c) => delete c.others['127.0.0.4:6000'], expect: /exactly one entry of type "aggregator".*found 0/ },
    { name: 'two aggregators', edit: (c) => (c.others['127.0.0.5'] = { type: 'aggregator' }), expect: /exactly one entry of type "aggregator".*found 2/ },
    { name: 'one node named twice', edit: (c) => (c.others['127.0.0.3:5000'] = { type: 'switch' }), expect: /"127.0.0.3" and "127.0.0.3:5000" are the same node/ },
    { name: 'a switch without clients', edit: (c) => (c.others['127.0.0.6'] = { type: 'switch' }), expect: /^others\["127.0.0.6"\]: switch has no clients/ },
    { name: 'a goal above the client count', edit: (c) => (c.clients_per_round = 3), expect: /^clients_per_round: 3 is more than the 2 clients/ },
    { name: 'a fraction above 1', edit: (c) => (c.min_report_fraction = 1.5), expect: /^min_report_fraction: / },
    { name: 'an experiment name that is no folder name', edit: (c) => (c.experiment = '../etc'), expect: /^experiment: the experiment name must be 1-64 letters, digits, "\.", "_" or "-"/ },
    { name: 'an experiment name with a slash', edit: (c) => (c.experiment = 'a/b'), expect: /^experiment: the experiment name must be/ },
    { name: 'a hidden experiment name', edit: (c) => (c.experiment = '.hidden'), expect: /^experiment: the experiment name must be/ },
    { name: 'others missing', edit: (c) => delete c.others, expect: /^others: .*expected record/ },
    { name: 'an insecure HE modulus', edit: (c) => (c.he = { enabled: true, coeff_modulus_bits: [60, 60] }), expect: /^he.coeff_modulus_bits: 120 bits in all is insecure at poly_modulus_degree 4096: .* at most 109/ },
    { name: 'an HE scale too close to its prime', edit: (c) => (c.he = { enabled: true, scale_bits: 52 }), expect: /^he.scale_bits: scale 2\^52 leaves 2 bits .* Use scale_bits <= 49/ },
    { name: 'an unusable polynomial degree', edit: (c) => (c.he = { enabled: true, poly_modulus_degree: 3000 }), expect: /^he.poly_modulus_degree: must be 4096, 8192/ },
    { name: 'a key-holding aggregator that would see one client alone', edit: (c) => ((c.he = { enabled: true }), delete c.others['127.0.0.1'].switch), expect: /every client must report through a switch/ },
    { name: 'FedYogi when only clients can decrypt', edit: (c) => ((c.he = { enabled: true, key_holder: 'clients' }), (c.training = { strategy: 'fedyogi' })), expect: /^training.strategy: "fedyogi" needs the model in plaintext at the aggregator; with he.key_holder "clients" use "fedavg" or "fedprox"/ },
    { name: 'a CNN on rows of a table', edit: (c) => ((c.model = { architecture: 'resnet18' }), (c.data = { source: 'csv', path: 'rows.csv', shape: [49], classes: 10 })), expect: /^model.architecture: "resnet18": resnet18 needs images of at least 16x16 .* data.shape is \[49\]/ },
    { name: 'the small CNN on rows of a table', edit: (c) => ((c.model = { architecture: 'cnn' }), (c.data = { source: 'csv', path: 'rows.csv', shape: [49], classes: 10 })), expect: /^model.architecture: "cnn": the CNN needs images of at least 16x16 .*: use the MLP$/ },
    { name: 'an MLP too large to build', edit: (c) => ((c.model = { architecture: 'mlp', hidden_units: 4096 }), (c.data = { source: 'png', path: 'images', shape: [2048, 2048, 3], classes: 10 })), expect: /^model: "mlp" on data.shape \[2048, 2048, 3\] has [\d,]+ parameters, more than the 100,000,000 a node builds$/ },
    { name: 'FedAvgM when only clients can decrypt', edit: (c) => ((c.he = { enabled: true, key_holder: 'clients' }), (c.training = { strategy: 'fedavgm' })), expect: /^training.strategy: "fedavgm" needs the model in plaintext/ },
  ];
  for (const { name, edit, expect } of cases) {
    it(`names ${name}`, () => {
      const config = minimal();
      edit(config);
      const problems = problemsOf(config);
      assert.ok(problems.some((p) => expect.test(p)), `no problem matched ${expect}:\n${problems.join('\n')}`);
    });
  }

  it('lists every mistake at once, not just the first', () => {
    const config = minimal();
    config.rounds = -1;
    config.he = { enabled: 'yes' };
    config.others['127.0.0.1'].index = 'first';
    assert.equal(problemsOf(config).length, 3);
  });
});

describe('a node config (what POST /config takes)', () => {
  const node = () => ({ ...resolveNodeConfigs(parseExperimentConfig(minimal())).get('127.0.0.1:5000')! }) as Record<string, unknown>;
  const problems = (config: unknown): string[] => {
    const parsed = nodeConfigSchema.safeParse(config);
    return parsed.success ? [] : describeIssues(parsed.error.issues);
  };

  it('refuses data.train_size to a client that reads files of its own, before any role is touched', () => {
    const own: Record<string, any> = { ...node(), data: { path: 'mine.csv' } };
    const settings = (train_size?: number) => ({ ...own.settings, data: { ...own.settings.data, train_size } });
    assert.deepEqual(problems({ ...own, settings: settings() }), []);
    assert.deepEqual(problems({ ...own, settings: settings(500) }), ['settings.data.train_size: slices one shared data set; this client reads files of its own (data.path) and trains on all of them']);
  });

  it('takes a folder-safe experiment name', () => {
    for (const name of ['exp', 'mnist-mlp_v1.2', 'A', 'x'.repeat(64)]) assert.deepEqual(problems({ ...node(), experiment: name }), [], name);
  });

  // The name is joined into logs/<id>_<experiment>.json and, at an aggregator, outputs/<experiment>/ and logs/cluster/<experiment>/.
  for (const name of ['../../etc', '..', 'a/b', 'a\\b', '.hidden', '-flag', 'x'.repeat(65), '', 'with space', 'nul\0']) {
    it(`refuses the experiment name ${JSON.stringify(name)}, naming the field and the characters allowed`, () => {
      const found = problems({ ...node(), experiment: name });
      assert.ok(found.some((p) => /^experiment: the experiment name must be 1-64 letters, digits, "\.", "_" or "-", starting with a letter or digit/.test(p)), found.join('\n'));
    });
  }

  it("refuses a tree that is not one beneath the node it is sent to, naming why", () => {
    const nodes = resolveNodeConfigs(parseExperimentConfig(minimal()));
    const [c1, c2, sw, agg] = ['127.0.0.1:5000', '127.0.0.2:5000', '127.0.0.3:5000', '127.0.0.4:6000'];
    const aggregator = nodes.get(agg)!;
    const swConfig = nodes.get(sw)!;
    assert.deepEqual([problems(aggregator), problems(swConfig)], [[], []]);
    const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
      [aggregator, { [c1]: sw, [sw]: agg, [agg]: sw }, /127\.0\.0\.4:6000 is the root: it reports to no one in its own tree/],
      [aggregator, { [c1]: sw, [sw]: c2, [c2]: sw }, /switches report to each other in a circle/],
      [aggregator, { [c1]: '127.0.0.9:5000' }, /127\.0\.0\.1:5000 reports to 127\.0\.0\.9:5000, which is neither 127\.0\.0\.4:6000 nor beneath it/],
      [aggregator, {}, /no client in it/],
      [swConfig, {}, /a switch needs a client or a switch beneath it/],
      [swConfig, { [sw]: c1, [c1]: sw }, /is the root/],
    ];
    for (const [config, tree, reason] of cases) {
      const found = problems({ ...config, tree });
      assert.ok(found.some((p) => p.startsWith('tree: ') && reason.test(p)), `${JSON.stringify(tree)}: ${found.join('; ')}`);
    }
  });
});

describe('robust strategies in config.json', () => {
  /** Seven clients reporting to the aggregator directly, in plaintext. */
  const flat = (training: Record<string, unknown>) => ({
    he: { enabled: false },
    training,
    others: {
      ...Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`127.0.0.${i + 1}`, { type: 'client', client_number: 7, index: i }])),
      '127.0.0.9': { type: 'aggregator' },
    },
  });

  it('takes each robust rule where it can work', () => {
    for (const training of [{ strategy: 'fedmedian' }, { strategy: 'fedtrimmedavg', beta: 0.3 }, { strategy: 'krum', num_malicious_clients: 1 }, { strategy: 'multikrum', num_malicious_clients: 1, num_clients_to_keep: 3 }]) {
      assert.doesNotThrow(() => parseExperimentConfig({ ...flat(training), min_report_fraction: 1 }), JSON.stringify(training));
    }
    assert.doesNotThrow(() => parseExperimentConfig({ ...flat({ strategy: 'bulyan', num_malicious_clients: 1 }), min_report_fraction: 1 }));
    // Behind a switch too: it forwards each update, unsummed.
    const behind = minimal();
    behind.he = { enabled: false };
    behind.training = { strategy: 'fedmedian' };
    assert.doesNotThrow(() => parseExperimentConfig(behind));
  });

  it('refuses one it cannot, saying why: under HE, quantized, with too few updates for its f', () => {
    assert.deepEqual(problemsOf({ ...flat({ strategy: 'fedmedian' }), he: { enabled: true, key_holder: 'clients' } }), [
      'training.strategy: "fedmedian" reads each client\'s update; under HE nobody can read one (set he.enabled false, or use "fedavg")',
    ]);
    assert.deepEqual(problemsOf({ ...flat({ strategy: 'bulyan', num_malicious_clients: 1 }) }), [
      'training.num_malicious_clients: Bulyan withstands 1 of n updates when n ≥ 4f + 3 = 7; a round may close with 2 updates (a quorum of a quorum of clients_per_round 7, min_report_fraction 0.5)',
    ]);
    assert.deepEqual(problemsOf({ ...flat({ strategy: 'multikrum', num_malicious_clients: 1 }), min_report_fraction: 1 }), [
      'training.num_clients_to_keep: multikrum averages that many of the updates Krum ranks first, at most n − f = 6 (it is missing)',
    ]);
    assert.match(problemsOf({ ...flat({ strategy: 'fedmedian' }), he: { enabled: false, quantize: { bits: 8, clip: 1 } } }).join('\n'), /he\.quantize sends a quantized change instead/);
    assert.doesNotThrow(() => parseExperimentConfig(flat({ strategy: 'scaffold' })));
    assert.match(problemsOf(flat({ strategy: 'fednova' })).join('\n'), /training\.strategy: /);
  });
});

describe('differential privacy in config.json', () => {
  const plain = (dp: Record<string, unknown>, more: Record<string, unknown> = {}) => ({ ...minimal(), he: { enabled: false }, dp: { mode: 'central', clip: 1, noise_multiplier: 1, ...dp }, ...more });

  it('takes central DP in plaintext and with the key at the aggregator; distributed in every key mode', () => {
    assert.doesNotThrow(() => parseExperimentConfig(plain({ max_epsilon: 50 })));
    assert.doesNotThrow(() => parseExperimentConfig({ ...plain({}), he: { enabled: true, key_holder: 'aggregator' } }));
    assert.doesNotThrow(() => parseExperimentConfig(plain({ mode: 'distributed' })));
    assert.doesNotThrow(() => parseExperimentConfig({ ...plain({ mode: 'distributed' }), he: { enabled: true, key_holder: 'clients' } }));
    // Central with quantized packing: the clients clip to dp.clip less what rounding can add.
    assert.doesNotThrow(() => parseExperimentConfig({ ...plain({}), he: { enabled: true, key_holder: 'aggregator', quantize: { bits: 16 } } }));
    assert.doesNotThrow(() => parseExperimentConfig({ ...plain({}), he: { enabled: false, quantize: { bits: 16 } } }));
  });

  it('keeps room in a quantized sum for distributed DP noise drawn in whole steps, in either key mode', () => {
    for (const key_holder of ['aggregator', 'clients']) {
      const config = parseExperimentConfig({ ...plain({ mode: 'distributed' }), he: { enabled: true, key_holder, quantize: { bits: 16 } } });
      // 2 clients, min_report_fraction 0.5: a round may close with 1 update, whose share of the noise is all of σ = z·2C = 2; 8σ of room.
      assert.equal(config.he.quantize?.noise_reserve, 16, key_holder);
      assert.equal(releaseCost(config).slack, 0, 'steps far finer than the noise: the discrete sum costs what the Gaussian does');
    }
    // Filled from dp, not taken from the file: a config read back from outputs/ reads the same.
    const written = parseExperimentConfig({ ...plain({ mode: 'distributed' }), he: { enabled: true, quantize: { bits: 16, noise_reserve: 1 } } });
    assert.equal(written.he.quantize?.noise_reserve, 16);
    assert.equal(parseExperimentConfig({ ...plain({}), he: { enabled: true, quantize: { bits: 16, noise_reserve: 1 } } }).he.quantize?.noise_reserve, undefined, 'no distributed DP, no room');
  });

  it('refuses what it cannot do, saying why', () => {
    assert.deepEqual(problemsOf({ ...plain({}), he: { enabled: true, key_holder: 'clients' } }), [
      'dp.mode: "central" adds the noise to the sum the aggregator reads; with he.key_holder "clients" it reads none (use "distributed": each client adds its share)',
    ]);
    assert.deepEqual(problemsOf({ ...plain({ mode: 'distributed' }), he: { enabled: false, quantize: { bits: 16 } } }), [
      'dp.mode: "distributed" with he.quantize and he.enabled false: each client\'s quantized values are clamped to ±he.quantize.clip alone, so its share of the noise would be clamped with them and the sum\'s noise would follow no known law (under HE the sum keeps room for it): set he.enabled true, use "central", or leave he.quantize out',
    ]);
    // Distributed under HE, a step spans the clip and the room for the noise (16): 8 bits leave 16.25/253 a step, twice that in the sum's units.
    const coarse = ((2 * 16.25) / 253) * Math.sqrt(101_770);
    assert.deepEqual(problemsOf({ ...plain({ mode: 'distributed' }), he: { enabled: true, quantize: { bits: 8 } } }), [
      `he.quantize.bits: 8 bits round a client's update by up to ${coarse.toPrecision(3)} in length (a step in each of 101770 values; a step spans he.quantize.clip and the 16.0 kept for the noise), more than half dp.clip 1, which clients clip to less that length: use more bits, a smaller he.quantize.clip, or a larger dp.clip`,
    ]);
    // Noise of a few steps: its discrete sum is no longer as private as the Gaussian (Kairouz et al. 2021, Proposition 14).
    assert.match(problemsOf({ ...plain({ mode: 'distributed', noise_multiplier: 1e-6 }), he: { enabled: true, quantize: { bits: 16 } } }).join('\n'), /^he\.quantize\.bits: 16 bits leave steps so coarse beside each client's share of the noise that its discrete sum would cost \S+ more RDP a round than the Gaussian's 1\.00e\+12/);
    // 8 bits for 2 clients: a step of 0.25/253 in the share of ½, 2/253·0.25 in the sum's units, in each of 101,770 values.
    const reach = ((2 * 0.25) / 253) * Math.sqrt(101_770);
    assert.deepEqual(problemsOf({ ...plain({}), he: { enabled: true, quantize: { bits: 8 } } }), [
      `he.quantize.bits: 8 bits round a client's update by up to ${reach.toPrecision(3)} in length (a step in each of 101770 values), more than half dp.clip 1, which clients clip to less that length: use more bits, a smaller he.quantize.clip, or a larger dp.clip`,
    ]);
    for (const mode of ['central', 'distributed']) {
      assert.match(problemsOf({ ...plain({ mode }), training: { strategy: 'krum' } }).join('\n'), /training\.strategy: "krum" reads each client's update; dp's noise is sized for the round's sum/);
    }
    assert.match(problemsOf({ ...plain({ mode: 'distributed' }), training: { strategy: 'scaffold' } }).join('\n'), /training\.strategy: "scaffold" sends control variates beside the weights, which dp neither clips nor noises/);
    const short = plain({ mode: "distributed" }) as unknown as { others: Record<string, { type: string; client_number?: number }> };
    for (const entry of Object.values(short.others)) if (entry.type === 'client') entry.client_number = 10;
    assert.match(problemsOf(short).join('\n'), /others\["[^"]+"\]\.client_number: 10 \(and \d+ more\), but others has \d+ clients; distributed dp sizes each client's share of the noise by it/);
    assert.match(problemsOf(plain({ max_epsilon: 0.1 })).join('\n'), /dp\.max_epsilon: 0\.1; one round already spends ε \d+\.\d\d at δ 0\.00001/);
    assert.match(problemsOf(plain({ clip: 0 })).join('\n'), /dp\.clip: /);
  });
});

describe('topology resolution', () => {
  it('gives each node the config it needs', () => {
    const nodes = resolveNodeConfigs(parseExperimentConfig(minimal()));
    const client = nodes.get('127.0.0.2:5000');
    const sw = nodes.get('127.0.0.3:5000');
    const agg = nodes.get('127.0.0.4:6000');
    assert.equal(client?.type === 'client' && client.upstream, '127.0.0.3:5000');
    assert.ok(sw?.type === 'switch');
    assert.deepEqual([sw.upstream, sw.tree], ['127.0.0.4:6000', { '127.0.0.1:5000': '127.0.0.3:5000', '127.0.0.2:5000': '127.0.0.3:5000' }]);
    assert.ok(agg?.type === 'aggregator');
    assert.deepEqual(agg.tree, { '127.0.0.1:5000': '127.0.0.3:5000', '127.0.0.2:5000': '127.0.0.3:5000', '127.0.0.3:5000': '127.0.0.4:6000' });
    for (const node of nodes.values()) assert.equal(node.aggregator, '127.0.0.4:6000');
  });

  it("hands an attacking client its attack, and the aggregator every attacker (to flag them); names a wrong attack's field", () => {
    const config = minimal();
    config.others['127.0.0.2'].attack = { kind: 'sign_flip', scale: 4, seed: 1 };
    const nodes = resolveNodeConfigs(parseExperimentConfig(config));
    const attacker = nodes.get('127.0.0.2:5000');
    assert.deepEqual(attacker?.type === 'client' && attacker.attack, { kind: 'sign_flip', scale: 4, seed: 1 });
    const honest = nodes.get('127.0.0.1:5000');
    assert.equal(honest?.type === 'client' && honest.attack, undefined);
    const agg = nodes.get('127.0.0.4:6000');
    assert.deepEqual(agg?.type === 'aggregator' && agg.attackers, { '127.0.0.2:5000': { kind: 'sign_flip', scale: 4, seed: 1 } });
    config.others['127.0.0.2'].attack = { kind: 'label_flip', scale: 2 };
    assert.deepEqual(problemsOf(config), ['others["127.0.0.2"].attack.scale: label_flip takes no scale: it trains on flipped labels']);
  });

  it('sends a client without a switch straight to the aggregator', () => {
    const config = minimal();
    delete config.others['127.0.0.1'].switch;
    const nodes = resolveNodeConfigs(parseExperimentConfig(config));
    const client = nodes.get('127.0.0.1:5000');
    assert.equal(client?.type === 'client' && client.upstream, '127.0.0.4:6000');
    const agg = nodes.get('127.0.0.4:6000');
    assert.equal(agg?.type === 'aggregator' && agg.tree['127.0.0.1:5000'], '127.0.0.4:6000');
  });
});

describe('switches of switches', () => {
  /** Clients .1-.4 on rack switches .11 and .12, both under spine .20, under the aggregator .30. */
  const tree = (extra: Record<string, unknown> = {}) => ({
    he: { enabled: true, key_holder: 'aggregator' },
    others: {
      '127.0.0.1': { type: 'client', client_number: 4, index: 0, switch: '127.0.0.11' },
      '127.0.0.2': { type: 'client', client_number: 4, index: 1, switch: '127.0.0.11' },
      '127.0.0.3': { type: 'client', client_number: 4, index: 2, switch: '127.0.0.12' },
      '127.0.0.4': { type: 'client', client_number: 4, index: 3, switch: '127.0.0.20' },
      '127.0.0.11': { type: 'switch', switch: '127.0.0.20' },
      '127.0.0.12': { type: 'switch', switch: '127.0.0.20' },
      '127.0.0.20': { type: 'switch' },
      '127.0.0.30': { type: 'aggregator' },
      ...extra,
    } as Record<string, unknown>,
  });
  const at = (n: number) => `127.0.0.${n}:5000`;

  it('gives each switch the tree beneath it (its clients, the switches below and theirs) and where it reports; the aggregator the whole tree', () => {
    const nodes = resolveNodeConfigs(parseExperimentConfig(tree()));
    const spine = nodes.get(at(20));
    assert.ok(spine?.type === 'switch');
    assert.deepEqual(spine.tree, { [at(1)]: at(11), [at(2)]: at(11), [at(3)]: at(12), [at(4)]: at(20), [at(11)]: at(20), [at(12)]: at(20) });
    assert.equal(spine.upstream, at(30));
    const rack = nodes.get(at(12));
    assert.ok(rack?.type === 'switch');
    assert.deepEqual([rack.tree, rack.upstream], [{ [at(3)]: at(12) }, at(20)]);
    const agg = nodes.get(at(30));
    assert.ok(agg?.type === 'aggregator');
    assert.deepEqual(agg.tree, { ...spine.tree, [at(20)]: at(30) });
    // A rack with one client is allowed under HE with the key at the aggregator: only the spine's sum reaches it.
  });

  it('refuses a circle of switches, naming it, and switches with no client beneath them', () => {
    const circle = tree({ '127.0.0.20': { type: 'switch', switch: '127.0.0.12' } });
    assert.deepEqual(problemsOf(circle), ['others: switches report to each other in a circle and never reach the aggregator: 127.0.0.12 -> 127.0.0.20 -> 127.0.0.12']);
    const self = tree({ '127.0.0.20': { type: 'switch', switch: '127.0.0.20' } });
    assert.deepEqual(problemsOf(self), ['others["127.0.0.20"].switch: a switch cannot report to itself']);
    const orphans = tree({ '127.0.0.13': { type: 'switch', switch: '127.0.0.20' }, '127.0.0.14': { type: 'switch', switch: '127.0.0.13' } });
    assert.deepEqual(problemsOf(orphans), [
      'others["127.0.0.13"]: switch has no clients beneath it (no client, nor a switch with clients, names it in "switch")',
      'others["127.0.0.14"]: switch has no clients beneath it (no client, nor a switch with clients, names it in "switch")',
    ]);
    const dangling = tree({ '127.0.0.12': { type: 'switch', switch: '127.0.0.3' } });
    assert.deepEqual(problemsOf(dangling), ['others["127.0.0.12"].switch: "127.0.0.3" is not an entry of type "switch" in others']);
  });

  it('counts the clients beneath a switch under the aggregator for the two-update rule, not those of a rack', () => {
    const lone = tree({ '127.0.0.4': { type: 'client', client_number: 4, index: 3 }, '127.0.0.21': { type: 'switch' }, '127.0.0.12': { type: 'switch', switch: '127.0.0.21' } });
    assert.deepEqual(problemsOf(lone), [
      'he.key_holder: with "aggregator", every client must report through a switch (1 report to the aggregator directly, which could decrypt their updates)',
      'he.key_holder: with "aggregator", switch 127.0.0.21:5000 needs at least 2 clients beneath it so the aggregator never decrypts a single update (it has 1)',
    ]);
  });
});

describe('example configs', () => {
  for (const [file, base] of [['config.json', '10.10.1'], ['config.local.json', '127.0.1']]) {
    it(`${file} is the 15-node reference testbed on ${base}.x, as \`testbed init\` lays it out, and is valid`, () => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      assert.equal(text, formatConfig(testbedConfig({ base, nodes: 15, switches: 2, bits: INIT_BITS })));
      const nodes = [...resolveNodeConfigs(parseExperimentConfig(JSON.parse(text))).values()];
      assert.equal(nodes.filter((n) => n.type === 'client').length, 12);
      assert.equal(nodes.filter((n) => n.type === 'switch').length, 2);
      assert.equal(nodes.find((n) => n.type === 'aggregator')?.address, `${base}.15:5000`);
    });
  }
});

describe('testbed init', () => {
  it('quantizes HE to the bits it is given (CKKS on the float values without), and refuses a width he.quantize does not take', () => {
    const he = (bits?: number) => parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1, bits })).he;
    assert.equal(he(6).quantize?.bits, 6);
    assert.equal(he().quantize, undefined);
    for (const bad of [1, 25, 7.5]) assert.throws(() => testbedConfig({ base: '127.0.9', nodes: 4, switches: 1, bits: bad }), new RegExp(`--bits: ${bad} is not a width`));
  });
});

describe('the straggler policy in config.json', () => {
  const reference = JSON.parse(readFileSync(join(ROOT, 'config.json'), 'utf8'));

  it('selects over_select times clients_per_round (at most every client), and sizes the quantized headroom for them', async () => {
    const { selectedPerRound, earlyCloseAt } = await import('../../../src/config/quorum');
    const config = parseExperimentConfig({ ...reference, clients_per_round: 8, stragglers: { over_select: 1.3, grace_ms: 500 }, he: { ...reference.he, quantize: { bits: 8 } } });
    assert.equal(selectedPerRound(config, 12), 11);
    assert.equal(selectedPerRound({ ...config, clients_per_round: 10 }, 12), 12, 'never more than there are');
    assert.equal(config.he.quantize!.clients, 11, 'a sum may hold every selected client');
    assert.equal(earlyCloseAt(11, config.stragglers), 9, 'close_fraction 1/1.3 of 11');
    assert.equal(earlyCloseAt(11, { over_select: 1, close_fraction: 0.5, grace_ms: 0 }), 6);
    assert.equal(earlyCloseAt(11, { over_select: 1, grace_ms: 500 }), undefined, 'no policy: wait for every one');
    assert.equal(earlyCloseAt(11, undefined), undefined);
  });

  it('refuses over-selection with dp, whose accountant samples clients_per_round, and a fraction out of (0, 1]', () => {
    assert.ok(problemsOf({ ...reference, stragglers: { over_select: 1.5 }, dp: { mode: 'central', clip: 1, noise_multiplier: 1 } }).some((p) => /stragglers\.over_select: 1\.5; dp's accountant samples/.test(p)));
    assert.ok(problemsOf({ ...reference, stragglers: { close_fraction: 0 } }).some((p) => /stragglers\.close_fraction/.test(p)));
    assert.ok(problemsOf({ ...reference, stragglers: { over_select: 5 } }).some((p) => /stragglers\.over_select/.test(p)));
  });
});

describe('files of the lab\'s own in config.json', () => {
  const csv = { source: 'csv', shape: [4], classes: 3 };
  const withOwn = (paths: (string | undefined)[], data: Record<string, unknown>) => {
    const config = minimal();
    const clients = Object.keys(config.others).filter((k) => config.others[k].type === 'client');
    clients.forEach((k, i) => paths[i] && (config.others[k] = { ...config.others[k], data: { path: paths[i] } }));
    return { ...config, data };
  };

  it('takes each client\'s own data.path in place of a shared one, with the aggregator\'s held-out files in data.test', () => {
    const config = parseExperimentConfig(withOwn(['a.csv', 'b.csv'], { ...csv, test: { path: 'test.csv' } }));
    assert.equal(config.data.path, undefined);
  });

  it('names the clients without a file, and asks for data.test when no shared file holds the held-out set', () => {
    assert.deepEqual(problemsOf(withOwn(['a.csv', undefined], csv)), ['data.path: needed with source "csv" (where the files are; {index} for the client\'s index), or others[addr].data.path for each client without it: 127.0.0.2']);
    assert.deepEqual(problemsOf(withOwn(['a.csv', 'b.csv'], csv)), ['data.test: needed when every client reads files of its own (others[addr].data.path): the aggregator\'s held-out files']);
    assert.ok(problemsOf(withOwn([undefined, undefined], { ...csv, source: 'idx', path: 'x.idx' })).some((p) => /data\.labels_path: needed with source "idx".*127\.0\.0\.1, 127\.0\.0\.2/.test(p)));
    parseExperimentConfig(withOwn([undefined, undefined], { ...csv, path: 'shared.csv' }));
  });

  it('gives every client a held-out digit to score the model on when it holds the key', () => {
    const sealed: Record<string, any> = { ...minimal(), he: { enabled: true, key_holder: 'clients' } };
    assert.deepEqual(problemsOf({ ...sealed, data: { test_size: 1 } }), ['data.test_size: 1 held-out samples leave a client none to score the model on (he.key_holder "clients"): client_number 2 slices need at least 2']);
    parseExperimentConfig({ ...sealed, data: { test_size: 2 } });
    // The held-out set is cut in client_number slices, whatever the clients there are.
    const inTen = { ...sealed, others: { ...sealed.others, '127.0.0.1': { type: 'client', client_number: 10, index: 0, switch: '127.0.0.3' } } };
    assert.ok(problemsOf({ ...inTen, data: { test_size: 5 } }).some((p) => /data\.test_size: 5 .*client_number 10 slices need at least 10/.test(p)));
    parseExperimentConfig({ ...minimal(), data: { test_size: 1 } }); // the aggregator scores on it whole
  });

  it('takes data.train_size for a shared data set only, and no more digits than the package ships', () => {
    assert.equal(parseExperimentConfig(withOwn([undefined, undefined], { ...csv, path: 'shared.csv', train_size: 500 })).data.train_size, 500);
    assert.equal(parseExperimentConfig({ ...minimal(), data: { test_size: 2000, train_size: 8000 } }).data.train_size, 8000);
    assert.deepEqual(problemsOf(withOwn(['a.csv', 'b.csv'], { ...csv, test: { path: 'test.csv' }, train_size: 500 })), ['data.train_size: slices one shared data set; a client with files of its own (others[addr].data.path) trains on all of them: 127.0.0.1, 127.0.0.2']);
    assert.ok(problemsOf(withOwn([undefined, undefined], { ...csv, path: 'c{index}.csv', test: { path: 'test.csv' }, train_size: 500 })).some((p) => /data\.train_size: slices one shared data set; with files of each client's own \(\{index\} in data\.path\)/.test(p)));
    assert.ok(problemsOf({ ...minimal(), data: { test_size: 2000, train_size: 8001 } }).some((p) => /data\.train_size: 8001 with test_size 2000 needs 10001 digits; the mnist package ships 10000/.test(p)));
    // Two clients: a sample each at least, a shard of each of its classes_per_client in the classes split.
    assert.deepEqual(problemsOf({ ...minimal(), data: { train_size: 1 } }), ['data.train_size: 1 leaves a client without samples; 2 slices (client_number, iid split) need at least 2']);
    assert.deepEqual(problemsOf({ ...minimal(), data: { train_size: 3, split: 'classes', classes_per_client: 2 } }), ['data.train_size: 3 leaves a client without samples; 2 slices (client_number, classes split) need at least 4']);
    parseExperimentConfig({ ...minimal(), data: { train_size: 4, split: 'classes', classes_per_client: 2 } });
    // The set is cut in client_number slices, whatever the clients there are.
    const inTen = { ...minimal(), others: { ...minimal().others, '127.0.0.1': { type: 'client', client_number: 10, index: 0, switch: '127.0.0.3' } } };
    assert.ok(problemsOf({ ...inTen, data: { train_size: 5 } }).some((p) => /data\.train_size: 5 leaves a client without samples; 10 slices .*need at least 10/.test(p)));
  });
});

describe('the straggler policy against the quorum', () => {
  const reference = JSON.parse(readFileSync(join(ROOT, 'config.json'), 'utf8'));
  it('refuses an early close below min_report_fraction: the round would not count, and would start again every time', () => {
    assert.ok(problemsOf({ ...reference, stragglers: { over_select: 3 } }).some((p) => /stragglers: 1\/over_select \(0\.33, the default close_fraction\) is below min_report_fraction 0\.5/.test(p)));
    assert.ok(problemsOf({ ...reference, stragglers: { close_fraction: 0.4 } }).some((p) => /stragglers: close_fraction 0\.4 is below min_report_fraction 0\.5/.test(p)));
    parseExperimentConfig({ ...reference, stragglers: { over_select: 2 } });
    parseExperimentConfig({ ...reference, min_report_fraction: 0.3, stragglers: { over_select: 3 } });
  });
});
