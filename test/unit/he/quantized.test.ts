/** Quantized packing (src/he/quantized.ts): several values to a coefficient, sums that cannot carry. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig } from '../../../src/config/load';
import { QUANTIZED_HE_DEFAULTS } from '../../../src/config/schema';
import { Ckks, paramsId, type HeParams } from '../../../src/he/ckks';
import { heParams } from '../../../src/he/keys';
import { HePool } from '../../../src/he/pool';
import { countClipped, geometryOf, type QuantizeSpec } from '../../../src/he/quantized';
import { poolsFor } from '../../helpers/he';

const PARAMETERS = 101_770;
const CLIENTS = 12;

const paramsFor = (quantize: QuantizeSpec, tensorSizes?: number[]): HeParams => ({ ...QUANTIZED_HE_DEFAULTS, scale_bits: 45, quantize, ...(tensorSizes ? { tensor_sizes: tensorSizes } : {}) });
const spec: QuantizeSpec = { bits: 8, clip: 1, clients: CLIENTS };
const params = paramsFor(spec);

/** The largest unit a value of the sum is read in: clip over the levels the headroom leaves. */
const SIXTY_BIT_PRIMES = [(1n << 60n) - 1n, (1n << 60n) - 1n, (1n << 60n) - 1n]; // 60 bits each: their lengths are what geometryOf reads
const unitOf = (clip: number, quantize = spec) => clip / (2 ** (geometryOf(quantize, SIXTY_BIT_PRIMES).width - 1) - 1 - quantize.clients);

/** Client k's values: smooth, both signs, some beyond the clip; and its share of the round. */
const updates = Array.from({ length: CLIENTS }, (_, k) => Float32Array.from({ length: PARAMETERS }, (_, i) => 1.2 * Math.sin(i * 0.37 + k)));
const shares = updates.map((_, k) => (500 + 17 * k) / updates.reduce((n, _u, j) => n + 500 + 17 * j, 0));
const clipped = (x: number, clip: number) => Math.max(-clip, Math.min(clip, x));

/** The root-mean-square gap between a decrypted sum and Σ share·clip(value, 1). */
function rmsError(decrypted: Float64Array): number {
  let squares = 0;
  for (let i = 0; i < decrypted.length; i++) squares += (decrypted[i] - updates.reduce((s, u, k) => s + clipped(u[i], 1) * shares[k], 0)) ** 2;
  return Math.sqrt(squares / decrypted.length);
}

/** The worst gap between a decrypted sum and Σ share·clip(value), per value index, in units of `unit(i)`. */
function worstError(decrypted: Float64Array, unit: (i: number) => number, clipOf: (i: number) => number): number {
  let worst = 0;
  for (let i = 0; i < decrypted.length; i++) {
    const expected = updates.reduce((s, u, k) => s + clipped(u[i], clipOf(i)) * shares[k], 0);
    worst = Math.max(worst, Math.abs(decrypted[i] - expected) / unit(i));
  }
  return worst;
}

describe('quantized packing at its default parameters (N 8192, three 60-bit primes)', () => {
  const pools = poolsFor(params);

  it('8 bits for 12 clients: 12-bit slots, 13 to a coefficient, the MLP in one ciphertext', () => {
    assert.deepEqual(geometryOf(spec, SIXTY_BIT_PRIMES), { width: 12, slots: 13, noiseBits: 17 });
    assert.equal(pools.publicPool.perCiphertext, 8192 * 13);
    assert.equal(pools.publicPool.chunksFor(PARAMETERS), 1);
  });

  for (const [mode, pool, limit] of [['public-key (aggregator holds the key)', () => pools.publicPool, 1.0], ['seeded symmetric (clients hold the key)', () => pools.secretPool, 0.5]] as const) {
    it(`${mode}: a 12-client weighted sum is read within a unit per client, at most ${limit}x float32 on the wire`, async () => {
      const encrypted = await Promise.all(updates.map((u, k) => pool().encrypt(u, shares[k])));
      const bytes = encrypted[0].reduce((n, c) => n + c.length, 0);
      assert.ok(bytes / (PARAMETERS * 4) <= limit, `${(bytes / (PARAMETERS * 4)).toFixed(3)}x float32`);
      const sum = await pools.bare.sum(encrypted); // a switch: no key at all
      const decrypted = await pools.secretPool.decrypt(sum, PARAMETERS);
      // Each client rounds up or down by less than a unit: 12 of them are off by less than 12 units, and
      // by far less on the whole (the roundings are unbiased). A carry between slots or noise in the value
      // bits would be off by a whole slot's range.
      const worst = worstError(decrypted, () => unitOf(1), () => 1);
      assert.ok(worst < CLIENTS, `worst error ${worst.toFixed(3)} units`);
      assert.ok(rmsError(decrypted) < 3 * unitOf(1), `rms error ${rmsError(decrypted)}`);
    });
  }

  it('the extremes of the range, in every slot and with alternating signs, add up without a carry', async () => {
    for (const pattern of [(i: number) => (i % 2 ? 1 : -1), () => 1, () => -1, (i: number) => (i % 3 === 0 ? -1 : 1)]) {
      const values = Float32Array.from({ length: 3000 }, (_, i) => pattern(i));
      const equal = 1 / CLIENTS;
      const sum = await pools.bare.sum(await Promise.all(updates.map(() => pools.publicPool.encrypt(values, equal))));
      const decrypted = await pools.secretPool.decrypt(sum, values.length);
      for (let i = 0; i < values.length; i++) assert.ok(Math.abs(decrypted[i] - values[i]) < CLIENTS * unitOf(1), `value ${i}: ${decrypted[i]} for ${values[i]}`);
    }
  });

  it('the noise of 12 public-key encryptions stays far below the bits left for it', async () => {
    // The same primes with one float to a coefficient, read at a scale of 1: what is left is the noise.
    const float = { ...params, quantize: undefined, scale_bits: 0 };
    const encryptor = await Ckks.create(float, { publicKey: pools.keys.publicKey });
    const opener = await Ckks.create(float, { secretKey: pools.keys.secretKey });
    try {
      const zeros = Array.from({ length: CLIENTS }, () => encryptor.encrypt(new Float64Array(8192)));
      const noise = opener.decrypt(opener.sum(zeros), 8192);
      const largest = noise.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(largest > 0, 'no noise at all: the measurement reads nothing');
      const { noiseBits } = geometryOf(spec, SIXTY_BIT_PRIMES);
      assert.ok(largest < 2 ** (noiseBits - 1) / 16, `noise ${largest} against ${2 ** (noiseBits - 1)} (rounded away below it)`);
    } finally {
      encryptor.dispose();
      opener.dispose();
    }
  });

  it('refuses a share above 1, which could carry into the next value, and values that are not numbers', async () => {
    await assert.rejects(pools.publicPool.encrypt(updates[0], 1.5), /share of the round \(0 < factor <= 1\), got 1.5/);
    const broken = Float32Array.from(updates[0]);
    broken[5000] = NaN;
    await assert.rejects(pools.publicPool.encrypt(broken, 0.5), /value NaN at 5000 cannot be quantized/);
  });

  it('needs the shares of a round to add up to at most 1 (the aggregator assigns them so): every client at the clip sums to the clip; shares of 0.5 and 1 wrap', async () => {
    const atClip = new Float32Array(PARAMETERS).fill(1);
    const read = async (roundShares: number[]) => pools.secretPool.decrypt(await pools.bare.sum(await Promise.all(roundShares.map((share) => pools.publicPool.encrypt(atClip, share)))), PARAMETERS);
    // The worst a round can be: all 12 at +clip, shares adding up to 1.
    const twelfths = Array.from({ length: CLIENTS }, () => 1 / CLIENTS);
    const full = await read(twelfths);
    assert.ok(full.every((v) => Math.abs(v - 1) <= CLIENTS * unitOf(1)), `a slot read ${full.find((v) => Math.abs(v - 1) > CLIENTS * unitOf(1))}`);
    // Two shares each allowed alone, 1.5 in all: the slot overflows into its neighbour, and reads as another number.
    const over = await read([0.5, 1]);
    assert.ok(over.some((v) => Math.abs(v - 1.5) > 0.5), 'a sum of shares over 1 read back right: the slots have more room than the layout says');
  });

  it('ciphertexts made under another key are refused, not read as values', async () => {
    const otherKeys = await Ckks.generateKeys(params);
    const stranger = await HePool.start(params, { secretKey: otherKeys.secretKey });
    try {
      const sum = await pools.bare.sum(await Promise.all(updates.slice(0, 3).map((u, k) => pools.publicPool.encrypt(u, shares[k]))));
      await assert.rejects(stranger.decrypt(sum, PARAMETERS), /coefficients decrypt with noise in their low bits: these ciphertexts were not made under this secret key/);
      assert.equal((await pools.secretPool.decrypt(sum, PARAMETERS)).length, PARAMETERS); // the right key reads them
    } finally {
      await stranger.close();
    }
  });
});

describe('quantized packing with a clip per weight tensor', () => {
  // A model of 3 ciphertexts, so the HE threads take ranges that start inside a tensor.
  const sizes = [150_000, 7, 120_000, 33_000];
  const clips = [0.1, 1, 0.5, 2];
  const length = sizes.reduce((a, b) => a + b, 0);
  const tensorOf = (i: number) => {
    let end = 0;
    return sizes.findIndex((size) => i < (end += size));
  };
  const values = Float32Array.from({ length }, (_, i) => 2.5 * Math.sin(i * 0.11));

  it('reads each tensor in its own unit, and clips (and counts) what lies beyond its range', async () => {
    const quantize = { bits: 8, clip: clips, clients: 2 };
    const tensorParams = paramsFor(quantize, sizes);
    const keys = await Ckks.generateKeys(tensorParams);
    const encryptor = await HePool.start(tensorParams, { publicKey: keys.publicKey }, 2);
    const opener = await HePool.start(tensorParams, { secretKey: keys.secretKey }, 2);
    try {
      assert.equal(encryptor.chunksFor(length), 3);
      const sum = await opener.sum([await encryptor.encrypt(values, 0.5), await encryptor.encrypt(values, 0.5)]);
      const decrypted = await opener.decrypt(sum, length);
      for (let i = 0; i < length; i++) {
        const clip = clips[tensorOf(i)];
        const error = Math.abs(decrypted[i] - clipped(values[i], clip));
        assert.ok(error < 2 * unitOf(clip, quantize), `value ${i} (tensor ${tensorOf(i)}): ${decrypted[i]} for ${values[i]}, clip ${clip}`);
      }
      const beyond = Array.from(values).filter((v, i) => Math.abs(v) > clips[tensorOf(i)]).length;
      assert.ok(beyond > 1000);
      assert.equal(countClipped(values, quantize, sizes), beyond);
    } finally {
      await Promise.all([encryptor.close(), opener.close()]);
    }
  });

  it('a clip list that does not match the tensors is named as the HE starts; a switch, which knows no tensors, needs none', async () => {
    const quantize = { bits: 8, clip: [0.1, 1], clients: 2 };
    const keys = await Ckks.generateKeys(paramsFor(quantize));
    await assert.rejects(Ckks.create(paramsFor(quantize, sizes), { publicKey: keys.publicKey }), /he.quantize.clip: 2 ranges, but the model has 4 weight tensors/);
    const adder = await Ckks.create(paramsFor(quantize), {});
    assert.equal(adder.id, paramsId(paramsFor(quantize, sizes))); // the tensor sizes are not part of the id every node checks
    adder.dispose();
  });
});

describe('quantized packing in the settings', () => {
  const config = (he: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    parseExperimentConfig({
      ...extra,
      he: { enabled: true, ...he },
      others: {
        '127.0.0.1:5000': { type: 'aggregator' },
        '127.0.0.2:5000': { type: 'switch' },
        ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`127.0.1.${i + 1}:5000`, { type: 'client', client_number: 5, index: i, switch: '127.0.0.2:5000' }])),
      },
    });

  it('defaults: three 60-bit primes at N 8192, headroom for a round, clip by what clients send', () => {
    const aggregatorKey = config({ quantize: {} }, { clients_per_round: 4 }).he;
    assert.equal(aggregatorKey.poly_modulus_degree, 8192);
    assert.deepEqual(aggregatorKey.coeff_modulus_bits, [60, 60, 60, 38]);
    assert.deepEqual(aggregatorKey.quantize, { bits: 8, clients: 4, clip: 0.25 });
    assert.deepEqual(config({ key_holder: 'clients', quantize: { bits: 10 } }).he.quantize, { bits: 10, clients: 5, clip: 1 });
    assert.equal(config({}).he.poly_modulus_degree, 4096);
  });

  it('a headroom below the round is refused, naming the field', () => {
    assert.throws(() => config({ quantize: { clients: 3 } }), /he.quantize.clients: 3 leaves headroom for fewer updates than a round holds \(5\)/);
  });

  it('bits that leave no room in a coefficient are named when config.json is read, and again if the HE starts with them', async () => {
    assert.throws(() => config({ quantize: { bits: 24 }, coeff_modulus_bits: [30] }), /he.quantize: 24 bits for 5 clients take 43 bits a value, more than the 28 a coefficient holds/);
    const he = config({ quantize: { bits: 24 } }).he; // fits three 60-bit primes
    await assert.rejects(Ckks.create({ ...heParams(he), coeff_modulus_bits: [30] }), /he.quantize: 24 bits for 5 clients take 43 bits a value, more than the 28 a coefficient holds/);
  });

  it('the packing is part of the parameters id: ciphertexts packed otherwise are refused', () => {
    const base = heParams(config({ quantize: {} }).he);
    const ids = new Set([paramsId(base), paramsId({ ...base, quantize: { ...base.quantize!, bits: 7 } }), paramsId({ ...base, quantize: undefined })]);
    assert.equal(ids.size, 3);
  });
});

describe('distributed DP noise drawn in whole steps of the packing', () => {
  // 4 clients of share ¼, each adding noise of standard deviation 2 (in the values' units, before its
  // share): the sum holds √4·2·¼ = 1. Room for 8 of that beside the clip.
  const noisy: QuantizeSpec = { bits: 16, clip: 1, clients: 4, noise_reserve: 8 };
  const pools = poolsFor(paramsFor(noisy));
  const quiet = poolsFor(paramsFor({ bits: 16, clip: 1, clients: 4 }));

  it('four clients at the clip: the sum reads the clip plus noise of the standard deviation the shares add up to, with no carry', async () => {
    const atClip = new Float32Array(PARAMETERS).fill(1);
    const encrypted = await Promise.all([0, 1, 2, 3].map(() => pools.publicPool.encrypt(atClip, 0.25, 2)));
    const read = await pools.secretPool.decrypt(await pools.bare.sum(encrypted), PARAMETERS);
    let sum = 0;
    let squares = 0;
    for (const value of read) {
      sum += value - 1;
      squares += (value - 1) ** 2;
    }
    const mean = sum / PARAMETERS;
    const sd = Math.sqrt(squares / PARAMETERS - mean * mean);
    // Five standard errors of each estimate (the steps' rounding adds under a millionth to the variance).
    assert.ok(Math.abs(mean) < 5 / Math.sqrt(PARAMETERS), `mean ${mean}`);
    assert.ok(Math.abs(sd - 1) < 5 / Math.sqrt(2 * PARAMETERS), `standard deviation ${sd}`);
    // A carry out of a slot would put a value a whole slot's range (9 and more) away.
    assert.ok(read.every((v) => Math.abs(v - 1) < 8), `a value read ${read.find((v) => Math.abs(v - 1) >= 8)}`);
  });

  it('the step is the clip and the room for the noise over the slot: the parameters id tells the packings apart', () => {
    assert.notEqual(paramsId(paramsFor(noisy)), paramsId(paramsFor({ bits: 16, clip: 1, clients: 4 })));
  });

  it('noise needs the room: a packing without it refuses to draw any', async () => {
    await assert.rejects(quiet.publicPool.encrypt(updates[0], 0.25, 2), /DP noise in a quantized update needs room in the sum/);
  });
});
