/**
 * What the schedule does to a testbed's nodes (`MachineDriver`): on loopback each worker is a
 * process of this machine and a machine of its own; emulated, each machine is a namespace with its
 * link and its compute group, and its workers run there under sshd.
 */
import { readFileSync } from 'node:fs';
import { canonicalAddress, parseAddress } from '../config/address';
import { changeCpu } from './cgroups';
import { pidsIn, reshape } from './network';
import type { MachineDriver } from './schedule-runner';
import type { EmulatedState } from './state';

function signal(pid: number | undefined, sig: NodeJS.Signals, address: string): string {
  if (pid === undefined) throw new Error(`no process of ${address} runs`);
  process.kill(pid, sig); // throws ESRCH when it is gone
  return `${sig} pid ${pid}`;
}

/** The loopback testbed: a worker's pid from its pid file; `start` starts it again as `up` does. */
export class LoopbackDriver implements MachineDriver {
  constructor(
    private readonly tag: string,
    private readonly pidOf: (address: string) => number | undefined,
    private readonly machineOf: (address: string) => string,
    readonly start: (address: string) => Promise<string>,
  ) {}

  kill = async (address: string) => signal(this.pidOf(address), 'SIGKILL', address);
  stop = async (address: string) => signal(this.pidOf(address), 'SIGSTOP', address);
  resume = async (address: string) => signal(this.pidOf(address), 'SIGCONT', address);

  async link(): Promise<string> {
    throw new Error('the loopback testbed has no shaped links (`links` and link events need `up --emulate`)');
  }

  async cpu(address: string, cores: number): Promise<string> {
    const pid = this.pidOf(address);
    return changeCpu(this.tag, this.machineOf(address), cores, () => (pid === undefined ? [] : [pid]));
  }
}

/** Whether `pid` runs the node at `address` (`node main.js … --port <port>`, and `agg` for an aggregator): not a process that took over a dead worker's pid. */
export function runsWorker(pid: number, address: string, aggregator = false): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!args.some((a) => a.endsWith('main.js'))) return false;
    // A worker names its port; the aggregator (`main.js agg --config …`) takes its own from config.json.
    if (aggregator) return args.includes('agg');
    // One of several nodes in a process names itself in --nodes.
    if (args.includes('--nodes')) return args[args.indexOf('--nodes') + 1].split(',').includes(canonicalAddress(address));
    return args[args.indexOf('--port') + 1] === String(parseAddress(address).port);
  } catch {
    return false; // gone meanwhile
  }
}

/** The node at `address` among a namespace's processes, the newest that runs it (one started again). */
export function workerPid(ns: string, address: string, aggregator = false): number | undefined {
  return pidsIn(ns).filter((pid) => runsWorker(pid, address, aggregator)).sort((a, b) => b - a)[0];
}

/** The emulated testbed: a node's machine by its IP; `start` runs the launcher again (it starts what is not running). */
export class EmulatedDriver implements MachineDriver {
  constructor(
    private readonly state: EmulatedState,
    readonly start: (address: string) => Promise<string>,
    /** Keeps the state folder's plan as the links now are (`status --emulate` reads it). */
    private readonly save: () => void,
  ) {}

  private machineOf(address: string) {
    const host = parseAddress(address).host;
    const machine = this.state.plan.machines.find((m) => m.host === host);
    if (!machine) throw new Error(`${address} is on no machine of this testbed`);
    return machine;
  }

  private pidOf = (address: string) => {
    const machine = this.machineOf(address);
    return workerPid(machine.ns, address, machine.nodes.some((n) => n.address === address && n.role === 'aggregator'));
  };
  kill = async (address: string) => signal(this.pidOf(address), 'SIGKILL', address);
  stop = async (address: string) => signal(this.pidOf(address), 'SIGSTOP', address);
  resume = async (address: string) => signal(this.pidOf(address), 'SIGCONT', address);

  async link(address: string, rateMbit: number): Promise<string> {
    const machine = this.machineOf(address);
    machine.link = { ...machine.link, rate_mbit: rateMbit };
    reshape(this.state.plan, machine, machine.link, this.state.netem);
    this.save();
    return `link of ${machine.host} shaped to ${rateMbit} Mbit/s both ways`;
  }

  async cpu(address: string, cores: number): Promise<string> {
    const machine = this.machineOf(address);
    return changeCpu(this.state.plan.tag, machine.host, cores, () => pidsIn(machine.ns));
  }
}
