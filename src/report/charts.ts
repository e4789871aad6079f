/**
 * The experiment's charts as Vega-Lite specs with their data inline. The same specs are drawn by the
 * dashboard in the browser and by the report on the aggregator (SVG in report.html, PNG for papers).
 */
import { recordWords, type EventRecord, type RoundMetrics } from '../outputs';
import { meanPhases, PHASES, type NodeRound } from './data';

export type ChartSpec = Record<string, unknown>;
export type ChartName = 'accuracy' | 'rounds' | 'bytes' | 'phases';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json'; // an identifier only: nothing is fetched
const WIDTH = 560;
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
/** Nodes in address order (127.0.1.2 before 127.0.1.10), the way a testbed's machines are numbered. */
const byAddress = (labels: Iterable<string>) => [...new Set(labels)].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));

/**
 * Nodes in address order, by a rank field each row carries: a sort given as a list of names compiles
 * to an expression one level deep per name, which a testbed of hundreds of nodes overflows.
 */
function ranked<T extends Record<K, string>, K extends string>(values: T[], key: K): { values: (T & { rank: number })[]; count: number; sort: object } {
  const order = new Map(byAddress(values.map((v) => v[key])).map((label, i) => [label, i]));
  return { values: values.map((v) => ({ ...v, rank: order.get(v[key])! })), count: order.size, sort: { field: 'rank', op: 'min' } };
}

/** What every chart of ours shares: its title, size, fonts, white ground. */
export const chartBase = (title: string, height = 240) => ({
  $schema: SCHEMA,
  title: { text: title, anchor: 'start', fontSize: 14 },
  width: WIDTH,
  height,
  background: 'white',
  config: { font: FONT, axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 }, legend: { labelFontSize: 11 } },
});

/** Accuracy (left axis) and loss (right axis) of the global model after each round. */
export function accuracyChart(rows: readonly RoundMetrics[]): ChartSpec {
  const values = rows.map((r) => ({ round: r.round, accuracy: r.accuracy, loss: r.loss }));
  const x = { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1, format: 'd' }, scale: { domainMin: 1 } };
  const line = (field: string, color: string, title: string, format: string, orient: string) => ({
    mark: { type: 'line', point: true, color },
    encoding: {
      x,
      y: { field, type: 'quantitative', title, scale: { zero: false }, axis: { format, orient, titleColor: color } },
      tooltip: [{ field: 'round' }, { field, format }],
    },
  });
  return {
    ...chartBase('Accuracy and loss of the global model'),
    data: { values },
    layer: [line('accuracy', '#2f6db3', 'accuracy', '.1%', 'left'), line('loss', '#d9822b', 'loss', '.3f', 'right')],
    resolve: { scale: { y: 'independent' } },
  };
}

/** Megabytes each node sent and received in each round: a grid, one cell per node and round. */
export function bytesChart(rows: readonly NodeRound[]): ChartSpec {
  const { values, count, sort } = ranked(
    rows.map((r) => ({ node: `${r.node} (${r.role})`, round: r.round, MB: (r.sent + r.received) / 1e6, sent: r.sent / 1e6, received: r.received / 1e6 })),
    'node',
  );
  const max = values.reduce((most, v) => Math.max(most, v.MB), 0);
  const y = { field: 'node', type: 'nominal', title: null, sort };
  const x = { field: 'round', type: 'ordinal', title: 'round', axis: { labelAngle: 0 } };
  return {
    ...chartBase('Megabytes per node per round (sent + received)', Math.max(120, count * 20)),
    data: { values },
    layer: [
      {
        mark: { type: 'rect', tooltip: true },
        encoding: {
          x,
          y,
          color: { field: 'MB', type: 'quantitative', title: 'MB', scale: { scheme: 'blues', domainMin: 0 } },
          tooltip: [{ field: 'node' }, { field: 'round' }, { field: 'sent', format: '.2f', title: 'sent MB' }, { field: 'received', format: '.2f', title: 'received MB' }],
        },
      },
      {
        mark: { type: 'text', fontSize: 9 },
        encoding: {
          x,
          y,
          text: { field: 'MB', type: 'quantitative', format: '.1f' },
          color: { condition: { test: `datum.MB > ${max * 0.6}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/** Each node's mean time per phase over the rounds given, stacked. */
export function phaseChart(rows: readonly NodeRound[], title = 'Time per phase (mean per round)'): ChartSpec {
  const { values, count, sort } = ranked(
    meanPhases(rows).map((p) => ({ ...p, node: `${p.node} (${p.role})`, s: p.ms / 1000, step: PHASES.indexOf(p.phase) })),
    'node',
  );
  return {
    ...chartBase(title, Math.max(120, count * 20)),
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'node', type: 'nominal', title: null, sort },
      x: { field: 's', type: 'quantitative', title: 'seconds', stack: 'zero' },
      color: { field: 'phase', type: 'nominal', scale: { domain: [...PHASES], scheme: 'tableau10' }, title: 'phase' },
      // Stacked in the order a round goes through them.
      order: { field: 'step', type: 'quantitative' },
      tooltip: [{ field: 'node' }, { field: 'phase' }, { field: 'ms', title: 'ms' }],
    },
  };
}

/** The parts of a round's time, in the order a round goes through them (RoundTimings: they add up to about round_ms). */
const ROUND_PARTS = [
  ['selection', 'selection_ms'],
  ['training', 'training_ms'],
  ['held by the slowest', 'straggling_ms'],
  ['waiting for missing', 'waiting_ms'],
  ['aggregation', 'aggregation_ms'],
  ['evaluation', 'evaluation_ms'],
] as const;
/** A round held a second or more past its median client names the client that held it. */
const HELD_LABEL_MS = 1000;

/**
 * Each round's time by part, who held it (above its bar, when a client held it a second or more),
 * and what the testbed's schedule did (a rule at the round it was carried out in, named).
 */
export function roundsChart(rows: readonly RoundMetrics[], events: readonly EventRecord[] = []): ChartSpec {
  const parts = rows.flatMap((r) => ROUND_PARTS.map(([part, field], step) => ({ round: r.round, part, step, s: (r[field] ?? 0) / 1000 })));
  const held = rows.filter((r) => r.held_by && (r.straggling_ms ?? 0) >= HELD_LABEL_MS).map((r) => ({ round: r.round, top: r.round_ms / 1000, label: r.held_by! }));
  // Labels stacked in four rows above the tallest bar, so events of one round do not write over each other.
  const tallest = Math.max(1, ...rows.map((r) => r.round_ms / 1000));
  const marks = events.map((e, i) => ({ round: e.round, label: recordWords(e), y: tallest * (1.45 - 0.1 * (i % 4)) }));
  const last = Math.max(1, ...rows.map((r) => r.round), ...marks.map((m) => m.round));
  const x = { field: 'round', type: 'ordinal', title: 'round', axis: { labelAngle: 0 }, scale: { domain: Array.from({ length: last }, (_, i) => i + 1) } };
  return {
    ...chartBase('Where each round\'s time went, who held it, and the schedule\'s events', 260),
    layer: [
      {
        data: { values: parts },
        mark: { type: 'bar', tooltip: true, width: { band: 0.7 } },
        encoding: {
          x,
          y: { field: 's', type: 'quantitative', title: 'seconds', stack: 'zero' },
          color: { field: 'part', type: 'nominal', scale: { domain: ROUND_PARTS.map(([part]) => part), scheme: 'tableau10' }, title: 'part of the round' },
          order: { field: 'step', type: 'quantitative' },
          tooltip: [{ field: 'round' }, { field: 'part' }, { field: 's', format: '.2f', title: 'seconds' }],
        },
      },
      { data: { values: held }, mark: { type: 'text', dy: -6, fontSize: 9, angle: 0 }, encoding: { x, y: { field: 'top', type: 'quantitative' }, text: { field: 'label' } } },
      { data: { values: marks }, mark: { type: 'rule', strokeDash: [4, 3], color: '#b22' }, encoding: { x } },
      { data: { values: marks }, mark: { type: 'text', align: 'left', dx: 3, fontSize: 9, color: '#b22' }, encoding: { x, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } } },
    ],
  };
}

export function experimentCharts(rows: readonly RoundMetrics[], perNode: readonly NodeRound[], events: readonly EventRecord[] = []): Record<ChartName, ChartSpec> {
  return { accuracy: accuracyChart(rows), rounds: roundsChart(rows, events), bytes: bytesChart(perNode), phases: phaseChart(perNode) };
}

/** Each client's samples by class, as it said at check-in: how skewed the split (or the lab's own data) is. */
export function classesChart(histograms: Readonly<Record<string, readonly number[]>>): ChartSpec {
  const { values, count, sort } = ranked(
    Object.entries(histograms).flatMap(([client, counts]) => counts.map((samples, label) => ({ client, class: String(label), samples }))),
    'client',
  );
  const classes = Math.max(0, ...Object.values(histograms).map((counts) => counts.length));
  return {
    ...chartBase('Samples per class on each client', Math.max(120, count * 20)),
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'client', type: 'nominal', title: null, sort },
      x: { field: 'samples', type: 'quantitative', title: 'samples', stack: 'zero' },
      color: { field: 'class', type: 'nominal', title: 'class', sort: Array.from({ length: classes }, (_, i) => String(i)) },
      order: { field: 'class', type: 'quantitative' },
      tooltip: [{ field: 'client' }, { field: 'class' }, { field: 'samples' }],
    },
  };
}
