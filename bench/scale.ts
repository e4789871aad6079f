/**
 * 15. Many clients on this 2-core machine: 12, 48, 96 and 200 clients on the loopback testbed,
 * about ten worker processes of clients whatever their number (testbed init --per-process), under
 * quantized HE (8 bits) with the key at the aggregator and at the clients, through a tree of switches
 * three deep (a spine over two middle switches over four racks). Round time, the aggregator's CPU and
 * memory, bytes at the aggregator, each process's peak memory, and each round over its floor.
 */
import type { TestbedRun } from './testbed-runs';
import { testbedRun } from './testbed-runs';
import { fixed, log, megabytes } from './common';

const CLIENTS = [12, 48, 96, 200];
const KEY_HOLDERS = ['aggregator', 'clients'] as const;
/** About this many processes of clients, whatever their number. */
const CLIENT_PROCESSES = 10;

export interface ScaleRow extends TestbedRun {
  key_holder: (typeof KEY_HOLDERS)[number];
  per_process: number;
}

export interface ScaleResults {
  command: string;
  date: string;
  rounds: number;
  rows: ScaleRow[];
}

/**
 * Four racks under two middle switches under a spine: testbedConfig's racks are the first four
 * switches (each with a quarter of the clients), and the last three are rewired into a tree.
 */
function threeDeep(config: Record<string, any>): void {
  const switches = Object.keys(config.others).filter((a) => config.others[a].type === 'switch');
  const [r1, r2, r3, r4, m1, m2, spine] = switches;
  Object.assign(config.others, {
    [r1]: { type: 'switch', switch: m1 },
    [r2]: { type: 'switch', switch: m1 },
    [r3]: { type: 'switch', switch: m2 },
    [r4]: { type: 'switch', switch: m2 },
    [m1]: { type: 'switch', switch: spine },
    [m2]: { type: 'switch', switch: spine },
    [spine]: { type: 'switch' },
  });
}

export async function scaleRuns(quick: boolean, command: string): Promise<ScaleResults> {
  const rounds = quick ? 2 : 4;
  const rows: ScaleRow[] = [];
  for (const clients of quick ? [12, 48] : CLIENTS) {
    for (const keyHolder of KEY_HOLDERS) {
      const perProcess = Math.ceil(clients / CLIENT_PROCESSES);
      log(`  ${clients} clients, key at the ${keyHolder}`);
      const run = await testbedRun({
        name: `scale-${clients}-${keyHolder}`,
        clients,
        // Seven switches: racks of the first four (testbedConfig gives them the clients), rewired three deep.
        switches: 7,
        spines: 3,
        perProcess,
        rounds,
        he: true,
        heSettings: { enabled: true, key_holder: keyHolder, quantize: { bits: 8 } },
        base: '127.0.5',
        edit: threeDeep,
      });
      rows.push({ ...run, key_holder: keyHolder, per_process: perProcess });
    }
  }
  return { command, date: new Date().toISOString(), rounds, rows };
}

export function scaleChart(results: ScaleResults) {
  const values = results.rows.map((r) => ({ clients: r.clients, key: `key at the ${r.key_holder}`, seconds: r.round_s, floor: r.over_floor ?? null }));
  const x = { field: 'clients', type: 'quantitative', title: 'clients', scale: { type: 'log', domain: [10, 220] }, axis: { values: CLIENTS } };
  const color = { field: 'key', type: 'nominal', title: null, legend: { labelLimit: 240 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Round time as clients grow (quantized HE, a tree three deep)', subtitle: 'about ten worker processes of clients on a 2-core machine; labels: the round over its floor' },
    width: 420,
    height: 240,
    background: 'white',
    data: { values },
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'seconds', type: 'quantitative', title: 's / round (median of rounds 2 on)' }, color } },
      { mark: { type: 'text', dy: -10, fontSize: 10 }, encoding: { x, y: { field: 'seconds', type: 'quantitative' }, color, text: { field: 'floor', type: 'quantitative', format: '.1f' } } },
    ],
  };
}

export function formatScale(results: ScaleResults | undefined): string[] {
  const head = ['## 15. Many clients: up to 200 on one 2-core machine', ''];
  if (!results) return [...head, 'Not run yet: `npm run bench -- scale`.', ''];
  return [
    ...head,
    `Made by \`${results.command}\` on ${results.date.slice(0, 10)}. Loopback testbed, MLP (101,770 parameters), quantized HE (8 bits), a spine over two middle switches over four racks, the clients in about ten worker processes (\`--per-process\`: ${[...new Set(results.rows.map((r) => r.per_process))].join(', ')}), ${results.rounds} rounds, medians of rounds 2 on. CPU is summed over the aggregator's process per round; memory is the peak resident (VmHWM) of the largest process of each kind. The floor of a round (\`src/report/floor.ts\`): the slowest client's own work (training and HE, not its wait for a turn on its process's core) and the aggregator's aggregation and evaluation; on loopback the wire costs it nothing. Over the floor is mostly queueing: two cores train ${Math.max(...results.rows.map((r) => r.clients))} clients one after another. With the key at the clients the floor holds more of it, as the aggregator's evaluation waits for the clients to score the sealed model, which they do taking turns.`,
    '',
    '| clients | key at | s / round | ÷ floor | aggregator CPU s / round | aggregator MB | MB / round at the aggregator | largest client process MB | accuracy |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.rows.map(
      (r) =>
        `| ${r.clients} | ${r.key_holder} | ${r.round_s.toFixed(2)} | ${r.over_floor?.toFixed(2) ?? '—'} | ${r.cpu_s_per_round?.aggregator.toFixed(2) ?? '—'} | ${r.aggregator_rss_mb_max} | ${megabytes(r.bytes_per_round_at_aggregator)} | ${r.process_rss_mb_max ? fixed(r.process_rss_mb_max.client) : '—'} | ${(r.final_accuracy * 100).toFixed(2)}% |`,
    ),
    '',
    '![round time as clients grow](scale.png)',
    '',
  ];
}
