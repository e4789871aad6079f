/**
 * The client role in this process, its calls to the aggregator recorded instead of sent: a model
 * before it has loaded its data, a model that names one it does not keep, and scoring a sealed model
 * (key at the clients), and a check-in retried after the client took a model.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { writeSecretKey } from '../../../../src/he/keys';
import { HePoolFailure, type HePool } from '../../../../src/he/pool';
import type { HttpError } from '../../../../src/net/errors';
import { ClientRole } from '../../../../src/roles/client';
import { encode, Kind } from '../../../../src/wire/codec';
import { selectionPass, UNUSABLE_MODEL } from '../../../../src/wire/control';
import { waitFor } from '../../../helpers/cluster';
import { nodeContext } from '../../../helpers/node-context';
import { tempDir } from '../../../helpers/temp-dir';

describe('the client role', () => {
  it("refuses a model while it loads; told to train from a model it does not keep, answers 409 first, then checks in saying it keeps none", async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }) as Record<string, any>;
    raw.he = { enabled: true, key_holder: 'clients' };
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is ClientNodeConfig => n.type === 'client')!;
    const keyFile = join(tempDir('fl-client-'), 'he-secret.json');
    await writeSecretKey(config.settings.he, keyFile);
    const context = { ...nodeContext('client'), heKeyFile: keyFile };
    const posts: { path: string; body: Record<string, unknown> }[] = [];
    context.peers.post = (async (_address: string, path: string, body: unknown) => (posts.push({ path, body: body as Record<string, unknown> }), {})) as typeof context.peers.post;
    const role = new ClientRole(config, context);
    try {
      assert.throws(() => role.receiveModel(Buffer.alloc(64)), (err: HttpError) => err.status === 503 && /still loading its data/.test(err.reason));
      role.start();
      await waitFor(async () => posts.some((p) => p.path === '/a/checkin'), 60_000);
      const { model, ticket } = posts.find((p) => p.path === '/a/checkin')!.body;
      const modelId = Number(model);
      assert.match(String(ticket), /^[0-9a-f]{32}$/, 'it checks in with a ticket');
      posts.length = 0;
      const meta = { epochs: 1, batchSize: 32, learningRate: 0.1, fit: { share: 0.5, pass: selectionPass(String(ticket), 's:1.0') }, attempt: 's:1.0', model_tag: 'gone' };
      const reference = encode({ kind: Kind.ModelReference, round: 1, modelId, contributors: 0, weight: 0, sender: config.aggregator, meta, parameters: new Float32Array(0), count: role.parameters });
      // No more training than the experiment's (1 epoch, batches of 32), whoever asks: in the meta or in its own part.
      const { epochs, batch_size } = config.settings.training;
      assert.deepEqual([epochs, batch_size], [1, 32]);
      for (const more of [{ epochs: 2 }, { batchSize: 31 }, { batchSize: 10_000 }, { fit: { share: 0.5, epochs: 100 } }, { fit: { share: 0.5, batchSize: 1 } }]) {
        const asking = encode({ kind: Kind.ModelReference, round: 1, modelId, contributors: 0, weight: 0, sender: config.aggregator, meta: { ...meta, ...more }, parameters: new Float32Array(0), count: role.parameters });
        assert.throws(() => role.receiveModel(asking), (err: HttpError) => err.status === 400 && /this experiment trains at most 1 epochs in batches of 32/.test(err.reason), JSON.stringify(more));
      }
      // Without its pass for the opening, made with the ticket it checked in with, the aggregator did not select it: refused, and nothing changes (it keeps its model).
      for (const fit of [{ share: 0.5 }, { share: 0.5, pass: selectionPass(String(ticket), 's:1.1') }, { share: 0.5, pass: selectionPass('ab'.repeat(16), 's:1.0') }]) {
        const unselected = encode({ kind: Kind.ModelReference, round: 1, modelId, contributors: 0, weight: 0, sender: config.aggregator, meta: { ...meta, fit }, parameters: new Float32Array(0), count: role.parameters });
        assert.throws(() => role.receiveModel(unselected), (err: HttpError) => err.status === 409 && err.kind === 'not selected', JSON.stringify(fit));
      }
      assert.equal(posts.length, 0, 'refused, it changes nothing');
      assert.throws(() => role.receiveModel(reference), (err: HttpError) => err.status === 409 && /keeps no model gone to train from/.test(err.reason));
      assert.equal(posts.length, 0, 'the check-in waits until the refusal is answered');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(posts.map((p) => p.path), ['/a/checkin']);
      assert.equal(posts[0].body.keeps, undefined, 'it says it keeps no model');
      assert.equal(role.status().stage, 'waiting');

      // Scoring the sealed model: 200 with a score, 422 for a model no round could make (whatever else
      // happens), 503 when its HE threads fail, 409 when its role stops before the score's turn.
      const he = (role as unknown as { keys: { session: { id: string; pool: HePool } } }).keys.session;
      const sealed = async (value: number) =>
        encode({ kind: Kind.EncryptedModel, round: 1, modelId, contributors: 1, weight: 1, sender: config.aggregator, meta: { he: he.id, factor: 1, model_tag: 't' }, parameters: new Float32Array(0), ciphertexts: await he.pool.encrypt(new Float32Array(role.parameters).fill(value)), count: role.parameters });
      const scored = await role.evaluateModel(await sealed(0.01));
      assert.ok(scored.round === 1 && scored.samples > 0 && scored.accuracy >= 0, JSON.stringify(scored));
      await assert.rejects(role.evaluateModel(await sealed(100)), (err: HttpError) => err.status === 422 && err.kind === UNUSABLE_MODEL);
      const [fair, decrypt] = [await sealed(0.01), he.pool.decrypt.bind(he.pool)];
      he.pool.decrypt = () => Promise.reject(new HePoolFailure('the HE thread 0 died'));
      await assert.rejects(role.evaluateModel(fair), (err: HttpError) => err.status === 503 && /thread 0 died/.test(err.reason));
      let release!: () => void;
      he.pool.decrypt = (...args) => new Promise<void>((resolve) => (release = resolve)).then(() => decrypt(...args));
      const stopped = role.evaluateModel(fair);
      await waitFor(async () => release !== undefined, 5_000);
      await role.stop();
      release();
      await assert.rejects(stopped, (err: HttpError) => err.status === 409 && /stopped before it scored/.test(err.reason));
    } finally {
      await role.stop();
    }
  });

  it('does not send a check-in again once it took a model: the retry would bring a spent ticket after the new one', async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 4, switches: 1, he: false }) as Record<string, any>;
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is ClientNodeConfig => n.type === 'client')!;
    const context = nodeContext('client');
    // Each check-in is held until the test fails it as unreachable (a retry follows after 200 ms).
    const checkins: { ticket: string; model: number; fail: () => void }[] = [];
    context.peers.post = ((_address: string, path: string, body: unknown) => {
      if (path !== '/a/checkin') return Promise.resolve({}); // its update, taken
      return new Promise((_resolve, reject) => checkins.push({ ticket: String((body as { ticket: string }).ticket), model: Number((body as { model: number }).model), fail: () => reject(new Error('connect ECONNREFUSED')) }));
    }) as typeof context.peers.post;
    const role = new ClientRole(config, context);
    try {
      role.start();
      await waitFor(async () => checkins.length === 1, 60_000);
      const spent = checkins[0].ticket;
      const meta = { epochs: 1, batchSize: 32, learningRate: 0.1, fit: { share: 1, pass: selectionPass(spent, 's:1.0') }, attempt: 's:1.0' };
      const model = encode({ kind: Kind.Model, round: 1, modelId: checkins[0].model, contributors: 0, weight: 0, sender: config.aggregator, meta, parameters: new Float32Array(role.parameters), count: role.parameters });
      role.receiveModel(model);
      checkins[0].fail(); // unanswered while it took the model: its retry is due in 200 ms
      // The check-in after the round brings the new ticket; failed too, its own retry comes 200 ms after
      // the first's would have: seen, the first's is past.
      await waitFor(async () => checkins.length >= 2, 60_000);
      checkins.at(-1)!.fail();
      await waitFor(async () => checkins.filter((c) => c.ticket !== spent).length >= 2, 10_000);
      assert.deepEqual(checkins.filter((c) => c.ticket === spent).length, 1, 'the spent ticket is not sent again');
    } finally {
      await role.stop();
    }
  });
});
