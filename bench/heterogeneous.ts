/**
 * 14. Machines as a lab has them, on the emulated testbed (root): 12 clients under 2 switches,
 * plaintext MLP. Each client machine is capped by its cgroup at what this 2-core machine can give
 * 12 at once (1/6 of a core: a larger cap would bind nobody), and a slow machine at a quarter of
 * that. Round time and accuracy with 0, 1, 3 and 6 slow machines, waiting for every client (the
 * default) and with over-selection (9 wanted, up to 12 selected, each switch closing once 3 in 4 of
 * its clients are in, plus a second); who held each round. Then what the network adds to each
 * node's own byte count, with the clients' links at 5, 20 and 100 Mbit/s.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatConfig, testbedConfig } from '../src/config/testbed';
import type { RoundMetrics } from '../src/outputs';
import { groupName, setCpu } from '../src/emulate/cgroups';
import { reshape } from '../src/emulate/network';
import { aggregatorOf, downEmulated, upEmulated } from '../src/emulate/testbed';
import { readEmulatedState } from '../src/emulate/state';
import { missingForEmulation } from '../src/emulate/system';
import { computeProblem } from '../src/emulate/cgroups';
import { ensureToken } from '../scripts/testbed';
import { log, median, ROOT } from './common';

const CLIENTS = 12;
const SWITCHES = 2;
/** What 2 cores give 12 machines training at once. */
const NORMAL_CPU = 2 / CLIENTS;
const SLOW_CPU = NORMAL_CPU / 4;
/** Slow machines, alternating between the two racks (clients 1-6 under one switch, 7-12 under the other). */
const SLOW_ORDER = [1, 7, 2, 8, 3, 9];
const OVER_SELECTION = { clients_per_round: 9, stragglers: { over_select: 12 / 9, close_fraction: 0.75, grace_ms: 1000 } };
const RATES = [5, 20, 100];

export interface HeterogeneousRow {
  slow: number;
  policy: 'wait for all' | 'over-selection';
  round_s: number;
  /** Per round (2 on): the client whose update came last, and how long after the median one. */
  held: { round: number; by?: string; s: number }[];
  /** Selected clients left out of a round, per steady round. */
  left_out: number;
  final_accuracy: number;
}

export interface OverheadRow {
  client_mbit: number;
  role: string;
  /** The kernel's count of each node's interface over its own count, less 1: median and most over the nodes of the role. */
  median: number;
  most: number;
  /** Of the TCP segments the role's machines sent in the run, the share sent again (their /proc/net/snmp): the median machine. */
  retransmitted: number;
}

export interface HeterogeneousResults {
  command: string;
  date: string;
  rounds: number;
  normal_cpu: number;
  slow_cpu: number;
  rows: HeterogeneousRow[];
  overhead: OverheadRow[];
  skipped?: string;
}

function experimentConfig(name: string, rounds: number, changes: Record<string, unknown> = {}): Record<string, any> {
  const config = testbedConfig({ base: '10.10.1', nodes: CLIENTS + SWITCHES + 1, switches: SWITCHES, rounds, experiment: name, he: false }) as Record<string, any>;
  config.links = { client: { rate_mbit: 100 }, switch: { rate_mbit: 1000 }, aggregator: { rate_mbit: 1000 } };
  config.compute = { client: { cpu: NORMAL_CPU } };
  // A slow machine takes four times as long: it must not be given up for down meanwhile.
  config.timeouts = { push_ms: 60_000, request_ms: 120_000, round_ms: 600_000, heartbeat_ms: 5000 };
  return { ...config, ...changes };
}

export async function heterogeneousCosts(rounds: number, command: string): Promise<HeterogeneousResults> {
  const date = new Date().toISOString();
  const missing = [...missingForEmulation(), ...(computeProblem() ? [computeProblem()!] : [])];
  const base = { command, date, rounds, normal_cpu: NORMAL_CPU, slow_cpu: SLOW_CPU };
  if (missing.length) return { ...base, rows: [], overhead: [], skipped: `needs ${missing.join('; ')}` };
  const dir = mkdtempSync(join(tmpdir(), 'fl-heterogeneous-'));
  const project = join(dir, 'project');
  mkdirSync(project);
  symlinkSync(join(ROOT, 'main.js'), join(project, 'main.js'));
  const state = join(dir, 'state');
  const first = join(dir, 'config.json');
  writeFileSync(first, formatConfig(experimentConfig('start', rounds)));
  log(`  heterogeneous: ${CLIENTS} clients, ${SWITCHES} switches, each client at ${NORMAL_CPU.toFixed(3)} of a core: starting the emulated testbed`);
  const said: string[] = [];
  const rows: HeterogeneousRow[] = [];
  const overhead: OverheadRow[] = [];
  try {
    const up = await upEmulated({ config: first, state, dir: project, makeToken: () => ensureToken(state), timeout: 120_000, measure: false, print: (line) => said.push(line) });
    if (up !== 0) throw new Error(`heterogeneous: the emulated testbed did not start:\n${said.join('\n')}`);
    const { plan } = readEmulatedState(state);
    const aggregator = aggregatorOf(plan);
    const run = async (name: string, changes: Record<string, unknown>, rounds_: number) => {
      const file = join(dir, `${name}.json`);
      writeFileSync(file, formatConfig(experimentConfig(name, rounds_, changes)));
      const code = await aggregate(aggregator.ns, file, state, project, join(dir, 'outputs'));
      if (code !== 0) throw new Error(`${name}: the aggregator exited with ${code}`);
      return JSON.parse(readFileSync(join(dir, 'outputs', name, 'metrics.json'), 'utf8')).rounds as RoundMetrics[];
    };
    for (const slow of [0, 1, 3, 6]) {
      const slowHosts = new Set(SLOW_ORDER.slice(0, slow).map((i) => `10.10.1.${i}`));
      for (const machine of plan.machines.filter((m) => m.nodes.some((n) => n.role === 'client'))) setCpu(groupName(plan.tag, machine.host), slowHosts.has(machine.host) ? SLOW_CPU : NORMAL_CPU);
      for (const policy of slow ? (['wait for all', 'over-selection'] as const) : (['wait for all'] as const)) {
        const name = `hetero-${slow}slow-${policy === 'over-selection' ? 'over' : 'all'}`;
        const row = readRow(await run(name, policy === 'over-selection' ? OVER_SELECTION : {}, rounds), slow, policy);
        rows.push(row);
        log(`    ${name}: ${row.round_s.toFixed(2)} s per round, ${row.left_out} left out a round, accuracy ${(row.final_accuracy * 100).toFixed(1)}%`);
      }
    }
    for (const machine of plan.machines.filter((m) => m.nodes.some((n) => n.role === 'client'))) setCpu(groupName(plan.tag, machine.host), NORMAL_CPU);
    for (const rate of RATES) {
      for (const machine of plan.machines.filter((m) => m.nodes.some((n) => n.role === 'client'))) reshape(plan, machine, { rate_mbit: rate });
      const name = `overhead-${rate}mbit`;
      const before = new Map(plan.machines.map((m) => [m.host, tcpSegments(m.ns)]));
      await run(name, { links: { client: { rate_mbit: rate }, switch: { rate_mbit: 1000 }, aggregator: { rate_mbit: 1000 } } }, 3);
      const resent = new Map(plan.machines.map((m) => {
        const [was, now] = [before.get(m.host)!, tcpSegments(m.ns)];
        return [m.host, (now.retransmitted - was.retransmitted) / Math.max(1, now.sent - was.sent)];
      }));
      overhead.push(...overheadOf(join(project, 'logs'), name, plan.machines.flatMap((m) => m.nodes), rate, resent));
      log(`    ${name}: ${overhead.filter((o) => o.client_mbit === rate).map((o) => `${o.role} +${(o.median * 100).toFixed(1)}% (most +${(o.most * 100).toFixed(1)}%; ${(o.retransmitted * 100).toFixed(1)}% of segments sent again)`).join(', ')}`);
    }
  } finally {
    await downEmulated(state, () => undefined);
  }
  return { ...base, rows, overhead };
}

function aggregate(ns: string, config: string, state: string, project: string, outputs: string): Promise<number | null> {
  const args = ['netns', 'exec', ns, process.execPath, join(ROOT, 'main.js'), 'agg', '--config', config, '--token-file', join(state, 'token'), '--logs', join(project, 'logs'), '--outputs', outputs, '--log-level', 'warn'];
  const agg = spawn('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((done) => agg.on('exit', done));
}

function readRow(rows: RoundMetrics[], slow: number, policy: HeterogeneousRow['policy']): HeterogeneousRow {
  const steady = rows.slice(1); // round 1 also loads the first model
  return {
    slow,
    policy,
    round_s: median(steady.map((r) => r.round_ms)) / 1000,
    held: steady.map((r) => ({ round: r.round, ...(r.held_by ? { by: r.held_by } : {}), s: ((r.straggling_ms ?? 0) + r.waiting_ms) / 1000 })),
    left_out: median(steady.map((r) => r.missing.length)),
    final_accuracy: rows[rows.length - 1].accuracy,
  };
}

/** A namespace's TCP counters (its own /proc/net/snmp): segments sent, and sent again. */
function tcpSegments(ns: string): { sent: number; retransmitted: number } {
  const lines = execFileSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('Tcp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const value = (name: string) => Number(values[names.indexOf(name)]);
  return { sent: value('OutSegs'), retransmitted: value('RetransSegs') };
}

/** Each node's kernel count over its own in one experiment (rounds 2 on), by role: the median and the most; and the share of segments its machine sent again. */
function overheadOf(logs: string, experiment: string, nodes: { address: string; role: string }[], rate: number, resent: Map<string, number>): OverheadRow[] {
  const byRole = new Map<string, number[]>();
  const resentByRole = new Map<string, number[]>();
  for (const { address, role } of nodes) {
    const file = join(logs, `${address.replace(':', '-')}_${experiment}.json`);
    if (!existsSync(file)) continue;
    const entries: Record<string, number>[] = JSON.parse(readFileSync(file, 'utf8')).iteration.filter((e: { round: number }) => e.round > 1);
    const sum = (field: string) => entries.reduce((n, e) => n + (e[field] ?? 0), 0);
    const own = sum('byte_send') + sum('byte_received');
    const link = sum('link_byte_send') + sum('link_byte_received');
    if (own > 0 && link > 0) byRole.set(role, [...(byRole.get(role) ?? []), link / own - 1]);
    resentByRole.set(role, [...(resentByRole.get(role) ?? []), resent.get(address.split(':')[0]) ?? 0]);
  }
  return [...byRole].map(([role, ratios]) => ({ client_mbit: rate, role, median: median(ratios), most: Math.max(...ratios), retransmitted: median(resentByRole.get(role)!) }));
}

const runName = (r: HeterogeneousRow) => `${r.slow} slow, ${r.policy}`;

/** Who held each round: one row per run, one cell per round, its colour the seconds a slow or missing client cost it. */
export function heldChart(results: HeterogeneousResults) {
  const values = results.rows.flatMap((r) => r.held.map((h) => ({ run: runName(r), round: h.round, seconds: h.s, by: h.by ? `.${h.by.split(':')[0].split('.').pop()}` : '' })));
  const x = { field: 'round', type: 'ordinal', title: 'round', axis: { labelAngle: 0 } };
  const y = { field: 'run', type: 'nominal', title: null, sort: results.rows.map(runName) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Who held each round (the last client in), and for how long', subtitle: `${CLIENTS} clients, slow ones at a quarter of the others' CPU; a client by its address's last number` },
    width: 420,
    height: 22 * results.rows.length,
    background: 'white',
    data: { values },
    layer: [
      { mark: 'rect', encoding: { x, y, color: { field: 'seconds', type: 'quantitative', title: 's held', scale: { scheme: 'oranges', domainMin: 0 } } } },
      { mark: { type: 'text', fontSize: 10 }, encoding: { x, y, text: { field: 'by' } } },
    ],
  };
}

export function formatHeterogeneous(results: HeterogeneousResults | undefined): string[] {
  const head = ['## 14. Machines as a lab has them: slow clients, over-selection, and what the network adds (emulated testbed)', ''];
  if (!results) return [...head, 'Not run yet: `sudo npm run bench -- heterogeneous`.', ''];
  if (results.skipped) return [...head, `Not run (${results.skipped}).`, ''];
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    ...head,
    `Made by \`${results.command}\` on ${results.date.slice(0, 10)}. ${CLIENTS} clients (MLP, 101,770 parameters, plaintext) under ${SWITCHES} switches, a network namespace per machine (clients' links 100 Mbit/s), each client machine capped by its cgroup at ${results.normal_cpu.toFixed(3)} of a core (what 2 cores give 12 at once: a quarter of a whole core would bind nobody here) and a slow one at a quarter of that, ${results.slow_cpu.toFixed(3)}. ${results.rounds} rounds each, medians of rounds 2 on. Over-selection: 9 clients wanted, up to 12 selected (every one ready once 9 are: a slow client still busy with the last round is not waited for), each switch closing once 3 in 4 of its clients are in, plus 1 s; a later client's work is wasted. The network's overhead is explained by the last column: at 5 Mbit/s the clients' token buckets drop what would wait more than 100 ms, and the switch sends it again.`,
    '',
    '| slow machines | policy | s / round | clients left out a round | accuracy |',
    '| --- | --- | --- | --- | --- |',
    ...results.rows.map((r) => `| ${r.slow} | ${r.policy} | ${r.round_s.toFixed(2)} | ${r.left_out} | ${pct(r.final_accuracy)} |`),
    '',
    '![who held each round](heterogeneous.png)',
    '',
    `What the network adds to each node's own byte count (the kernel's count of its interface over the node's own, less 1; rounds 2 and 3 of 3), with the clients' links at each rate (switches and the aggregator at 1 Gbit/s):`,
    '',
    '| clients\' link | role | kernel over own: median | most | TCP segments sent again (median machine) |',
    '| --- | --- | --- | --- | --- |',
    ...results.overhead.map((o) => `| ${o.client_mbit} Mbit/s | ${o.role} | +${pct(o.median)} | +${pct(o.most)} | ${pct(o.retransmitted)} |`),
    '',
  ];
}
