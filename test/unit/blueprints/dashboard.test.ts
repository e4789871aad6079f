/** The dashboard's routes on a mounted aggregator: the page, its state, its assets, and a cap on event streams. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { MAX_EVENT_STREAMS } from '../../../src/blueprints/dashboard';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { createWorkerApp } from '../../../src/node/worker';
import type { AggregatorRole } from '../../../src/roles/aggregator';
import { freeSubnet, waitFor } from '../../helpers/cluster';
import { as, configPush, nodeContext, TOKEN } from '../../helpers/node-context';

/** The headers of the aggregator pushing `config`: only it may. */
const fromAggregator = (config: NodeConfig | undefined) => as(config!.aggregator);

describe('the dashboard routes', () => {
  const configs = (): NodeConfig[] => [...resolveNodeConfigs(parseExperimentConfig(testbedConfig({ base: freeSubnet(), nodes: 4, switches: 1, he: false }))).values()];

  it('serves the page, its state and its chart libraries at the aggregator, without the token', async () => {
    const nodes = configs();
    const { app, roles } = createWorkerApp(nodeContext('agg'));
    after(() => roles.unmount());
    const aggregator = nodes.find((n) => n.type === 'aggregator');
    await request(app).post('/config').set(configPush(aggregator)).send(aggregator).expect(201);
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
    const { app, roles } = createWorkerApp(nodeContext('agg-events'));
    const aggregator = configs().find((n) => n.type === 'aggregator');
    await request(app).post('/config').set(configPush(aggregator)).send(aggregator).expect(201);
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
    const { app, roles } = createWorkerApp(nodeContext('client'));
    after(() => roles.unmount());
    const client = nodes.find((n) => n.type === 'client')!;
    await request(app).post('/config').set(configPush(client)).send(client).expect(201);
    const res = await request(app).get('/').expect(404);
    assert.match(res.body.reason, new RegExp(`the aggregator at ${client.aggregator.replace(/\./g, '\\.')} serves the dashboard`));
  });
});
