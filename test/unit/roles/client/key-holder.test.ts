/** The clients of one process hold one HE pool between them: one that lets go twice must not close it under another. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { heSchema } from '../../../../src/config/schema';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { writeSecretKey } from '../../../../src/he/keys';
import { KeyHolder } from '../../../../src/roles/client/key-holder';
import { createLogger } from '../../../../src/log/logger';
import { tempDir } from '../../../helpers/temp-dir';

describe("a client's HE key, in a process of several clients", { timeout: 60_000 }, () => {
  it('shares one pool with the others, and closing twice (a role stopped while it prepared) lets go of it once', async () => {
    const he = heSchema.parse({ enabled: true, key_holder: 'clients' });
    const keyFile = join(tempDir('fl-keys-'), 'he-secret.json');
    await writeSecretKey(he, keyFile);
    const config = { settings: { he } } as unknown as ClientNodeConfig;
    const logger = createLogger({ nodeId: 'key-holder-test', logsDir: tempDir('fl-logs-'), console: false });
    const holder = () => new KeyHolder({ config, parameters: 1000, keyFile, logger, fetchPublicKey: async () => undefined });
    const [a, b] = [holder(), holder()];
    for (const h of [a, b]) h.readSecretKey();
    const [sa, sb] = await Promise.all([a.start([1000]), b.start([1000])]);
    assert.equal(sa!.pool, sb!.pool, 'one pool for the process');
    await a.close();
    await a.close();
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) / 4);
    const decrypted = await sb!.pool.decrypt(await sb!.pool.encrypt(values), values.length);
    assert.ok(Math.abs(decrypted[7] - values[7]) < 1e-4, 'the other client still encrypts and decrypts');
    await b.close();
    await assert.rejects(sb!.pool.encrypt(values), /closed/, 'closed once its last holder let go');
  });

  it('starts a fresh pool at its next round when the one it shares gave up (threads that kept dying), and the others of its process take the fresh one too', async () => {
    const he = heSchema.parse({ enabled: true, key_holder: 'clients' });
    const keyFile = join(tempDir('fl-keys-'), 'he-secret.json');
    await writeSecretKey(he, keyFile);
    const config = { settings: { he } } as unknown as ClientNodeConfig;
    const logs = tempDir('fl-logs-');
    const logger = createLogger({ nodeId: 'key-holder-renew', logsDir: logs, console: false });
    const holder = () => new KeyHolder({ config, parameters: 1000, keyFile, logger, fetchPublicKey: async () => undefined });
    const [a, b] = [holder(), holder()];
    for (const h of [a, b]) h.readSecretKey();
    const [sa] = await Promise.all([a.start([1000]), b.start([1000])]);
    assert.equal(await a.keyFor(undefined), sa, 'a pool that works is kept');
    sa!.pool['failure'] = 'the HE pool gave up (test)'; // as HePool.died sets it
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) / 4);
    await assert.rejects(sa!.pool.encrypt(values), /gave up \(test\)/);
    // A round's model and a score asking at once: one renewal for both.
    const [fresh, scoring] = await Promise.all([a.keyFor(undefined), a.working()]);
    assert.equal(scoring, fresh);
    assert.notEqual(fresh!.pool, sa!.pool);
    assert.ok(Math.abs((await fresh!.pool.decrypt(await fresh!.pool.encrypt(values), values.length))[7] - values[7]) < 1e-4, 'the fresh pool works');
    assert.equal((await b.keyFor(undefined))!.pool, fresh!.pool, 'the other client takes the same fresh pool');
    await Promise.all([a.close(), b.close()]);
    await assert.rejects(fresh!.pool.encrypt(values), /closed/, 'closed once both let go of it');
    assert.equal(sa!.pool['closed'], true, 'and the pool that gave up was let go of by both');
  });
});
