/**
 * What no single config entry shows about the tree: a `switch` that names no switch, a switch that
 * reports to itself, switches reporting to each other in a circle, a switch with no client beneath
 * it. Each mistake names the entry by its key in config.json's `others`.
 */
import { Topology } from './tree';

/** One entry of config.json's `others`, its addresses already in their canonical form. */
export interface TreeEntry {
  /** The key as config.json writes it. */
  key: string;
  address: string;
  type: 'client' | 'switch' | 'aggregator';
  /** The switch it names (canonical), and as written; absent: it reports to the aggregator. */
  switch?: { address: string; written: string };
}

export interface CheckedTree {
  topology: Topology;
  /** The entries' types, which a tree with mistakes may not show (a switch nobody names looks like a client). */
  clients: string[];
  problems: string[];
}

export function checkedTree(entries: readonly TreeEntry[]): CheckedTree {
  const aggregator = entries.find((e) => e.type === 'aggregator')?.address ?? '';
  const switches = entries.filter((e) => e.type === 'switch').map((e) => e.address);
  const clients = entries.filter((e) => e.type === 'client').map((e) => e.address);
  const keyOf = new Map(entries.map((e) => [e.address, e.key]));
  const upstream = new Map<string, string>();
  const problems: string[] = [];
  for (const { key, address, type, switch: target } of entries) {
    if (type === 'aggregator') continue;
    if (!target) {
      upstream.set(address, aggregator);
      continue;
    }
    if (!switches.includes(target.address)) problems.push(`others["${key}"].switch: "${target.written}" is not an entry of type "switch" in others`);
    else if (target.address === address) problems.push(`others["${key}"].switch: a switch cannot report to itself`);
    upstream.set(address, target.address);
  }
  const topology = new Topology(aggregator, upstream);
  if (problems.length) return { topology, clients, problems };
  for (const cycle of topology.cycles()) {
    problems.push(`others: switches report to each other in a circle and never reach the aggregator: ${[...cycle, cycle[0]].map((s) => keyOf.get(s)).join(' -> ')}`);
  }
  if (problems.length) return { topology, clients, problems };
  for (const sw of switches) {
    if (!clients.some((client) => topology.chainOf(client).includes(sw))) {
      problems.push(`others["${keyOf.get(sw)}"]: switch has no clients beneath it (no client, nor a switch with clients, names it in "switch")`);
    }
  }
  return { topology, clients, problems };
}

/** Why a shipped tree (a node config's `tree`) is not one, or undefined: every node must reach the root. */
export function shippedTreeProblem(topology: Topology): string | undefined {
  if (topology.has(topology.root)) return `${topology.root} is the root: it reports to no one in its own tree`;
  if (!topology.clients.length) return 'no client in it';
  const cycle = topology.cycles()[0];
  if (cycle) return `switches report to each other in a circle: ${cycle.join(' -> ')}`;
  for (const node of [...topology.switches, ...topology.clients]) {
    const above = topology.upstreamOf(node)!;
    if (above !== topology.root && !topology.has(above)) return `${node} reports to ${above}, which is neither ${topology.root} nor beneath it`;
  }
  return undefined;
}
