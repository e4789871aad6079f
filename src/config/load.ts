/** Reading config.json: parse, validate, check the topology, and name every mistake. */
import { epsilonAfter, noiseReserve, plannedRounds, quantizedClipProblem, releaseCost } from '../privacy/dp';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { addressProblem, canonicalAddress, namesNode, parseAddress } from './address';
import { DEFAULT_CHANGE_CLIP, DEFAULT_WEIGHT_CLIP, geometryOf, quantizesChange } from '../he/quantized';
import { modelParameters } from '../model/layout';
import { checkedTree, type TreeEntry } from '../topology/checks';
import type { Topology } from '../topology/tree';
import { describeIssues } from './issues';
import { fewestUpdates, selectedPerRound } from './quorum';
import { inputOf } from './data-schema';
import { ROBUST_STRATEGIES, ROLES, experimentConfigSchema, type ExperimentConfig } from './schema';
import { nodeConfigSchema, type NodeConfig } from './node-config';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates parsed JSON as config.json; throws ConfigError listing every problem. */
export function parseExperimentConfig(raw: unknown, source = 'config'): ExperimentConfig {
  const result = experimentConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, describeIssues(result.error.issues));
  // Alone: the other checks count the model's parameters, which a model that cannot be built has not.
  const model = modelProblem(result.data);
  if (model) throw new ConfigError(source, [model]);
  const problems = topologyProblems(result.data);
  if (problems.length) throw new ConfigError(source, problems);
  return withQuantizeDefaults(result.data);
}

/**
 * The most parameters a built-in model may have: 100M, nine times ResNet-18's. An MLP's first layer
 * grows with data.shape, and a node building one of billions runs out of memory instead of saying no.
 */
export const MAX_PARAMETERS = 100_000_000;

/**
 * A built-in that cannot take data.shape (a CNN on a table's rows), or one too large to build, named
 * before any node starts: by `agg` for config.json, and by each worker for the config pushed to it.
 */
export function modelProblem(settings: Pick<ExperimentConfig, 'model' | 'data' | 'training'>): string | undefined {
  if (settings.model.architecture === 'file') return undefined;
  let parameters: number;
  try {
    parameters = modelParameters(settings);
  } catch (err) {
    return `model.architecture: "${settings.model.architecture}": ${(err as Error).message}`;
  }
  if (parameters > MAX_PARAMETERS) {
    return `model: "${settings.model.architecture}" on data.shape [${inputOf(settings.data).shape.join(', ')}] has ${parameters.toLocaleString('en-US')} parameters, more than the ${MAX_PARAMETERS.toLocaleString('en-US')} a node builds`;
  }
  return undefined;
}

/**
 * he.quantize's defaults, written into the config every node gets: the headroom of a sum (`clients`)
 * is the most updates a round holds, `clip` suits what clients quantize (see quantizesChange), and
 * under distributed DP with HE a sum keeps room for the clients' noise (noiseReserve; replaced, as it
 * follows from dp, so a config read back from outputs/ reads the same).
 */
function withQuantizeDefaults(config: ExperimentConfig): ExperimentConfig {
  const quantize = config.he.quantize;
  if (!quantize) return config;
  const clientCount = Object.values(config.others).filter((entry) => entry.type === 'client').length;
  const clients = quantize.clients ?? selectedPerRound(config, clientCount);
  const clip = quantize.clip ?? (quantizesChange(config.he) ? DEFAULT_CHANGE_CLIP : DEFAULT_WEIGHT_CLIP);
  const { noise_reserve: _replaced, ...given } = quantize;
  const reserve = config.dp?.mode === 'distributed' && config.he.enabled ? { noise_reserve: noiseReserve(config.dp, config, clientCount) } : {};
  return { ...config, he: { ...config.he, quantize: { ...given, clients, clip, ...reserve } } };
}

export function loadExperimentConfig(file: string): ExperimentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid JSON: ${(err as Error).message}`]);
  }
  const config = parseExperimentConfig(raw, file);
  return { ...config, certs: resolve(dirname(file), config.certs) };
}

const isLoopback = (address: string) => {
  const { host } = parseAddress(address);
  return host === 'localhost' || host.startsWith('127.');
};

/** Whether the experiment's nodes talk mutual TLS: as config.json says, and by default unless it stays on loopback. */
export const usesTls = (config: ExperimentConfig): boolean => config.tls ?? !Object.keys(config.others).every(isLoopback);

/** Mistakes no single entry shows: duplicates, dangling references, a missing aggregator. */
function topologyProblems(config: ExperimentConfig): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const slices = new Map<string, string>();
  const aggregators: string[] = [];
  let clientCount = 0;

  for (const [key, entry] of Object.entries(config.others)) {
    const canonical = canonicalAddress(key);
    const earlier = seen.get(canonical);
    if (earlier) problems.push(`others: "${earlier}" and "${key}" are the same node (${canonical})`);
    seen.set(canonical, key);
    if (entry.type === 'aggregator') aggregators.push(key);
  }
  if (aggregators.length !== 1) {
    problems.push(
      `others: needs exactly one entry of type "aggregator" (the node that runs \`main.js agg\`), found ${aggregators.length}${aggregators.length ? `: ${aggregators.join(', ')}` : ''}`,
    );
  }

  for (const [key, entry] of Object.entries(config.others)) {
    if (entry.type !== 'client') continue;
    clientCount++;
    const slice = `${entry.index} of ${entry.client_number}`;
    const other = slices.get(slice);
    if (other) problems.push(`others["${key}"]: takes slice ${slice}, as does "${other}"; each client needs its own index`);
    slices.set(slice, key);
  }
  const checked = reportingTree(config.others);
  problems.push(...checked.problems);
  if (clientCount === 0) problems.push('others: needs at least one entry of type "client"');
  if (!checked.problems.length) problems.push(...encryptionProblems(config, checked.topology));
  problems.push(...labProblems(config, seen), ...dataFileProblems(config));
  if (config.clients_per_round !== undefined && config.clients_per_round > clientCount) {
    problems.push(`clients_per_round: ${config.clients_per_round} is more than the ${clientCount} clients in others`);
  }
  problems.push(...stragglerProblems(config));
  if (!config.he.enabled && config.he.quantize && config.he.quantize.bits > 16) {
    problems.push(`he.quantize.bits: ${config.he.quantize.bits}; a plaintext update (he.enabled false) holds at most 16 bits a value`);
  }
  const headroom = config.he.quantize?.clients;
  const perRound = selectedPerRound(config, clientCount);
  if (headroom !== undefined && headroom < perRound) {
    problems.push(`he.quantize.clients: ${headroom} leaves headroom for fewer updates than a round holds (${perRound}); sums would carry into the next value`);
  }
  const packing = packingProblem(config, headroom ?? perRound);
  if (packing) problems.push(packing);
  if (!checked.problems.length) problems.push(...robustProblems(config, checked.topology, perRound));
  problems.push(...privacyProblems(withQuantizeDefaults(config)), ...headcountProblems(config, clientCount));
  return problems;
}

/** Distributed DP (without clients_per_round) sizes each client's noise share, and SCAFFOLD each control variate's step, by client_number: it must be the clients there are. */
function headcountProblems(config: ExperimentConfig, clients: number): string[] {
  const shares = config.dp?.mode === 'distributed' && config.clients_per_round === undefined;
  const why = shares ? 'distributed dp sizes each client\'s share of the noise by it' : 'scaffold sizes each control variate\'s step by it';
  if (!shares && config.training.strategy !== 'scaffold') return [];
  const wrong = Object.entries(config.others).filter(([, entry]) => entry.type === 'client' && entry.client_number !== clients);
  if (!wrong.length) return [];
  const [address, entry] = wrong[0];
  const more = wrong.length > 1 ? ` (and ${wrong.length - 1} more)` : '';
  return [`others["${address}"].client_number: ${(entry as { client_number: number }).client_number}${more}, but others has ${clients} clients; ${why}`];
}

/**
 * What DP asks: a sum of changes clipped as the clients made them, noised where the mode says: by
 * the aggregator (central), which must then read the sum, or by the clients (distributed). `config`
 * with he.quantize filled in (withQuantizeDefaults).
 */
function privacyProblems(config: ExperimentConfig): string[] {
  const { dp } = config;
  if (!dp) return [];
  const problems: string[] = [];
  if (dp.mode === 'central' && config.he.enabled && config.he.key_holder === 'clients') {
    problems.push('dp.mode: "central" adds the noise to the sum the aggregator reads; with he.key_holder "clients" it reads none (use "distributed": each client adds its share)');
  }
  if (ROBUST_STRATEGIES.includes(config.training.strategy)) problems.push(`training.strategy: "${config.training.strategy}" reads each client's update; dp's noise is sized for the round's sum (use a strategy over the sum: "fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi" or "fedadagrad")`);
  if (config.training.strategy === 'scaffold') problems.push('training.strategy: "scaffold" sends control variates beside the weights, which dp neither clips nor noises (use "fedavg", "fedprox" or a server optimizer with dp)');
  if ((config.stragglers?.over_select ?? 1) > 1) problems.push(`stragglers.over_select: ${config.stragglers!.over_select}; dp's accountant samples clients_per_round clients a round, and over-selection samples more (leave it at 1 with dp)`);
  const quantized = quantizedPrivacyProblems(config, dp);
  problems.push(...quantized);
  if (!quantized.length && plannedRounds(config) === 0) problems.push(`dp.max_epsilon: ${dp.max_epsilon}; one round already spends ε ${epsilonAfter(config, 1).toFixed(2)} at δ ${dp.delta}`);
  return problems;
}

/**
 * What a robust rule asks: each client's update, in plaintext, at the aggregator (switches forward
 * each, unsummed); and enough of them in every round it closes (its quorum) to withstand
 * `num_malicious_clients`.
 */
function robustProblems(config: ExperimentConfig, topology: Topology, perRound: number): string[] {
  const { strategy, num_malicious_clients: f, num_clients_to_keep: keep } = config.training;
  if (!ROBUST_STRATEGIES.includes(strategy)) return [];
  const problems: string[] = [];
  const reads = `training.strategy: "${strategy}" reads each client's update`;
  if (config.he.enabled) problems.push(`${reads}; under HE nobody can read one (set he.enabled false, or use "fedavg")`);
  else if (config.he.quantize) problems.push(`${reads} as the client trained it; he.quantize sends a quantized change instead (leave he.quantize out)`);
  // A switch forwards a bundle of its clients' updates: its payload's length must fit the wire's 32 bits
  // (a model from a file is counted where it is found: its switch withholds a bundle that does not fit).
  const widest = topology.switches.map((sw) => [sw, topology.clientsBeneath(sw).length] as const).sort((a, b) => b[1] - a[1])[0];
  const bundleBytes = widest && config.model.architecture !== 'file' ? widest[1] * modelParameters(config) * 4 : 0;
  if (bundleBytes >= 2 ** 32) problems.push(`${reads}; switch ${widest![0]} would forward the ${widest![1]} updates beneath it in one message of ${bundleBytes} bytes, past the wire's 4 GiB: spread its clients over more switches under the aggregator`);
  // The rule must withstand f among the fewest updates a round closes with.
  const least = fewestUpdates(perRound, config.min_report_fraction);
  const among = `a round may close with ${least} updates (a quorum of a quorum of clients_per_round ${perRound}, min_report_fraction ${config.min_report_fraction})`;
  if ((strategy === 'krum' || strategy === 'multikrum') && least < 2 * f + 3) problems.push(`training.num_malicious_clients: Krum withstands ${f} of n updates when n ≥ 2f + 3 = ${2 * f + 3}; ${among}`);
  if (strategy === 'bulyan' && least < 4 * f + 3) problems.push(`training.num_malicious_clients: Bulyan withstands ${f} of n updates when n ≥ 4f + 3 = ${4 * f + 3}; ${among}`);
  if (strategy === 'multikrum' && (keep === undefined || keep > least - f)) problems.push(`training.num_clients_to_keep: multikrum averages that many of the updates Krum ranks first, at most n − f = ${least - f} (${keep === undefined ? 'it is missing' : `not ${keep}`})`);
  return problems;
}

/**
 * DP with he.quantize. Rounding moves an update by less than a step a value, a known length
 * (roundingReach), so clients clip to dp.clip less that length and the rounded update stays within
 * dp.clip: the sensitivity is the unquantized one, exactly. It must leave most of the clip.
 * Distributed under HE, clients draw their noise in whole steps (the distributed discrete Gaussian),
 * into room the packing keeps for it; the steps must be fine beside the noise for its sum to cost
 * what the Gaussian's would (releaseCost's slack). In plaintext each client's integers are its own,
 * with no room beside them: its noise would be clamped with its update.
 */
function quantizedPrivacyProblems(config: ExperimentConfig, dp: NonNullable<ExperimentConfig['dp']>): string[] {
  if (!config.he.quantize) return [];
  if (dp.mode === 'distributed' && !config.he.enabled) {
    return ['dp.mode: "distributed" with he.quantize and he.enabled false: each client\'s quantized values are clamped to ±he.quantize.clip alone, so its share of the noise would be clamped with them and the sum\'s noise would follow no known law (under HE the sum keeps room for it): set he.enabled true, use "central", or leave he.quantize out'];
  }
  const problems: string[] = [];
  const { multiplier, slack } = releaseCost(config);
  // Past 1% of a round's Gaussian RDP at order 2 (1/z²), the steps are too coarse for the noise.
  if (slack > 0.01 / multiplier ** 2) {
    problems.push(`he.quantize.bits: ${config.he.quantize.bits} bits leave steps so coarse beside each client's share of the noise that its discrete sum would cost ${slack.toPrecision(3)} more RDP a round than the Gaussian's ${(1 / multiplier ** 2).toPrecision(3)} (Kairouz et al. 2021, Proposition 14): use more bits or a smaller he.quantize.clip`);
  }
  // A model from a file is counted where it is found: each client checks the same as it starts.
  if (config.model.architecture === 'file') return problems;
  const problem = quantizedClipProblem(dp, config.he, modelParameters(config));
  return problem ? [...problems, problem] : problems;
}

/** Quantized values that do not fit a coefficient of the data primes, found before any node starts. */
function packingProblem(config: ExperimentConfig, clients: number): string | undefined {
  const { enabled, quantize, coeff_modulus_bits: bits } = config.he;
  if (!enabled || !quantize) return undefined;
  // With more than one prime SEAL keeps the last for key switching; a b-bit prime lies just below 2^b.
  const data = bits.length > 1 ? bits.slice(0, -1) : bits;
  try {
    geometryOf({ ...quantize, clients }, data.map((b) => (1n << BigInt(b)) - 1n));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A round closed by the straggler policy must still count: its early close at least the quorum. */
function stragglerProblems({ stragglers, min_report_fraction }: ExperimentConfig): string[] {
  if (!stragglers) return [];
  const fraction = stragglers.close_fraction ?? 1 / stragglers.over_select;
  if (fraction >= min_report_fraction - 1e-9) return [];
  const said = stragglers.close_fraction === undefined ? `1/over_select (${fraction.toFixed(2)}, the default close_fraction)` : `close_fraction ${fraction}`;
  return [`stragglers: ${said} is below min_report_fraction ${min_report_fraction}: a round closed there would not count, and would start again every time (raise close_fraction, or lower min_report_fraction)`];
}

/**
 * Enough to train on for every client (data.train_size), and to score on (key at the clients); and with files of the lab's
 * own, every client needs a path (and with IDX a labels file), from data.path or its own others[addr].data,
 * and the aggregator a held-out set: data.test, or the shared data.path's.
 */
function dataFileProblems(config: ExperimentConfig): string[] {
  const { data } = config;
  const clients = Object.entries(config.others).flatMap(([key, e]) => (e.type === 'client' ? [{ key, files: e.data, slices: e.client_number }] : []));
  // A shared set is cut in client_number slices, each a sample at least (a shard, in the classes split): an empty one could never check in.
  const slices = Math.max(0, ...clients.filter((c) => data.source === 'mnist' || (c.files?.path === undefined && !data.path?.includes('{index}'))).map((c) => c.slices));
  const fewest = slices * (data.split === 'classes' ? data.classes_per_client : 1);
  const problems = data.train_size !== undefined && data.train_size < fewest ? [`data.train_size: ${data.train_size} leaves a client without samples; ${slices} slices (client_number, ${data.split} split) need at least ${fewest}`] : [];
  if (config.he.enabled && config.he.key_holder === 'clients' && data.test_size < slices) problems.push(`data.test_size: ${data.test_size} held-out samples leave a client none to score the model on (he.key_holder "clients"): client_number ${slices} slices need at least ${slices}`);
  if (data.source === 'mnist') return problems;
  const lacking = (field: 'path' | 'labels_path') => clients.filter((c) => (c.files?.[field] ?? data[field]) === undefined).map((c) => c.key);
  const noPath = lacking('path');
  if (noPath.length) problems.push(`data.path: needed with source "${data.source}" (where the files are; {index} for the client's index), or others[addr].data.path for each client without it: ${noPath.join(', ')}`);
  const noLabels = data.source === 'idx' ? lacking('labels_path') : [];
  if (noLabels.length) problems.push(`data.labels_path: needed with source "idx" (the labels file beside the images file), or others[addr].data.labels_path for each client without it: ${noLabels.join(', ')}`);
  if (data.path === undefined && !data.test && !noPath.length) problems.push('data.test: needed when every client reads files of its own (others[addr].data.path): the aggregator\'s held-out files');
  const ownFiles = clients.filter((c) => c.files?.path !== undefined).map((c) => c.key);
  if (data.train_size !== undefined && ownFiles.length) problems.push(`data.train_size: slices one shared data set; a client with files of its own (others[addr].data.path) trains on all of them: ${ownFiles.join(', ')}`);
  return problems;
}

/** `links` and `compute` keys, and each event's `on`, name a role, a node of `others`, or a machine's IP. */
function labProblems(config: ExperimentConfig, nodes: Map<string, string>): string[] {
  const names = (key: string) => (ROLES as readonly string[]).includes(key) || (!addressProblem(key) && [...nodes.keys()].some((node) => namesNode(key, node)));
  const expected = `expected a role (${ROLES.join(', ')}), the address of a node in others, or a machine's IP`;
  const keys = (table: 'links' | 'compute') => Object.keys(config[table] ?? {}).filter((key) => !names(key)).map((key) => `${table}["${key}"]: ${expected}`);
  const events = (config.events ?? []).flatMap((event, i) => (names(event.on) ? [] : [`events[${i}].on: "${event.on}": ${expected}`]));
  return [...keys('links'), ...keys('compute'), ...events];
}

/** What homomorphic encryption asks of the topology and the strategy. */
function encryptionProblems(config: ExperimentConfig, topology: Topology): string[] {
  if (!config.he.enabled) return [];
  const problems: string[] = [];
  if (config.he.key_holder === 'aggregator') {
    // The aggregator holds the key, so it must only ever see sums of two or more updates.
    const beneath = topology.childrenOf(topology.root);
    const directClients = beneath.filter((node) => topology.isClient(node)).length;
    if (directClients > 0) {
      problems.push(`he.key_holder: with "aggregator", every client must report through a switch (${directClients} report to the aggregator directly, which could decrypt their updates)`);
    }
    // Only what reaches the aggregator matters: a switch below another hands its sum to a switch, which cannot decrypt.
    for (const sw of beneath.filter((node) => topology.isSwitch(node))) {
      const count = topology.clientsBeneath(sw).length;
      if (count < 2) problems.push(`he.key_holder: with "aggregator", switch ${sw} needs at least 2 clients beneath it so the aggregator never decrypts a single update (it has ${count})`);
    }
  }
  // A robust rule is refused for reading updates at all (robustProblems): one reason is enough.
  // FedAvg and FedProx average the sum, which sealed ciphertexts allow; a server optimizer's state (momentum, Adam's moments) is not linear.
  if (config.he.key_holder === 'clients' && ['fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'].includes(config.training.strategy)) {
    problems.push(`training.strategy: "${config.training.strategy}" needs the model in plaintext at the aggregator; with he.key_holder "clients" use "fedavg" or "fedprox"`);
  }
  return problems;
}

/** config.json's `others` as the tree's entries: addresses canonical, and what each says of its switch. */
function reportingTree(others: ExperimentConfig['others']) {
  const entries: TreeEntry[] = Object.entries(others).map(([key, entry]) => ({
    key,
    address: canonicalAddress(key),
    type: entry.type,
    ...(entry.type !== 'aggregator' && entry.switch !== undefined ? { switch: { address: canonicalAddress(entry.switch), written: entry.switch } } : {}),
  }));
  return checkedTree(entries);
}

/** The experiment's reporting tree, from a config that passed its checks. */
export const topologyOf = (config: ExperimentConfig): Topology => reportingTree(config.others).topology;

/** The config each node receives, keyed by canonical address (the aggregator's own included). */
export function resolveNodeConfigs(config: ExperimentConfig): Map<string, NodeConfig> {
  const { experiment, others, links: _links, compute: _compute, events: _events, clients_per_process: _perProcess, tls: _tls, certs: _certs, ...settings } = config;
  const topology = topologyOf(config);
  const aggregator = topology.root;
  const nodes = new Map<string, NodeConfig>();
  for (const [key, entry] of Object.entries(others)) {
    const address = canonicalAddress(key);
    const base = { experiment, address, aggregator, settings };
    let node: NodeConfig;
    if (entry.type === 'client') {
      const above = topology.chainOf(address);
      node = { ...base, type: 'client', client_number: entry.client_number, index: entry.index, upstream: topology.upstreamOf(address)!, above, ...(entry.data ? { data: entry.data } : {}), ...(entry.attack ? { attack: entry.attack } : {}) };
    } else if (entry.type === 'switch') {
      node = { ...base, type: 'switch', tree: topology.subtree(address), upstream: topology.upstreamOf(address)! };
    } else {
      const attackers = Object.entries(others).flatMap(([client, e]) => (e.type === 'client' && e.attack ? [[canonicalAddress(client), e.attack] as const] : []));
      node = { ...base, type: 'aggregator', tree: topology.toRecord(), ...(attackers.length ? { attackers: Object.fromEntries(attackers) } : {}) };
    }
    nodes.set(address, nodeConfigSchema.parse(node));
  }
  return nodes;
}
