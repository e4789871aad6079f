/**
 * The client role in this process, its calls to the aggregator recorded instead of sent: a model
 * before it has loaded its data, and a model that names one it does not keep (key at the clients).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseExperimentConfig, resolveNodeConfigs } from '../../../../src/config/load';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { testbedConfig } from '../../../../src/config/testbed';
import { writeSecretKey } from '../../../../src/he/keys';
import type { HttpError } from '../../../../src/net/errors';
import { ClientRole } from '../../../../src/roles/client';
import { encode, Kind } from '../../../../src/wire/codec';
import { waitFor } from '../../../helpers/cluster';
import { nodeContext } from '../../../helpers/node-context';

describe('the client role', () => {
  it("refuses a model while it loads; told to train from a model it does not keep, answers 409 first, then checks in saying it keeps none", async () => {
    const raw = testbedConfig({ base: '127.0.9', nodes: 4, switches: 1 }) as Record<string, any>;
    raw.he = { enabled: true, key_holder: 'clients' };
    const config = [...resolveNodeConfigs(parseExperimentConfig(raw)).values()].find((n): n is ClientNodeConfig => n.type === 'client')!;
    const keyFile = join(mkdtempSync(join(tmpdir(), 'fl-client-')), 'he-secret.json');
    await writeSecretKey(config.settings.he, keyFile);
    const context = { ...nodeContext('client'), heKeyFile: keyFile };
    const posts: { path: string; body: Record<string, unknown> }[] = [];
    context.peers.post = (async (_address: string, path: string, body: unknown) => (posts.push({ path, body: body as Record<string, unknown> }), {})) as typeof context.peers.post;
    const role = new ClientRole(config, context);
    try {
      assert.throws(() => role.receiveModel(Buffer.alloc(64)), (err: HttpError) => err.status === 503 && /still loading its data/.test(err.reason));
      role.start();
      await waitFor(async () => posts.some((p) => p.path === '/a/checkin'), 60_000);
      const modelId = Number(posts.find((p) => p.path === '/a/checkin')!.body.model);
      posts.length = 0;
      const meta = { epochs: 1, batchSize: 8, learningRate: 0.1, fit: { share: 0.5 }, attempt: 's:1.0', model_tag: 'gone' };
      const reference = encode({ kind: Kind.ModelReference, round: 1, modelId, contributors: 0, weight: 0, sender: config.aggregator, meta, parameters: new Float32Array(0), count: role.parameters });
      assert.throws(() => role.receiveModel(reference), (err: HttpError) => err.status === 409 && /keeps no model gone to train from/.test(err.reason));
      assert.equal(posts.length, 0, 'the check-in waits until the refusal is answered');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(posts.map((p) => p.path), ['/a/checkin']);
      assert.equal(posts[0].body.keeps, undefined, 'it says it keeps no model');
      assert.equal(role.status().stage, 'waiting');
    } finally {
      await role.stop();
    }
  });
});
