/**
 * Building and removing an emulated testbed's network: namespaces, veths, the bridge, tc. Nothing
 * is ever made in the machine's own namespace: each veth is created with both ends already in
 * testbed namespaces, and no testbed namespace gets a route out.
 */
import type { LinkShape } from '../config/schema';
import { BRIDGE, inTestbedSubnet, MACHINE_IFACE, namespacePrefix, type Machine, type TestbedPlan } from './plan';
import { needsNetem, shapeCommands } from './links';
import { EmulateError, inNamespace, run } from './system';

const ip = (args: string[]) => run('ip', args);

/** Testbed traffic only: no IPv6 router solicitations or neighbour discovery in the byte counts. */
function quietNamespace(ns: string): void {
  ip(['netns', 'add', ns]);
  inNamespace(ns, 'sh', ['-c', 'for f in all default; do [ -w /proc/sys/net/ipv6/conf/$f/disable_ipv6 ] && echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done; true']);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Whether this kernel has netem (delay, loss): tried once on the bridge namespace's loopback. */
export function netemAvailable(bridgeNs: string): boolean {
  try {
    run('tc', ['-n', bridgeNs, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    run('tc', ['-n', bridgeNs, 'qdisc', 'del', 'dev', 'lo', 'root']);
    return true;
  } catch {
    return false;
  }
}

export interface Built {
  netem: boolean;
}

export function buildNetwork(plan: TestbedPlan): Built {
  quietNamespace(plan.bridgeNs);
  ip(['-n', plan.bridgeNs, 'link', 'add', BRIDGE, 'type', 'bridge']);
  ip(['-n', plan.bridgeNs, 'addr', 'add', `${plan.probe}/${plan.prefix}`, 'dev', BRIDGE]);
  ip(['-n', plan.bridgeNs, 'link', 'set', BRIDGE, 'up']);
  const netem = netemAvailable(plan.bridgeNs);
  for (const machine of plan.machines) addMachine(plan, machine, netem);
  return { netem };
}

function addMachine(plan: TestbedPlan, machine: Machine, netem: boolean): void {
  quietNamespace(machine.ns);
  ip(['link', 'add', MACHINE_IFACE, 'netns', machine.ns, 'type', 'veth', 'peer', 'name', machine.port, 'netns', plan.bridgeNs]);
  ip(['-n', plan.bridgeNs, 'link', 'set', machine.port, 'master', BRIDGE, 'up']);
  ip(['-n', machine.ns, 'addr', 'add', `${machine.host}/${plan.prefix}`, 'dev', MACHINE_IFACE]);
  ip(['-n', machine.ns, 'link', 'set', MACHINE_IFACE, 'up']);
  if (machine.link) reshape(plan, machine, machine.link, netem);
}

/** Gives a machine's link this shape both ways: its own end (what it sends) and the bridge's (what it receives). */
export function reshape(plan: TestbedPlan, machine: Machine, link: LinkShape, netem = false): void {
  const withNetem = netem && needsNetem(link);
  for (const args of shapeCommands(MACHINE_IFACE, link, withNetem)) run('tc', ['-n', machine.ns, ...args]);
  for (const args of shapeCommands(machine.port, link, withNetem)) run('tc', ['-n', plan.bridgeNs, ...args]);
}

/** Every namespace whose name says it belongs to this testbed, whatever state a killed run left. */
export function testbedNamespaces(tag: string): string[] {
  const prefix = namespacePrefix(tag);
  return ip(['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0])
    .filter((name) => name.startsWith(prefix));
}

export const pidsIn = (ns: string): number[] =>
  ip(['netns', 'pids', ns])
    .split('\n')
    .filter(Boolean)
    .map(Number);

/** Stops everything running in the testbed's namespaces (TERM, then KILL after the grace), then removes them. */
export async function removeNetwork(tag: string, graceMs = 5000): Promise<{ namespaces: number; killed: number }> {
  const namespaces = testbedNamespaces(tag);
  const signal = (pids: number[], sig: NodeJS.Signals) => pids.forEach((pid) => tryKill(pid, sig));
  const running = () => namespaces.flatMap(pidsIn);
  // A process the schedule stopped is let go too, or it would hold its TERM until the KILL.
  for (const sig of ['SIGTERM', 'SIGCONT'] as const) signal(running(), sig);
  const deadline = Date.now() + graceMs;
  while (running().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const stubborn = running();
  signal(stubborn, 'SIGKILL');
  for (const ns of namespaces) ip(['netns', 'del', ns]);
  return { namespaces: namespaces.length, killed: stubborn.length };
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

export interface LinkCounters {
  /** What the machine received on its link, and sent: every byte the kernel moved, headers included. */
  rx_bytes: number;
  tx_bytes: number;
}

export function machineCounters(machine: Machine): LinkCounters {
  const [link] = JSON.parse(ip(['-n', machine.ns, '-j', '-s', 'link', 'show', MACHINE_IFACE])) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[];
  return { rx_bytes: link.stats64.rx.bytes, tx_bytes: link.stats64.tx.bytes };
}

interface Route {
  dst: string;
  dev?: string;
}

const routes = (ns: string | undefined, family: '-4' | '-6') =>
  JSON.parse(run('ip', [...(ns ? ['-n', ns] : []), family, '-j', 'route', 'show', 'table', 'all']) || '[]') as Route[];

/**
 * Why the testbed is not sealed off, empty when it is: a default route or a route out of the
 * subnet in a testbed namespace, a link that is not the testbed's own, or the machine's own
 * namespace holding an address or a route in the testbed's subnet.
 */
export function isolationProblems(plan: TestbedPlan): string[] {
  const problems: string[] = [];
  const own = new Set([MACHINE_IFACE, BRIDGE, 'lo', ...plan.machines.map((m) => m.port)]);
  for (const ns of [plan.bridgeNs, ...plan.machines.map((m) => m.ns)]) {
    for (const route of [...routes(ns, '-4'), ...routes(ns, '-6')]) {
      if (route.dst === 'default') problems.push(`${ns} has a default route (via ${route.dev})`);
      else if (!own.has(route.dev ?? '')) problems.push(`${ns} has a route to ${route.dst} on ${route.dev}, not a testbed link`);
    }
    const links = JSON.parse(ip(['-n', ns, '-j', 'link', 'show'])) as { ifname: string }[];
    for (const link of links) if (!own.has(link.ifname)) problems.push(`${ns} has a link ${link.ifname} that is not the testbed's`);
  }
  const inSubnet = (address: string) => inTestbedSubnet(plan, address);
  const rootAddresses = JSON.parse(ip(['-4', '-j', 'addr', 'show'])) as { ifname: string; addr_info: { local: string }[] }[];
  for (const link of rootAddresses) {
    for (const { local } of link.addr_info) if (inSubnet(local)) problems.push(`the machine's own namespace has ${local} (on ${link.ifname}), an address of the testbed`);
  }
  for (const route of routes(undefined, '-4')) {
    const [dst] = route.dst.split('/');
    if (route.dst !== 'default' && inSubnet(dst)) problems.push(`the machine's own namespace routes ${route.dst} (on ${route.dev})`);
  }
  return problems;
}

export function assertIsolated(plan: TestbedPlan): void {
  const problems = isolationProblems(plan);
  if (problems.length) throw new EmulateError(`the testbed is not sealed off from this machine's network:\n  - ${problems.join('\n  - ')}`);
}
