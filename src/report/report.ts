/**
 * outputs/<experiment>/report.html: one file that opens offline (the charts are inline SVG, no script),
 * with the settings, the round table and the charts; and charts/<name>.png beside it for papers.
 * Written when an experiment ends; `node main.js report <outputs/experiment>` writes it again from disk.
 */
import { plannedRounds } from '../privacy/dp';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { usesTls } from '../config/load';
import { transportName } from '../net/tls';
import { describeAttack, type Attack, type Settings } from '../config/schema';
import { quantizesChange } from '../he/quantized';
import { writeFileAtomic } from '../files/atomic';
import { ClusterLog, type NodeRecords, type WorkerRole } from '../log/cluster-log';
import { readEvents, recordWords, type EventRecord, type RoundMetrics } from '../outputs';
import { classesChart, experimentCharts, type ChartName } from './charts';
import { nodeRounds, nodeTotals, queueing, wastedWork, type NodeTotals } from './data';
import { overFloor, pathsOf, roundFloors, type RoundFloor } from './floor';
import { tabularSecond } from '../model/size';
import { renderSvg, svgToPng } from './render';

export interface ReportInput {
  experiment: string;
  aggregator: string;
  settings: Settings;
  /** How the nodes talked: mutual TLS or plain HTTP. */
  transport?: string;
  /** Every worker, by address, with its role. */
  workers: ReadonlyMap<string, WorkerRole>;
  rows: readonly RoundMetrics[];
  /** The workers' iteration entries (the aggregator's cluster log). */
  records: readonly NodeRecords[];
  /** Each client's samples per class, from its check-in (outputs/<experiment>/clients.json). */
  histograms?: Readonly<Record<string, number[]>>;
  /** The clients config.json has attack: a run with attackers never passes for a clean one. */
  attackers?: Readonly<Record<string, Attack>>;
  /** What the testbed's schedule did (events.json). */
  events?: readonly EventRecord[];
  /** Each round's floor (report/floor.ts), for its time over it. */
  floors?: ReadonlyMap<number, RoundFloor>;
}

export const CLIENTS_FILE = 'clients.json';

export const REPORT_FILE = 'report.html';
export const CHARTS_DIR = 'charts';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The settings a reader needs to know what was run, as label and value. */
export function describeSettings(settings: Settings, workers: ReadonlyMap<string, WorkerRole>, transport?: string, attackers: Readonly<Record<string, Attack>> = {}): [string, string][] {
  const { model, training, data, he } = settings;
  const count = (role: WorkerRole) => [...workers.values()].filter((r) => r === role).length;
  const split = data.split === 'dirichlet' ? `dirichlet (alpha ${data.alpha})` : data.split === 'classes' ? `${data.classes_per_client} classes per client` : 'iid';
  return [
    ['model', { mlp: `MLP, ${model.hidden_units} hidden units`, tabular: `tabular MLP, ${model.hidden_units} and ${tabularSecond(model.hidden_units)} hidden units`, cnn: 'CNN', cifar_cnn: 'CIFAR CNN', resnet18: 'ResNet-18', file: `from ${model.path}` }[model.architecture]],
    ['data', data.source === 'mnist' ? `${data.dataset} (the mnist package), split ${split}, seed ${data.seed}${data.train_size === undefined ? '' : `, ${data.train_size} trained on`}` : `${data.source} files (${data.path}${data.test ? `; held out: ${data.test.path}` : ''}), samples [${(data.shape ?? []).join(', ')}], ${data.classes} classes, ${data.path?.includes('{index}') ? 'a file per client' : `split ${split}, seed ${data.seed}`}`],
    ['strategy', describeStrategy(training)],
    ['training', `${training.epochs} epoch(s), batch ${training.batch_size}, learning rate ${training.learning_rate}`],
    ['rounds', `${plannedRounds(settings)}${plannedRounds(settings) < settings.rounds ? ` of ${settings.rounds} (the DP budget stops the run there)` : ''}, ${settings.clients_per_round ?? 'all'} clients per round`],
    ...(settings.stragglers ? [['stragglers', describeStragglers(settings.stragglers)] as [string, string]] : []),
    ['topology', `${plural(count('client'), 'client')}, ${plural(count('switch'), 'switch', 'switches')}`],
    ['homomorphic encryption', he.enabled ? `CKKS on, key held by the ${he.key_holder}, N=${he.poly_modulus_degree}, modulus ${he.coeff_modulus_bits.join('+')} bits, scale 2^${he.scale_bits}` : 'off'],
    ...(transport ? [['transport', transport] as [string, string]] : []),
    ['differential privacy', settings.dp ? `${settings.dp.mode}: clip ${settings.dp.clip}, noise multiplier ${settings.dp.noise_multiplier}, δ ${settings.dp.delta}${settings.dp.max_epsilon ? `, budget ε ${settings.dp.max_epsilon}` : ''}` : 'off'],
    ['attackers', Object.entries(attackers).map(([client, attack]) => `${client} (${describeAttack(attack)})`).join(', ') || 'none'],
    ['updates', he.quantize ? `quantized to ${he.quantize.bits} bits, clipped at ±${he.quantize.clip} (the ${quantizesChange(he) ? 'change to the model sent' : 'weights'})${he.enabled ? `, packed for sums of up to ${he.quantize.clients}` : ''}` : 'float32'],
  ];
}

/** The deadline policy for stragglers, in words. */
export function describeStragglers({ over_select, close_fraction, grace_ms }: NonNullable<Settings['stragglers']>): string {
  const fraction = close_fraction ?? 1 / over_select;
  return `${over_select > 1 ? `over-selection ×${over_select}; ` : ''}each switch and the aggregator close once ${(fraction * 100).toFixed(0)}% of their clients are in, plus ${grace_ms} ms`;
}

/** The strategy and the parameters it uses, in Flower's names. */
export function describeStrategy(training: Settings['training']): string {
  const f = `f ${training.num_malicious_clients}`;
  return {
    fedavg: 'FedAvg (weighted by samples)',
    fedavgm: `FedAvgM (server momentum ${training.server_momentum})`,
    fedprox: `FedProx (proximal μ ${training.proximal_mu})`,
    scaffold: 'SCAFFOLD (control variates with every update and model)',
    fedadam: 'FedAdam (server optimizer)',
    fedyogi: 'FedYogi (server optimizer)',
    fedadagrad: 'FedAdagrad (server optimizer)',
    fedmedian: 'FedMedian (coordinate-wise median)',
    fedtrimmedavg: `FedTrimmedAvg (β ${training.beta} cut at each end)`,
    krum: `Krum (${f})`,
    multikrum: `MultiKrum (${f}, ${training.num_clients_to_keep ?? 1} kept)`,
    bulyan: `Bulyan (${f})`,
  }[training.strategy];
}

export async function writeReport(dir: string, input: ReportInput): Promise<{ html: string; pngs: string[] }> {
  const perNode = nodeRounds(input.aggregator, input.rows, input.records);
  const specs = experimentCharts(input.rows, perNode, input.events);
  const svgs = {} as Record<ChartName, string>;
  const pngs: string[] = [];
  mkdirSync(join(dir, CHARTS_DIR), { recursive: true });
  for (const name of Object.keys(specs) as ChartName[]) {
    svgs[name] = await renderSvg(specs[name]);
    const png = join(dir, CHARTS_DIR, `${name}.png`);
    writeFileAtomic(png, svgToPng(svgs[name]));
    pngs.push(png);
  }
  let classes = '';
  if (input.histograms && Object.keys(input.histograms).length) {
    classes = await renderSvg(classesChart(input.histograms));
    const png = join(dir, CHARTS_DIR, 'classes.png');
    writeFileAtomic(png, svgToPng(classes));
    pngs.push(png);
  }
  const html = join(dir, REPORT_FILE);
  writeFileAtomic(html, reportHtml(input, svgs, nodeTotals(perNode), classes));
  return { html, pngs };
}

/** Reads what an experiment left on disk (outputs/<experiment>/ and the aggregator's logs/cluster/) and reports it. */
export async function reportFromDisk(experimentDir: string, logsDir: string): Promise<{ html: string; pngs: string[] }> {
  const read = (name: string) => {
    const file = join(experimentDir, name);
    if (!existsSync(file)) throw new Error(`${file} is missing: is ${experimentDir} an experiment's outputs folder?`);
    return JSON.parse(readFileSync(file, 'utf8'));
  };
  const config = read('config.json');
  const { rounds } = read('metrics.json') as { rounds: RoundMetrics[] };
  const experiment = config.experiment ?? basename(experimentDir);
  const others = Object.entries(config.others ?? {}) as [string, { type: string }][];
  const aggregator = others.find(([, e]) => e.type === 'aggregator')?.[0] ?? 'aggregator';
  const workers = new Map(others.filter(([, e]) => e.type !== 'aggregator').map(([a, e]) => [a, e.type as WorkerRole]));
  const records = new ClusterLog(logsDir, experiment, workers, true).records();
  const histograms = existsSync(join(experimentDir, CLIENTS_FILE)) ? read(CLIENTS_FILE) : undefined;
  const transport = transportName(usesTls(config));
  const attackers = Object.fromEntries(Object.entries(config.others ?? {}).flatMap(([client, e]) => ((e as { attack?: Attack }).attack ? [[client, (e as { attack: Attack }).attack]] : [])));
  const floors = config.others ? roundFloors(rounds, records, pathsOf(config)) : undefined;
  return writeReport(experimentDir, { experiment, aggregator, settings: config, transport, workers, rows: rounds, records, histograms, attackers, events: readEvents(experimentDir), floors });
}


export const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const mb = (bytes: number) => (bytes / 1e6).toFixed(2);

/** What the network added to a node's own count: headers, acknowledgements, health checks, logs, ssh. */
function added(own: number, link?: number): string {
  if (link === undefined) return '<td>—</td><td>—</td>';
  return `<td>${mb(link)}</td><td>${own ? `${(((link - own) / own) * 100).toFixed(1)}%` : '—'}</td>`;
}

function nodeTable(nodes: NodeTotals[]): string {
  const rows = nodes
    .map((n) => `<tr><td>${escapeHtml(n.node)}</td><td>${n.role}</td><td>${n.rounds}</td><td>${mb(n.sent)}</td>${added(n.sent, n.link?.sent)}<td>${mb(n.received)}</td>${added(n.received, n.link?.received)}</tr>`)
    .join('');
  const counted = nodes.some((n) => n.link);
  const note = counted
    ? "Each node's own count is the experiment's traffic (HTTP requests and answers); the link's is the kernel's count of the node's interface over the same rounds, with TCP/IP headers, acknowledgements, health checks and shipped logs."
    : 'No node has a link of its own here (a loopback testbed shares one interface), so there is no kernel count to show beside its own.';
  return `<p>${note}</p><table><tr><th>node</th><th>role</th><th>rounds</th><th>sent (MB)</th><th>on the link</th><th>added</th><th>received (MB)</th><th>on the link</th><th>added</th></tr>${rows}</table>`;
}

function reportHtml(input: ReportInput, svgs: Record<ChartName, string>, nodes: NodeTotals[], classes: string): string {
  const { rows } = input;
  const last = rows[rows.length - 1];
  const privacy = input.settings.dp !== undefined;
  const settings = describeSettings(input.settings, input.workers, input.transport, input.attackers)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
    .join('');
  const events = input.events ?? [];
  // Work thrown away: shown once a round threw some away, or the straggler policy could.
  const wasted = wastedWork(rows, input.records);
  const showWasted = input.settings.stragglers !== undefined || [...wasted.values()].some((w) => w.clients.length);
  const wastedCell = (round: number) => {
    const w = wasted.get(round);
    return w?.clients.length ? `<td title="${escapeHtml(w.clients.join(' '))}">${(w.ms / 1000).toFixed(2)} (${w.clients.length})</td>` : '<td>—</td>';
  };
  // Queueing on a shared core: shown once clients shared a process and one waited for another.
  const queued = queueing(input.records);
  const queuedCell = (round: number) => {
    const q = queued.get(round);
    return q ? `<td title="${escapeHtml(q.client)} waited longest">${(q.ms / 1000).toFixed(2)}</td>` : '<td>—</td>';
  };
  // Each round over its floor: how far from what its work and its links allow.
  const { floors } = input;
  const floorCell = (r: RoundMetrics) => {
    const f = floors?.get(r.round);
    const parts = f && `floor ${(f.ms / 1000).toFixed(2)} s${f.client ? ` (${f.client}'s path)` : ' (a link)'}${f.clamped ? ', the round itself: its parts came to more' : ''}: work ${(f.parts.work / 1000).toFixed(2)}, wire ${(f.parts.wire / 1000).toFixed(2)}, aggregator ${(f.parts.aggregator / 1000).toFixed(2)}`;
    return `<td title="${escapeHtml(parts ?? 'no floor')}">${overFloor(r, f)}</td>`;
  };
  const eventsIn = (round: number) => events.filter((e) => e.round === round).map(recordWords).join('; ');
  const roundRows = rows
    .map(
      (r) =>
        `<tr><td>${r.round}</td><td>${(r.accuracy * 100).toFixed(2)}%${r.scored_by ? ` <span title="scored by ${r.scored_by.clients} of the ${r.scored_by.of} clients asked">(${r.scored_by.clients} of ${r.scored_by.of})</span>` : ''}</td><td>${r.loss.toFixed(4)}</td><td>${r.clients}</td>` +
        `<td>${(r.round_ms / 1000).toFixed(2)}</td>${floors ? floorCell(r) : ''}<td>${(r.training_ms / 1000).toFixed(2)}</td>${queued.size ? queuedCell(r.round) : ''}<td>${r.straggling_ms === undefined ? '—' : `${(r.straggling_ms / 1000).toFixed(2)}${r.held_by ? ` (${escapeHtml(r.held_by)})` : ''}`}</td><td>${((r.waiting_ms ?? 0) / 1000).toFixed(2)}</td><td>${(r.aggregation_ms / 1000).toFixed(2)}</td>` +
        `<td>${mb(r.bytes_up)}</td><td>${mb(r.bytes_down)}</td><td>${escapeHtml(r.missing.join(' ') || '—')}</td>${showWasted ? wastedCell(r.round) : ''}<td>${escapeHtml(r.attackers?.join(' ') || '—')}</td>${events.length ? `<td>${escapeHtml(eventsIn(r.round) || '—')}</td>` : ''}${privacy ? `<td>${r.epsilon?.toFixed(2) ?? '—'}</td>` : ''}</tr>`,
    )
    .join('');
  const headline = last
    ? `Final accuracy <b>${(last.accuracy * 100).toFixed(2)}%</b> after ${rows.length} rounds; ` +
      `${(rows.reduce((s, r) => s + r.round_ms, 0) / rows.length / 1000).toFixed(2)} s per round on average.`
    : 'No round finished.';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Experiment ${escapeHtml(input.experiment)}</title>
<style>
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}.settings th,.settings td{text-align:left}.chart{margin:1rem 0}
</style></head><body>
<h1>Experiment ${escapeHtml(input.experiment)}</h1>
<p>${headline} Made ${escapeHtml(new Date().toISOString())} by the aggregator at ${escapeHtml(input.aggregator)}.</p>
<h2>Settings</h2><table class="settings">${settings}</table>
<h2>Charts</h2>
<div class="chart">${svgs.accuracy}</div>
<div class="chart">${svgs.rounds}</div>
<div class="chart">${svgs.bytes}</div>
<div class="chart">${svgs.phases}</div>
${classes ? `<div class="chart">${classes}</div>` : ''}
<h2>Rounds</h2>
<table><tr><th>round</th><th>accuracy</th><th>loss</th><th>clients</th><th>round (s)</th>${floors ? '<th title="the round\'s time over its floor: the slowest summed client\'s path (the model down and its update up at each hop\'s link rate, its own training and HE work) and the aggregator\'s work, or a machine\'s link carrying all it moved">÷ floor</th>' : ''}<th>training (s)</th>${queued.size ? '<th title="the longest a client of the round waited for the other clients of its process to train first (one core, shared)">queued (s)</th>' : ''}<th title="from the median client's update to the last in the sum">held by the slowest (s)</th><th title="for clients whose updates never came">waiting (s)</th><th>aggregation (s)</th><th>up (MB)</th><th>down (MB)</th><th>missing</th>${showWasted ? '<th title="training by clients whose updates came too late for the sum: client-seconds (clients)">wasted (s)</th>' : ''}<th>attacking</th>${events.length ? '<th title="what the testbed\'s schedule did as the round went (events.json)">events</th>' : ''}${privacy ? `<th>ε (δ ${input.settings.dp!.delta})</th>` : ''}</tr>${roundRows}</table>
<h2>Nodes</h2>
${nodeTable(nodes)}
</body></html>
`;
}
