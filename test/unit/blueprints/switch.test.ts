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
import { expectedParameterCount } from '../../../src/model/model';
import { createWorkerApp } from '../../../src/node/worker';
import type { SwitchRole } from '../../../src/roles/switch';
import { encode, Kind, WIRE_CONTENT_TYPE, type Message } from '../../../src/wire/codec';
import { waitFor } from '../../helpers/cluster';
import { nodeContext, TOKEN } from '../../helpers/node-context';

const auth = { Authorization: `Bearer ${TOKEN}` };
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
  const worker = createWorkerApp(nodeContext('switch'), TOKEN);
  await request(worker.app).post('/config').set(auth).send(config).expect(201);
  const clients = config.type === 'switch' ? Object.keys(config.tree) : [];
  const open = (round: number, selected = clients.slice(0, 2)) =>
    request(worker.app).post('/s/round').set(auth).send({ round, attempt: ATTEMPT, clients: selected, deadline_ms: 60_000, parameters: PARAMS, model_id: MODEL_ID });
  return { app: worker.app, role: worker.roles.role as SwitchRole, clients, open };
}

const update = (over: Partial<Message> = {}): Buffer =>
  encode({ kind: Kind.Update, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: '127.0.0.1:5000', meta: { attempt: ATTEMPT }, parameters: new Float32Array(PARAMS).fill(0.5), ...over });
const send = (app: Parameters<typeof request>[0], body: Buffer, type = WIRE_CONTENT_TYPE) =>
  request(app).post('/s/receive').set(auth).set('Content-Type', type).send(body);

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
    ['an update for another round', (c) => update({ sender: c[0], round: 2 }), 409, /round 2 is not open/],
    ['an update trained for an earlier opening of the round', (c) => update({ sender: c[0], meta: { attempt: 's:1.-1' } }), 409, /earlier opening of round 1/],
    ['a client not selected this round', (c) => update({ sender: c[2] }), 403, /was not selected/],
    ['a node that is not in the experiment', () => update({ sender: '127.0.0.99:5000' }), 403, /not a client of this switch/],
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
    const relay = (body: Buffer) => request(app).post('/s/model').set(auth).set('Content-Type', WIRE_CONTENT_TYPE).send(body);
    assert.match((await relay(model()).expect(409)).body.reason, /no round is open on this switch to relay a model in \(round 0, idle\)/);
    await open(1).expect(200);
    assert.match((await relay(model({ meta: { attempt: 's:1.1' } })).expect(409)).body.reason, /the model is for round 1 \(s:1\.1\); this switch has round 1 open as s:1\.0/);
    assert.match((await relay(model({ kind: Kind.ModelReference, parameters: new Float32Array(0), count: PARAMS })).expect(400)).body.reason, /expected Model \(1\), got kind 8/);
    const sum = encode({ kind: Kind.WeightedSum, round: 1, modelId: MODEL_ID, contributors: 1, weight: 100, sender: clients[0], meta: { attempt: ATTEMPT, clients: [clients[0]] }, parameters: new Float32Array(PARAMS) });
    assert.match((await send(app, sum).expect(400)).body.reason, /not a switch below this one/);
    const notice = await request(app).post('/s/withheld').set(auth).send({ round: 1, attempt: ATTEMPT, switch: clients[0], clients: [], reason: 'x' }).expect(403);
    assert.match(notice.body.reason, /has no clients in round 1/);
    await request(app).post('/s/withheld').set(auth).send({ round: 1 }).expect(400);
    const evaluate = await request(app).post(`/s/evaluate?clients=${clients[0]}`).set(auth).set('Content-Type', WIRE_CONTENT_TYPE).send(model()).expect(409);
    assert.match(evaluate.body.reason, /the aggregator scores the model itself/);
    const after = await request(app).get('/s/status').set(auth).expect(200);
    assert.deepEqual([after.body.round, after.body.received, after.body.stage], [1, 0, 'collecting']);
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
    const wrongModel = await request(app).post('/s/round').set(auth).send({ round: 1, attempt: ATTEMPT, clients: [clients[0]], deadline_ms: 1000, parameters: 5, model_id: 1 }).expect(400);
    assert.match(wrongModel.body.reason, /has \d+ parameters, not 5/);
    const malformed = await request(app).post('/s/round').set(auth).send({ round: 'one' }).expect(400);
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
    const worker = createWorkerApp(context, TOKEN);
    await request(worker.app).post('/config').set(auth).send(config).expect(201);
    const clients = config.type === 'switch' ? Object.keys(config.tree) : [];
    await request(worker.app).post('/s/round').set(auth).send({ round: 1, attempt: ATTEMPT, clients: clients.slice(0, expected), deadline_ms: deadlineMs, parameters: PARAMS, model_id: MODEL_ID }).expect(200);
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
      const results = await Promise.allSettled([encrypted(clients[0]), bad, encrypted(clients[2])].map((body) => role.receive(body)));
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
      await request(app).post('/s/drop').set(auth).send({ round: 1, attempt: ATTEMPT, client: clients[1] }).expect(200);
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
