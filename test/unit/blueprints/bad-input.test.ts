/**
 * Bad input on every role route, as one table: each case gets a 4xx with a JSON reason, and the node
 * stays up with its state as it was. (POST /config has its own table in worker.test.ts, and the
 * switch's update checks theirs in routes.test.ts.)
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parseAddress } from '../../../src/config/address';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import { buildModel, expectedParameterCount, modelId } from '../../../src/model/model';
import { createWorkerApp, type WorkerApp } from '../../../src/node/worker';
import { encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../../../src/wire/codec';
import { freeSubnet, waitFor } from '../../helpers/cluster';
import { nodeContext, TOKEN } from '../../helpers/node-context';

const auth = { Authorization: `Bearer ${TOKEN}` };
const MODEL = { architecture: 'mlp' as const, hidden_units: 8 };
const PARAMS = expectedParameterCount(MODEL);
const HE_PARAMS = { poly_modulus_degree: 4096, coeff_modulus_bits: [54, 54], scale_bits: 45 };
const HE = { enabled: true, key_holder: 'aggregator', ...HE_PARAMS };

/** A 7-node experiment on a subnet where nothing listens: 4 clients, 2 switches, the aggregator. */
function experiment(he: boolean): NodeConfig[] {
  const raw = testbedConfig({ base: freeSubnet(), nodes: 7, switches: 2, he }) as Record<string, any>;
  raw.model = MODEL;
  if (he) raw.he = HE;
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
}

interface Node {
  worker: WorkerApp;
  config: NodeConfig;
  /** The role's state as GET <prefix>/status shows it. */
  status(): Promise<Record<string, unknown>>;
}

async function mount(config: NodeConfig): Promise<Node> {
  const worker = createWorkerApp(nodeContext(config.type), TOKEN);
  await request(worker.app).post('/config').set(auth).send(config).expect(201);
  const prefix = { client: '/c', switch: '/s', aggregator: '/a' }[config.type];
  const status = async () => (await request(worker.app).get(`${prefix}/status`).set(auth).expect(200)).body;
  if (config.type !== 'switch') await waitFor(async () => (await status()).backend !== null, 60_000);
  return { worker, config, status };
}

/** Stand-in switches that take any round opening: an aggregator does not wait for a switch that cannot open its round. */
const standIns: http.Server[] = [];
async function standInSwitches(nodes: NodeConfig[]): Promise<void> {
  for (const config of nodes.filter((n) => n.type === 'switch')) {
    const { host, port } = parseAddress(config.address);
    const server = http.createServer((req, res) => (req.resume(), res.setHeader('Content-Type', 'application/json'), res.end('{"status":"open"}')));
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    standIns.push(server);
  }
}

/** An aggregator in the middle of round 1: every client checked in, the switch's sum awaited. */
async function aggregatorInRound(nodes: NodeConfig[]): Promise<Node> {
  await standInSwitches(nodes);
  const node = await mount(nodes.find((n) => n.type === 'aggregator')!);
  for (const client of nodes.filter((n) => n.type === 'client')) {
    await request(node.worker.app).post('/a/checkin').set(auth).send({ client: client.address, samples: 100 }).expect(200);
  }
  assert.equal((await node.status()).stage, 'training');
  return node;
}

const wire = (message: Partial<Message> & Pick<Message, 'kind'>): Buffer =>
  encode({ round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: '', parameters: new Float32Array(PARAMS).fill(0.1), ...message });
const MODEL_ID = (() => {
  const model = buildModel(MODEL, 42);
  const id = modelId(model);
  model.dispose();
  return id;
})();

type Send = (app: WorkerApp['app']) => request.Test;
/** The body is made when the case runs: some need what before() set up. */
const postWire = (path: string, body: Buffer | (() => Buffer)): Send => (app) =>
  request(app).post(path).set(auth).set('Content-Type', WIRE_CONTENT_TYPE).send(typeof body === 'function' ? body() : body);
const postJson = (path: string, body: unknown): Send => (app) => request(app).post(path).set(auth).send(body as object);
const postRaw = (path: string, text: string): Send => (app) => request(app).post(path).set(auth).set('Content-Type', 'application/json').send(text);

interface Case {
  name: string;
  send: Send;
  status: number;
  reason: RegExp;
}

/** Runs each case against `node` and checks the node answers and its state did not move. */
function table(title: string, node: () => Node, cases: Case[]): void {
  describe(title, () => {
    for (const c of cases) {
      it(`${c.name}: ${c.status}, with a JSON reason; state unchanged`, async () => {
        const before = await node().status();
        const res = await c.send(node().worker.app).expect('Content-Type', /json/);
        assert.equal(res.status, c.status, JSON.stringify(res.body));
        assert.match(res.body.reason, c.reason);
        assert.deepEqual(await node().status(), before);
        await request(node().worker.app).get('/health').expect(200);
      });
    }
  });
}

/** Every route of a role, without and with a wrong token. */
const tokenCases = (routes: [string, string][]): Case[] =>
  routes.flatMap(([method, path]) => [
    { name: `${method} ${path} without a token`, send: (app) => (method === 'GET' ? request(app).get(path) : request(app).post(path).send({})), status: 401, reason: /missing bearer token/ },
    {
      name: `${method} ${path} with a wrong token`,
      send: (app) => (method === 'GET' ? request(app).get(path) : request(app).post(path).send({})).set({ Authorization: 'Bearer not-the-cluster-token' }),
      status: 401,
      reason: /wrong cluster token/,
    },
  ]);

describe('bad input on every role route', () => {
  const plain = experiment(false);
  const encrypted = experiment(true);
  const [clientConfig] = plain.filter((n) => n.type === 'client');
  const switchConfig = plain.find((n) => n.type === 'switch')!;
  const [heSwitch] = encrypted.filter((n) => n.type === 'switch');
  let client: Node;
  let sw: Node;
  let aggregator: Node;
  let heAggregator: Node;
  let pool: HePool;
  let ciphertexts: Uint8Array[];
  let attempt = '';
  let heAttempt = '';
  const membersOf = (config: NodeConfig) => (config.type === 'switch' ? Object.keys(config.tree) : []);

  before(async () => {
    [client, sw, aggregator, heAggregator] = await Promise.all([mount(clientConfig), mount(switchConfig), aggregatorInRound(plain), aggregatorInRound(encrypted)]);
    attempt = String((await aggregator.status()).attempt);
    heAttempt = String((await heAggregator.status()).attempt);
    // A valid sum from the first switch, taken before the cases run (a second one is a duplicate); the second switch keeps the round open.
    const sum = wire({ kind: Kind.WeightedSum, sender: switchConfig.address, contributors: 2, weight: 200, meta: { attempt, clients: membersOf(switchConfig) } });
    await postWire('/a/receive', sum)(aggregator.worker.app).expect(200);
    // Ciphertexts under another key pair with the experiment's parameters.
    pool = await HePool.start(HE_PARAMS, { publicKey: (await Ckks.generateKeys(HE_PARAMS)).publicKey });
    ciphertexts = await pool.encrypt(new Float32Array(PARAMS).fill(0.01));
  });
  after(async () => {
    await pool.close();
    for (const node of [client, sw, aggregator, heAggregator]) await node?.worker.roles.unmount();
    for (const server of standIns) server.close();
  });

  const modelMessage = (over: Partial<Message> = {}) =>
    wire({ kind: Kind.Model, sender: '127.0.0.1:5000', meta: { epochs: 1, batchSize: 32, learningRate: 0.1, attempt: 'x' }, ...over });

  table('client: /c/round, /c/evaluate, /c/standby', () => client, [
    ...tokenCases([['GET', '/c/status'], ['POST', '/c/round'], ['POST', '/c/evaluate'], ['POST', '/c/standby']]),
    { name: 'a model that is no wire message', send: postWire('/c/round', Buffer.from('not a model at all, just some text that is longer than a header')), status: 400, reason: /bad magic/ },
    { name: 'a model sent as JSON', send: postJson('/c/round', { weights: [1, 2, 3] }), status: 415, reason: /expected Content-Type application\/vnd\.fl-testbed\.wire/ },
    { name: 'a model of the wrong size', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS - 3) })), status: 400, reason: /has \d+ parameters; the message has \d+/ },
    { name: 'a model with NaN in it', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS).fill(NaN) })), status: 400, reason: /parameter 0 is NaN/ },
    { name: 'a model with an infinite value', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS).fill(-Infinity) })), status: 400, reason: /is -Infinity/ },
    { name: 'a model of another architecture', send: postWire('/c/round', () => modelMessage({ modelId: MODEL_ID + 1 })), status: 400, reason: /model id \d+ is not this experiment's/ },
    { name: 'an update sent as a model', send: postWire('/c/round', () => modelMessage({ kind: Kind.Update })), status: 400, reason: /expected Model/ },
    { name: 'a model without instructions', send: postWire('/c/round', () => modelMessage({ meta: { epochs: 1 } })), status: 400, reason: /lack a positive "batchSize"/ },
    { name: 'a model with a negative learning rate', send: postWire('/c/round', () => modelMessage({ meta: { epochs: 1, batchSize: 32, learningRate: -1 } })), status: 400, reason: /lack a positive "learningRate"/ },
    { name: 'a model over the size limit', send: postWire('/c/round', Buffer.alloc(PARAMS * 4 + 200_000)), status: 413, reason: /takes at most/ },
    { name: 'an encrypted model to a client without a key', send: postWire('/c/evaluate', () => modelMessage()), status: 409, reason: /holds no HE key/ },
    { name: 'a standby in malformed JSON', send: postRaw('/c/standby', '{"round": 1'), status: 400, reason: /not valid JSON/ },
    { name: 'a standby with a wrong type', send: postJson('/c/standby', { round: 'one' }), status: 400, reason: /expected \{"round": <number>\}/ },
  ]);

  table('switch: /s/round, /s/receive', () => sw, [
    ...tokenCases([['GET', '/s/status'], ['POST', '/s/round'], ['POST', '/s/receive']]),
    { name: 'a round opening in malformed JSON', send: postRaw('/s/round', '{"round": '), status: 400, reason: /not valid JSON/ },
    { name: 'a round opening with wrong types', send: postJson('/s/round', { round: 'one', attempt: 1, clients: 'all' }), status: 400, reason: /not a round opening/ },
    { name: 'a round opening with an unknown field', send: postJson('/s/round', { round: 1, attempt: 'a', clients: membersOf(switchConfig), deadline_ms: 1000, parameters: PARAMS, model_id: MODEL_ID, extra: 1 }), status: 400, reason: /not a round opening/ },
    { name: 'a round naming a stranger', send: postJson('/s/round', { round: 1, attempt: 'a', clients: ['127.0.0.99:5000'], deadline_ms: 1000, parameters: PARAMS, model_id: MODEL_ID }), status: 400, reason: /not clients of this switch/ },
    { name: 'an update before any round is open', send: postWire('/s/receive', () => wire({ kind: Kind.Update, sender: membersOf(switchConfig)[0] })), status: 409, reason: /no round is open/ },
  ]);

  const sumFrom = (over: Partial<Message> = {}, meta: Record<string, unknown> = {}) =>
    wire({ kind: Kind.WeightedSum, sender: switchConfig.address, contributors: 1, meta: { attempt, clients: [membersOf(switchConfig)[1]], ...meta }, ...over });

  const logBatch = (over: Record<string, unknown> = {}) => ({
    node: 'client-1', address: clientConfig.address, role: 'client', experiment: clientConfig.experiment, boot: 'b00t', entries: [], ...over,
  });

  table('aggregator: /a/checkin, /a/receive, /a/logs, /a/he/public-key', () => aggregator, [
    ...tokenCases([['GET', '/a/status'], ['POST', '/a/checkin'], ['POST', '/a/receive'], ['POST', '/a/logs'], ['GET', '/a/he/public-key']]),
    { name: 'logs in malformed JSON', send: postRaw('/a/logs', '{"node": '), status: 400, reason: /not valid JSON/ },
    { name: 'logs with an entry of the wrong shape', send: postJson('/a/logs', logBatch({ entries: [{ seq: 0, kind: 'iteration', entry: { round: 'one' } }] })), status: 400, reason: /the batch failed validation/ },
    { name: 'logs with a node id that is a path', send: postJson('/a/logs', logBatch({ node: '../../etc/passwd' })), status: 400, reason: /the batch failed validation/ },
    { name: 'logs from a node not in the experiment', send: postJson('/a/logs', logBatch({ address: '127.0.0.99:5000' })), status: 403, reason: /is not a client of experiment/ },
    { name: 'logs from a client claiming to be a switch', send: postJson('/a/logs', logBatch({ role: 'switch' })), status: 403, reason: /is not a switch of experiment/ },
    { name: 'logs of another experiment', send: postJson('/a/logs', logBatch({ experiment: 'someone-else' })), status: 409, reason: /these logs are for someone-else/ },
    { name: 'a check-in in malformed JSON', send: postRaw('/a/checkin', '{"client": '), status: 400, reason: /not valid JSON/ },
    { name: 'a check-in with wrong types', send: postJson('/a/checkin', { client: 5, samples: 'many' }), status: 400, reason: /expected \{"client"/ },
    { name: 'a check-in from a node not in the experiment', send: postJson('/a/checkin', { client: '127.0.0.99:5000', samples: 10 }), status: 403, reason: /not a client of this experiment/ },
    { name: 'a second sum from the same switch in one round', send: postWire('/a/receive', () => sumFrom()), status: 409, reason: /already reported for round 1/ },
    { name: 'a sum for a round that is over', send: postWire('/a/receive', () => sumFrom({ round: 0 }, { attempt: 'old' })), status: 409, reason: /round 0 is over/ },
    { name: 'a sum for a round not started', send: postWire('/a/receive', () => sumFrom({ round: 9 })), status: 409, reason: /round 9 has not started/ },
    { name: 'a sum from a node not in the experiment', send: postWire('/a/receive', () => sumFrom({ sender: '127.0.0.99:5000' })), status: 403, reason: /has no clients in round 1/ },
    { name: "a client's update sent straight to the aggregator", send: postWire('/a/receive', () => wire({ kind: Kind.Update, sender: clientConfig.address, meta: { attempt } })), status: 403, reason: /does not report to the aggregator directly/ },
    { name: 'a sum of the wrong size', send: postWire('/a/receive', () => sumFrom({ parameters: new Float32Array(7) })), status: 400, reason: /has \d+ parameters; the message has 7/ },
    { name: 'a sum with NaN in it', send: postWire('/a/receive', () => sumFrom({ parameters: new Float32Array(PARAMS).fill(NaN) })), status: 400, reason: /parameter 0 is NaN/ },
    { name: 'a sum with no samples behind it', send: postWire('/a/receive', () => sumFrom({ weight: 0 })), status: 400, reason: /positive sample count/ },
    { name: 'a sum that does not name its clients', send: postWire('/a/receive', () => wire({ kind: Kind.WeightedSum, sender: switchConfig.address, meta: { attempt } })), status: 400, reason: /must name its clients/ },
    { name: 'a sum claiming more updates than it names', send: postWire('/a/receive', () => sumFrom({ contributors: 3 })), status: 400, reason: /claims 3 updates but names 1 clients/ },
    { name: 'a sum trained for an earlier opening of the round', send: postWire('/a/receive', () => sumFrom({}, { attempt: 'earlier' })), status: 409, reason: /earlier opening of round 1/ },
    { name: 'bytes that are no wire message', send: postWire('/a/receive', Buffer.from('garbage garbage garbage garbage garbage garbage')), status: 400, reason: /bad magic/ },
    { name: 'a sum over the size limit', send: postWire('/a/receive', Buffer.alloc(PARAMS * 4 + 200_000)), status: 413, reason: /takes at most/ },
    { name: 'a public key asked of a plaintext experiment', send: (app) => request(app).get('/a/he/public-key').set(auth), status: 404, reason: /no aggregator-held HE key/ },
  ]);

  const encryptedSum = (over: Partial<Message> = {}, meta: Record<string, unknown> = {}) =>
    encode({
      kind: Kind.EncryptedSum,
      round: 1,
      modelId: MODEL_ID,
      contributors: 2,
      weight: 200,
      sender: heSwitch.address,
      meta: { attempt: heAttempt, clients: membersOf(heSwitch).slice(0, 2), he: pool.id, ...meta },
      parameters: new Float32Array(0),
      ciphertexts,
      count: PARAMS,
      ...over,
    });

  table('aggregator with encrypted updates: /a/receive', () => heAggregator, [
    { name: 'a plaintext sum', send: postWire('/a/receive', () => wire({ kind: Kind.WeightedSum, sender: heSwitch.address, meta: { attempt: heAttempt, clients: [] } })), status: 400, reason: /expected EncryptedSum/ },
    { name: 'ciphertexts made under other HE parameters', send: postWire('/a/receive', () => encryptedSum({}, { he: '0123456789abcdef' })), status: 400, reason: /made under HE parameters 0123456789abcdef/ },
    { name: 'too few ciphertexts for the model', send: postWire('/a/receive', () => encryptedSum({ ciphertexts: ciphertexts.slice(1) })), status: 400, reason: /pack into \d+ ciphertexts; the message has/ },
    { name: 'ciphertexts that do not parse', send: postWire('/a/receive', () => encryptedSum({ ciphertexts: ciphertexts.map(() => Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])) })), status: 400, reason: /does not parse under this experiment's HE parameters/ },
    { name: 'a sum for a round that is over', send: postWire('/a/receive', () => encryptedSum({ round: 0 })), status: 409, reason: /round 0 is over/ },
  ]);
});
