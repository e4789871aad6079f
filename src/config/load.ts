/** Reading config.json: parse, validate, check the topology, and name every mistake. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { addressProblem, canonicalAddress, namesNode, parseAddress } from './address';
import { DEFAULT_CHANGE_CLIP, DEFAULT_WEIGHT_CLIP, geometryOf, quantizesChange } from '../he/quantized';
import { clientsBeneath, reportingTree, type ReportingTree } from './tree';
import { KNOWN_KEYS, ROLES, experimentConfigSchema, nodeConfigSchema, type ExperimentConfig, type NodeConfig } from './schema';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `others["10.10.1.3"].index` rather than `others,10.10.1.3,index`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(key))) out += out ? `.${String(key)}` : String(key);
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || '(top level)';
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const where = formatPath(issue.path);
    switch (issue.code) {
      case 'unrecognized_keys':
        return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(withSuggestion).join(', ')}`;
      case 'invalid_key':
        return `${where}: bad address: ${issue.issues.map((inner) => inner.message).join('; ')}`;
      default:
        return `${where}: ${issue.message}`;
    }
  });
}

/** `"roudns" (did you mean "rounds"?)` for a key one or two typos away from a known one. */
function withSuggestion(key: string): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of KNOWN_KEYS) {
    const d = editDistance(key.toLowerCase(), known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best ? `"${key}" (did you mean "${best}"?)` : `"${key}"`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** Validates parsed JSON as config.json; throws ConfigError listing every problem. */
export function parseExperimentConfig(raw: unknown, source = 'config'): ExperimentConfig {
  const result = experimentConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, describeIssues(result.error.issues));
  const problems = topologyProblems(result.data);
  if (problems.length) throw new ConfigError(source, problems);
  return withQuantizeDefaults(result.data);
}

/**
 * he.quantize's defaults, written into the config every node gets: the headroom of a sum (`clients`)
 * is the most updates a round holds, and `clip` suits what clients quantize (see quantizesChange).
 */
function withQuantizeDefaults(config: ExperimentConfig): ExperimentConfig {
  const quantize = config.he.quantize;
  if (!quantize) return config;
  const clients = quantize.clients ?? config.clients_per_round ?? Object.values(config.others).filter((entry) => entry.type === 'client').length;
  const clip = quantize.clip ?? (quantizesChange(config.he) ? DEFAULT_CHANGE_CLIP : DEFAULT_WEIGHT_CLIP);
  return { ...config, he: { ...config.he, quantize: { ...quantize, clients, clip } } };
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
  const tree = reportingTree(config.others);
  problems.push(...tree.problems);
  if (clientCount === 0) problems.push('others: needs at least one entry of type "client"');
  if (!tree.problems.length) problems.push(...encryptionProblems(config, tree));
  problems.push(...linkProblems(config, seen));
  if (config.clients_per_round !== undefined && config.clients_per_round > clientCount) {
    problems.push(`clients_per_round: ${config.clients_per_round} is more than the ${clientCount} clients in others`);
  }
  if (!config.he.enabled && config.he.quantize && config.he.quantize.bits > 16) {
    problems.push(`he.quantize.bits: ${config.he.quantize.bits}; a plaintext update (he.enabled false) holds at most 16 bits a value`);
  }
  const headroom = config.he.quantize?.clients;
  const perRound = config.clients_per_round ?? clientCount;
  if (headroom !== undefined && headroom < perRound) {
    problems.push(`he.quantize.clients: ${headroom} leaves headroom for fewer updates than a round holds (${perRound}); sums would carry into the next value`);
  }
  const packing = packingProblem(config, headroom ?? perRound);
  if (packing) problems.push(packing);
  return problems;
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

/** `links` keys name a role or a node of `others`. */
function linkProblems(config: ExperimentConfig, nodes: Map<string, string>): string[] {
  return Object.keys(config.links ?? {})
    .filter((key) => !(ROLES as readonly string[]).includes(key))
    .flatMap((key) => {
      if (!addressProblem(key) && [...nodes.keys()].some((node) => namesNode(key, node))) return [];
      return [`links["${key}"]: expected a role (${ROLES.join(', ')}) or the address of a node in others`];
    });
}

/** What homomorphic encryption asks of the topology and the strategy. */
function encryptionProblems(config: ExperimentConfig, tree: ReportingTree): string[] {
  if (!config.he.enabled) return [];
  const problems: string[] = [];
  if (config.he.key_holder === 'aggregator') {
    // The aggregator holds the key, so it must only ever see sums of two or more updates.
    const directClients = tree.clients.filter((c) => tree.upstreamOf.get(c) === tree.aggregator).length;
    if (directClients > 0) {
      problems.push(`he.key_holder: with "aggregator", every client must report through a switch (${directClients} report to the aggregator directly, which could decrypt their updates)`);
    }
    // Only what reaches the aggregator matters: a switch below another hands its sum to a switch, which cannot decrypt.
    for (const sw of tree.switches.filter((s) => tree.upstreamOf.get(s) === tree.aggregator)) {
      const count = clientsBeneath(tree, sw).length;
      if (count < 2) problems.push(`he.key_holder: with "aggregator", switch ${sw} needs at least 2 clients beneath it so the aggregator never decrypts a single update (it has ${count})`);
    }
  }
  if (config.he.key_holder === 'clients' && config.training.strategy !== 'fedavg') {
    problems.push(`training.strategy: "${config.training.strategy}" needs the model in plaintext at the aggregator; with he.key_holder "clients" use "fedavg"`);
  }
  return problems;
}

/** The config each node receives, keyed by canonical address (the aggregator's own included). */
export function resolveNodeConfigs(config: ExperimentConfig): Map<string, NodeConfig> {
  const { experiment, others, links: _links, tls: _tls, certs: _certs, ...settings } = config;
  const tree = reportingTree(others);
  const { aggregator, upstreamOf } = tree;
  const reportingTo = (upstream: string, nodes: string[]) => nodes.filter((n) => upstreamOf.get(n) === upstream);

  const nodes = new Map<string, NodeConfig>();
  for (const [key, entry] of Object.entries(others)) {
    const address = canonicalAddress(key);
    const base = { experiment, address, aggregator, settings };
    let node: NodeConfig;
    if (entry.type === 'client') {
      node = { ...base, type: 'client', client_number: entry.client_number, index: entry.index, upstream: upstreamOf.get(address)!, ...(entry.data ? { data: entry.data } : {}) };
    } else if (entry.type === 'switch') {
      const switches = Object.fromEntries(reportingTo(address, tree.switches).map((child) => [child, clientsBeneath(tree, child)]));
      node = { ...base, type: 'switch', clients: reportingTo(address, tree.clients), switches, upstream: upstreamOf.get(address)! };
    } else {
      const clients = Object.fromEntries(tree.clients.map((c) => [c, upstreamOf.get(c)!]));
      const switches = Object.fromEntries(tree.switches.map((s) => [s, upstreamOf.get(s)!]));
      node = { ...base, type: 'aggregator', switches, clients };
    }
    nodes.set(address, nodeConfigSchema.parse(node));
  }
  return nodes;
}
