/**
 * What an emulated testbed is made of, worked out from config.json alone (no system call here):
 * a network namespace per machine (per IP of `others`), each with one veth into a bridge that
 * lives in a namespace of its own, and the link shape each machine gets from `links`.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { canonicalAddress, namesNode, parseAddress } from '../config/address';
import { ROLES, type ComputeShare, type ExperimentConfig, type LinkShape } from '../config/schema';

export interface Machine {
  /** The machine's IP, as config.json names it. */
  host: string;
  /** Its namespace. */
  ns: string;
  /** The bridge's end of its veth (the machine's own end is `eth0`). */
  port: string;
  /** Every node of the config on this IP, with its role. */
  nodes: { address: string; role: string }[];
  /** The shape of its link, both ways; undefined: not shaped. */
  link?: LinkShape;
  /** Its CPU share and memory limit; undefined: the host's. */
  compute?: ComputeShare;
}

export interface TestbedPlan {
  /** Names every namespace of this testbed: `fl-<tag>-…`. */
  tag: string;
  bridgeNs: string;
  /** The prefix length every machine's address gets: the smallest subnet holding all of them. */
  prefix: number;
  machines: Machine[];
  /** An address in the subnet that no machine has: the bridge's own, for measuring each link. */
  probe: string;
}

/** The interface inside each machine's namespace. */
export const MACHINE_IFACE = 'eth0';
export const BRIDGE = 'br0';

/** A testbed's tag follows from its state folder, so `down` finds what a killed `up` left. */
export function testbedTag(stateDir: string): string {
  return createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 6);
}

export const namespacePrefix = (tag: string) => `fl-${tag}-`;

export function planTestbed(config: ExperimentConfig, stateDir: string): TestbedPlan {
  const tag = testbedTag(stateDir);
  const byHost = new Map<string, Machine['nodes']>();
  for (const [key, entry] of Object.entries(config.others)) {
    const { host } = parseAddress(key);
    byHost.set(host, [...(byHost.get(host) ?? []), { address: canonicalAddress(key), role: entry.type }]);
  }
  const hosts = [...byHost.keys()];
  const problems = hosts.map(hostProblem).filter(Boolean);
  if (problems.length) throw new Error(`--emulate: ${problems.join('; ')}`);
  const prefix = commonPrefix(hosts.map(toInt));
  const machines = hosts.map((host, i) => {
    const nodes = byHost.get(host)!;
    return { host, ns: `${namespacePrefix(tag)}${host}`, port: `p${i + 1}`, nodes, link: linkOf(config, nodes), compute: computeOf(config, nodes) };
  });
  return { tag, bridgeNs: `${namespacePrefix(tag)}bridge`, prefix, machines, probe: freeAddress(hosts, prefix) };
}

/**
 * A machine's entry in a table keyed as `links` and `compute` are: its own (by address or IP), else
 * its role's. A machine with nodes of different roles takes the best of their roles' entries.
 */
export function entryFor<T>(table: Record<string, T> | undefined, nodes: Machine['nodes'], best: (a: T, b: T) => number): T | undefined {
  for (const [key, entry] of Object.entries(table ?? {})) {
    if ((ROLES as readonly string[]).includes(key)) continue;
    if (nodes.some((n) => namesNode(key, n.address))) return entry;
  }
  const byRole = nodes.map((n) => table?.[n.role]).filter((entry): entry is T => entry !== undefined);
  return byRole.sort(best)[0];
}

/** The faster link, and the larger share of a core (a machine without a limit is the largest). */
const linkOf = (config: ExperimentConfig, nodes: Machine['nodes']) => entryFor(config.links, nodes, (a, b) => b.rate_mbit - a.rate_mbit);
export const computeOf = (config: ExperimentConfig, nodes: Machine['nodes']): ComputeShare | undefined =>
  entryFor(config.compute, nodes, (a, b) => (b.cpu ?? UNLIMITED) - (a.cpu ?? UNLIMITED));
const UNLIMITED = 1e9;

function hostProblem(host: string): string | undefined {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(host)) return `"${host}" is a host name; an emulated machine needs an IPv4 address`;
  const first = Number(host.split('.')[0]);
  if (first === 127) return `${host} is a loopback address (the loopback testbed runs without --emulate)`;
  if (first === 0 || first >= 224) return `${host} cannot be a machine's address`;
  return undefined;
}

const toInt = (host: string) => host.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

/** Whether an IPv4 address lies in the testbed's subnet. */
export function inTestbedSubnet(plan: TestbedPlan, address: string): boolean {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) return false;
  const size = 2 ** (32 - plan.prefix);
  return Math.floor(toInt(address) / size) === Math.floor(toInt(plan.machines[0].host) / size);
}
const toHost = (n: number) => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

/** The longest prefix every address shares, at most /24 (so a /24 of the reference config stays a /24). */
export function commonPrefix(addresses: number[]): number {
  let prefix = 24;
  const network = (n: number, bits: number) => Math.floor(n / 2 ** (32 - bits));
  while (prefix > 8 && new Set(addresses.map((n) => network(n, prefix))).size > 1) prefix--;
  if (new Set(addresses.map((n) => network(n, prefix))).size > 1) throw new Error('--emulate: the addresses share no /8; put the machines in one subnet');
  return prefix;
}

/** The highest host address of the subnet no machine uses. */
function freeAddress(hosts: string[], prefix: number): string {
  const used = new Set(hosts.map(toInt));
  const size = 2 ** (32 - prefix);
  const base = Math.floor(toInt(hosts[0]) / size) * size;
  for (let n = base + size - 2; n > base; n--) if (!used.has(n)) return toHost(n);
  throw new Error(`--emulate: the /${prefix} of the config has no address left for the bridge`);
}
