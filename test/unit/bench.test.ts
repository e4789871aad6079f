/**
 * The benchmark suite's parts, run small so they cannot rot between `npm run bench` runs: the
 * baselines decode what they sent and Paillier's sums decrypt right; the stage profile's sums
 * decrypt right in both packings; a real switch takes a round.
 * (Numbers are measured by `npm run bench`, never asserted here.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { paillierVersusCkks, transfers } from '../../bench/baselines';
import { updateOf } from '../../bench/micro';
import { profile } from '../../bench/profile';
import { switchThroughput } from '../../bench/switch';
import { heSchema } from '../../src/config/schema';
import { Ckks } from '../../src/he/ckks';
import { closeSeal, openSeal } from '../../src/he/seal';
import { heParams } from '../../src/he/keys';

describe('the benchmark suite, small', () => {
  it('sends the same update as JSON and as our binary format, and reads every value back', async () => {
    const [json, binary] = await transfers(5_000, 1);
    assert.equal(json.format, 'JSON arrays (Flask original)');
    assert.ok(json.bytes > binary.bytes, 'JSON is the bigger one');
    assert.ok(binary.bytes > 5_000 * 4, 'the binary body holds every float32');
  });

  it('times Paillier on values whose sums decrypt right, and CKKS on the whole update', async () => {
    const result = await paillierVersusCkks(5_000, 2, 1);
    assert.equal(result.paillier_bytes_per_parameter, 512, 'a 2048-bit key makes 4096-bit ciphertexts');
    for (const stage of ['encrypt', 'sum12', 'decrypt'] as const) {
      assert.ok(result.paillier_ms[stage] > 0 && result.ckks_ms[stage] > 0, stage);
    }
  });

  it('profiles every stage of an update, its sum decrypting right, in both packings the profile table compares', async () => {
    const params = heParams(heSchema.parse({ enabled: true }));
    const kit = await openSeal(params, { secretKey: (await Ckks.generateKeys(params)).secretKey });
    try {
      const values = updateOf(3 * kit.perCiphertext + 17); // an odd tail, in each packing
      for (const [compression, packing] of [['zstd', 'slots'], ['none', 'slots'], ['none', 'coefficients']] as const) {
        const decoded = new Float64Array(values.length).fill(Number.NaN);
        const stages = profile(kit, values, 3, compression, packing, decoded);
        for (const [stage, ms] of Object.entries(stages)) assert.ok(ms > 0, `${packing}, ${compression}: ${stage} timed`);
        const worst = values.reduce((m, v, i) => Math.max(m, Math.abs(decoded[i] - 3 * v)), 0);
        assert.ok(worst < 1e-5, `${packing}, ${compression}: the sum of 3 copies is off by ${worst}`);
      }
    } finally {
      closeSeal(kit);
    }
  });

  it('runs a real switch through a round of 24 encrypted updates', async () => {
    const result = await switchThroughput(1);
    assert.equal(result.updates_per_round, 24, 'the sum that reached the aggregator holds every update');
    assert.ok(result.updates_per_s > 0);
  });
});
