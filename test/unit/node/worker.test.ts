/** The worker's HTTP surface in this process: /health, POST /config mounting and replacing roles, refusals that change nothing, monitoring left out of byte counts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { configFingerprint } from '../../../src/config/fingerprint';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import { type NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { CONFIG_BODY_LIMIT, createWorkerApp } from '../../../src/node/worker';
import { Role } from '../../../src/roles/role';
import { as, configPush, nodeContext, operator, TOKEN } from '../../helpers/node-context';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

/** The operator reads; the aggregator pushes configs. */
const auth = operator();

function configs(experiment = 'exp-a'): NodeConfig[] {
  const raw = testbedConfig({ base: '127.0.0', nodes: 5, switches: 1, experiment, he: false });
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
}

const ofType = (type: NodeConfig['type'], experiment?: string) => configs(experiment).find((c) => c.type === type)!;
const fromAggregator = as(ofType('aggregator').address);

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

function worker() {
  return createWorkerApp(nodeContext());
}

describe('worker before it has a config', () => {
  it('answers /health without the token, and shows no role', async () => {
    const res = await request(worker().app).get('/health').expect(200);
    assert.equal(res.body.status, 'ok');
    assert.equal(res.body.role, null);
  });

  it('answers role routes with a JSON 404 that says why', async () => {
    const res = await request(worker().app).get('/c/status').set(auth).expect(404);
    assert.match(res.body.reason, /no role yet/);
  });
});

describe('POST /config', () => {
  for (const type of ['client', 'switch', 'aggregator'] as const) {
    it(`mounts the ${type} blueprint under its prefix, and only that one`, async () => {
      const { app } = worker();
      const config = ofType(type);
      const res = await request(app).post('/config').set(configPush(config)).send(config).expect(201);
      assert.deepEqual(res.body, { status: 'mounted', role: type, prefix: `/${type[0]}`, experiment: 'exp-a' });
      const status = await request(app).get(`/${type[0]}/status`).set(auth).expect(200);
      assert.equal(status.body.role, type);
      for (const other of ['c', 's', 'a'].filter((p) => p !== type[0])) {
        const miss = await request(app).get(`/${other}/status`).set(auth).expect(404);
        assert.match(miss.body.reason, new RegExp(`this node is a ${type}`));
      }
      const health = await request(app).get('/health').expect(200);
      assert.equal(health.body.role, type);
      assert.deepEqual((await request(app).get('/config').set(auth).expect(200)).body, config);
    });
  }

  it('replaces the role with the next config: old one stopped, new one alone answers', async () => {
    const { app, roles } = worker();
    await request(app).post('/config').set(configPush(ofType('client', 'exp-a'))).send(ofType('client', 'exp-a')).expect(201);
    const first = roles.role!;
    const res = await request(app).post('/config').set(configPush(ofType('switch', 'exp-b'))).send(ofType('switch', 'exp-b')).expect(201);
    assert.equal(res.body.status, 'replaced');
    assert.ok(first.isStopped, 'the old role was stopped');
    assert.notEqual(roles.role, first);
    await request(app).get('/c/status').set(auth).expect(404);
    const status = await request(app).get('/s/status').set(auth).expect(200);
    assert.equal(status.body.experiment, 'exp-b');
  });

  it('replaces a role of the same type without leaving the old router answering', async () => {
    const { app, roles } = worker();
    await request(app).post('/config').set(configPush(ofType('client', 'exp-a'))).send(ofType('client', 'exp-a')).expect(201);
    const first = roles.role!;
    await request(app).post('/config').set(configPush(ofType('client', 'exp-b'))).send(ofType('client', 'exp-b')).expect(201);
    assert.ok(first.isStopped);
    const status = await request(app).get('/c/status').set(auth).expect(200);
    assert.equal(status.body.experiment, 'exp-b');
  });

  it('keeps the role when the same config arrives again', async () => {
    const { app, roles } = worker();
    await request(app).post('/config').set(configPush(ofType('client'))).send(ofType('client')).expect(201);
    const first = roles.role!;
    const res = await request(app).post('/config').set(configPush(ofType('client'))).send(ofType('client')).expect(200);
    assert.equal(res.body.status, 'unchanged');
    assert.equal(roles.role, first);
    assert.ok(!first.isStopped);
  });

  it('shows the incoming config on /health while the old role stops, never none', async () => {
    // An aggregator's health check that saw "no config" mid-replacement would push the old config back.
    const { app, roles } = worker();
    await request(app).post('/config').set(configPush(ofType('client', 'exp-a'))).send(ofType('client', 'exp-a')).expect(201);
    let releaseStop!: () => void;
    const old = roles.role!;
    const stop = old.stop.bind(old);
    old.stop = async () => {
      await new Promise<void>((resolve) => (releaseStop = resolve));
      await stop();
    };
    const next = ofType('switch', 'exp-b');
    const replacing = request(app).post('/config').set(configPush(next)).send(next).expect(201).then();
    await waitUntil(() => releaseStop !== undefined);
    const during = await request(app).get('/health').expect(200);
    releaseStop();
    await replacing;
    assert.equal(during.body.config, configFingerprint(next));
    assert.equal((await request(app).get('/health').expect(200)).body.config, configFingerprint(next));
  });

  it('applies configs one at a time, in order, when they race', async () => {
    const { app, roles } = worker();
    // The order the configs reach the role host, whatever order the four requests are sent in, and
    // the role each one mounted. Each role takes a while to stop (a real one ends its timers and
    // requests), long enough for the next configs to arrive while it does.
    const arrived: string[] = [];
    const mounted: Role[] = [];
    const apply = roles.apply.bind(roles);
    roles.apply = async (config, options) => {
      arrived.push(config.experiment);
      const result = await apply(config, options);
      const role = roles.role!;
      const stop = role.stop.bind(role);
      role.stop = async () => {
        await new Promise((r) => setTimeout(r, 30));
        await stop();
      };
      mounted.push(role);
      return result;
    };
    const sent = ['r1', 'r2', 'r3', 'r4'];
    const answers = await Promise.all(sent.map((e) => request(app).post('/config').set(configPush(ofType('client', e))).send(ofType('client', e)).expect(201)));
    assert.deepEqual([...arrived].sort(), sent);
    // In arrival order: the first mounted, each later one replacing the one before it.
    const statusOf = new Map(answers.map((a) => [a.body.experiment, a.body.status]));
    assert.deepEqual(arrived.map((e) => statusOf.get(e)), ['mounted', 'replaced', 'replaced', 'replaced']);
    assert.deepEqual(mounted.map((r) => r.config.experiment), arrived);
    // One at a time: every role but the last was stopped, and the last to arrive is the one that runs.
    assert.deepEqual(mounted.map((r) => r.isStopped), [true, true, true, false]);
    assert.equal(roles.role, mounted.at(-1));
    assert.equal((await request(app).get('/c/status').set(auth).expect(200)).body.experiment, arrived.at(-1));
  });
});

describe('refusals leave the node as it was', () => {
  const mounted = ofType('client');
  /** The client's config with another model and data, pushed by its aggregator. */
  const withModel = (model: object, data: object): NodeConfig => ({ ...mounted, settings: { ...mounted.settings, model, data: { ...mounted.settings.data, ...data } } }) as NodeConfig;
  const pushed = (r: request.Agent | ReturnType<typeof request>, config: NodeConfig) => r.post('/config').set(configPush(config)).send(config);
  const cases: { name: string; send: (r: request.Agent | ReturnType<typeof request>) => request.Test; status: number; reason: RegExp; detail?: RegExp }[] = [
    { name: 'no token', send: (r) => r.post('/config').send(ofType('switch')), status: 401, reason: /missing bearer token/ },
    { name: 'a wrong token', send: (r) => r.post('/config').set({ Authorization: 'Bearer not-the-token-at-all' }).send(ofType('switch')), status: 401, reason: /the token alone is no operator's/ },
    { name: 'another auth scheme', send: (r) => r.post('/config').set({ Authorization: `Basic ${TOKEN}` }).send(ofType('switch')), status: 401, reason: /missing bearer/ },
    { name: 'a wrong token on a role route', send: (r) => r.get('/c/status').set({ Authorization: 'Bearer nope' }), status: 401, reason: /the token alone is no operator's/ },
    // Identity: a node proves who it is with its own token, and acts only as itself.
    { name: "the aggregator's name with a client's token", send: (r) => r.post('/config').set({ ...as(mounted.address), 'x-fl-node': mounted.aggregator }).send(ofType('switch')), status: 401, reason: new RegExp(`the token is not ${mounted.aggregator}'s`) },
    { name: 'a config pushed by a client of the experiment', send: (r) => r.post('/config').set(as(mounted.address)).send(ofType('switch')), status: 403, reason: /only this node's aggregator pushes its config; the call comes from 127\.0\.0\.1:5000/ },
    { name: 'a config naming the caller its aggregator', send: (r) => r.post('/config').set(as('127.0.0.2:5000')).send({ ...ofType('switch'), aggregator: '127.0.0.2:5000' }), status: 403, reason: /only this node's aggregator pushes its config/ },
    { name: 'a config pushed by the operator', send: (r) => r.post('/config').set(auth).send(ofType('switch')), status: 403, reason: /the call comes from the operator/ },
    { name: 'a name that is no address', send: (r) => r.get('/c/status').set({ ...as(mounted.address), 'x-fl-node': 'not an address' }), status: 401, reason: /is not an address/ },
    { name: 'malformed JSON', send: (r) => r.post('/config').set(fromAggregator).set('Content-Type', 'application/json').send('{"type": "client",'), status: 400, reason: /not valid JSON/ },
    { name: 'a body that is not JSON', send: (r) => r.post('/config').set(fromAggregator).set('Content-Type', 'text/plain').send('type=client'), status: 415, reason: /expected Content-Type application\/json/ },
    { name: 'a JSON string instead of an object', send: (r) => r.post('/config').set(fromAggregator).set('Content-Type', 'application/json').send('"client"'), status: 400, reason: /not valid JSON|failed validation/ },
    { name: 'an unknown role', send: (r) => r.post('/config').set(configPush({ ...ofType('switch'), type: 'router' })).send({ ...ofType('switch'), type: 'router' }), status: 400, reason: /failed validation/ },
    { name: 'a wrong type for a field', send: (r) => r.post('/config').set(configPush({ ...ofType('client'), index: 'zero' })).send({ ...ofType('client'), index: 'zero' }), status: 400, reason: /failed validation/ },
    { name: 'an experiment name that leaves the logs folder', send: (r) => r.post('/config').set(configPush({ ...ofType('switch'), experiment: '../../etc' })).send({ ...ofType('switch'), experiment: '../../etc' }), status: 400, reason: /failed validation/ },
    { name: 'a model its data cannot take', send: (r) => pushed(r, withModel({ architecture: 'cnn', hidden_units: 32 }, { source: 'csv', path: 'rows.csv', shape: [49], classes: 10 })), status: 400, reason: /failed validation/, detail: /^model.architecture: "cnn": the CNN needs images of at least 16x16/ },
    { name: 'a model too large to build', send: (r) => pushed(r, withModel({ architecture: 'mlp', hidden_units: 4096 }, { source: 'png', path: 'images', shape: [4096, 4096, 3], classes: 10 })), status: 400, reason: /failed validation/, detail: /^model: "mlp" on data.shape \[4096, 4096, 3\] has 206,158,475,274 parameters, more than the 100,000,000 a node builds$/ },
    { name: 'an oversized body', send: (r) => r.post('/config').set(configPush({ ...ofType('switch'), pad: 'x'.repeat(CONFIG_BODY_LIMIT) })).send({ ...ofType('switch'), pad: 'x'.repeat(CONFIG_BODY_LIMIT) }), status: 413, reason: /takes at most/ },
  ];
  for (const { name, send, status, reason, detail } of cases) {
    it(`${name}: ${status} with a JSON reason`, async () => {
      const { app, roles } = worker();
      await request(app).post('/config').set(configPush(mounted)).send(mounted).expect(201);
      const role = roles.role!;
      const res = await send(request(app)).expect(status).expect('Content-Type', /json/);
      assert.match(res.body.reason, reason);
      if (detail) assert.ok(res.body.details?.some((d: string) => detail.test(d)), JSON.stringify(res.body));
      assert.equal(roles.role, role, 'the mounted role is the same');
      assert.ok(!role.isStopped);
      assert.deepEqual((await request(app).get('/config').set(auth).expect(200)).body, mounted);
    });
  }

  it("takes a first config, when it holds the cluster token and no book, only with the config proof of the operator's aggregator", async () => {
    const config = ofType('switch');
    const intruder = '127.0.0.2:5000';
    const { app, roles } = worker();
    const hijack = { ...config, aggregator: intruder };
    // Another node of the testbed, naming itself the aggregator: its token is its own, but it cannot make the proof.
    const bare = await request(app).post('/config').set(as(intruder)).send(hijack).expect(403);
    assert.match(bare.body.reason, /only this node's aggregator pushes its config; the call comes from 127\.0\.0\.2:5000/);
    const otherProof = { ...as(intruder), 'x-fl-config-proof': configPush({ ...config, address: intruder })['x-fl-config-proof'] };
    await request(app).post('/config').set(otherProof).send(hijack).expect(403);
    assert.equal(roles.role, undefined, 'nothing mounted');
    await request(app).post('/config').set(configPush(config)).send(config).expect(201);
  });

  it('names the fields that failed validation', async () => {
    const res = await request(worker().app).post('/config').set(configPush({ ...ofType('client'), index: -1, settings: { rounds: 0 } })).send({ ...ofType('client'), index: -1, settings: { rounds: 0 } }).expect(400);
    assert.ok(res.body.details.some((d: string) => /^index: /.test(d)), res.body.details);
    assert.ok(res.body.details.some((d: string) => /^settings.rounds: /.test(d)), res.body.details);
  });

  it('never sends the token back, and never writes it to its log', async () => {
    const context = nodeContextWithLog();
    const { app } = createWorkerApp(context.node);
    await request(app).post('/config').set(configPush(ofType('client'))).send(ofType('client')).expect(201);
    const res = await request(app).get('/config').set(auth);
    assert.ok(!JSON.stringify(res.body).includes(TOKEN));
    await context.flush();
    assert.ok(context.text().length > 0);
    assert.ok(!context.text().includes(TOKEN));
  });
});

function nodeContextWithLog() {
  const node = nodeContext('logged');
  return {
    node,
    flush: () => new Promise((r) => node.logger.on('finish', r).end()),
    text: () => readFileSync(join(node.logsDir, 'logged.log'), 'utf8'),
  };
}

describe('byte counts', () => {
  it("health checks on a connection of their own are left out of a node's byte counts", async () => {
    const context = nodeContext('metered');
    const { app } = createWorkerApp(context);
    const server = http.createServer(app);
    context.meter.attachServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new http.Agent({ keepAlive: true });
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<void>((resolve, reject) => http.get(`http://${base}${path}`, { agent, headers }, (res) => res.resume().on('end', resolve)).on('error', reject));
    try {
      for (let i = 0; i < 5; i++) await get('/health');
      assert.deepEqual(context.meter.totals(), { received: 0, sent: 0 });
      await request(`http://${base}`).get('/config').set({ Authorization: `Bearer ${TOKEN}` }); // experiment traffic counts
      assert.ok(context.meter.totals().received > 0);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});


describe('a stranger announcing a large body', () => {
  it('hears its 401 at once and is hung up on, rather than held for the rest of the body', async () => {
    const { app } = createWorkerApp(nodeContext('stranger'));
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      let answer = '';
      socket.on('data', (d) => (answer += d));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      // 100 MB promised, a few bytes sent, and then nothing: a slow loris.
      socket.write('POST /config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"type"');
      // Hung up on at once; were it held, the server would wait 15 minutes for the body (a bound, not a sleep).
      const held = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 10 s'), 10_000).unref());
      assert.equal(await Promise.race([closed.then(() => 'closed'), held]), 'closed');
      assert.match(answer, /^HTTP\/1\.1 401 /);
      assert.match(answer, /\r\nConnection: close\r\n/i);
    } finally {
      socket.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});
