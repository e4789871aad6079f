/** HE keys: the clients' secret key as keygen writes it, and what it loads for. */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { heSchema } from '../../../src/config/schema';
import { readSecretKey, writeSecretKey } from '../../../src/he/keys';
import { tempDir } from '../../helpers/temp-dir';

const settings = heSchema.parse({ enabled: true });

describe('HE keys for clients', () => {
  it('keygen writes an owner-only key that loads only for the same parameters', async () => {
    const file = join(tempDir('keys-'), 'k', 'he-secret.json');
    await writeSecretKey(settings, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(readSecretKey(settings, file).length > 1000);
    assert.throws(() => readSecretKey({ ...settings, coeff_modulus_bits: [50] }, file), /holds a key for HE parameters N=4096, coeff_modulus_bits \[54\]; this experiment uses N=4096, coeff_modulus_bits \[50\]/);
    // The key fits any scale or packing of the same ring and primes.
    assert.ok(readSecretKey({ ...settings, scale_bits: 40, quantize: { bits: 6, clip: 1, clients: 4 } }, file).length > 1000);
    assert.throws(() => readSecretKey(settings, '/nonexistent/key.json'), /needs the HE secret key .* --he-key/);
  });
});
