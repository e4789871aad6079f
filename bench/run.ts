/**
 * `npm run bench`: what a round costs, side by side with the usual ways of doing it. Writes
 * bench/RESULTS.md, bench/results.json, bench/scaling.png, bench/faults.png and (as root, on the
 * emulated testbed) bench/links.png. Medians of repeated runs.
 *   npm run bench -- [--quick]
 *   npm run bench -- micro      only sections 1, 2 and 4 (no testbed), the others kept from bench/results.json
 *   npm run bench -- e2e        only section 3, likewise
 *   npm run bench -- links      only section 7, likewise
 *   npm run bench -- quantized  only section 8, likewise
 *   npm run bench -- faults     only section 6, likewise
 *   npm run bench -- tree       only section 9, likewise
 *   npm run bench -- tls        only section 10, likewise
 *   npm run bench -- seal       only section 11 (node-seal 6 and 7; Node 24 from `npm install --prefix .node24 node@24`)
 *   npm run bench -- adversarial  only section 12, likewise
 *   npm run bench -- strategies   only section 13, likewise
 *   npm run bench -- heterogeneous  only section 14 (root: the emulated testbed and cgroups), likewise
 *   npm run bench -- scale        only section 15 (12 to 200 clients), likewise
 *   npm run bench -- models       only section 15's models (100k to 10M parameters) and quantized switch throughput, likewise
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { heSchema } from '../src/config/schema';
import { INIT_BITS } from '../src/config/testbed';
import { Ckks } from '../src/he/ckks';
import { closeSeal, openSeal, type Compression } from '../src/he/seal';
import { heParams } from '../src/he/keys';
import { renderSvg, svgToPng } from '../src/report/render';
import { paillierVersusCkks, transfers } from './baselines';
import { log, medians, ROOT } from './common';
import { micro, updateOf } from './micro';
import { profile, type Packing } from './profile';
import { faultsChart, formatResults, scalingChart, type Results } from './results';
import { heldChart, heterogeneousCosts } from './heterogeneous';
import { switchThroughput } from './switch';
import { bodyMemory } from './body-memory';
import { faultCosts } from './faults';
import { combineRuns, testbedRun, type TestbedRun } from './testbed-runs';
import { linkCosts, linksChart, type LinksResults } from './links';
import { quantizedChart, quantizedComparison } from './quantized';
import { treeChart, treeComparison } from './tree';
import { tlsComparison } from './tls';
import { sealVersions } from './seal-versions';
import { adversarialCosts } from './adversarial';
import { strategyComparison } from './strategies';
import { scaleChart, scaleRuns } from './scale';
import { modelRuns } from './models';

/**
 * The HE stages at each step of the profile-led changes, one thread, a 100k update, a switch adding 6:
 * two primes and zstd (where this started), then one prime sent uncompressed, then coefficient packing.
 */
async function profileSteps(repeats: number): Promise<Results['profile']> {
  const update = updateOf(101_770);
  const defaults = heSchema.parse({ enabled: true });
  const measure = async (label: string, bits: number[], compression: Compression, packing: Packing) => {
    log(`  profile: ${label}`);
    const params = heParams({ ...defaults, coeff_modulus_bits: bits });
    const keys = await Ckks.generateKeys(params);
    const ckks = await openSeal(params, { publicKey: keys.publicKey });
    const opener = await openSeal(params, { secretKey: keys.secretKey });
    profile(ckks, update.subarray(0, ckks.perCiphertext), 6, compression, packing);
    const stages = await medians(repeats, () => profile(ckks, update, 6, compression, packing));
    stages.decrypt = (await medians(repeats, () => profile(opener, update, 1, compression, packing))).decrypt;
    closeSeal(ckks);
    closeSeal(opener);
    return { label, stages };
  };
  return [
    await measure('[54, 54], zstd, slots', [54, 54], 'zstd', 'slots'),
    await measure('[54], uncompressed, slots', [54], 'none', 'slots'),
    await measure(`${JSON.stringify(defaults.coeff_modulus_bits)}, uncompressed, coefficients`, defaults.coeff_modulus_bits, 'none', 'coefficients'),
  ];
}

async function main(quick: boolean): Promise<void> {
  const command = `npm run bench${quick ? ' -- --quick' : ''}`;
  const started = Date.now();
  const { micro: microRows, profile, switch: switchRow, body_memory, transfers: transferRows, paillier } = await withoutTestbed(quick);
  const testbed = await endToEnd(quick);
  const { encrypted } = testbed;
  log('5. scaling');
  const byClients = [];
  for (const [clients, switches] of (quick ? [[3, 1]] : [[3, 1], [6, 1], [24, 4]]) as [number, number][]) {
    byClients.push(await testbedRun({ name: `he-${clients}-clients`, clients, switches, rounds: quick ? 2 : 4, he: true, base: '127.0.2' }));
  }
  byClients.push(encrypted);
  byClients.sort((a, b) => a.clients - b.clients);
  const byModel = quick ? [] : [
    await testbedRun({ name: 'he-6-clients-1m', clients: 6, switches: 1, rounds: 3, he: true, hiddenUnits: 1258, base: '127.0.3' }),
  ];
  log('6. faults');
  const faults = await faultCosts(quick);
  log('7. links, on the emulated testbed');
  const links = await linkCosts(quick ? 3 : 5, command);
  log('8. quantized packing');
  const quantized = await quantizedComparison(quick, command);
  log('9. the model relayed down; switches of switches');
  const tree = await treeComparison(quick, command);
  log('10. what mutual TLS costs');
  const tls = await tlsComparison(quick, command);
  log('11. node-seal 6.0.3 and 7.0.0');
  const seal = sealVersions(command);
  log('12. what an attack costs');
  const adversarial = await adversarialCosts(quick, command);
  log('13. strategies, attackers and privacy');
  const strategies = await strategyComparison(quick, command);
  const sixClients = byClients.find((r) => r.clients === 6);
  if (sixClients) byModel.unshift(sixClients);

  const results: Results = {
    command,
    date: new Date().toISOString(),
    machine: `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    node: process.version,
    commit: execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim(),
    minutes: 0,
    he: heSchema.parse({ enabled: true }),
    micro: microRows,
    profile,
    switch: switchRow,
    body_memory,
    transfers: transferRows,
    paillier,
    testbed,
    scaling: { clients: byClients, model: byModel },
    faults,
    links,
    quantized,
    tree,
    tls,
    seal,
    adversarial,
    strategies,
    // Section 14 runs only alone (`npm run bench -- heterogeneous`): a full run keeps what the file has.
    heterogeneous: existsSync(join(ROOT, 'bench', 'results.json')) ? (JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results).heterogeneous : undefined,
    // So does section 15 (`npm run bench -- scale`): its 200 clients take a quarter of an hour.
    scale: existsSync(join(ROOT, 'bench', 'results.json')) ? (JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results).scale : undefined,
    models: existsSync(join(ROOT, 'bench', 'results.json')) ? (JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results).models : undefined,
  };
  const png = join(ROOT, 'bench', 'scaling.png');
  writeFileSync(png, svgToPng(await renderSvg(scalingChart(results))));
  writeFileSync(join(ROOT, 'bench', 'faults.png'), svgToPng(await renderSvg(faultsChart(faults))));
  results.minutes = (Date.now() - started) / 60_000;
  await write(results);
}

/** Sections 1, 2 and 4: HE stages, one switch, the baselines (no testbed). */
async function withoutTestbed(quick: boolean): Promise<Pick<Results, 'micro' | 'profile' | 'switch' | 'body_memory' | 'transfers' | 'paillier'>> {
  const repeats = quick ? 1 : 3;
  log('1. HE micro-benchmarks');
  const microRows = await micro(heSchema.parse({ enabled: true }), repeats, quick ? [100_000] : [100_000, 1_000_000]);
  const profile = await profileSteps(repeats);
  log('2. switch throughput');
  const switchRow = await switchThroughput(repeats);
  const body_memory = await bodyMemory(repeats);
  log('4. baselines');
  const transferRows = await transfers();
  const paillier = await paillierVersusCkks(101_770, quick ? 8 : 48, repeats);
  return { micro: microRows, profile, switch: switchRow, body_memory, transfers: transferRows, paillier };
}

/** Sections 1, 2 and 4 alone, the others as bench/results.json has them. */
async function withoutTestbedOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  await write({ ...results, ...(await withoutTestbed(quick)), micro_command: `npm run bench -- micro${quick ? ' --quick' : ''}` });
}

/** Quantized HE as `testbed init` and the demo set it (8 bits), in each key mode. */
const QUANTIZED_HE = {
  aggregator: { enabled: true, key_holder: 'aggregator', quantize: { bits: INIT_BITS } },
  clients: { enabled: true, key_holder: 'clients', quantize: { bits: INIT_BITS } },
};

/**
 * Section 3: the 15-node testbed in plaintext, under CKKS on the float values, and under the
 * default, quantized HE, with the key at the aggregator and at the clients: one run of each in turn.
 */
async function endToEnd(quick: boolean, command?: string): Promise<Results['testbed']> {
  log('3. end to end on the 15-node testbed');
  const rounds = quick ? 3 : 10;
  const shape = { clients: 12, switches: 2, rounds };
  // The modes take turns: this machine's speed drifts between minutes, and runs side by side share it. Each
  // turn starts with another mode, so none is always first after a pause or last in a slow spell.
  const shapes = {
    plaintext: { ...shape, name: 'plaintext', he: false },
    he: { ...shape, name: 'he', he: true },
    aggregator: { ...shape, name: 'quantized-aggregator', he: true, heSettings: QUANTIZED_HE.aggregator },
    clients: { ...shape, name: 'quantized-clients', he: true, heSettings: QUANTIZED_HE.clients },
  };
  const modes = Object.keys(shapes) as (keyof typeof shapes)[];
  const runs: Record<keyof typeof shapes, TestbedRun[]> = { plaintext: [], he: [], aggregator: [], clients: [] };
  for (let turn = 0; turn < (quick ? 1 : 3); turn++) {
    for (const mode of [...modes.slice(turn), ...modes.slice(0, turn)]) runs[mode].push(await testbedRun(shapes[mode]));
  }
  const ratios = (of: TestbedRun[]) => of.map((run, i) => Math.round((run.round_s / runs.plaintext[i].round_s) * 100) / 100);
  return {
    plaintext: combineRuns(runs.plaintext),
    encrypted: combineRuns(runs.he),
    pair_ratios: ratios(runs.he),
    quantized: {
      aggregator: combineRuns(runs.aggregator),
      clients: combineRuns(runs.clients),
      ratios: { aggregator: ratios(runs.aggregator), clients: ratios(runs.clients) },
    },
    ...(command ? { command } : {}),
  };
}

async function write(results: Results): Promise<void> {
  if (results.links?.rows.length) writeFileSync(join(ROOT, 'bench', 'links.png'), svgToPng(await renderSvg(linksChart(results.links) as never)));
  if (results.quantized) writeFileSync(join(ROOT, 'bench', 'quantized.png'), svgToPng(await renderSvg(quantizedChart(results.quantized))));
  if (results.tree) writeFileSync(join(ROOT, 'bench', 'tree.png'), svgToPng(await renderSvg(treeChart(results.tree))));
  const markdown = formatResults(results);
  writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), markdown);
  writeFileSync(join(ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(markdown);
}

/** Section 3 alone, the others as bench/results.json has them. */
async function endToEndOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  await write({ ...results, testbed: await endToEnd(quick, `npm run bench -- e2e${quick ? ' --quick' : ''}`) });
}

/** Section 7 alone: the other sections stay as bench/results.json has them, with the command that made them. */
async function linksOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('7. links, on the emulated testbed');
  const links: LinksResults = await linkCosts(quick ? 3 : 5, `npm run bench -- links${quick ? ' --quick' : ''}`);
  if (links.skipped) throw new Error(`bench links: ${links.skipped}`);
  await write({ ...results, links });
}

/** Section 8 alone, the others as bench/results.json has them. */
async function quantizedOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('8. quantized packing');
  await write({ ...results, quantized: await quantizedComparison(quick, `npm run bench -- quantized${quick ? ' --quick' : ''}`) });
}

/** Section 6 alone, likewise. */
async function faultsOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('6. faults');
  const faults = { ...(await faultCosts(quick)), command: `npm run bench -- faults${quick ? ' --quick' : ''}` };
  writeFileSync(join(ROOT, 'bench', 'faults.png'), svgToPng(await renderSvg(faultsChart(faults))));
  await write({ ...results, faults });
}

/** Section 9 alone, likewise. */
async function treeOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('9. the model relayed down; switches of switches');
  await write({ ...results, tree: await treeComparison(quick, `npm run bench -- tree${quick ? ' --quick' : ''}`) });
}

/** Section 10 alone, likewise. */
async function tlsOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('10. what mutual TLS costs');
  await write({ ...results, tls: await tlsComparison(quick, `npm run bench -- tls${quick ? ' --quick' : ''}`) });
}

/** Section 11 alone, likewise. */
async function sealOnly(): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('11. node-seal 6.0.3 and 7.0.0');
  await write({ ...results, seal: sealVersions('npm run bench -- seal') });
}

/** Section 12 alone, likewise. */
async function adversarialOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('12. what an attack costs');
  await write({ ...results, adversarial: await adversarialCosts(quick, `npm run bench -- adversarial${quick ? ' --quick' : ''}`) });
}

/** Section 13 alone, likewise. */
async function strategiesOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('13. strategies, attackers and privacy');
  await write({ ...results, strategies: await strategyComparison(quick, `npm run bench -- strategies${quick ? ' --quick' : ''}`) });
}

/** Section 14 alone, likewise (root: the emulated testbed and cgroups; it is not part of a full run, which keeps what the file has). */
async function heterogeneousOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('14. slow machines, over-selection, and what the network adds');
  const heterogeneous = await heterogeneousCosts(quick ? 3 : 6, `npm run bench -- heterogeneous${quick ? ' --quick' : ''}`);
  if (heterogeneous.skipped) throw new Error(`bench heterogeneous: ${heterogeneous.skipped}`);
  writeFileSync(join(ROOT, 'bench', 'heterogeneous.png'), svgToPng(await renderSvg(heldChart(heterogeneous) as never)));
  await write({ ...results, heterogeneous });
}

async function scaleOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('15. many clients');
  const scale = await scaleRuns(quick, `npm run bench -- scale${quick ? ' --quick' : ''}`);
  writeFileSync(join(ROOT, 'bench', 'scale.png'), svgToPng(await renderSvg(scaleChart(scale) as never)));
  await write({ ...results, scale });
}

/** Section 15's rows by parameters and its switch throughput alone, likewise. */
async function modelsOnly(quick: boolean): Promise<void> {
  const results = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  log('15. models of 100k to 10M parameters');
  await write({ ...results, models: await modelRuns(quick, `npm run bench -- models${quick ? ' --quick' : ''}`) });
}

const SECTIONS: Record<string, (quick: boolean) => Promise<void>> = {
  micro: withoutTestbedOnly,
  e2e: endToEndOnly,
  links: linksOnly,
  quantized: quantizedOnly,
  faults: faultsOnly,
  tree: treeOnly,
  tls: tlsOnly,
  seal: sealOnly,
  adversarial: adversarialOnly,
  strategies: strategiesOnly,
  heterogeneous: heterogeneousOnly,
  scale: scaleOnly,
  models: modelsOnly,
};

new Command()
  .name('bench')
  .argument('[section]', '"micro": only the HE stages, one switch and the baselines (sections 1, 2, 4); "e2e": only the 15-node testbed end to end; "links": only the links experiment on the emulated testbed (root); "quantized": only the quantized packing comparison; "faults": only what each fault costs; "tree": only the bytes at the aggregator flat and through switches of switches; "tls": only what mutual TLS costs; "seal": only node-seal 6 against 7; "adversarial": only what each attack costs; "strategies": only every strategy, attackers and DP side by side; "heterogeneous": only slow machines, over-selection and the network\'s overhead per link rate (root); "scale": only 12 to 200 clients; "models": only 100k to 10M parameters and a switch on quantized updates')
  .option('--quick', 'one repeat, small runs: a smoke test of the suite, not numbers to quote')
  .action((section: string | undefined, flags: { quick?: boolean }) => {
    if (section && !SECTIONS[section]) throw new Error(`unknown section "${section}" (sections that run alone: ${Object.keys(SECTIONS).join(', ')})`);
    return section ? SECTIONS[section](Boolean(flags.quick)) : main(Boolean(flags.quick));
  })
  .parseAsync()
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
