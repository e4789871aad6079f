/**
 * Sums kept in the HE threads (HeldSum): each update is added where it lands, taking one out is exact,
 * and a sum SEAL refuses (one that cancels out) changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import { closeSeal, loadCiphertext, openSeal, type SealKit } from '../../../src/he/seal';

const params = { poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
const PARAMETERS = 9000; // 3 ciphertexts of 4096

describe('HE pool: sums held in the threads', { timeout: 60_000 }, () => {
  /** Public-key encryption (a client's, under the key at the aggregator): its ciphertexts are not seeded, so loading one and saving it again gives its very bytes. */
  let keyed: HePool;
  let opener: HePool;
  let adder: HePool;
  let single: HePool;
  let kit: SealKit;
  const update = (value: number) => keyed.encrypt(new Float32Array(PARAMETERS).map((_, i) => value + i / PARAMETERS));
  before(async () => {
    const keys = await Ckks.generateKeys(params);
    [keyed, opener, adder, single, kit] = await Promise.all([HePool.start(params, { publicKey: keys.publicKey }), HePool.start(params, { secretKey: keys.secretKey }), HePool.start(params, {}, 2), HePool.start(params, {}, 1), openSeal(params)]);
  });
  after(async () => {
    closeSeal(kit);
    await Promise.all([keyed, opener, adder, single].map((pool) => pool.close()));
  });

  it('adds side by side in both threads and reads the whole sum; taking an update out gives back the very bytes there were', async () => {
    const sum = adder.holdSum();
    const [a, b, c, x] = await Promise.all([1, 2, 3, 40].map(update));
    const parts = await Promise.all([a, b, c].map((u) => sum.add(u)));
    assert.equal(new Set(parts.map((p) => p.thread.index)).size, 2, 'both threads hold a part');
    const before = await sum.read();
    const decrypted = await opener.decrypt(before, PARAMETERS);
    assert.ok(Math.abs(decrypted[PARAMETERS - 1] - (6 + 3 * (PARAMETERS - 1) / PARAMETERS)) < 1e-4, `a + b + c: ${decrypted[PARAMETERS - 1]}`);
    const part = await sum.add(x);
    assert.notDeepEqual(await sum.read(), before);
    await sum.takeOut(part);
    assert.deepEqual(await sum.read(), before, 'subtraction undoes addition exactly');
    sum.drop();
    await assert.rejects(sum.add(a), /dropped/);
  });

  it('taking out the only update a part holds leaves nothing there', async () => {
    const sum = single.holdSum();
    const part = await sum.add(await update(1));
    await sum.takeOut(part);
    await assert.rejects(sum.read(), /holds nothing/);
    const b = await update(2);
    await sum.add(b);
    assert.deepEqual(await sum.read(), b, 'a part made again from the next update alone');
    sum.drop();
  });

  it('an update that cancels the sum out (a transparent result SEAL refuses) is refused, and the sum is as it was', async () => {
    const sum = single.holdSum();
    const u = await update(5);
    await sum.add(u);
    const negated = u.map((bytes) => {
      const cipher = loadCiphertext(kit, bytes);
      kit.evaluator.negate(cipher, cipher);
      const out = cipher.saveArray(kit.seal.ComprModeType.none) as Uint8Array;
      cipher.delete();
      return out;
    });
    // Its first chunk cancels the sum's out: SEAL wrote the difference before it threw, and it is put back.
    await assert.rejects(sum.add(negated), /transparent/);
    assert.deepEqual(await sum.read(), u);
    // A later chunk that does not load: the chunks before it are taken out again.
    await assert.rejects(sum.add([u[0], u[1], Uint8Array.from([1, 2, 3])]), /not a SEAL serialization/);
    assert.deepEqual(await sum.read(), u);
    sum.drop();
  });
});
