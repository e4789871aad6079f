/**
 * Which worker processes a launcher starts for a config: one per switch, and the clients of each
 * machine (host) in processes of up to `clients_per_process`, in config.json's order. Every node in
 * a process is still its own node on the wire (its address, token and certificate); the process
 * shares its TensorFlow.js backend, data file and HE threads between them.
 */
import { parseAddress } from './address';
import type { ExperimentConfig } from './schema';
import { resolveNodeConfigs } from './load';

export interface WorkerProcess {
  /** The nodes it serves, each its own address; the first names the process (its pid and output files). */
  addresses: string[];
  type: 'client' | 'switch';
  host: string;
}

export function workerProcesses(config: ExperimentConfig): WorkerProcess[] {
  const perProcess = config.clients_per_process;
  const processes: WorkerProcess[] = [];
  /** The process of each host still taking clients. */
  const filling = new Map<string, WorkerProcess>();
  for (const node of resolveNodeConfigs(config).values()) {
    if (node.type === 'aggregator') continue;
    const { host } = parseAddress(node.address);
    if (node.type === 'switch') {
      processes.push({ addresses: [node.address], type: 'switch', host });
      continue;
    }
    const open = filling.get(host);
    if (open && open.addresses.length < perProcess) {
      open.addresses.push(node.address);
      continue;
    }
    const fresh: WorkerProcess = { addresses: [node.address], type: 'client', host };
    filling.set(host, fresh);
    processes.push(fresh);
  }
  return processes;
}

/** A process's nodes as the worker's --nodes flag takes them. */
export const nodesFlag = (process: Pick<WorkerProcess, 'addresses'>): string => process.addresses.join(',');
