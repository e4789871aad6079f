/**
 * Bad input on every role route, as one table: each case gets a 4xx with a JSON reason, and the node
 * stays up with its state as it was. (POST /config has its own table in worker.test.ts, and the
 * switch's update checks theirs in routes.test.ts.)
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import { buildModel, modelId } from '../../../src/model/model';
import { expectedParameterCount } from '../../../src/model/size';
import { createWorkerApp, type WorkerApp } from '../../../src/node/worker';
import { decode, encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../../../src/wire/codec';
import { freeSubnet, waitFor } from '../../helpers/cluster';
import { as, configPush, nodeContext, operator } from '../../helpers/node-context';
import { standInSwitches } from '../../helpers/stand-ins';

/** The operator reads status; every other call is made as the node that would make it (`callerOf`). */
const auth = operator();
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
  const worker = createWorkerApp(nodeContext(config.type));
  await request(worker.app).post('/config').set(configPush(config)).send(config).expect(201);
  const prefix = { client: '/c', switch: '/s', aggregator: '/a' }[config.type];
  const status = async () => (await request(worker.app).get(`${prefix}/status`).set(auth).expect(200)).body;
  if (config.type !== 'switch') await waitFor(async () => (await status()).backend !== null, 60_000);
  return { worker, config, status };
}

/** Stand-in switches that take any round opening: an aggregator does not wait for a switch that cannot open its round. */
const standIns: http.Server[] = [];

/** An aggregator in the middle of round 1: every client checked in, the switch's sum awaited. */
async function aggregatorInRound(nodes: NodeConfig[]): Promise<Node> {
  standIns.push(...(await standInSwitches(nodes)));
  const node = await mount(nodes.find((n) => n.type === 'aggregator')!);
  for (const client of nodes.filter((n) => n.type === 'client')) {
    await request(node.worker.app).post('/a/checkin').set(as(client.address)).send({ client: client.address, samples: 100, ticket: 'ab'.repeat(16) }).expect(200);
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
/** Who would make a call: a client's routes take its switch, a switch's opening its upstream; a message its sender, else a node that may call. */
const callers = { clientUpstream: '', switchUpstream: '', reporter: '', member: '' };
function callerOf(path: string, body: unknown): string {
  if (path.startsWith('/c/')) return callers.clientUpstream;
  if (path === '/s/round') return callers.switchUpstream;
  if (Buffer.isBuffer(body)) {
    try {
      return decode(body).sender;
    } catch {
      return path.startsWith('/a/') ? callers.reporter : callers.member; // no sender to read: one that may send here
    }
  }
  const json = (body ?? {}) as Record<string, unknown>;
  return typeof json.client === 'string' ? json.client : typeof json.address === 'string' ? json.address : callers.member;
}
/** The body is made when the case runs: some need what before() set up. `from` names the caller when it is not the one callerOf says. */
const postWire = (path: string, body: Buffer | (() => Buffer), from?: string): Send => (app) => {
  const bytes = typeof body === 'function' ? body() : body;
  return request(app).post(path).set(as(from ?? callerOf(path, bytes))).set('Content-Type', WIRE_CONTENT_TYPE).send(bytes);
};
const postJson = (path: string, body: unknown, from?: string): Send => (app) => request(app).post(path).set(as(from ?? callerOf(path, body))).send(body as object);
const postRaw = (path: string, text: string, from?: string): Send => (app) => request(app).post(path).set(as(from ?? callerOf(path, undefined))).set('Content-Type', 'application/json').send(text);

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
      reason: /the token alone is no operator's/,
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
  Object.assign(callers, {
    clientUpstream: clientConfig.type === 'client' ? clientConfig.upstream : '',
    switchUpstream: switchConfig.type === 'switch' ? switchConfig.upstream : '',
    reporter: switchConfig.address,
    member: membersOf(switchConfig)[0],
  });

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

  const instructions = { epochs: 1, batchSize: 32, learningRate: 0.1, attempt: 'x:1.0' };
  const modelMessage = (over: Partial<Message> = {}) => wire({ kind: Kind.Model, sender: '127.0.0.1:5000', meta: instructions, ...over });
  const session = () => attempt.split(':')[0];

  table('client: /c/round, /c/evaluate, /c/standby', () => client, [
    ...tokenCases([['GET', '/c/status'], ['POST', '/c/round'], ['POST', '/c/evaluate'], ['POST', '/c/standby']]),
    { name: 'a model that is no wire message', send: postWire('/c/round', Buffer.from('not a model at all, just some text that is longer than a header')), status: 400, reason: /bad magic/ },
    { name: 'a model sent as JSON', send: postJson('/c/round', { weights: [1, 2, 3] }), status: 415, reason: /expected Content-Type application\/vnd\.fl-testbed\.wire/ },
    { name: 'a model of the wrong size', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS - 3) })), status: 400, reason: /has \d+ parameters; the message has \d+/ },
    { name: 'a model with NaN in it', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS).fill(NaN) })), status: 400, reason: /parameter 0 is NaN/ },
    { name: 'a model with an infinite value', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS).fill(-Infinity) })), status: 400, reason: /is -Infinity/ },
    { name: 'a model of another architecture', send: postWire('/c/round', () => modelMessage({ modelId: MODEL_ID + 1 })), status: 400, reason: /model id \d+ is not this experiment's/ },
    { name: 'an update sent as a model', send: postWire('/c/round', () => modelMessage({ kind: Kind.Update })), status: 400, reason: /expected Model/ },
    { name: 'a model without instructions', send: postWire('/c/round', () => modelMessage({ meta: { epochs: 1 } })), status: 400, reason: /instructions \(meta\) are not a round's/ },
    { name: 'a model with a negative learning rate', send: postWire('/c/round', () => modelMessage({ meta: { ...instructions, learningRate: -1 } })), status: 400, reason: /learningRate: Too small/ },
    { name: 'a model asking for a million epochs', send: postWire('/c/round', () => modelMessage({ meta: { ...instructions, epochs: 1e6 } })), status: 400, reason: /epochs: Too big/ },
    { name: 'a model with a value beyond any model trained here', send: postWire('/c/round', () => modelMessage({ parameters: new Float32Array(PARAMS).fill(3e38) })), status: 400, reason: /parameter 0 is 3\.\d+e\+38; in this experiment values stay within ±1000000/ },
    { name: 'a model for an attempt of another round', send: postWire('/c/round', () => modelMessage({ round: 2 })), status: 400, reason: /attempt x:1\.0 is an opening of round 1, not of round 2/ },

    { name: 'a model over the size limit', send: postWire('/c/round', Buffer.alloc(PARAMS * 4 + 200_000)), status: 413, reason: /takes at most/ },
    { name: "a model without the client's part of the instructions", send: postWire('/c/round', () => modelMessage({ meta: instructions })), status: 400, reason: /needs this client's part of the instructions \("fit": its share of the round\)/ },
    { name: 'a model making a share of next to nothing', send: postWire('/c/round', () => modelMessage({ meta: { ...instructions, fit: { share: 5e-324 } } })), status: 400, reason: /fit\.share: Too small/ },
    { name: 'a model making a share of more than the round', send: postWire('/c/round', () => modelMessage({ meta: { ...instructions, fit: { share: 1.5 } } })), status: 400, reason: /fit\.share: Too big/ },
    { name: 'an encrypted model to a client without a key', send: postWire('/c/evaluate', () => modelMessage()), status: 409, reason: /holds no HE secret key/ },
    { name: 'a standby in malformed JSON', send: postRaw('/c/standby', '{"round": 1'), status: 400, reason: /not valid JSON/ },
    { name: 'a standby with a wrong type', send: postJson('/c/standby', { round: 'one' }), status: 400, reason: /expected \{"round": <number>, "attempt"/ },
    { name: 'a standby without its attempt', send: postJson('/c/standby', { round: 1 }), status: 400, reason: /attempt/ },
    { name: 'a standby whose attempt is of another round', send: postJson('/c/standby', { round: 1, attempt: 's:2.0' }), status: 400, reason: /an opening of round 2, not of round 1/ },
  ]);

  const opening = (clients: string[]) => ({ round: 1, attempt: 's:1.0', clients, weights: Object.fromEntries(clients.map((c) => [c, 100])), samples: 100 * clients.length, deadline_ms: 1000, parameters: PARAMS, model_id: MODEL_ID });

  table('switch: /s/round, /s/receive', () => sw, [
    ...tokenCases([['GET', '/s/status'], ['POST', '/s/round'], ['POST', '/s/receive']]),
    { name: 'a round opening in malformed JSON', send: postRaw('/s/round', '{"round": '), status: 400, reason: /not valid JSON/ },
    { name: 'a round opening with wrong types', send: postJson('/s/round', { round: 'one', attempt: 1, clients: 'all' }), status: 400, reason: /not a round opening/ },
    { name: 'a round opening with an unknown field', send: postJson('/s/round', { ...opening(membersOf(switchConfig)), extra: 1 }), status: 400, reason: /not a round opening/ },
    { name: 'a round naming a stranger', send: postJson('/s/round', opening(['127.0.0.99:5000'])), status: 400, reason: /not clients of this switch/ },
    { name: 'a round opening without weights', send: postJson('/s/round', { ...opening(membersOf(switchConfig)), weights: {} }), status: 400, reason: /no weight for/ },
    { name: "a round opening whose samples are fewer than its clients' weights", send: postJson('/s/round', { ...opening(membersOf(switchConfig)), samples: 150 }), status: 400, reason: /the round's 150 samples are fewer than these clients' 200: a share would be more than 1/ },
    { name: "a round opening telling a stranger what to do", send: postJson('/s/round', { ...opening(membersOf(switchConfig)), fit: { '127.0.0.99:5000': { epochs: 2 } } }), status: 400, reason: /fit for clients not in the round: 127\.0\.0\.99:5000/ },
    { name: 'a round opening telling a client its share', send: postJson('/s/round', { ...opening(membersOf(switchConfig)), fit: { [membersOf(switchConfig)[0]]: { share: 1 } } }), status: 400, reason: /not a round opening/ },
    { name: 'a round opening with a weight of 1e12', send: postJson('/s/round', { ...opening(membersOf(switchConfig)), weights: { [membersOf(switchConfig)[0]]: 1e12, [membersOf(switchConfig)[1]]: 1 } }), status: 400, reason: /Too big/ },
    { name: 'a round opening whose attempt is no attempt', send: postJson('/s/round', { ...opening(membersOf(switchConfig)), attempt: 'a' }), status: 400, reason: /an attempt is <session>:<round>\.<retry>/ },
    { name: 'an update before any round is open', send: postWire('/s/receive', () => wire({ kind: Kind.Update, sender: membersOf(switchConfig)[0] })), status: 409, reason: /no round is open/ },
  ]);

  const sumFrom = (over: Partial<Message> = {}, meta: Record<string, unknown> = {}) =>
    wire({ kind: Kind.WeightedSum, sender: switchConfig.address, contributors: 1, meta: { attempt, clients: [membersOf(switchConfig)[1]], ...meta }, ...over });

  /** From the switch that has not reported yet. */
  const secondSwitch = plain.filter((n) => n.type === 'switch')[1];
  const secondSum = (over: Partial<Message> = {}) =>
    wire({ kind: Kind.WeightedSum, sender: secondSwitch.address, contributors: 1, meta: { attempt, clients: [membersOf(secondSwitch)[0]] }, ...over });

  const logBatch = (over: Record<string, unknown> = {}) => ({
    node: 'client-1', address: clientConfig.address, role: 'client', experiment: clientConfig.experiment, boot: 'b00t', entries: [], ...over,
  });

  table('aggregator: /a/checkin, /a/receive, /a/logs, /a/he/public-key', () => aggregator, [
    ...tokenCases([['GET', '/a/status'], ['POST', '/a/checkin'], ['POST', '/a/receive'], ['POST', '/a/logs'], ['GET', '/a/he/public-key']]),
    { name: 'logs in malformed JSON', send: postRaw('/a/logs', '{"node": '), status: 400, reason: /not valid JSON/ },
    { name: 'logs with an entry of the wrong shape', send: postJson('/a/logs', logBatch({ entries: [{ seq: 0, kind: 'iteration', entry: { round: 'one' } }] })), status: 400, reason: /the batch failed validation/ },
    { name: 'logs with a node id that is a path', send: postJson('/a/logs', logBatch({ node: '../../etc/passwd' })), status: 400, reason: /the batch failed validation/ },
    { name: 'logs from a node not in the experiment', send: postJson('/a/logs', logBatch({ address: '127.0.0.99:5000' })), status: 403, reason: /takes calls from a worker of the experiment, not from 127\.0\.0\.99:5000/ },
    { name: "logs in another worker's name", send: postJson('/a/logs', logBatch(), switchConfig.address), status: 403, reason: /the batch's address names .*, but the call comes from .*: a node may act only as itself/ },
    { name: 'logs from a client claiming to be a switch', send: postJson('/a/logs', logBatch({ role: 'switch' })), status: 403, reason: /is not a switch of experiment/ },
    { name: 'logs of another experiment', send: postJson('/a/logs', logBatch({ experiment: 'someone-else' })), status: 409, reason: /these logs are for someone-else/ },
    // The time starts the line in the worker's .log at the aggregator: a line break in it would forge a line.
    { name: 'a log line whose time breaks the line', send: postJson('/a/logs', logBatch({ entries: [{ seq: 0, kind: 'log', level: 'warn', time: '2026-12-07T00:00:00Z\n2026-12-07T00:00:01Z error [aggregator]', message: 'forged' }] })), status: 400, reason: /the batch failed validation; nothing was written/ },
    { name: 'a check-in in malformed JSON', send: postRaw('/a/checkin', '{"client": '), status: 400, reason: /not valid JSON/ },
    { name: 'a check-in with wrong types', send: postJson('/a/checkin', { client: 5, samples: 'many' }), status: 400, reason: /expected \{"client"/ },
    { name: 'a check-in without its ticket', send: postJson('/a/checkin', { client: clientConfig.address, samples: 100 }, clientConfig.address), status: 400, reason: /ticket/ },
    { name: 'a check-in from a node not in the experiment', send: postJson('/a/checkin', { client: '127.0.0.99:5000', samples: 10, ticket: 'ab'.repeat(16) }), status: 403, reason: /takes calls from a client of the experiment, not from 127\.0\.0\.99:5000/ },
    { name: "a check-in in another client's name", send: postJson('/a/checkin', { client: clientConfig.address, samples: 10, ticket: 'ab'.repeat(16) }, membersOf(switchConfig)[1]), status: 403, reason: /client names .*, but the call comes from .*: a node may act only as itself/ },
    { name: 'a second sum from the same switch in one round', send: postWire('/a/receive', () => sumFrom()), status: 409, reason: /already reported for round 1/ },
    { name: 'a sum for a round that is over', send: postWire('/a/receive', () => sumFrom({ round: 0 }, { attempt: `${session()}:0.0` })), status: 409, reason: /round 0 is over/ },
    { name: 'a sum for a round not started', send: postWire('/a/receive', () => sumFrom({ round: 9 }, { attempt: `${session()}:9.0` })), status: 409, reason: /round 9 has not started/ },
    { name: 'a sum whose attempt is of another round', send: postWire('/a/receive', () => sumFrom({ round: 9 })), status: 400, reason: /is an opening of round 1, not of round 9/ },
    { name: 'a sum weighing more than the aggregator assigned its clients', send: postWire('/a/receive', () => secondSum({ weight: 1e12 })), status: 400, reason: /the sum from .* weighs 1000000000000, not the 100 the aggregator assigned 127/ },
    { name: 'a sum with a value beyond what its samples could hold', send: postWire('/a/receive', () => sumFrom({ parameters: new Float32Array(PARAMS).fill(1e30) })), status: 400, reason: /a sum of 100 samples stays within ±100000000/ },
    { name: 'a sum from a node not in the experiment', send: postWire('/a/receive', () => sumFrom({ sender: '127.0.0.99:5000' })), status: 403, reason: /takes calls from a switch or client that reports to the aggregator, not from 127\.0\.0\.99:5000/ },
    { name: "a sum in another switch's name", send: postWire('/a/receive', () => sumFrom({ sender: switchConfig.address }), plain.filter((n) => n.type === 'switch')[1].address), status: 403, reason: /the message's sender names .*, but the call comes from/ },
    { name: "a client's update sent straight to the aggregator", send: postWire('/a/receive', () => wire({ kind: Kind.Update, sender: clientConfig.address, meta: { attempt } })), status: 403, reason: /takes calls from a switch or client that reports to the aggregator/ },
    { name: 'a sum of the wrong size', send: postWire('/a/receive', () => sumFrom({ parameters: new Float32Array(7) })), status: 400, reason: /has \d+ parameters; the message has 7/ },
    { name: 'a sum with NaN in it', send: postWire('/a/receive', () => sumFrom({ parameters: new Float32Array(PARAMS).fill(NaN) })), status: 400, reason: /parameter 0 is NaN/ },
    { name: 'a sum with no samples behind it', send: postWire('/a/receive', () => sumFrom({ weight: 0 })), status: 400, reason: /positive sample count/ },
    { name: 'a sum that does not name its clients', send: postWire('/a/receive', () => wire({ kind: Kind.WeightedSum, sender: switchConfig.address, meta: { attempt } })), status: 400, reason: /must name its clients/ },
    { name: 'a sum claiming more updates than it names', send: postWire('/a/receive', () => sumFrom({ contributors: 3 })), status: 400, reason: /claims 3 updates but names 1 clients/ },
    { name: 'a sum trained for another opening of the round', send: postWire('/a/receive', () => sumFrom({}, { attempt: 'earlier:1.0' })), status: 409, reason: /another opening of round 1/ },
    { name: 'a decline in another client\'s name', send: postJson('/a/declined', { round: 1, attempt: 'x:1.0', client: clientConfig.address, reason: 'no' }, membersOf(switchConfig)[1]), status: 403, reason: /client names .*, but the call comes from/ },
    { name: 'a decline for another opening', send: postJson('/a/declined', { round: 1, attempt: 'other:1.0', client: clientConfig.address, reason: 'no' }), status: 409, reason: /another opening of round 1/ },
    { name: 'a withheld notice in another switch\'s name', send: postJson('/a/withheld', { round: 1, attempt: 'x:1.0', switch: switchConfig.address, clients: [], reason: 'forged' }, plain.filter((n) => n.type === 'switch')[1].address), status: 403, reason: /switch names .*, but the call comes from .*: a node may act only as itself/ },
    { name: 'a decline from a switch', send: postJson('/a/declined', { round: 1, attempt: 'other:1.0', client: switchConfig.address, reason: 'no' }), status: 403, reason: /takes calls from a client of the experiment/ },
    { name: 'bytes that are no wire message', send: postWire('/a/receive', Buffer.from('garbage garbage garbage garbage garbage garbage')), status: 400, reason: /bad magic/ },
    { name: 'a sum over the size limit', send: postWire('/a/receive', Buffer.alloc(PARAMS * 4 + 200_000)), status: 413, reason: /takes at most/ },
    { name: 'a public key asked of a plaintext experiment', send: (app) => request(app).get('/a/he/public-key').set(as(clientConfig.address)), status: 404, reason: /no aggregator-held HE key/ },
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

  // A body that keeps coming holds its caller's turn on that route: a second call meanwhile is 429,
  // read no further; once the first is gone, the route takes the caller again.
  describe('one request at a time from each caller, on every route that reads a body of more than a few bytes', () => {
    const routes: [string, () => Node, () => string][] = [
      ['/c/evaluate', () => client, () => callers.clientUpstream],
      ['/s/evaluate', () => sw, () => callers.switchUpstream],
      ['/s/receive', () => sw, () => callers.member],
      ['/a/receive', () => aggregator, () => callers.reporter],
      ['/a/logs', () => aggregator, () => callers.member],
    ];
    for (const [path, node, caller] of routes) {
      it(path, async () => {
        const server = http.createServer(node().worker.app);
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        try {
          const { port } = server.address() as { port: number };
          const first = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers: { ...as(caller()), 'Content-Type': path === '/a/logs' ? 'application/json' : WIRE_CONTENT_TYPE, 'Content-Length': 4096 } });
          first.on('error', () => undefined);
          first.write(Buffer.alloc(16));
          const second = () => request(server).post(path).set(as(caller())).set('Content-Type', 'application/json').send('{}');
          await waitFor(async () => (await second()).status === 429, 10_000);
          const refused = await second();
          assert.match(refused.body.reason, new RegExp(`${caller().replace(/\./g, '\\.')} has a request on ${path} in flight already: one at a time`));
          first.destroy();
          await waitFor(async () => (await second()).status !== 429, 10_000);
        } finally {
          server.closeAllConnections();
          server.close();
        }
      });
    }
  });

  table('aggregator with encrypted updates: /a/receive', () => heAggregator, [
    { name: 'a plaintext sum', send: postWire('/a/receive', () => wire({ kind: Kind.WeightedSum, sender: heSwitch.address, meta: { attempt: heAttempt, clients: [] } })), status: 400, reason: /expected EncryptedSum/ },
    { name: 'ciphertexts made under other HE parameters', send: postWire('/a/receive', () => encryptedSum({}, { he: '0123456789abcdef' })), status: 400, reason: /made under HE parameters 0123456789abcdef/ },
    { name: 'too few ciphertexts for the model', send: postWire('/a/receive', () => encryptedSum({ ciphertexts: ciphertexts.slice(1) })), status: 400, reason: /pack into \d+ ciphertexts; the message has/ },
    { name: 'ciphertexts that do not parse', send: postWire('/a/receive', () => encryptedSum({ ciphertexts: ciphertexts.map(() => Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])) })), status: 400, reason: /does not parse under this experiment's HE parameters/ },
    { name: 'a sum for a round that is over', send: postWire('/a/receive', () => encryptedSum({ round: 0 }, { attempt: `${heAttempt.split(':')[0]}:0.0` })), status: 409, reason: /round 0 is over/ },
    { name: 'a sum weighing more than its clients', send: postWire('/a/receive', () => encryptedSum({ weight: 2e12 })), status: 400, reason: /weighs 2000000000000, not the 200/ },
  ]);
});
