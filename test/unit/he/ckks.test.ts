/** CKKS through node-seal, as the nodes use it: a pool of worker threads, each with its own SEAL. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heSchema } from '../../../src/config/schema';
import { Ckks } from '../../../src/he/ckks';
import { heParams } from '../../../src/he/keys';
import { HePool } from '../../../src/he/pool';
import { closeSeal, openSeal } from '../../../src/he/seal';
import { poolsFor } from '../../helpers/he';

const settings = heSchema.parse({ enabled: true });
const params = heParams(settings);
const PARAMETERS = 101_770;

/** Twelve updates shaped like model weights, each pre-scaled by its share as clients do. */
const updates = Array.from({ length: 12 }, (_, k) => Float32Array.from({ length: PARAMETERS }, (_, i) => 0.3 * Math.sin(i * 0.37 + k)));
const shares = updates.map((_, k) => (500 + 17 * k) / updates.reduce((n, _u, j) => n + 500 + 17 * j, 0));

describe('CKKS at the default parameters', () => {
  const pools = poolsFor(params);

  for (const [mode, pool, limit] of [['public-key (aggregator holds the key)', () => pools.publicPool, 4.1], ['seeded symmetric (clients hold the key)', () => pools.secretPool, 2.1]] as const) {
    it(`${mode}: a 12-client weighted sum decrypts within 1e-6 of the weights, at most ${limit}x float32 on the wire`, async () => {
      const encrypted = await Promise.all(updates.map((u, k) => pool().encrypt(u, shares[k])));
      const bytes = encrypted[0].reduce((n, c) => n + c.length, 0);
      assert.ok(bytes / (PARAMETERS * 4) <= limit, `${(bytes / (PARAMETERS * 4)).toFixed(2)}x float32`);
      const sum = await pools.bare.sum(encrypted); // a switch: no key at all
      const decrypted = await pools.secretPool.decrypt(sum, PARAMETERS);
      let worst = 0;
      let largest = 0;
      for (let i = 0; i < PARAMETERS; i++) {
        const expected = updates.reduce((s, u, k) => s + u[i] * shares[k], 0);
        worst = Math.max(worst, Math.abs(decrypted[i] - expected));
        largest = Math.max(largest, Math.abs(expected));
      }
      assert.ok(worst / largest < 1e-6, `relative error ${worst / largest}`);
    });
  }

  it('encrypts with encryptions of zero made ahead: each used once, the sum decrypting as before', async () => {
    const encryptor = await Ckks.create(params, { publicKey: pools.keys.publicKey });
    const opener = await Ckks.create(params, { secretKey: pools.keys.secretKey });
    try {
      const values = updates[0].subarray(0, encryptor.perCiphertext * 3);
      assert.equal(encryptor.prepare(2), 2);
      const first = encryptor.encrypt(values, 0.5); // two from the stock, the third made on the spot
      assert.equal(encryptor.prepared, 0);
      encryptor.prepare(3);
      const second = encryptor.encrypt(values, 0.5);
      assert.notDeepEqual(first[0], second[0], 'fresh randomness in every ciphertext');
      const decrypted = opener.decrypt(opener.sum([first, second]), values.length);
      const worst = Math.max(...Array.from(values, (v, i) => Math.abs(decrypted[i] - v)));
      assert.ok(worst < 1e-6, `error ${worst}`);
      assert.equal((await Ckks.create(params, { secretKey: pools.keys.secretKey })).prepare(5), 0, 'seeded encryption keeps no stock');
    } finally {
      encryptor.dispose();
      opener.dispose();
    }
  });

  it('packs N values to a ciphertext, in its coefficients: exact round trips across parameters, signs, zero chunks and odd counts', async () => {
    const cases = [
      { bits: [54], degree: 4096 },
      { bits: [60, 60], degree: 8192 }, // the data prime above 2^53
      { bits: [40, 40, 40], degree: 8192 }, // two data primes: residues modulo each
    ];
    for (const { bits, degree } of cases) {
      const caseParams = { ...params, poly_modulus_degree: degree, coeff_modulus_bits: bits, scale_bits: Math.min(35, bits[0] - 5) };
      const keysHere = await Ckks.generateKeys(caseParams);
      const encryptor = await Ckks.create(caseParams, { publicKey: keysHere.publicKey });
      const opener = await Ckks.create(caseParams, { secretKey: keysHere.secretKey });
      try {
        assert.equal(encryptor.perCiphertext, degree);
        // Five chunks (transformed in pairs, the last alone): zeros, mixed signs and magnitudes twice,
        // zeros again (the second of a pair), a short tail.
        const values = new Float64Array(4 * degree + 17);
        const zeroChunk = (i: number) => i < degree || (i >= 3 * degree && i < 4 * degree);
        for (let i = 0; i < values.length; i++) values[i] = zeroChunk(i) ? 0 : (i % 2 ? -1 : 1) * (0.001 + (i % 97) * 0.05);
        const ciphertexts = encryptor.encrypt(values, 0.5);
        assert.equal(ciphertexts.length, 5);
        const decrypted = opener.decrypt(opener.sum([ciphertexts, ciphertexts]), values.length); // twice the half
        const worst = Math.max(...Array.from(values, (v, i) => Math.abs(decrypted[i] - v)));
        assert.ok(worst < 1e-6, `${JSON.stringify(bits)} at N=${degree}: error ${worst}`);
        assert.throws(() => encryptor.encrypt(Float64Array.of(2 ** (bits[0] - caseParams.scale_bits))), /does not fit the HE scale/);
        assert.throws(() => encryptor.encrypt(Float64Array.of(0.5, Number.NaN)), /value NaN at 1 does not fit the HE scale/);
      } finally {
        encryptor.dispose();
        opener.dispose();
      }
    }
  });

  it('names the settings SEAL rejects', async () => {
    await assert.rejects(Ckks.create({ ...params, coeff_modulus_bits: [40, 40, 40] }), /rejected by SEAL .*poly_modulus_degree 4096, coeff_modulus_bits \[40,40,40\]/);
  });

  it('refuses ciphertexts made under other parameters, and bytes that are no ciphertext', async () => {
    // Larger than these parameters allow: refused before SEAL reads it; smaller: SEAL refuses it.
    const [larger, smaller] = [{ poly_modulus_degree: 8192, coeff_modulus_bits: [60, 60] }, { poly_modulus_degree: 2048, coeff_modulus_bits: [54] }].map((p) => ({ ...params, ...p }));
    const others = await Promise.all([larger, smaller].map(async (p) => HePool.start(p, { publicKey: (await Ckks.generateKeys(p)).publicKey })));
    try {
      const [big, small] = await Promise.all(others.map((pool) => pool.encrypt(updates[0].subarray(0, 100))));
      await assert.rejects(pools.bare.sum([big]), /a ciphertext of \d+ bytes; under these HE parameters one takes at most/);
      await assert.rejects(pools.bare.sum([small]), /not a ciphertext under these HE parameters/);
      await assert.rejects(pools.bare.sum([[Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])]]), /not a SEAL serialization/);
    } finally {
      await Promise.all(others.map((pool) => pool.close()));
    }
  });

  it('refuses a ciphertext SEAL would take but the wire does not: compressed, of more than two polynomials, at another scale, level or form', async () => {
    const kit = await openSeal(params, {});
    try {
      const [honest] = await pools.publicPool.encrypt(updates[0].subarray(0, 100));
      const reserialized = (change: (cipher: any) => void, mode: 'none' | 'zstd') => {
        const cipher = kit.seal.CipherText();
        cipher.loadArray(kit.context, honest);
        change(cipher);
        const bytes: Uint8Array = cipher.saveArray(kit.seal.ComprModeType[mode]);
        cipher.delete();
        return bytes;
      };
      const compressed = reserialized(() => undefined, 'zstd');
      await assert.rejects(pools.bare.sum([[honest], [compressed]]), /serialized with compression mode 2; the wire carries them uncompressed/);
      const inflated = reserialized((cipher) => cipher.resize(16), 'none');
      // Refused before SEAL reads it, as it would have been copied whole into the thread's wasm heap.
      await assert.rejects(pools.bare.sum([[honest], [inflated]]), /a ciphertext of \d+ bytes; under these HE parameters one takes at most \d+/);
      // SEAL takes these too, and each, added first, would make every honest ciphertext after it fail: it is the one refused.
      const rescaled = reserialized((cipher) => cipher.setScale(2 ** 44), 'none');
      await assert.rejects(pools.bare.sum([[rescaled], [honest]]), /a ciphertext at scale 17592186044416; this experiment's is 2\^\d+/);
      const notNtt = reserialized((cipher) => kit.evaluator.cipherTransformFromNtt(cipher, cipher), 'none');
      await assert.rejects(pools.bare.sum([[notNtt], [honest]]), /a ciphertext not in NTT form/);

      assert.equal((await pools.bare.sum([[honest], [reserialized(() => undefined, 'none')]])).length, 1, 'the same ciphertext saved as the wire saves it is taken');
    } finally {
      closeSeal(kit);
    }
  });

  it('refuses a ciphertext switched down the modulus chain (with three primes or more there is a level below the first)', async () => {
    const deep = { poly_modulus_degree: 8192, coeff_modulus_bits: [50, 50, 50], scale_bits: 40 };
    const keys = await Ckks.generateKeys(deep);
    const [client, bare, kit] = [await Ckks.create(deep, { publicKey: keys.publicKey }), await Ckks.create(deep, {}), await openSeal(deep, {})];
    // The sender's SEAL has the whole chain; the nodes' have only its first level (seal.ts), so SEAL
    // itself refuses the lower level's parameters.
    const parms = kit.seal.EncryptionParameters(kit.seal.SchemeType.ckks);
    parms.setPolyModulusDegree(deep.poly_modulus_degree);
    parms.setCoeffModulus(kit.seal.CoeffModulus.Create(deep.poly_modulus_degree, Int32Array.from(deep.coeff_modulus_bits)));
    const chained = kit.seal.Context(parms, true, kit.seal.SecurityLevel.tc128);
    const evaluator = kit.seal.Evaluator(chained);
    try {
      const honest = client.encrypt(new Float32Array(100).fill(0.25), 0.5);
      const cipher = kit.seal.CipherText();
      cipher.loadArray(chained, honest[0]);
      evaluator.cipherModSwitchToNext(cipher, cipher);
      const lower: Uint8Array = cipher.saveArray(kit.seal.ComprModeType.none);
      cipher.delete();
      assert.throws(() => bare.sum([[lower], honest]), /not a ciphertext under these HE parameters/);
      assert.equal(bare.sum([honest, honest]).length, 1, 'honest ones add');
    } finally {
      for (const object of [evaluator, chained, parms]) object.delete();
      client.dispose();
      bare.dispose();
      closeSeal(kit);
    }
  });

  it('a node without the secret key cannot decrypt', async () => {
    const encrypted = await pools.publicPool.encrypt(updates[0].subarray(0, 10));
    await assert.rejects(pools.publicPool.decrypt(encrypted, 10), /no HE secret key/);
    await assert.rejects(pools.bare.encrypt(updates[0].subarray(0, 10)), /no HE key to encrypt with/);
  });

  it('encrypts off the event loop: timers keep firing while a million parameters are encrypted', async () => {
    const big = new Float32Array(1_000_000).fill(0.25);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await pools.publicPool.encrypt(big);
    clearInterval(timer);
    assert.ok(ticks >= 10, `the event loop ticked ${ticks} times`);
  });
});
