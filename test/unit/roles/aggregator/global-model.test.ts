/** The global model of each key mode: with the key at the clients it stays ciphertexts, averaged through the strategy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SealedGlobal } from '../../../../src/roles/aggregator/global-model';
import { FedAvg } from '../../../../src/strategy/strategy';
import { decode } from '../../../../src/wire/codec';
import { sessionsFor } from '../../../helpers/he';

describe('the sealed global model (key at the clients)', () => {
  const params = { enabled: true, key_holder: 'clients' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
  const sessions = sessionsFor(params, 5000);

  it('averages through the strategy, survives a checkpoint', async () => {
    const fedavg = new FedAvg({ epochs: 1, batch_size: 1, learning_rate: 1, strategy: 'fedavg', server_momentum: 0 }, () => assert.fail('no plaintext evaluation'));
    const header = { round: 1, modelId: 7, sender: 'agg', parameters: 5000 };
    const sealed = new SealedGlobal(new Float32Array(5000), fedavg, sessions.adder, async () => ({ results: [], failures: [] }), () => []);
    assert.equal(decode(sealed.message(header, {})).ciphertexts, undefined, 'round 1 goes down in plaintext');
    const ciphertexts = await sessions.keyed.pool.encrypt(new Float32Array(5000).fill(0.6), 1);
    await sealed.update(1, { kind: 'encrypted', ciphertexts, scale: 1 / 400, weight: 300, contributors: 3 }, [], []);
    const down = decode(sealed.message(header, { attempt: 'x' }));
    assert.equal(down.meta?.factor, 400 / 300);
    const again = new SealedGlobal(new Float32Array(5000), fedavg, sessions.adder, async () => ({ results: [], failures: [] }), () => []);
    again.restore(sealed.snapshot(header));
    const restored = decode(again.message(header, {}));
    assert.equal(restored.meta?.factor, down.meta?.factor);
    assert.deepEqual(restored.ciphertexts, down.ciphertexts);
  });
});
