/**
 * Seeing an experiment, without a cluster: the central log's store and the worker's shipper, the
 * per-node numbers behind the charts, the report, and the dashboard's routes on a mounted aggregator.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import express from 'express';
import request from 'supertest';
import { MAX_EVENT_STREAMS } from '../src/blueprints/dashboard';
import { parseExperimentConfig, resolveNodeConfigs } from '../src/config/load';
import type { NodeConfig } from '../src/config/schema';
import { testbedConfig } from '../src/config/testbed';
import type { LogBatch } from '../src/log/central';
import { ClusterLog } from '../src/log/cluster-log';
import { LogShipper } from '../src/log/shipper';
import { Peers } from '../src/net/peers';
import { WireMeter } from '../src/net/wire-meter';
import { createWorkerApp } from '../src/node/worker';
import type { RoundMetrics } from '../src/outputs';
import type { AggregatorRole } from '../src/roles/aggregator';
import { experimentCharts } from '../src/report/charts';
import { meanPhases, nodeRounds } from '../src/report/data';
import { writeReport } from '../src/report/report';
import { freeSubnet, waitFor } from './helpers/cluster';
import { nodeContext, TOKEN } from './helpers/node-context';

const auth = { Authorization: `Bearer ${TOKEN}` };
const WORKERS = new Map<string, 'client' | 'switch'>([['127.0.9.1:5000', 'client'], ['127.0.9.3:5000', 'switch']]);
const entry = (round: number, extra: Record<string, unknown> = {}) => ({
  round, start_time: 't0', end_time: 't1', byte_received: 1000 * round, byte_send: 2000 * round, ...extra,
});
const batch = (over: Partial<LogBatch> = {}): LogBatch => ({
  node: '127.0.9.1-5000', address: '127.0.9.1:5000', role: 'client', experiment: 'exp', boot: 'boot1', entries: [], ...over,
});
const tmp = () => mkdtempSync(join(tmpdir(), 'fl-observe-'));

/** An aggregator's POST /a/logs on loopback that answers `answer` (settable) and records each batch's sequence numbers, with a shipper sending to it. */
async function logsAggregator(status: number, reason: string) {
  const state = { answer: status, requests: [] as number[][], warnings: [] as string[] };
  const app = express().use(express.json()).post('/a/logs', (req, res) => {
    state.requests.push((req.body as LogBatch).entries.map((e) => e.seq));
    if (state.answer === 200) res.json({ status: 'written' });
    else res.status(state.answer).json({ error: state.answer >= 500 ? 'internal error' : 'bad request', reason });
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => (server.closeAllConnections(), server.close()));
  const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const shipper = new LogShipper(
    new Peers(TOKEN, new WireMeter()),
    { node: 'n1', address: '127.0.9.1:5000', aggregator: address, experiment: 'exp', role: 'client' },
    (message) => state.warnings.push(message),
  );
  return Object.assign(state, { shipper });
}

describe('the cluster log at the aggregator', () => {
  it("keeps each worker's iteration log and its warnings in logs/cluster/<experiment>/", () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    cluster.receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1, { train_ms: 50 }) }, { seq: 1, kind: 'log', level: 'warn', time: 'T', message: 'slow round' }] }));
    const file = JSON.parse(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000_exp.json'), 'utf8'));
    assert.deepEqual(file.iteration.map((e: { round: number }) => e.round), [1]);
    assert.equal(file.address, '127.0.9.1:5000');
    assert.match(readFileSync(join(logs, 'cluster', 'exp', '127.0.9.1-5000.log'), 'utf8'), /^T warn \[127\.0\.9\.1-5000\] slow round\n$/);
  });

  it('writes a batch sent twice once, and takes the next boot of the same worker from seq 0', () => {
    const cluster = new ClusterLog(tmp(), 'exp', WORKERS, false);
    const first = batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }, { seq: 1, kind: 'iteration', entry: entry(2) }] });
    assert.deepEqual(cluster.receive(first), { taken: 2, duplicates: 0 });
    assert.deepEqual(cluster.receive(first), { taken: 0, duplicates: 2 });
    const overlapping = batch({ entries: [{ seq: 1, kind: 'iteration', entry: entry(2) }, { seq: 2, kind: 'iteration', entry: entry(3) }] });
    assert.deepEqual(cluster.receive(overlapping), { taken: 1, duplicates: 1 });
    assert.deepEqual(cluster.receive(batch({ boot: 'boot2', entries: [{ seq: 0, kind: 'iteration', entry: entry(4) }] })), { taken: 1, duplicates: 0 });
    assert.deepEqual(cluster.records()[0].iteration.map((e) => e.round), [1, 2, 3, 4]);
  });

  it('refuses strangers, impostors and other experiments, and writes nothing for them', () => {
    const logs = tmp();
    const cluster = new ClusterLog(logs, 'exp', WORKERS, false);
    assert.throws(() => cluster.receive(batch({ address: '127.0.9.9:5000' })), /not a client of experiment exp/);
    assert.throws(() => cluster.receive(batch({ role: 'switch' })), /not a switch of experiment exp/);
    assert.throws(() => cluster.receive(batch({ experiment: 'other' })), /these logs are for other/);
    assert.deepEqual(cluster.records(), []);
    assert.deepEqual(readdirSync(logs, { recursive: true }), ['cluster', join('cluster', 'exp')], 'no file written');
  });

  it('reads its records back on resume, and drops an earlier run on a fresh start', () => {
    const logs = tmp();
    new ClusterLog(logs, 'exp', WORKERS, false).receive(batch({ entries: [{ seq: 0, kind: 'iteration', entry: entry(1) }] }));
    assert.equal(new ClusterLog(logs, 'exp', WORKERS, true).records()[0].iteration.length, 1);
    assert.deepEqual(new ClusterLog(logs, 'exp', WORKERS, false).records(), []);
  });
});

describe("a worker's log shipper", () => {
  it('keeps what the aggregator did not take, and sends it with the next round', async () => {
    const received: LogBatch[] = [];
    let answer = 503;
    const app = express().use(express.json()).post('/a/logs', (req, res) => {
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.sendStatus(401);
      if (answer === 200) received.push(req.body);
      res.status(answer).json({});
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    after(() => server.close());
    const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const meter = new WireMeter();
    const shipper = new LogShipper(new Peers(TOKEN, meter), { node: 'n1', address: '127.0.9.1:5000', aggregator: address, experiment: 'exp', role: 'client' });

    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 1, 'a refused batch stays queued');
    answer = 200;
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    const sent = received.flatMap((b) => b.entries);
    assert.deepEqual(sent.map((e) => e.seq), [0, 1]);
    assert.deepEqual(meter.totals(), { received: 0, sent: 0 }, 'central logs are not counted as experiment traffic');
  });

  it('drops a batch the aggregator refuses with a 4xx, warns once, and goes on with later batches', async () => {
    const aggregator = await logsAggregator(400, 'entry 0 has no round');
    const { requests, warnings, shipper } = aggregator;

    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 0, 'a refused batch is dropped, not kept for the next round');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /400/);
    assert.match(warnings[0], /entry 0 has no round/);
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.equal(warnings.length, 1, 'warned once, not every round');
    aggregator.answer = 200;
    shipper.iteration(entry(3));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.deepEqual(requests, [[0], [1], [2]], 'each refused batch went once; the later one still went');
  });

  it('keeps retrying a batch while the aggregator answers 5xx', async () => {
    const aggregator = await logsAggregator(500, 'see its log');
    const { requests, warnings, shipper } = aggregator;
    shipper.iteration(entry(1));
    await shipper.flush();
    assert.equal(shipper.pending, 1);
    aggregator.answer = 200;
    shipper.iteration(entry(2));
    await shipper.flush();
    assert.equal(shipper.pending, 0);
    assert.deepEqual(requests, [[0], [0, 1]]);
    assert.deepEqual(warnings, []);
  });
});

const rows: RoundMetrics[] = [1, 2, 3].map((round) => ({
  round, accuracy: 0.8 + round / 100, loss: 1 / round, clients: 2, samples: 200, round_ms: 1000, selection_ms: 10, training_ms: 700, waiting_ms: 100,
  aggregation_ms: 40 + round, evaluation_ms: 30, bytes_up: 5e6, bytes_down: 4e6, retries: 0, missing: [],
}));

describe('the numbers behind the charts', () => {
  const workers = [
    { node: 'c1', address: '127.0.9.1:5000', role: 'client' as const, iteration: [entry(1, { train_ms: 100, encrypt_ms: 20, send_ms: 5 }), entry(2, { train_ms: 300, encrypt_ms: 40, send_ms: 7 })] },
    { node: 's1', address: '127.0.9.3:5000', role: 'switch' as const, iteration: [entry(1, { aggregate_ms: 3, he_sum_ms: 9 }), entry(1, { aggregate_ms: 5, he_sum_ms: 11 })] },
  ];

  it('gives one row per node and round; a retried round counts its last try', () => {
    const perNode = nodeRounds('127.0.9.9:5000', rows, workers);
    assert.equal(perNode.filter((r) => r.role === 'aggregator').length, 3);
    const sw = perNode.filter((r) => r.node === '127.0.9.3:5000');
    assert.deepEqual(sw.map((r) => r.phases), [{ aggregate: 16 }]);
    const agg = perNode.find((r) => r.role === 'aggregator' && r.round === 2)!;
    assert.deepEqual({ sent: agg.sent, received: agg.received }, { sent: 4e6, received: 5e6 });
  });

  it('averages each phase per node', () => {
    const means = meanPhases(nodeRounds('127.0.9.9:5000', rows, workers));
    const client = Object.fromEntries(means.filter((m) => m.node === '127.0.9.1:5000').map((m) => [m.phase, m.ms]));
    assert.deepEqual(client, { train: 200, encrypt: 30, send: 6 });
  });

  it('puts every round and node into the chart specs', () => {
    const charts = experimentCharts(rows, nodeRounds('127.0.9.9:5000', rows, workers));
    assert.deepEqual((charts.accuracy.data as { values: { round: number }[] }).values.map((v) => v.round), [1, 2, 3]);
    const nodes = new Set((charts.bytes.data as { values: { node: string }[] }).values.map((v) => v.node));
    assert.deepEqual([...nodes].sort(), ['127.0.9.1:5000 (client)', '127.0.9.3:5000 (switch)', '127.0.9.9:5000 (aggregator)']);
  });
});

describe('the report', () => {
  it('writes one offline HTML file with the charts inline, and a PNG of each chart', async () => {
    const dir = tmp();
    const settings = parseExperimentConfig(testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }));
    const { html, pngs } = await writeReport(dir, {
      experiment: 'exp', aggregator: '127.0.9.4:5000', settings, workers: WORKERS, rows, records: [],
    });
    const page = readFileSync(html, 'utf8');
    assert.equal((page.match(/<svg/g) ?? []).length, 3);
    assert.doesNotMatch(page, /<script|src="http|href="http/, 'nothing to load, from anywhere');
    assert.match(page, /Final accuracy <b>83\.00%<\/b> after 3 rounds/);
    assert.match(page, /CKKS on, key held by the aggregator/);
    assert.equal(pngs.length, 3, 'a PNG for each chart');
    for (const png of pngs) {
      assert.ok(existsSync(png));
      const bytes = readFileSync(png);
      assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], `${png} is a PNG`);
      assert.ok(bytes.readUInt32BE(16) >= 800, `${png} is at least 800 px wide`);
    }
  });
});

describe('the dashboard routes', () => {
  const configs = (): NodeConfig[] => [...resolveNodeConfigs(parseExperimentConfig(testbedConfig({ base: freeSubnet(), nodes: 4, switches: 1, he: false }))).values()];

  it('serves the page, its state and its chart libraries at the aggregator, without the token', async () => {
    const nodes = configs();
    const { app, roles } = createWorkerApp(nodeContext('agg'), TOKEN);
    after(() => roles.unmount());
    await request(app).post('/config').set(auth).send(nodes.find((n) => n.type === 'aggregator')).expect(201);
    const page = await request(app).get('/').expect(200);
    assert.match(page.headers['content-type'], /text\/html/);
    assert.doesNotMatch(page.text, /src="http|href="http/, 'every asset comes from the aggregator');
    const state = (await request(app).get('/dashboard/state').expect(200)).body;
    assert.equal(state.rounds, nodes[0].settings.rounds);
    assert.deepEqual(state.nodes.map((n: { role: string }) => n.role).sort(), ['aggregator', 'client', 'client', 'switch']);
    assert.ok(state.settings.some(([k, v]: string[]) => k === 'homomorphic encryption' && v === 'off'));
    assert.ok(!JSON.stringify(state).includes(TOKEN));
    const vega = await request(app).get('/dashboard/assets/vega.min.js').expect(200);
    assert.ok(vega.body.length > 100_000 || vega.text.length > 100_000);
    assert.equal((await request(app).get('/dashboard/assets/..%2F..%2Fpackage.json').expect(404)).body.error, 'not found');
  });

  it('caps the open event streams: one more gets a JSON 503, and a closed stream frees its slot and its listener', async () => {
    const { app, roles } = createWorkerApp(nodeContext('agg-events'), TOKEN);
    await request(app).post('/config').set(auth).send(configs().find((n) => n.type === 'aggregator')).expect(201);
    const changes = (roles.role as AggregatorRole).changes;
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    after(async () => (server.closeAllConnections(), server.close(), await roles.unmount()));
    const port = (server.address() as { port: number }).port;
    const open = () =>
      new Promise<{ req: http.ClientRequest; res: http.IncomingMessage }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/dashboard/events', agent: false }, (res) => resolve({ req, res }));
        req.on('error', reject);
      });
    const body = (res: http.IncomingMessage) =>
      new Promise<string>((resolve) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk) => (text += chunk)).on('end', () => resolve(text));
      });
    const listening = () => changes.listenerCount('change');
    const before = listening();

    const streams = [];
    for (let i = 0; i < MAX_EVENT_STREAMS; i++) streams.push(await open());
    assert.ok(streams.every(({ res }) => res.statusCode === 200 && /text\/event-stream/.test(res.headers['content-type']!)));
    assert.equal(listening(), before + MAX_EVENT_STREAMS);
    const refused = await open();
    assert.equal(refused.res.statusCode, 503);
    const answer = JSON.parse(await body(refused.res));
    assert.equal(typeof answer.error, 'string');
    assert.match(answer.reason, new RegExp(`${MAX_EVENT_STREAMS} event streams`));
    assert.equal(listening(), before + MAX_EVENT_STREAMS, 'a refused stream adds no listener');

    streams.pop()!.req.destroy();
    await waitFor(async () => listening() === before + MAX_EVENT_STREAMS - 1);
    const again = await open();
    assert.equal(again.res.statusCode, 200, 'the closed stream freed its slot');
    streams.push(again);
    for (const { req } of streams) req.destroy();
    await waitFor(async () => listening() === before);
    assert.equal((await open()).res.statusCode, 200);
  });

  it('answers GET / on a worker with a JSON 404 that points at the aggregator', async () => {
    const nodes = configs();
    const { app, roles } = createWorkerApp(nodeContext('client'), TOKEN);
    after(() => roles.unmount());
    const client = nodes.find((n) => n.type === 'client')!;
    await request(app).post('/config').set(auth).send(client).expect(201);
    const res = await request(app).get('/').expect(404);
    assert.match(res.body.reason, new RegExp(`the aggregator at ${client.aggregator.replace(/\./g, '\\.')} serves the dashboard`));
  });
});
