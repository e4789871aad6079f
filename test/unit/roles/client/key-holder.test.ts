/** The clients of one process hold one HE pool between them: one that lets go twice must not close it under another. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { heSchema } from '../../../../src/config/schema';
import type { ClientNodeConfig } from '../../../../src/config/node-config';
import { writeSecretKey } from '../../../../src/he/keys';
import { KeyHolder } from '../../../../src/roles/client/key-holder';
import { createLogger } from '../../../../src/log/logger';

describe("a client's HE key, in a process of several clients", { timeout: 60_000 }, () => {
  it('shares one pool with the others, and closing twice (a role stopped while it prepared) lets go of it once', async () => {
    const he = heSchema.parse({ enabled: true, key_holder: 'clients' });
    const keyFile = join(mkdtempSync(join(tmpdir(), 'fl-keys-')), 'he-secret.json');
    await writeSecretKey(he, keyFile);
    const config = { settings: { he } } as unknown as ClientNodeConfig;
    const logger = createLogger({ nodeId: 'key-holder-test', logsDir: mkdtempSync(join(tmpdir(), 'fl-logs-')), console: false });
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
});
