/**
 * The kernel's byte counters of the interface that carries this node's address: what really
 * crossed the machine's link, headers, health checks and ssh included. Read beside the node's own
 * counts (which are the experiment's bytes alone), they show what the network added. Only where
 * the address has an interface of its own: on a loopback testbed every node shares `lo`.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

export interface LinkTotals {
  received: number;
  sent: number;
}

export type LinkCounter = () => LinkTotals | undefined;

export function linkCounterFor(host: string, interfaces = networkInterfaces(), sysfs = '/sys/class/net'): LinkCounter | undefined {
  const name = Object.entries(interfaces).find(([, addresses]) => addresses?.some((a) => a.address === host && !a.internal))?.[0];
  if (!name) return undefined;
  const read = (counter: string) => Number(readFileSync(`${sysfs}/${name}/statistics/${counter}`, 'utf8'));
  return () => {
    try {
      return { received: read('rx_bytes'), sent: read('tx_bytes') };
    } catch {
      return undefined; // not Linux, or the interface went away
    }
  };
}
