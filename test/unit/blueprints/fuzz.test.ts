/**
 * Bit flips of real messages on every role route, each sent as the node that may send it (so it gets
 * past the caller checks to the parsers and the round machines): no answer is a 5xx, and the node
 * keeps answering. A flip may leave a message whole, or one the node takes: the state it then moves
 * to is not the point here, the answer is. Seeded: the same flips every run.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { seededRandom } from '../../../src/data/random';
import { Ckks } from '../../../src/he/ckks';
import { heParams } from '../../../src/he/keys';
import { HePool } from '../../../src/he/pool';
import { buildModel, modelId } from '../../../src/model/model';
import { expectedParameterCount } from '../../../src/model/size';
import { createWorkerApp, type WorkerApp } from '../../../src/node/worker';
import { encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../../../src/wire/codec';
import { flip } from '../../helpers/fuzzer';
import { freeSubnet, waitFor } from '../../helpers/cluster';
import { as, configPush, nodeContext, operator } from '../../helpers/node-context';
import { standInSwitches } from '../../helpers/stand-ins';

const MODEL = { architecture: 'mlp' as const, hidden_units: 8 };
const PARAMS = expectedParameterCount(MODEL);
const MODEL_ID = (() => {
  const model = buildModel(MODEL, 42);
  const id = modelId(model);
  model.dispose();
  return id;
})();
/** Flipped versions of each message, per route. */
const FLIPS = 120;

/** Reads a binary answer whole (supertest parses JSON and text only). */
const binary = (res: request.Response, done: (err: Error | null, body: Buffer) => void) => {
  const chunks: Buffer[] = [];
  const stream = res as unknown as NodeJS.ReadableStream;
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => done(null, Buffer.concat(chunks)));
};

/** Each case: the name, the node, the route, who sends it, the message as made, and its content type. */
type Case = [name: string, node: () => WorkerApp, path: string, from: string, make: () => Buffer, type: string];

/** Sends FLIPS flipped copies of each case's message as its sender: no 5xx, a reason with every refusal, the node still answering. */
async function flipEach(cases: Case[], random: () => number): Promise<void> {
  const statuses = new Map<string, Map<number, number>>();
  for (const [name, node, path, from, make, type] of cases) {
    const counts = new Map<number, number>();
    for (let i = 0; i < FLIPS; i++) {
      const body = flip(make(), 1 + Math.floor(random() * 8), random);
      const res = await request(node().app).post(path).set(as(from)).set('Content-Type', type).send(body);
      counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
      assert.ok(res.status < 500, `${name}, flip ${i}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(typeof res.body.reason === 'string' || res.status < 300, true, `${name}: a refusal names why`);
    }
    statuses.set(name, counts);
    await request(node().app).get('/health').expect(200);
  }
  // The flips reached the parsers and the rounds, not only a gate: every route refused some for what they said.
  for (const [name, counts] of statuses) assert.ok((counts.get(400) ?? 0) + (counts.get(409) ?? 0) + (counts.get(413) ?? 0) > 0, `${name}: ${JSON.stringify([...counts])}`);
}

function experiment(he: boolean): NodeConfig[] {
  const raw = testbedConfig({ base: freeSubnet(), nodes: 5, switches: 1, he }) as Record<string, any>;
  raw.model = MODEL;
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
}

async function mount(config: NodeConfig): Promise<WorkerApp> {
  const worker = createWorkerApp(nodeContext(config.type));
  await request(worker.app).post('/config').set(configPush(config)).send(config).expect((res) => assert.ok(res.status < 300, JSON.stringify(res.body)));
  return worker;
}

describe('bit flips of real messages, sent as the node that may send each', () => {
  const plain = experiment(false);
  const encrypted = experiment(true);
  const of = (nodes: NodeConfig[], type: NodeConfig['type']) => nodes.filter((n) => n.type === type);
  const [client] = of(plain, 'client');
  const [sw] = of(plain, 'switch');
  const [heSwitch] = of(encrypted, 'switch');
  const members = (config: NodeConfig) => (config.type === 'switch' ? Object.keys(config.tree) : []);
  const opening = (config: NodeConfig) => ({
    round: 1,
    attempt: 's:1.0',
    clients: members(config),
    weights: Object.fromEntries(members(config).map((c) => [c, 100])),
    samples: 100 * members(config).length,
    deadline_ms: 600_000,
    parameters: PARAMS,
    model_id: MODEL_ID,
  });
  const workers: WorkerApp[] = [];
  let ciphertexts: Uint8Array[] = [];
  let heId = '';
  let nodes: { client: WorkerApp; sw: WorkerApp; heSwitch: WorkerApp };

  before(async () => {
    nodes = { client: await mount(client), sw: await mount(sw), heSwitch: await mount(heSwitch) };
    workers.push(...Object.values(nodes));
    await waitFor(async () => (await request(nodes.client.app).get('/c/status').set(operator())).body.backend !== null, 60_000);
    for (const [worker, config] of [[nodes.sw, sw], [nodes.heSwitch, heSwitch]] as const) {
      await request(worker.app).post('/s/round').set(as(config.aggregator)).send(opening(config)).expect(200);
    }
    const params = heParams(encrypted[0].settings.he);
    const pool = await HePool.start(params, { publicKey: (await Ckks.generateKeys(params)).publicKey });
    ciphertexts = await pool.encrypt(new Float32Array(PARAMS).fill(0.01), 0.5);
    heId = pool.id;
    await pool.close();
  });
  after(async () => {
    for (const worker of workers) await worker.roles.unmount();
  });

  const wire = (over: Partial<Message> & Pick<Message, 'kind' | 'sender'>) =>
    encode({ round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, meta: { attempt: 's:1.0' }, parameters: new Float32Array(PARAMS).fill(0.1), ...over });
  const instructions = { epochs: 1, batchSize: 8, learningRate: 0.1, attempt: 's:1.0' };

  const cases = (): Case[] => {
    const [first, second] = members(sw);
    const [heFirst] = members(heSwitch);
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    return [
      ['a model to a client', () => nodes.client, '/c/round', client.type === 'client' ? client.upstream : '', () => wire({ kind: Kind.Model, sender: client.aggregator, contributors: 0, weight: 0, meta: instructions }), WIRE_CONTENT_TYPE],
      ['a stand-by to a client', () => nodes.client, '/c/standby', client.aggregator, () => json({ round: 1, attempt: 's:1.0' }), 'application/json'],
      ['an encrypted model to score', () => nodes.client, '/c/evaluate', client.type === 'client' ? client.upstream : '', () => encode({ kind: Kind.EncryptedModel, round: 1, modelId: MODEL_ID, contributors: 0, weight: 0, sender: client.aggregator, meta: { he: heId, factor: 1 }, parameters: new Float32Array(0), ciphertexts, count: PARAMS }), WIRE_CONTENT_TYPE],
      ['an update to its switch', () => nodes.sw, '/s/receive', first, () => wire({ kind: Kind.Update, sender: first }), WIRE_CONTENT_TYPE],
      ['a round opening', () => nodes.sw, '/s/round', sw.aggregator, () => json({ ...opening(sw), attempt: 's:1.1' }), 'application/json'],
      ['a drop', () => nodes.sw, '/s/drop', sw.aggregator, () => json({ round: 1, attempt: 's:1.0', client: second }), 'application/json'],
      ['a model to relay', () => nodes.sw, '/s/model', sw.aggregator, () => wire({ kind: Kind.Model, sender: sw.aggregator, contributors: 0, weight: 0, meta: instructions }), WIRE_CONTENT_TYPE],
      ['an encrypted update to its switch', () => nodes.heSwitch, '/s/receive', heFirst, () => encode({ kind: Kind.EncryptedUpdate, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: heFirst, meta: { he: heId, attempt: 's:1.0' }, parameters: new Float32Array(0), ciphertexts, count: PARAMS }), WIRE_CONTENT_TYPE],
    ];
  };

  it('answers every flipped message with a 2xx or a 4xx, never a 5xx, and keeps answering', () => flipEach(cases(), seededRandom(31)));
});

describe('bit flips of real messages at an aggregator in round 1, sent as its switch and its clients', () => {
  const plain = experiment(false);
  const encrypted = experiment(true);
  const sw = plain.find((n) => n.type === 'switch')!;
  const heSwitch = encrypted.find((n) => n.type === 'switch')!;
  const clientsOf = (config: NodeConfig) => (config.type === 'switch' ? Object.keys(config.tree) : []);
  let aggregator: WorkerApp;
  let heAggregator: WorkerApp;
  let attempt = '';
  let heAttempt = '';
  let ciphertexts: Uint8Array[] = [];
  let heId = '';
  const standIns: http.Server[] = [];

  /** The aggregator of `nodes`, every client checked in: round 1 opened, its sum awaited. Its attempt. */
  async function inRound(nodes: NodeConfig[]): Promise<[WorkerApp, string]> {
    standIns.push(...(await standInSwitches(nodes)));
    const worker = await mount(nodes.find((n) => n.type === 'aggregator')!);
    const status = async () => (await request(worker.app).get('/a/status').set(operator()).expect(200)).body;
    await waitFor(async () => (await status()).backend !== null, 60_000);
    for (const client of nodes.filter((n) => n.type === 'client')) {
      await request(worker.app).post('/a/checkin').set(as(client.address)).send({ client: client.address, samples: 100, ticket: 'ab'.repeat(16) }).expect(200);
    }
    const { stage, attempt } = await status();
    assert.equal(stage, 'training');
    return [worker, attempt];
  }

  before(async () => {
    [aggregator, attempt] = await inRound(plain);
    [heAggregator, heAttempt] = await inRound(encrypted);
    // Ciphertexts under the experiment's own key, as a client would fetch it.
    const [heClient] = clientsOf(heSwitch);
    const publicKey = (await request(heAggregator.app).get('/a/he/public-key').set(as(heClient)).buffer(true).parse(binary).expect(200)).body as Buffer;
    const pool = await HePool.start(heParams(encrypted[0].settings.he), { publicKey: new Uint8Array(publicKey) });
    ciphertexts = await pool.encrypt(new Float32Array(PARAMS).fill(0.01), 1 / clientsOf(heSwitch).length);
    heId = pool.id;
    await pool.close();
  });
  after(async () => {
    for (const worker of [aggregator, heAggregator]) await worker?.roles.unmount();
    for (const server of standIns) server.close();
  });

  const cases = (): Case[] => {
    const clients = clientsOf(sw);
    const heClients = clientsOf(heSwitch);
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    const sum = () => encode({ kind: Kind.WeightedSum, round: 1, modelId: MODEL_ID, contributors: clients.length, weight: 100 * clients.length, sender: sw.address, meta: { attempt, clients }, parameters: new Float32Array(PARAMS).fill(0.01 * clients.length) });
    const encryptedSum = () =>
      encode({ kind: Kind.EncryptedSum, round: 1, modelId: MODEL_ID, contributors: heClients.length, weight: 100 * heClients.length, sender: heSwitch.address, meta: { attempt: heAttempt, clients: heClients, he: heId }, parameters: new Float32Array(0), ciphertexts, count: PARAMS });
    return [
      ['a check-in', () => aggregator, '/a/checkin', clients[0], () => json({ client: clients[0], samples: 100, ticket: 'ab'.repeat(16) }), 'application/json'],
      ['a decline', () => aggregator, '/a/declined', clients[1], () => json({ round: 1, attempt, client: clients[1], reason: 'cannot use the model' }), 'application/json'],
      ['a withheld notice', () => aggregator, '/a/withheld', sw.address, () => json({ round: 1, attempt, switch: sw.address, clients: [clients[0]], reason: 'refused upstream' }), 'application/json'],
      ['a sum', () => aggregator, '/a/receive', sw.address, sum, WIRE_CONTENT_TYPE],
      ['an encrypted sum', () => heAggregator, '/a/receive', heSwitch.address, encryptedSum, WIRE_CONTENT_TYPE],
    ];
  };

  it('answers every flipped message with a 2xx or a 4xx, never a 5xx, and keeps answering', () => flipEach(cases(), seededRandom(37)));
});
