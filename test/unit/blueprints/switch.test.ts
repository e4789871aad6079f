/** The round routes over real HTTP (supertest), with real wire messages: what they take and what they refuse. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import request from 'supertest';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../src/config/load';
import type { NodeConfig } from '../../../src/config/node-config';
import { testbedConfig } from '../../../src/config/testbed';
import { expectedParameterCount } from '../../../src/model/size';
import { createWorkerApp } from '../../../src/node/worker';
import type { SwitchRole } from '../../../src/roles/switch';
import { decode, encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../../../src/wire/codec';
import { waitFor } from '../../helpers/cluster';
import { as, configPush, nodeContext, operator } from '../../helpers/node-context';

/** The operator reads status; the aggregator opens rounds; each update comes from its sender. */
const auth = operator();
const AGGREGATOR = '127.0.0.6:5000';
/** A client of the switch, to send what has no sender to read (bytes that are no wire message). */
const A_CLIENT = '127.0.0.1:5000';
const fromAggregator = as(AGGREGATOR);
const model = { architecture: 'mlp' as const, hidden_units: 8 };
const PARAMS = expectedParameterCount(model);
const MODEL_ID = 1234;
const ATTEMPT = 's:1.0';

function nodes(): NodeConfig[] {
  const raw = testbedConfig({ base: '127.0.0', nodes: 6, switches: 1, he: false }) as Record<string, any>;
  raw.model = model;
  return [...resolveNodeConfigs(parseExperimentConfig(raw)).values()];
}

async function switchNode() {
  const config = nodes().find((n) => n.type === 'switch')!;
  const context = nodeContext('switch');
  const worker = createWorkerApp(context);
  await request(worker.app).post('/config').set(configPush(config)).send(config).expect(201);
  const clients = config.type === 'switch' ? Object.keys(config.tree) : [];
  const open = (round: number, selected = clients.slice(0, 2)) => request(worker.app).post('/s/round').set(fromAggregator).send(opening(selected, round));
  return { app: worker.app, role: worker.roles.role as SwitchRole, clients, open, peers: context.peers };
}

/** A round's opening for `clients`, each weighing 100 samples. */
const opening = (clients: string[], round = 1, deadline_ms = 60_000) => ({
  round,
  attempt: `s:${round}.0`,
  clients,
  weights: Object.fromEntries(clients.map((c) => [c, 100])),
  samples: 100 * clients.length,
  deadline_ms,
  parameters: PARAMS,
  model_id: MODEL_ID,
});

const update = (over: Partial<Message> = {}): Buffer =>
  encode({ kind: Kind.Update, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: '127.0.0.1:5000', meta: { attempt: ATTEMPT }, parameters: new Float32Array(PARAMS).fill(0.5), ...over });
/** The message's sender calls, unless `from` says otherwise; bytes that are no message come from a client. */
const senderOf = (body: Buffer) => {
  try {
    return decode(body).sender;
  } catch {
    return A_CLIENT;
  }
};
const send = (app: Parameters<typeof request>[0], body: Buffer, type = WIRE_CONTENT_TYPE, from = senderOf(body)) =>
  request(app).post('/s/receive').set(as(from)).set('Content-Type', type).send(body);

describe('switch routes', () => {
  it('takes the updates of its selected clients', async () => {
    const { app, open, clients } = await switchNode();
    await open(1).expect(200);
    const res = await send(app, update({ sender: clients[0] })).expect(200);
    assert.deepEqual(res.body, { status: 'accepted', round: 1, received: 1 });
    const status = await request(app).get('/s/status').set(auth).expect(200);
    assert.equal(status.body.received, 1);
  });

  const refusals: [string, (clients: string[]) => Buffer | [Buffer, string], number, RegExp][] = [
    ['an update of the wrong size', (c) => update({ sender: c[0], parameters: new Float32Array(PARAMS - 1) }), 400, /has \d+ parameters; the message has/],
    ['NaN in an update', (c) => update({ sender: c[0], parameters: new Float32Array(PARAMS).fill(NaN) }), 400, /parameter 0 is NaN/],
    ['an infinite value', (c) => update({ sender: c[0], parameters: new Float32Array(PARAMS).fill(0.1).fill(Infinity, 5, 6) }), 400, /parameter 5 is Infinity/],
    ['another model', (c) => update({ sender: c[0], modelId: 999 }), 400, /model id 999/],
    ['a switch sum sent as a client update', (c) => update({ sender: c[0], kind: Kind.WeightedSum }), 400, /expected Update/],
    ['an update for another round', (c) => update({ sender: c[0], round: 2, meta: { attempt: 's:2.0' } }), 409, /round 2 is not open/],
    ['an update whose attempt is of another round', (c) => update({ sender: c[0], round: 2 }), 400, /attempt s:1\.0 is an opening of round 1, not of round 2/],
    ['an update trained for another opening of the round', (c) => update({ sender: c[0], meta: { attempt: 'r:1.0' } }), 409, /another opening of round 1/],
    ['an update weighing more than the aggregator assigned', (c) => update({ sender: c[0], weight: 1e12 }), 400, /weighs 1000000000000, not the 100 the aggregator assigned it/],
    ['an update beyond what any model holds', (c) => update({ sender: c[0], parameters: new Float32Array(PARAMS).fill(2e6) }), 400, /values stay within ±1000000/],
    ['a client not selected this round', (c) => update({ sender: c[2] }), 403, /was not selected/],
    ['a node that is not in the experiment', () => update({ sender: '127.0.0.99:5000' }), 403, /takes calls from a client or a switch that reports to it, not from 127\.0\.0\.99:5000/],
    ['bytes that are no wire message', () => Buffer.from('definitely not a model update, just some text'), 400, /bad magic/],
    ['JSON instead of bytes', () => [Buffer.from('{"weights": [1, 2, 3]}'), 'application/json'], 415, /expected Content-Type application\/vnd.fl-testbed.wire/],
    ['a body over the limit', () => Buffer.alloc(PARAMS * 4 + 100_000), 413, /takes at most/],
  ];
  for (const [name, make, status, reason] of refusals) {
    it(`refuses ${name} and keeps its round as it was`, async () => {
      const { app, open, clients } = await switchNode();
      await open(1).expect(200);
      await send(app, update({ sender: clients[1] })).expect(200);
      const made = make(clients);
      const [body, type] = Array.isArray(made) ? made : [made, WIRE_CONTENT_TYPE];
      const res = await send(app, body, type).expect(status);
      assert.match(res.body.reason, reason);
      const after = await request(app).get('/s/status').set(auth).expect(200);
      assert.deepEqual([after.body.round, after.body.received, after.body.stage], [1, 1, 'collecting']);
    });
  }

  it("refuses a model to relay that is not for its open round, and a sum from a switch that is not below it", async () => {
    const { app, open, clients } = await switchNode();
    const model = (over: Partial<Message> = {}) => encode({ kind: Kind.Model, round: 1, modelId: MODEL_ID, contributors: 0, weight: 0, sender: 'agg', meta: { attempt: ATTEMPT }, parameters: new Float32Array(PARAMS), ...over });
    const relay = (body: Buffer) => request(app).post('/s/model').set(fromAggregator).set('Content-Type', WIRE_CONTENT_TYPE).send(body);
    assert.match((await relay(model()).expect(409)).body.reason, /no round is open on this switch to relay a model in \(round 0, idle\)/);
    await open(1).expect(200);
    assert.match((await relay(model({ meta: { attempt: 's:1.1' } })).expect(409)).body.reason, /the model is for round 1 \(s:1\.1\); this switch has round 1 open as s:1\.0/);
    assert.match((await relay(model({ kind: Kind.ModelReference, parameters: new Float32Array(0), count: PARAMS })).expect(400)).body.reason, /expected Model \(1\), got kind 8/);
    const sum = encode({ kind: Kind.WeightedSum, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: clients[0], meta: { attempt: ATTEMPT, clients: [clients[0]] }, parameters: new Float32Array(PARAMS) });
    assert.match((await send(app, sum).expect(400)).body.reason, /not a switch below this one/);
    const notice = await request(app).post('/s/withheld').set(as(clients[0])).send({ round: 1, attempt: ATTEMPT, switch: clients[0], clients: [], reason: 'x' }).expect(403);
    assert.match(notice.body.reason, /takes calls from a switch that reports to it/);
    const evaluate = await request(app).post(`/s/evaluate?clients=${clients[0]}`).set(fromAggregator).set('Content-Type', WIRE_CONTENT_TYPE).send(model()).expect(409);
    assert.match(evaluate.body.reason, /the aggregator scores the model itself/);
    const after = await request(app).get('/s/status').set(auth).expect(200);
    assert.deepEqual([after.body.round, after.body.received, after.body.stage], [1, 0, 'collecting']);
  });

  it("relays the model to each selected client with its own part of the opening: its share, what it alone is told, and its pass", async () => {
    const { app, clients, peers } = await switchNode();
    const copies = new Map<string, Record<string, unknown>>();
    peers.post = (async (address: string, path: string, body: unknown) => {
      if (path === '/c/round') copies.set(address, decode(Buffer.concat(body as Buffer[])).meta!);
      return {};
    }) as typeof peers.post;
    const [a, b] = clients;
    const passes = { [a]: 'aa'.repeat(16), [b]: 'bb'.repeat(16) };
    await request(app).post('/s/round').set(fromAggregator).send({ ...opening([a, b]), weights: { [a]: 100, [b]: 300 }, samples: 400, fit: { [b]: { epochs: 1 } }, passes }).expect(200);
    const model = encode({ kind: Kind.Model, round: 1, modelId: MODEL_ID, contributors: 0, weight: 0, sender: AGGREGATOR, meta: { attempt: ATTEMPT, epochs: 1 }, parameters: new Float32Array(PARAMS) });
    await request(app).post('/s/model').set(fromAggregator).set('Content-Type', WIRE_CONTENT_TYPE).send(model).expect(202);
    await waitFor(async () => copies.size === 2);
    assert.deepEqual(copies.get(a), { attempt: ATTEMPT, epochs: 1, fit: { share: 0.25, pass: passes[a] } });
    assert.deepEqual(copies.get(b), { attempt: ATTEMPT, epochs: 1, fit: { share: 0.75, epochs: 1, pass: passes[b] } });
  });

  it("refuses an update in another client's name, a round opened by a client, and a model from anyone but its upstream; its round goes on", async () => {
    const { app, open, clients } = await switchNode();
    await open(1).expect(200);
    const forged = await send(app, update({ sender: clients[0] }), WIRE_CONTENT_TYPE, clients[1]).expect(403);
    assert.match(forged.body.reason, new RegExp(`the message's sender names ${clients[0]}, but the call comes from ${clients[1]}: a node may act only as itself`));
    const byClient = await request(app).post('/s/round').set(as(clients[0])).send(opening([clients[0]], 2, 1000)).expect(403);
    assert.match(byClient.body.reason, new RegExp(`takes calls from its upstream ${AGGREGATOR}, not from ${clients[0]}`));
    await request(app).post('/s/drop').set(as(clients[1])).send({ round: 1, attempt: ATTEMPT, client: clients[0] }).expect(403);
    await send(app, update({ sender: clients[0] })).expect(200);
    const after = await request(app).get('/s/status').set(auth).expect(200);
    assert.deepEqual([after.body.round, after.body.received], [1, 1], 'the forged update, opening and drop changed nothing');
  });

  it('takes the same opening sent twice as one: the round keeps what it took', async () => {
    const { app, open, clients } = await switchNode();
    await open(1).expect(200);
    await send(app, update({ sender: clients[0] })).expect(200);
    await open(1).expect(200);
    const status = await request(app).get('/s/status').set(auth).expect(200);
    assert.deepEqual([status.body.round, status.body.received, status.body.stage], [1, 1, 'collecting']);
    const other = await request(app).post('/s/round').set(fromAggregator).send(opening([clients[0]])).expect(409);
    assert.match(other.body.reason, /s:1\.0 is open here already, with other clients or weights/);
  });

  it('refuses a second update from the same client', async () => {
    const { app, open, clients } = await switchNode();
    await open(1).expect(200);
    await send(app, update({ sender: clients[0] })).expect(200);
    const res = await send(app, update({ sender: clients[0] })).expect(409);
    assert.match(res.body.reason, /already sent its update for round 1/);
  });

  it('refuses an update for a round that is over, once it forwarded the sum', async () => {
    const { app, open, clients } = await switchNode();
    await open(1).expect(200);
    await send(app, update({ sender: clients[0] })).expect(200);
    await send(app, update({ sender: clients[1] })).expect(200); // both in: forwarded (to an aggregator that is not there)
    const res = await send(app, update({ sender: clients[1] })).expect(409);
    assert.match(res.body.reason, /round 1 is not open here .*forwarded/);
  });

  it('refuses a round opening that does not fit the experiment', async () => {
    const { app, clients } = await switchNode();
    const wrongModel = await request(app).post('/s/round').set(fromAggregator).send({ ...opening([clients[0]], 1, 1000), parameters: 5, model_id: 1 }).expect(400);
    assert.match(wrongModel.body.reason, /has \d+ parameters, not 5/);
    const malformed = await request(app).post('/s/round').set(fromAggregator).send({ round: 'one' }).expect(400);
    assert.equal(typeof malformed.body.reason, 'string');
  });
});

describe('switch routes with encrypted updates', () => {
  const heSettings = { enabled: true, key_holder: 'aggregator', poly_modulus_degree: 4096, coeff_modulus_bits: [54, 54], scale_bits: 45 } as const;

  async function encryptedSwitch(deadlineMs = 60_000, expected = 2) {
    const raw = testbedConfig({ base: '127.0.0', nodes: 6, switches: 1 }) as Record<string, any>;
    raw.model = model;
    raw.he = heSettings;
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n) => n.type === 'switch')!;
    const context = nodeContext('he-switch');
    const worker = createWorkerApp(context);
    await request(worker.app).post('/config').set(configPush(config)).send(config).expect(201);
    const clients = config.type === 'switch' ? Object.keys(config.tree) : [];
    await request(worker.app).post('/s/round').set(fromAggregator).send(opening(clients.slice(0, expected), 1, deadlineMs)).expect(200);
    return { app: worker.app, role: worker.roles.role as SwitchRole, clients, context, stop: () => worker.roles.unmount() };
  }

  let pool: HePool;
  let chunks: Uint8Array[];
  before(async () => {
    const params = { poly_modulus_degree: 4096, coeff_modulus_bits: [54, 54], scale_bits: 45 };
    pool = await HePool.start(params, { publicKey: (await Ckks.generateKeys(params)).publicKey });
    chunks = await pool.encrypt(new Float32Array(PARAMS).fill(0.01));
  });
  after(() => pool.close());

  const encrypted = (sender: string, over: Partial<Message> = {}) =>
    encode({ kind: Kind.EncryptedUpdate, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender, meta: { he: pool.id, attempt: ATTEMPT }, parameters: new Float32Array(0), ciphertexts: chunks, count: PARAMS, ...over });

  it('takes a valid encrypted update, and refuses the malformed ones with reasons', async () => {
    const { app, clients, stop } = await encryptedSwitch();
    try {
      const cases: [Buffer, number, RegExp][] = [
        [update({ sender: clients[0] }), 400, /expected EncryptedUpdate/],
        [encrypted(clients[0], { meta: { he: '0123456789abcdef' } }), 400, /made under HE parameters 0123456789abcdef/],
        [encrypted(clients[0], { ciphertexts: chunks.slice(1) }), 400, /pack into \d+ ciphertexts; the message has/],
        [encrypted(clients[0], { ciphertexts: chunks.map(() => Uint8Array.from([7, 7, 7, 7, 7, 7, 7, 7])) }), 400, /does not parse under this experiment's HE parameters/],
      ];
      for (const [body, status, reason] of cases) {
        const res = await send(app, body).expect(status);
        assert.match(res.body.reason, reason);
      }
      const ok = await send(app, encrypted(clients[0])).expect(200);
      assert.equal(ok.body.received, 1);
      await send(app, encrypted(clients[0])).expect(409);
    } finally {
      await stop();
    }
  });

  it('refuses a bad ciphertext that arrived with good ones alone, and sums the good ones', { timeout: 30_000 }, async () => {
    const { role, clients, stop } = await encryptedSwitch(60_000, 3);
    try {
      const bad = encrypted(clients[1], { ciphertexts: chunks.map(() => Uint8Array.from([7, 7, 7, 7, 7, 7, 7, 7])) });
      // Called together: the first starts a sum on its own, the next two wait and are added as one batch.
      const senders = [clients[0], clients[1], clients[2]];
      const results = await Promise.allSettled([encrypted(clients[0]), bad, encrypted(clients[2])].map((body, i) => role.receive(body, { node: senders[i] })));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.match(String((results[1] as PromiseRejectedResult).reason), /does not parse under this experiment's HE parameters/);
      assert.equal(role.status().received, 2, 'both good updates are in the sum');
    } finally {
      await stop();
    }
  });

  it('does not forward a single encrypted update on its own, and says so as soon as the other client is dropped', async () => {
    // No deadline decides here: the aggregator's drop of the second client closes the round, so no
    // timing on a loaded machine can change what happens.
    const { app, role, clients, context, stop } = await encryptedSwitch(600_000);
    try {
      await send(app, encrypted(clients[0])).expect(200);
      assert.equal(role.iterations.rounds.length, 0, 'one of two updates in: still waiting');
      await request(app).post('/s/drop').set(fromAggregator).send({ round: 1, attempt: ATTEMPT, client: clients[1] }).expect(200);
      await waitFor(async () => role.iterations.rounds.length === 1, 30_000);
      const entry = JSON.parse(readFileSync(join(context.logsDir, `he-switch_mnist-mlp.json`), 'utf8')).iteration[0];
      assert.match(entry.outcome, /^withheld: only 1 update arrived, 2 needed to forward a sum/);
      assert.deepEqual(entry.missing, [clients[1]]);
      assert.equal(entry.update_bytes, undefined, 'no sum was made to send');
      await send(app, encrypted(clients[1])).expect(409);
    } finally {
      await stop();
    }
  });

});
