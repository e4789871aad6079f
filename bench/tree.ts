/**
 * 9. The model relayed down, and switches of switches: the bytes at the aggregator per round for
 * 12 clients reporting flat (straight to it), through one level of switches (4, of 3 clients each),
 * and through two (those 4 as rack switches under one spine), in plaintext and in both key modes
 * of quantized HE. The model goes down the same tree the sums come up.
 *   npm run bench -- tree      only this section, the others kept from bench/results.json
 */
import type { ChartSpec } from '../src/report/charts';
import { fixed as n, megabytes as mb } from './common';
import { testbedRun, type TestbedRun } from './testbed-runs';

const CLIENTS = 12;

export interface TreeRun {
  mode: string;
  topology: string;
  run: TestbedRun;
}

export interface TreeResults {
  command: string;
  runs: TreeRun[];
}

const TOPOLOGIES = [
  { topology: 'flat', switches: 0, spines: 0 },
  { topology: 'one level', switches: 4, spines: 0 },
  { topology: 'two levels', switches: 5, spines: 1 },
];

const MODES: { mode: string; he: Record<string, unknown>; flat: boolean }[] = [
  { mode: 'plaintext float32', he: { enabled: false }, flat: true },
  // With the key at the aggregator no client may report to it directly: no flat run.
  { mode: 'HE, key at the aggregator, 8 bits', he: { enabled: true, key_holder: 'aggregator', quantize: { bits: 8 } }, flat: false },
  { mode: 'HE, key at the clients, 8 bits', he: { enabled: true, key_holder: 'clients', quantize: { bits: 8 } }, flat: true },
];

export async function treeComparison(quick: boolean, command: string): Promise<TreeResults> {
  const rounds = quick ? 3 : 10;
  const runs: TreeRun[] = [];
  for (const [m, { mode, he, flat }] of MODES.entries()) {
    for (const [t, { topology, switches, spines }] of TOPOLOGIES.entries()) {
      if (!switches && !flat) continue;
      const run = await testbedRun({ name: `tree-${m}-${t}`, clients: CLIENTS, switches, spines, rounds, he: he.enabled === true, heSettings: he, base: '127.0.4' });
      runs.push({ mode, topology, run });
    }
  }
  return { command, runs };
}


export function formatTree(t: TreeResults | undefined): string[] {
  if (!t) return [];
  const rounds = t.runs[0].run.rounds;
  return [
    '## 9. The model relayed down; switches of switches',
    '',
    `Made by \`${t.command}\`. 12 clients, ${rounds} rounds, on loopback: flat (every client reports to the aggregator), one`,
    'level (4 switches of 3 clients), two levels (those 4 as rack switches under one spine switch). The model goes down the',
    'tree the sums come up: once to each switch under the aggregator, which relays it. With the key at the clients each',
    'client keeps the model it decrypted to score, and the next round only its instructions come down.',
    '',
    '![bytes at the aggregator per round by topology](tree.png)',
    '',
    '| mode | topology | down at the aggregator per round (MB) | up (MB) | round (s) | final accuracy |',
    '| --- | --- | --- | --- | --- | --- |',
    ...t.runs.map(({ mode, topology, run }) =>
      `| ${mode} | ${topology} | ${mb(run.bytes_down_per_round_at_aggregator)} | ${mb(run.bytes_up_per_round_at_aggregator)} | ${n(run.round_s, 2)} | ${n(run.final_accuracy * 100, 2)}% |`,
    ),
    '',
    'Medians of the steady rounds (all but the first). Down is what the aggregator sent: models, instructions and the',
    'answers to every request (check-ins, shipped logs); up is what it received.',
    '',
  ];
}

/** Bytes down and up at the aggregator per round, by topology, one panel per mode. */
export function treeChart(t: TreeResults): ChartSpec {
  const values = t.runs.flatMap(({ mode, topology, run }) => [
    { mode, topology, direction: 'down (models)', MB: Math.round(run.bytes_down_per_round_at_aggregator / 1e4) / 100 },
    { mode, topology, direction: 'up (sums)', MB: Math.round(run.bytes_up_per_round_at_aggregator / 1e4) / 100 },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    config: { font: 'DejaVu Sans, Helvetica, Arial, sans-serif' },
    data: { values },
    facet: { column: { field: 'mode', type: 'nominal', title: null, sort: MODES.map((m) => m.mode) } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 200,
      height: 220,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'topology', type: 'nominal', sort: TOPOLOGIES.map((x) => x.topology), title: null, axis: { labelAngle: -30, labelLimit: 200 } },
        xOffset: { field: 'direction' },
        y: { field: 'MB', type: 'quantitative', title: 'MB at the aggregator per round' },
        color: { field: 'direction', type: 'nominal', title: null, scale: { range: ['#2f6db3', '#d9822b'] } },
      },
    },
  } as unknown as ChartSpec;
}
