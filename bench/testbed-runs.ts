/**
 * 3 and 5. Experiments on loopback testbeds, read back from outputs/ and the aggregator's central
 * logs: round time and bytes per round split by phase (15-node testbed, plaintext and HE), and
 * round time and aggregator memory as clients (3 to 24) and the model (100k, 1M parameters) grow.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatConfig, testbedConfig } from '../src/config/testbed';
import { modelParameters } from '../src/model/layout';
import type { RoundMetrics } from '../src/outputs';
import { nodeRounds, type Phase } from '../src/report/data';
import { pathsOf, roundFloors } from '../src/report/floor';
import { parseExperimentConfig } from '../src/config/load';
import { down, up } from '../scripts/testbed';
import { memoryMb } from '../test/helpers/proc-status';
import { log, median, ROOT } from './common';

export interface RunShape {
  name: string;
  clients: number;
  switches: number;
  /** Of the switches, how many are spines over the rest (see testbedConfig); none by default. */
  spines?: number;
  rounds: number;
  he: boolean;
  hiddenUnits?: number;
  base?: string;
  /** config.json's `he`, in place of the testbed's (HE on or off, as `he` says). */
  heSettings?: Record<string, unknown>;
  /** Mutual TLS between the nodes (on loopback the default is plain HTTP). */
  tls?: boolean;
  /** Clients to a loopback machine and a worker process (testbed init --per-process). */
  perProcess?: number;
  /** Any other change to the config (a tree of another shape). */
  edit?: (config: Record<string, any>) => void;
}

export interface TestbedRun {
  name: string;
  clients: number;
  switches: number;
  parameters: number;
  he: boolean;
  rounds: number;
  /** How many runs of this shape the numbers come from (see combineRuns). */
  runs: number;
  round_s: number;
  /** Every steady round's time (all but round 1), of every run. */
  steady_round_s: number[];
  bytes_per_round_at_aggregator: number;
  /** The same, split: what the aggregator sent (models, down the tree) and what it received (sums, up). */
  bytes_down_per_round_at_aggregator: number;
  bytes_up_per_round_at_aggregator: number;
  /** Median over steady rounds (and over the nodes doing it) of each phase, in seconds. */
  phases_s: Partial<Record<Phase, number>>;
  aggregator_rss_mb_max: number;
  final_accuracy: number;
  /** Median of what one client sent a round, bytes. */
  update_bytes: number;
  /** Values clipped by quantization, summed over a round's clients, mean over rounds; null unquantized. */
  clipped_per_round: number | null;
  /** CPU seconds per steady round, summed over the processes of each role (Linux /proc; null elsewhere). */
  cpu_s_per_round: Record<'client' | 'switch' | 'aggregator', number> | null;
  /** Each steady round's time over its floor (report/floor.ts), the median. */
  over_floor?: number;
  /** The largest peak resident memory (VmHWM) of a worker process of each role, MB (Linux /proc). */
  process_rss_mb_max?: Record<'client' | 'switch', number>;
  /** The aggregator's peak resident memory (VmHWM), MB, last read before it exited (Linux /proc). */
  aggregator_hwm_mb?: number;
}

/** A process's peak resident memory so far (VmHWM), MB; undefined once it is gone. */
function peakMb(pid: number): number | undefined {
  const mb = memoryMb(pid, 'VmHWM');
  return mb === undefined ? undefined : Math.round(mb);
}

/** user + system CPU seconds of a process so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Each worker process of the testbed once (its nodes share a pid file's pid), with its role. */
function workerPids(state: string, others: Record<string, { type: string }>): { role: 'client' | 'switch'; pid: number }[] {
  const pids = join(state, 'pids');
  const byPid = new Map<number, 'client' | 'switch'>();
  for (const file of readdirSync(pids)) {
    const address = file.replace(/\.pid$/, '').replace(/-(\d+)$/, ':$1');
    byPid.set(Number(readFileSync(join(pids, file), 'utf8')), others[address]?.type as 'client' | 'switch');
  }
  return [...byPid].map(([pid, role]) => ({ role, pid }));
}

/** The largest peak resident memory of a process of each role, MB. */
function peakRss(state: string, others: Record<string, { type: string }>): Record<'client' | 'switch', number> {
  const peaks = { client: 0, switch: 0 };
  for (const { role, pid } of workerPids(state, others)) peaks[role] = Math.max(peaks[role], peakMb(pid) ?? 0);
  return peaks;
}

/** Every testbed process by role, and a way to read their CPU time together. */
function cpuMeter(state: string, others: Record<string, { type: string }>, aggregatorPid: number) {
  const roles: { role: 'client' | 'switch' | 'aggregator'; pid: number }[] = workerPids(state, others);
  roles.push({ role: 'aggregator', pid: aggregatorPid });
  return () => {
    const total = { client: 0, switch: 0, aggregator: 0 };
    for (const { role, pid } of roles) total[role as keyof typeof total] += cpuSeconds(pid);
    return total;
  };
}

export async function testbedRun(shape: RunShape): Promise<TestbedRun> {
  const nodes = shape.clients + shape.switches + 1;
  log(`  testbed ${shape.name}: ${shape.clients} clients${shape.perProcess ? ` (${shape.perProcess} to a process)` : ''}, ${shape.switches} switches, ${shape.rounds} rounds, HE ${shape.he ? 'on' : 'off'}`);
  const dir = mkdtempSync(join(tmpdir(), 'fl-bench-'));
  const layout = shape.perProcess ? { clients: shape.clients, perProcess: shape.perProcess } : {};
  const config = testbedConfig({ base: shape.base ?? '127.0.1', nodes, ...layout, switches: shape.switches, spines: shape.spines, rounds: shape.rounds, experiment: shape.name, he: shape.he }) as Record<string, any>;
  if (shape.hiddenUnits) config.model = { ...config.model, hidden_units: shape.hiddenUnits };
  if (shape.heSettings) config.he = shape.heSettings;
  if (shape.tls !== undefined) config.tls = shape.tls;
  shape.edit?.(config);
  const file = join(dir, 'config.json');
  writeFileSync(file, formatConfig(config));
  const state = join(dir, 'state');
  const logs = join(dir, 'logs');
  const outputs = join(dir, 'outputs');
  // Its own clients' key: runs of other HE parameters must not find this one's (nor the project's keys/).
  if ((await up({ config: file, state, timeout: 120_000, logs, quiet: true, heKey: join(dir, 'he-secret.json') })) !== 0) throw new Error(`${shape.name}: the testbed did not start`);
  let cpu: TestbedRun['cpu_s_per_round'] = null;
  let rss: TestbedRun['process_rss_mb_max'];
  let aggregatorHwm: number | undefined;
  try {
    const agg = spawn(process.execPath, [join(ROOT, 'main.js'), 'agg', '--config', file, '--token-file', join(state, 'token'), '--logs', logs, '--outputs', outputs, '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // CPU time from the end of round 1 (keys, threads, first model) to the end of the last round.
    const meter = existsSync('/proc/self/stat') ? cpuMeter(state, config.others, agg.pid!) : undefined;
    let afterFirst: ReturnType<NonNullable<typeof meter>> | undefined;
    agg.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter((l) => l.startsWith('round '))) {
        log(`    ${line}`);
        const round = Number(/^round\s+(\d+)\//.exec(line)?.[1]);
        if (meter && round === 1) afterFirst = meter();
        if (meter && afterFirst && round === shape.rounds) {
          const end = meter();
          const per = (k: keyof typeof end) => Math.round(((end[k] - afterFirst![k]) / (shape.rounds - 1)) * 100) / 100;
          cpu = { client: per('client'), switch: per('switch'), aggregator: per('aggregator') };
        }
      }
    });
    // Its peak, read until it exits (a peak only grows: the last read is the run's but for its last moments).
    const watch = setInterval(() => (aggregatorHwm = peakMb(agg.pid!) ?? aggregatorHwm), 200);
    const code = await new Promise<number | null>((done) => agg.on('exit', done)).finally(() => clearInterval(watch));
    if (code !== 0) throw new Error(`${shape.name}: the aggregator exited with ${code}`);
    if (existsSync('/proc/self/status')) rss = peakRss(state, config.others);
  } finally {
    await down({ state, timeout: 5000 });
  }
  return { ...readRun(shape, config, logs, outputs), cpu_s_per_round: cpu, ...(rss ? { process_rss_mb_max: rss } : {}), ...(aggregatorHwm ? { aggregator_hwm_mb: aggregatorHwm } : {}) };
}

function readRun(shape: RunShape, config: Record<string, any>, logs: string, outputs: string): Omit<TestbedRun, 'cpu_s_per_round'> {
  const rows: RoundMetrics[] = JSON.parse(readFileSync(join(outputs, shape.name, 'metrics.json'), 'utf8')).rounds;
  const steady = rows.slice(1); // round 1 also starts keys, threads and the first model
  const aggregator = Object.entries(config.others as Record<string, { type: string }>).find(([, e]) => e.type === 'aggregator')![0];
  const clusterDir = join(logs, 'cluster', shape.name);
  const workers = Object.entries(config.others as Record<string, { type: 'client' | 'switch' | 'aggregator' }>)
    .filter(([, e]) => e.type !== 'aggregator')
    .map(([address, e]) => ({ node: address, address, role: e.type as 'client' | 'switch', ...JSON.parse(readFileSync(join(clusterDir, `${address.replace(':', '-')}_${shape.name}.json`), 'utf8')) }));
  const perNode = nodeRounds(aggregator, steady, workers).filter((r) => r.round > 1);
  const phases: Partial<Record<Phase, number>> = {};
  for (const phase of ['train', 'encrypt', 'send', 'aggregate', 'decrypt', 'evaluate'] as Phase[]) {
    // Clients train, encrypt, send (the transfer, until their switch took the update) and decrypt;
    // aggregation is the switches' sums plus the aggregator's (which decrypts, when it holds the key).
    const role = phase === 'train' || phase === 'encrypt' || phase === 'send' || phase === 'decrypt' ? 'client' : phase === 'aggregate' ? 'switch' : 'aggregator';
    const values = perNode.filter((r) => r.role === role && r.phases[phase] !== undefined).map((r) => r.phases[phase]!);
    if (values.length) phases[phase] = median(values) / 1000;
  }
  phases.aggregate = (phases.aggregate ?? 0) + median(steady.map((r) => r.aggregation_ms)) / 1000;
  const own = JSON.parse(readFileSync(join(logs, `${aggregator.replace(':', '-')}_${shape.name}.json`), 'utf8')).iteration as { rss_bytes: number }[];
  const sent = workers.filter((w) => w.role === 'client').flatMap((w) => w.iteration as { round: number; update_bytes: number; clipped?: number }[]);
  const clippedByRound = new Map<number, number>();
  for (const entry of sent) if (entry.clipped !== undefined) clippedByRound.set(entry.round, (clippedByRound.get(entry.round) ?? 0) + entry.clipped);
  const floors = roundFloors(steady, workers, pathsOf(parseExperimentConfig(config)));
  return {
    over_floor: median(steady.filter((r) => floors.get(r.round)!.ms > 0).map((r) => r.round_ms / floors.get(r.round)!.ms)),
    name: shape.name,
    clients: shape.clients,
    switches: shape.switches,
    parameters: modelParameters(parseExperimentConfig(config)),
    he: shape.heSettings ? shape.heSettings.enabled === true : shape.he,
    rounds: shape.rounds,
    runs: 1,
    round_s: median(steady.map((r) => r.round_ms)) / 1000,
    steady_round_s: steady.map((r) => r.round_ms / 1000),
    bytes_per_round_at_aggregator: median(steady.map((r) => r.bytes_up + r.bytes_down)),
    bytes_down_per_round_at_aggregator: median(steady.map((r) => r.bytes_down)),
    bytes_up_per_round_at_aggregator: median(steady.map((r) => r.bytes_up)),
    phases_s: phases,
    aggregator_rss_mb_max: Math.round(Math.max(...own.map((e) => e.rss_bytes)) / 1e6),
    final_accuracy: rows[rows.length - 1].accuracy,
    update_bytes: median(sent.map((e) => e.update_bytes)),
    clipped_per_round: clippedByRound.size ? [...clippedByRound.values()].reduce((a, b) => a + b, 0) / clippedByRound.size : null,
  };
}

/**
 * Several runs of one shape as one: round time the median of all their steady rounds; phases, bytes
 * and final accuracy the median of the runs'; CPU the mean. Runs share the seed, so plaintext runs
 * learn the same model; HE runs differ in the last digits (fresh encryption noise every round).
 */
export function combineRuns(runs: TestbedRun[]): TestbedRun {
  if (runs.length === 1) return runs[0];
  const phases: Partial<Record<Phase, number>> = {};
  for (const phase of Object.keys(runs[0].phases_s) as Phase[]) phases[phase] = median(runs.map((r) => r.phases_s[phase] ?? 0));
  const cpus = runs.map((r) => r.cpu_s_per_round).filter((c) => c !== null);
  const meanCpu = (role: 'client' | 'switch' | 'aggregator') => Math.round((cpus.reduce((n, c) => n + c[role], 0) / cpus.length) * 100) / 100;
  const steady = runs.flatMap((r) => r.steady_round_s);
  return {
    ...runs[0],
    runs: runs.length,
    round_s: median(steady),
    steady_round_s: steady,
    bytes_per_round_at_aggregator: median(runs.map((r) => r.bytes_per_round_at_aggregator)),
    bytes_down_per_round_at_aggregator: median(runs.map((r) => r.bytes_down_per_round_at_aggregator)),
    bytes_up_per_round_at_aggregator: median(runs.map((r) => r.bytes_up_per_round_at_aggregator)),
    phases_s: phases,
    aggregator_rss_mb_max: Math.max(...runs.map((r) => r.aggregator_rss_mb_max)),
    final_accuracy: median(runs.map((r) => r.final_accuracy)),
    cpu_s_per_round: cpus.length ? { client: meanCpu('client'), switch: meanCpu('switch'), aggregator: meanCpu('aggregator') } : null,
  };
}
