/**
 * How large a value can honestly be, and telling a corrupt sum from a model: real CKKS, a sum holding
 * an update made under another key (or noise added to one) decrypts to noise, which is refused; the
 * honest sum of a model's values is not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heSchema } from '../../../src/config/schema';
import { corruption, PLAIN_VALUE_LIMIT, quantizedReach, valueLimits } from '../../../src/he/bounds';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import { seededRandom } from '../../../src/data/random';
import { poolsFor } from '../../helpers/he';

const FLOAT = heSchema.parse({ enabled: true });

describe('value limits', () => {
  it('a value to a coefficient: the first prime over the scale, halved (2^(54-45-1) = 256 by default)', () => {
    assert.deepEqual(valueLimits(FLOAT), { model: 256, average: 256, why: 'what the HE scale 2^45 leaves in a 54-bit prime', spread: true });
    assert.equal(valueLimits(heSchema.parse({ enabled: true, coeff_modulus_bits: [60], scale_bits: 40 })).model, 2 ** 19);
    assert.equal(valueLimits(heSchema.parse({ enabled: false })).model, PLAIN_VALUE_LIMIT);
  });

  it('quantized: the clip, and the little the stochastic rounding of `clients` shares can add to it', () => {
    // 8 bits for 4 clients: slots of 10 bits, 2^9 - 1 - 4 = 507 levels, at most 4 units of rounding over them.
    assert.equal(quantizedReach({ bits: 8, clip: 0.25, clients: 4 }), (0.25 * 511) / 507);
    assert.equal(quantizedReach({ bits: 8, clip: [0.1, 0.5, 0.2], clients: 4 }), (0.5 * 511) / 507);
    const quantized = (key_holder: 'aggregator' | 'clients') => valueLimits(heSchema.parse({ enabled: true, key_holder, quantize: { bits: 8, clip: 1, clients: 4 } }));
    assert.equal(quantized('clients').model, 511 / 507, 'the model is an average of clipped weights');
    assert.equal(quantized('aggregator').model, PLAIN_VALUE_LIMIT, 'clients send their change: the model itself is not clipped');
    assert.equal(quantized('aggregator').average, 511 / 507);
    // Distributed DP keeps room for the clients' noise beside the clip: a step spans both, and the sum may reach both.
    assert.equal(quantizedReach({ bits: 8, clip: 0.25, clients: 4, noise_reserve: 2 }), 0.25 + 2 + (4 * 2.25) / 507);
    const noisy = valueLimits(heSchema.parse({ enabled: true, key_holder: 'clients', quantize: { bits: 8, clip: 1, clients: 4, noise_reserve: 2 } }));
    assert.equal(noisy.average, 3 + (4 * 3) / 507);
    assert.match(noisy.why, /every value is clipped to it, and 2\.00 is kept beside it for distributed DP's noise/);
  });
});

describe('a corrupt sum, under real CKKS', () => {
  const params = { poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
  const pools = poolsFor(params);
  const limits = { ...valueLimits(FLOAT), limit: 256 };
  const random = seededRandom(7);
  // A model's weights as trained: small, around zero.
  const weights = Float32Array.from({ length: 6000 }, () => (random() - 0.5) * 0.4);

  it('passes an honest sum of three shares, and names the value beyond the limit in one that is not', async () => {
    const shares = await Promise.all([0.5, 0.3, 0.2].map((share) => pools.publicPool.encrypt(weights, share)));
    const sum = await pools.secretPool.decrypt(await pools.bare.sum(shares), weights.length);
    assert.equal(corruption(sum, limits), undefined);
    const large = Float64Array.from(sum);
    large[17] = 300;
    assert.match(corruption(large, limits)!, /^it decrypts to 300 at 17, beyond the ±256 its clients could have sent/);
    assert.equal(corruption(Float64Array.from(sum, (v) => v * 1000), limits, 1000), undefined, 'a sum of 1000 samples is 1000 times larger');
  });

  for (const [name, spoil] of [
    ['an update made under another key', async (other: HePool) => other.encrypt(weights, 0.5)],
    ['noise added to an update (an encryption of zero under another key)', async (other: HePool) => pools.bare.sum([await pools.publicPool.encrypt(weights, 0.5), await other.encrypt(new Float32Array(weights.length), 1)])],
  ] as const) {
    it(`refuses a sum holding ${name}: it decrypts to noise spread over the range`, async () => {
      const other = await HePool.start(params, { publicKey: (await Ckks.generateKeys(params)).publicKey });
      try {
        const honest = await pools.publicPool.encrypt(weights, 0.5);
        const sum = await pools.secretPool.decrypt(await pools.bare.sum([honest, await spoil(other)]), weights.length);
        assert.match(corruption(sum, limits)!, /^it decrypts to values spread over the whole range \(median \|value\| \d+(\.\d+)? of ±256\)/);
      } finally {
        await other.close();
      }
    });
  }
});
