/**
 * The reporting tree of config.json: clients report to a switch or to the aggregator, and a switch
 * to another switch or to the aggregator, to any depth (clients, rack switches, a spine switch, the
 * aggregator). Built once from the entries, checked for what no single entry shows: a `switch` that
 * names no switch, a cycle, a switch with no client beneath it.
 */
import { canonicalAddress } from './address';
import type { WorkerEntry } from './schema';

export interface ReportingTree {
  aggregator: string;
  /** Every client and switch, and where it reports: a switch, or the aggregator. */
  upstreamOf: Map<string, string>;
  switches: string[];
  clients: string[];
  /** Mistakes, each naming the entry (by its key in others). */
  problems: string[];
}

export function reportingTree(others: Record<string, WorkerEntry>): ReportingTree {
  const entries = Object.entries(others).map(([key, entry]) => ({ key, address: canonicalAddress(key), entry }));
  const aggregator = entries.find((e) => e.entry.type === 'aggregator')?.address ?? '';
  const switches = entries.filter((e) => e.entry.type === 'switch').map((e) => e.address);
  const clients = entries.filter((e) => e.entry.type === 'client').map((e) => e.address);
  const keyOf = new Map(entries.map((e) => [e.address, e.key]));
  const upstreamOf = new Map<string, string>();
  const problems: string[] = [];
  for (const { key, address, entry } of entries) {
    if (entry.type === 'aggregator') continue;
    if (entry.switch === undefined) {
      upstreamOf.set(address, aggregator);
      continue;
    }
    const target = canonicalAddress(entry.switch);
    if (!switches.includes(target)) problems.push(`others["${key}"].switch: "${entry.switch}" is not an entry of type "switch" in others`);
    else if (target === address) problems.push(`others["${key}"].switch: a switch cannot report to itself`);
    upstreamOf.set(address, target);
  }
  const tree = { aggregator, upstreamOf, switches, clients, problems };
  if (problems.length) return tree;
  for (const sw of switches) {
    const cycle = cycleFrom(tree, sw);
    // Each cycle once, named from its first switch in config order.
    if (cycle && cycle[0] === sw) problems.push(`others: switches report to each other in a circle and never reach the aggregator: ${[...cycle, sw].map((s) => keyOf.get(s)).join(' -> ')}`);
  }
  if (problems.length) return tree;
  for (const sw of switches) {
    if (!clientsBeneath(tree, sw).length) problems.push(`others["${keyOf.get(sw)}"]: switch has no clients beneath it (no client, nor a switch with clients, names it in "switch")`);
  }
  return tree;
}

/** The switches a node's sum passes through on its way to the aggregator, nearest first. */
export function chainOf(tree: Pick<ReportingTree, 'upstreamOf' | 'aggregator'>, node: string): string[] {
  const chain: string[] = [];
  for (let at = tree.upstreamOf.get(node); at !== undefined && at !== tree.aggregator && !chain.includes(at); at = tree.upstreamOf.get(at)) chain.push(at);
  return chain;
}

/** The switches of a cycle `sw` lies on, starting at the smallest in config order; undefined when it reaches the aggregator. */
function cycleFrom(tree: ReportingTree, sw: string): string[] | undefined {
  const path = [sw, ...chainOf(tree, sw)];
  const last = tree.upstreamOf.get(path.at(-1)!);
  if (last === tree.aggregator) return undefined;
  const cycle = path.slice(path.indexOf(last!));
  if (!cycle.includes(sw)) return undefined; // it leads into a cycle that the cycle's own switches name
  const first = Math.min(...cycle.map((s) => tree.switches.indexOf(s)));
  const start = cycle.indexOf(tree.switches[first]);
  return [...cycle.slice(start), ...cycle.slice(0, start)];
}

/** Every client whose updates pass through `sw`. */
export function clientsBeneath(tree: Pick<ReportingTree, 'upstreamOf' | 'aggregator' | 'clients'>, sw: string): string[] {
  return tree.clients.filter((client) => chainOf(tree, client).includes(sw));
}
