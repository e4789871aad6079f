/**
 * Runs side by side: `node main.js compare outputs/<a> outputs/<b> … --out DIR` writes compare.html
 * (offline: inline SVG, no script) and charts/*.png from what each experiment left in its outputs
 * folder (config.json, metrics.json): accuracy against round and against wall time, the bytes the
 * aggregator moved each round, each phase's mean time, ε where a run has one, and the settings that
 * differ between the runs.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../files/atomic';
import type { RoundMetrics } from '../outputs';
import { chartBase, type ChartSpec } from './charts';
import { escapeHtml } from './report';
import { renderSvg, svgToPng } from './render';

export const COMPARE_FILE = 'compare.html';

/** One experiment as its outputs folder has it. */
export interface Run {
  name: string;
  config: Record<string, unknown>;
  rows: readonly RoundMetrics[];
}

/** An experiment's config.json and metrics.json; named by its experiment (its folder's name when two share one). */
export function readRun(dir: string): Run {
  const read = (name: string) => {
    const file = join(dir, name);
    if (!existsSync(file)) throw new Error(`${file} is missing: is ${dir} an experiment's outputs folder?`);
    return JSON.parse(readFileSync(file, 'utf8'));
  };
  const config = read('config.json') as Record<string, unknown>;
  const { rounds } = read('metrics.json') as { rounds: Run['rows'] };
  return { name: typeof config.experiment === 'string' ? config.experiment : basename(resolve(dir)), config, rows: rounds };
}

/** The settings that differ between the runs, as dotted paths (machines left out, but who attacks), with each run's value. */
export function differingSettings(runs: readonly Run[]): { setting: string; values: string[] }[] {
  const flat = runs.map((run) => flatten(run.config));
  const shown = (key: string) => key !== 'experiment' && (!key.startsWith('others.') || /\.attack\.[a-z]+$/.test(key));
  const keys = [...new Set(flat.flatMap((f) => [...f.keys()]))].filter(shown).sort();
  return keys.map((setting) => ({ setting, values: flat.map((f) => f.get(setting) ?? '—') })).filter(({ values }) => new Set(values).size > 1);
}

function flatten(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else out.set(prefix, JSON.stringify(value));
  return out;
}

const runColor = (runs: readonly Run[]) => ({ field: 'run', type: 'nominal', title: 'run', sort: runs.map((r) => r.name) });

function lines(runs: readonly Run[], title: string, x: { field: string; title: string }, y: { field: string; title: string; format: string }, values: Record<string, unknown>[]): ChartSpec {
  return {
    ...chartBase(title),
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: x.field, type: 'quantitative', title: x.title },
      y: { field: y.field, type: 'quantitative', title: y.title, scale: { zero: false }, axis: { format: y.format } },
      color: runColor(runs),
      tooltip: [{ field: 'run' }, { field: x.field }, { field: y.field, format: y.format }],
    },
  };
}

/** The comparison's charts by file name; `epsilon` only when a run has ε. */
export function comparisonCharts(runs: readonly Run[]): Record<string, ChartSpec> {
  const perRound = runs.flatMap((run) => {
    let elapsed = 0;
    return run.rows.map((r) => ({ run: run.name, round: r.round, accuracy: r.accuracy, seconds: (elapsed += r.round_ms / 1000), MB: (r.bytes_up + r.bytes_down) / 1e6, epsilon: r.epsilon }));
  });
  const phases = runs.flatMap((run) =>
    (['selection', 'training', 'waiting', 'aggregation', 'evaluation'] as const).map((phase, step) => ({
      run: run.name,
      phase,
      step,
      s: run.rows.reduce((sum, r) => sum + (r[`${phase}_ms`] ?? 0), 0) / Math.max(1, run.rows.length) / 1000,
    })),
  );
  const charts: Record<string, ChartSpec> = {
    accuracy: lines(runs, 'Accuracy against round', { field: 'round', title: 'round' }, { field: 'accuracy', title: 'accuracy', format: '.1%' }, perRound),
    'accuracy-time': lines(runs, 'Accuracy against wall time', { field: 'seconds', title: 'seconds since the first round opened' }, { field: 'accuracy', title: 'accuracy', format: '.1%' }, perRound),
    bytes: lines(runs, 'Bytes at the aggregator per round (sent and received)', { field: 'round', title: 'round' }, { field: 'MB', title: 'MB', format: '.2f' }, perRound),
    phases: {
      ...chartBase("Time per phase at the aggregator (mean per round)"),
      data: { values: phases },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'run', type: 'nominal', title: null, sort: runs.map((r) => r.name) },
        x: { field: 's', type: 'quantitative', title: 'seconds', stack: 'zero' },
        color: { field: 'phase', type: 'nominal', title: 'phase', sort: ['selection', 'training', 'waiting', 'aggregation', 'evaluation'] },
        order: { field: 'step', type: 'quantitative' },
      },
    },
  };
  const spent = perRound.filter((r) => typeof r.epsilon === 'number');
  if (spent.length) charts.epsilon = lines(runs, 'Privacy spent (ε) against round', { field: 'round', title: 'round' }, { field: 'epsilon', title: 'ε', format: '.2f' }, spent);
  return charts;
}

/** Writes `out`/compare.html and `out`/charts/<name>.png for the experiments in `dirs`. */
export async function writeComparison(dirs: readonly string[], out: string): Promise<{ html: string; pngs: string[] }> {
  if (dirs.length < 2) throw new Error('compare takes two experiments or more');
  const runs = dirs.map(readRun);
  const names = runs.map((r) => r.name);
  if (new Set(names).size < names.length) runs.forEach((run, i) => (run.name = `${run.name} (${dirs[i]})`));
  mkdirSync(join(out, 'charts'), { recursive: true });
  const svgs: string[] = [];
  const pngs: string[] = [];
  for (const [name, spec] of Object.entries(comparisonCharts(runs))) {
    const svg = await renderSvg(spec);
    svgs.push(svg);
    const png = join(out, 'charts', `${name}.png`);
    writeFileAtomic(png, svgToPng(svg));
    pngs.push(png);
  }
  const html = join(out, COMPARE_FILE);
  writeFileAtomic(html, comparisonHtml(runs, svgs));
  return { html, pngs };
}

function comparisonHtml(runs: readonly Run[], svgs: readonly string[]): string {
  const head = `<tr><th>setting</th>${runs.map((r) => `<th>${escapeHtml(r.name)}</th>`).join('')}</tr>`;
  const differing = differingSettings(runs);
  const settings = differing.length
    ? `<table>${head}${differing.map(({ setting, values }) => `<tr><th>${escapeHtml(setting)}</th>${values.map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`).join('')}</table>`
    : '<p>The runs share every setting (machine addresses aside).</p>';
  const summary = runs
    .map((run) => {
      const last = run.rows.at(-1);
      const seconds = run.rows.reduce((s, r) => s + r.round_ms, 0) / 1000;
      const bytes = run.rows.reduce((s, r) => s + r.bytes_up + r.bytes_down, 0) / 1e6;
      const epsilon = typeof last?.epsilon === 'number' ? last.epsilon.toFixed(2) : '—';
      return `<tr><td>${escapeHtml(run.name)}</td><td>${run.rows.length}</td><td>${last ? `${(last.accuracy * 100).toFixed(2)}%` : '—'}</td><td>${seconds.toFixed(1)}</td><td>${bytes.toFixed(2)}</td><td>${epsilon}</td></tr>`;
    })
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Comparison: ${escapeHtml(runs.map((r) => r.name).join(', '))}</title>
<style>body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}figure{margin:1em 0}</style></head>
<body><h1>${runs.length} runs side by side</h1>
<table><tr><th>run</th><th>rounds</th><th>final accuracy</th><th>rounds' time (s)</th><th>MB at the aggregator</th><th>ε</th></tr>${summary}</table>
<h2>Settings that differ</h2>${settings}
<h2>Charts</h2>${svgs.map((svg) => `<figure>${svg}</figure>`).join('\n')}
</body></html>
`;
}
