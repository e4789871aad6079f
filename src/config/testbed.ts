/**
 * A config.json for a testbed of N machines named `<base>.1` … `<base>.N`, the last one the
 * aggregator, the `switches` before it switches, the rest clients spread evenly over the switches
 * (or, given `clients` and `perProcess`, that many clients to a machine, on ports of their own).
 * With `spines`, the last of those switches are spine switches, and the others (rack switches,
 * which have the clients) are spread evenly over them.
 */
import { DEFAULT_PORT } from './address';
import { quantizeSchema } from './schema';

export interface TestbedShape {
  base: string;
  /** Machines, the aggregator included; with `clients`, worked out from them. */
  nodes: number;
  /** Clients, in place of `nodes`: `perProcess` of them to a machine (ports port, port+1, …), one worker process each. */
  clients?: number;
  perProcess?: number;
  switches: number;
  /** Of the switches, how many are spines over the rest (0: every switch reports to the aggregator). */
  spines?: number;
  port?: number;
  experiment?: string;
  rounds?: number;
  /** Encrypt updates (CKKS, the aggregator holding the key); on unless set to false. */
  he?: boolean;
  /** Quantized packing (src/he/quantized.ts): each value rounded to this many bits; unset, CKKS takes the float values. */
  bits?: number;
}

/** Bits a value under `testbed init`'s quantized HE: at 8, HE costs nothing measurable in accuracy (bench/RESULTS.md section 8). */
export const INIT_BITS = 8;

export function testbedConfig(shape: TestbedShape): Record<string, unknown> {
  const port = shape.port ?? DEFAULT_PORT;
  const perProcess = shape.perProcess ?? 1;
  if (!Number.isInteger(perProcess) || perProcess < 1 || perProcess > 256) throw new Error(`--per-process: 1 to 256 clients in a process, got ${perProcess}`);
  if (perProcess > 1 && shape.clients === undefined) throw new Error('--per-process needs --clients (how many in all)');
  if (shape.clients !== undefined && port + perProcess - 1 > 65535) throw new Error(`--port ${port} leaves no room for ${perProcess} clients a machine`);
  // With `clients`, each client machine holds `perProcess` of them, one port each.
  const clientHosts = shape.clients === undefined ? undefined : Math.ceil(shape.clients / perProcess);
  if (clientHosts !== undefined) shape = { ...shape, nodes: clientHosts + shape.switches + 1 };
  // Racks take whole machines: fewer machines than racks would leave a rack with no client.
  const rackSwitches = shape.switches - (shape.spines ?? 0);
  if (clientHosts !== undefined && clientHosts < rackSwitches) throw new Error(`--clients ${shape.clients} at ${perProcess} a machine make ${clientHosts} client machines, fewer than the ${rackSwitches} rack switches: give fewer switches or a smaller --per-process`);
  const clients = shape.clients ?? shape.nodes - 1 - shape.switches;
  if (shape.bits !== undefined && !quantizeSchema.shape.bits.safeParse(shape.bits).success) throw new Error(`--bits: ${shape.bits} is not a width he.quantize.bits takes (a whole number, 2 to 24)`);
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(shape.base)) throw new Error(`--base: "${shape.base}" should be three octets, like 127.0.1`);
  if (shape.nodes > 254) throw new Error(`${clientHosts === undefined ? '--nodes' : '--clients with --per-process'}: at most 254 machines on one /24, got ${shape.nodes}`);
  if (clients < 1) throw new Error(`--nodes ${shape.nodes} with --switches ${shape.switches} leaves no client (needs nodes >= switches + 2)`);
  const spines = shape.spines ?? 0;
  const racks = shape.switches - spines;
  if (spines && racks < 1) throw new Error(`--spines ${spines} with --switches ${shape.switches} leaves no rack switch for the clients (needs switches > spines)`);
  const at = (i: number, offset = 0) => `${shape.base}.${i}:${port + offset}`;
  const hosts = clientHosts ?? clients;
  const switchAt = (s: number) => at(hosts + 1 + s);

  const others: Record<string, unknown> = {};
  for (let c = 0; c < clients; c++) {
    const entry: Record<string, unknown> = { type: 'client', client_number: clients, index: c };
    // Spread by machine: the clients of one machine (one process) share a rack switch.
    if (racks > 0) entry.switch = switchAt(Math.floor((Math.floor(c / perProcess) * racks) / hosts));
    others[at(Math.floor(c / perProcess) + 1, c % perProcess)] = entry;
  }
  for (let s = 0; s < racks; s++) others[switchAt(s)] = spines ? { type: 'switch', switch: switchAt(racks + Math.floor((s * spines) / racks)) } : { type: 'switch' };
  for (let s = racks; s < shape.switches; s++) others[switchAt(s)] = { type: 'switch' };
  others[at(shape.nodes)] = { type: 'aggregator' };

  return {
    experiment: shape.experiment ?? 'mnist-mlp',
    rounds: shape.rounds ?? 20,
    clients_per_round: clients,
    min_report_fraction: 0.5,
    model: { architecture: 'mlp', hidden_units: 128 },
    training: { epochs: 1, batch_size: 32, learning_rate: 0.5, strategy: 'fedavg' },
    data: { dataset: 'mnist', split: 'iid', seed: 42, test_size: 2000 },
    he: { enabled: shape.he ?? true, key_holder: 'aggregator', ...(shape.bits === undefined ? {} : { quantize: { bits: shape.bits } }) },
    timeouts: { push_ms: 30_000, request_ms: 30_000, round_ms: 300_000 },
    ...(perProcess > 1 ? { clients_per_process: perProcess } : {}),
    others,
  };
}

/** JSON with one line per `others` entry, so a 15-node file stays readable. */
export function formatConfig(config: Record<string, unknown>): string {
  const { others, ...rest } = config as { others: Record<string, unknown> };
  const head = JSON.stringify(rest, null, 2).replace(/\n}$/, '');
  const lines = Object.entries(others).map(([key, entry]) => `    ${JSON.stringify(key)}: ${JSON.stringify(entry).replace(/,"/g, ', "').replace(/":/g, '": ').replace(/^\{/, '{ ').replace(/\}$/, ' }')}`);
  return `${head},\n  "others": {\n${lines.join(',\n')}\n  }\n}\n`;
}
