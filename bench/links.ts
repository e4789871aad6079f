/**
 * 7. What switches save on a constrained link: the emulated testbed (a namespace per machine,
 * tbf-shaped links, workers started over ssh), 12 clients straight to the aggregator, or through
 * 2 or 3 switches; the aggregator's link at 1 Gbit/s, then 100 Mbit/s (clients and switches at
 * 1 Gbit/s); plaintext and HE. One testbed per topology: the aggregator's rate is changed with tc
 * between experiments, and each experiment is its own config pushed to the same workers.
 * HE runs hold the key at the clients, the only key mode in which clients may report directly.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatConfig, testbedConfig } from '../src/config/testbed';
import type { RoundMetrics } from '../src/outputs';
import { reshape } from '../src/emulate/network';
import { aggregatorOf, downEmulated, upEmulated } from '../src/emulate/testbed';
import { readEmulatedState } from '../src/emulate/state';
import { missingForEmulation } from '../src/emulate/system';
import { ensureToken } from '../scripts/testbed';
import { log, median, ROOT } from './common';

export interface LinkRow {
  switches: number;
  aggregator_mbit: number;
  he: boolean;
  round_s: number;
  /** Bytes per steady round on the aggregator's link, both ways, as the kernel counted them. */
  link_bytes_per_round: number;
  /** The aggregator's own count of the same (HTTP), for comparison. */
  app_bytes_per_round: number;
  up_bytes_per_round: number;
  down_bytes_per_round: number;
  final_accuracy: number;
}

export interface LinksResults {
  command: string;
  date: string;
  rounds: number;
  rows: LinkRow[];
  /** Why the section was not run (no root), when it was not. */
  skipped?: string;
}

const CLIENTS = 12;
const RATES = [1000, 100];

function experimentConfig(switches: number, aggregatorMbit: number, he: boolean, rounds: number, name: string): Record<string, any> {
  const config = testbedConfig({ base: '10.10.1', nodes: CLIENTS + switches + 1, switches, rounds, experiment: name, he }) as Record<string, any>;
  config.he = { enabled: he, key_holder: 'clients' };
  config.links = { client: { rate_mbit: 1000 }, switch: { rate_mbit: 1000 }, aggregator: { rate_mbit: aggregatorMbit } };
  return config;
}

export async function linkCosts(rounds: number, command: string): Promise<LinksResults> {
  const missing = missingForEmulation();
  const date = new Date().toISOString();
  if (missing.length) return { command, date, rounds, rows: [], skipped: `needs ${missing.join('; ')}` };
  const rows: LinkRow[] = [];
  for (const switches of [0, 2, 3]) rows.push(...(await topology(switches, rounds)));
  return { command, date, rounds, rows };
}

async function topology(switches: number, rounds: number): Promise<LinkRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fl-links-'));
  const project = join(dir, 'project');
  mkdirSync(project);
  symlinkSync(join(ROOT, 'main.js'), join(project, 'main.js'));
  const state = join(dir, 'state');
  const first = join(dir, 'config.json');
  // Started with the HE config, so the clients get the key over ssh; plaintext configs are pushed later.
  writeFileSync(first, formatConfig(experimentConfig(switches, RATES[0], true, rounds, 'start')));
  log(`  links: ${CLIENTS} clients, ${switches} switches: starting the emulated testbed`);
  const said: string[] = [];
  const rows: LinkRow[] = [];
  try {
    const up = await upEmulated({ config: first, state, dir: project, makeToken: () => ensureToken(state), timeout: 120_000, measure: false, print: (line) => said.push(line) });
    if (up !== 0) throw new Error(`links: the emulated testbed with ${switches} switches did not start:\n${said.join('\n')}`);
    const { plan } = readEmulatedState(state);
    const aggregator = aggregatorOf(plan);
    for (const rate of RATES) {
      reshape(plan, aggregator, { rate_mbit: rate });
      for (const he of [false, true]) {
        const name = `links-${switches}sw-${rate}mbit-${he ? 'he' : 'plain'}`;
        const file = join(dir, `${name}.json`);
        writeFileSync(file, formatConfig(experimentConfig(switches, rate, he, rounds, name)));
        const code = await aggregate(aggregator.ns, file, state, project, join(dir, 'outputs'));
        if (code !== 0) throw new Error(`${name}: the aggregator exited with ${code}`);
        rows.push(readRow(join(dir, 'outputs', name, 'metrics.json'), switches, rate, he));
        const row = rows[rows.length - 1];
        log(`    ${name}: ${row.round_s.toFixed(2)} s per round, ${(row.link_bytes_per_round / 1e6).toFixed(1)} MB on the aggregator's link`);
      }
    }
  } finally {
    await downEmulated(state, () => undefined);
  }
  return rows;
}

function aggregate(ns: string, config: string, state: string, project: string, outputs: string): Promise<number | null> {
  const args = ['netns', 'exec', ns, process.execPath, join(ROOT, 'main.js'), 'agg', '--config', config, '--token-file', join(state, 'token'), '--logs', join(project, 'logs'), '--outputs', outputs, '--log-level', 'warn'];
  const agg = spawn('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((done) => agg.on('exit', done));
}

function readRow(metricsFile: string, switches: number, rate: number, he: boolean): LinkRow {
  const rows: RoundMetrics[] = JSON.parse(readFileSync(metricsFile, 'utf8')).rounds;
  const steady = rows.slice(1); // round 1 also loads the first model and starts HE threads
  const per = (pick: (r: RoundMetrics) => number) => median(steady.map(pick));
  return {
    switches,
    aggregator_mbit: rate,
    he,
    round_s: per((r) => r.round_ms) / 1000,
    link_bytes_per_round: per((r) => (r.link_bytes_up ?? 0) + (r.link_bytes_down ?? 0)),
    app_bytes_per_round: per((r) => r.bytes_up + r.bytes_down),
    up_bytes_per_round: per((r) => r.link_bytes_up ?? 0),
    down_bytes_per_round: per((r) => r.link_bytes_down ?? 0),
    final_accuracy: rows[rows.length - 1].accuracy,
  };
}

const topologyName = (switches: number) => (switches ? `${switches} switches` : 'direct');

/** Round time by topology, one panel per aggregator link rate, plaintext and HE side by side. */
export function linksChart(links: LinksResults) {
  const values = links.rows.map((r) => ({
    topology: topologyName(r.switches),
    link: `aggregator link ${r.aggregator_mbit >= 1000 ? `${r.aggregator_mbit / 1000} Gbit/s` : `${r.aggregator_mbit} Mbit/s`}`,
    mode: r.he ? 'HE (CKKS)' : 'plaintext',
    seconds: r.round_s,
    MB: r.link_bytes_per_round / 1e6,
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${CLIENTS} clients on the emulated testbed: seconds per round, and MB per round on the aggregator's link`,
    data: { values },
    vconcat: (['seconds', 'MB'] as const).map((field) => ({
      width: 150,
      height: 160,
      mark: 'bar',
      encoding: {
        column: { field: 'link', type: 'nominal', title: null, sort: 'descending' },
        x: { field: 'topology', type: 'nominal', title: null, sort: ['direct', '2 switches', '3 switches'], axis: { labelAngle: 0 } },
        xOffset: { field: 'mode', type: 'nominal' },
        y: { field, type: 'quantitative', title: field === 'seconds' ? 'seconds per round' : "MB per round, aggregator's link" },
        color: { field: 'mode', type: 'nominal', title: null },
      },
    })),
  };
}

export function formatLinks(links: LinksResults | undefined): string[] {
  const head = ['## 7. Links: what switches save on the aggregator\'s link (emulated testbed)', ''];
  if (!links) return [...head, 'Not run yet: `sudo npm run bench -- links`.', ''];
  if (links.skipped) return [...head, `Not run (${links.skipped}).`, ''];
  const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
  return [
    ...head,
    `Made by \`${links.command}\` on ${links.date.slice(0, 10)}. ${CLIENTS} clients (MLP, 101,770 parameters), a network namespace per machine, links shaped with tbf (clients and switches 1 Gbit/s, the aggregator as below), workers started over ssh; ${links.rounds} rounds each, medians of the steady rounds (2 on). HE holds the key at the clients: only then may clients report to the aggregator directly, and the global model goes down encrypted. Bytes on the link are the kernel's count of the aggregator's interface (both ways, headers and acknowledgements included); the aggregator's own count is beside it.`,
    '',
    '| topology | aggregator link | mode | s / round | MB / round on the link | up | down | aggregator\'s own count | accuracy |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...links.rows.map(
      (r) =>
        `| ${topologyName(r.switches)} | ${r.aggregator_mbit} Mbit/s | ${r.he ? 'HE' : 'plaintext'} | ${r.round_s.toFixed(2)} | ${mb(r.link_bytes_per_round)} | ${mb(r.up_bytes_per_round)} | ${mb(r.down_bytes_per_round)} | ${mb(r.app_bytes_per_round)} | ${(r.final_accuracy * 100).toFixed(2)}% |`,
    ),
    '',
    '![links](links.png)',
    '',
  ];
}
