/**
 * Sums kept in the HE threads (HeldSum): each update split between the threads by range, taking one
 * out exact, a transparent ciphertext or a sum that cancels out refused without changing anything,
 * and a range lost with its thread said.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ckks } from '../../../src/he/ckks';
import { HeldSum } from '../../../src/he/held-sum';
import { HePool, HePoolFailure } from '../../../src/he/pool';
import { closeSeal, loadCiphertext, openSeal, type SealKit } from '../../../src/he/seal';

const params = { poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
const PARAMETERS = 9000; // 3 ciphertexts of 4096

describe('HE pool: sums held in the threads', { timeout: 60_000 }, () => {
  /** Public-key encryption (a client's, under the key at the aggregator): its ciphertexts are not seeded, so loading one and saving it again gives its very bytes. */
  let keyed: HePool;
  let opener: HePool;
  let pair: HePool;
  let single: HePool;
  let kit: SealKit;
  const update = (value: number) => keyed.encrypt(new Float32Array(PARAMETERS).map((_, i) => value + i / PARAMETERS));
  const decrypt = async (sum: Uint8Array[]) => (await opener.decrypt(sum, PARAMETERS))[PARAMETERS - 1];
  /** The ciphertexts of -u, made with the evaluator as an attacker could. */
  const negated = (u: Uint8Array[]) =>
    u.map((bytes) => {
      const cipher = loadCiphertext(kit, bytes);
      kit.evaluator.negate(cipher, cipher);
      const out = cipher.saveArray(kit.seal.ComprModeType.none) as Uint8Array;
      cipher.delete();
      return out;
    });
  before(async () => {
    const keys = await Ckks.generateKeys(params);
    [keyed, opener, pair, single, kit] = await Promise.all([HePool.start(params, { publicKey: keys.publicKey }), HePool.start(params, { secretKey: keys.secretKey }), HePool.start(params, {}, 2), HePool.start(params, {}, 1), openSeal(params)]);
  });
  after(async () => {
    closeSeal(kit);
    await Promise.all([keyed, opener, pair, single].map((pool) => pool.close()));
  });

  it('splits each update between the threads, each adding its range; reads the whole sum; taking an update out gives back the very bytes there were', async () => {
    assert.deepEqual(pair.rangesOf(3), [[0, 2], [2, 3]], 'two threads, a range each');
    const sum = new HeldSum(pair);
    const [a, b, c, x] = await Promise.all([1, 2, 3, 40].map(update));
    await Promise.all([a, b, c].map((u) => sum.add(u)));
    const before = await sum.read();
    assert.ok(Math.abs((await decrypt(before)) - (6 + (3 * (PARAMETERS - 1)) / PARAMETERS)) < 1e-4, 'a + b + c');
    await sum.add(x);
    assert.notDeepEqual(await sum.read(), before);
    await sum.takeOut(x);
    assert.deepEqual(await sum.read(), before, 'subtraction undoes addition exactly');
    sum.drop();
    await assert.rejects(sum.add(a), /dropped/);
  });

  it('hands back the ciphertexts a thread makes as they are, each in the buffer SEAL saved it to (moved, not packed into one)', async () => {
    const [a, b] = await Promise.all([1, 2].map(update));
    const sum = new HeldSum(pair);
    await Promise.all([sum.add(a), sum.add(b)]);
    const held = await sum.read();
    const summed = await pair.sum([a, b]);
    for (const [what, list] of [['an encryption', a], ['a held sum', held], ['a sum', summed]] as const) {
      assert.ok(list.every((c) => c.byteOffset === 0 && c.byteLength === c.buffer.byteLength), `${what}: each its own buffer`);
    }
    assert.deepEqual(held, summed);
    assert.ok(Math.abs((await decrypt(held)) - (3 + (2 * (PARAMETERS - 1)) / PARAMETERS)) < 1e-4, 'a + b');
    sum.drop();
  });

  it('taking out the only update it holds leaves nothing; the next update makes it again', async () => {
    const sum = new HeldSum(pair);
    const a = await update(1);
    await sum.add(a);
    await sum.takeOut(a);
    await assert.rejects(sum.read(), /holds nothing/);
    const b = await update(2);
    await sum.add(b);
    assert.deepEqual(await sum.read(), b, 'made again from the next update alone');
    sum.drop();
  });

  it('refuses a transparent ciphertext, and an update that cancels the sum out, leaving the sum as it was in every thread', async () => {
    const sum = new HeldSum(pair);
    const u = await update(5);
    await sum.add(u);
    // A transparent ciphertext: its second polynomial (the last N coefficients, one prime) zeroed.
    const transparent = u.map((bytes) => Uint8Array.from(bytes).fill(0, bytes.length - params.poly_modulus_degree * 8));
    await assert.rejects(sum.add(transparent), /transparent ciphertext/);
    // -u passes as a ciphertext, but the sum it makes is transparent: SEAL wrote it before it threw, and it is put back.
    await assert.rejects(sum.add(negated(u)), /transparent/);
    assert.deepEqual(await sum.read(), u);
    // A chunk that does not load, after two that did: the thread takes them out again, and the other thread its range.
    await assert.rejects(sum.add([u[0], u[1], Uint8Array.from([1, 2, 3])]), /not a SEAL serialization/);
    assert.deepEqual(await sum.read(), u);
    sum.drop();
  });

  it('spoiled when part of a refused update cannot be taken out again: it takes no more and is not read, as the pool\'s failure', async () => {
    const sum = new HeldSum(pair);
    const u = await update(5);
    await sum.add(u);
    // The chunk that does not load is thread 1's; taking thread 0's range out again fails (as with no memory for it).
    const run = pair.runOnThread.bind(pair);
    const failing = (thread: Parameters<typeof run>[0], task: Parameters<typeof run>[1]) => ('sign' in task && task.sign < 0 ? Promise.reject(new Error('taking out: std::bad_alloc')) : run(thread, task));
    pair.runOnThread = failing as typeof pair.runOnThread;
    try {
      await assert.rejects(sum.add([u[0], u[1], Uint8Array.from([1, 2, 3])]), (err: Error) => err instanceof HePoolFailure && /part of an update it refused.*std::bad_alloc/.test(err.message));
    } finally {
      pair.runOnThread = run;
    }
    await assert.rejects(sum.add(u), (err: Error) => err instanceof HePoolFailure && /takes and gives no more/.test(err.message));
    await assert.rejects(sum.read(), (err: Error) => err instanceof HePoolFailure && /takes and gives no more/.test(err.message));
    sum.drop();
  });

  it('taking an update out may leave a transparent difference (two made to cancel): it stays, exactly, and the next update adds to it', async () => {
    const sum = new HeldSum(single);
    const [decoy, u, w] = await Promise.all([update(1), update(2), update(3)]);
    await sum.add(decoy);
    await sum.add(u);
    await sum.add(negated(u)); // decoy + u - u: not transparent
    await sum.takeOut(decoy); // u - u: all zero, which SEAL refuses to write out of an addition
    await sum.add(w);
    assert.deepEqual(await sum.read(), w);
    sum.drop();
  });

  it('a range lost with its thread: more additions are refused and the sum is not read, naming the thread', async () => {
    const pool = await HePool.start(params, {}, 2, { testHooks: true });
    try {
      const sum = new HeldSum(pool);
      // A thread replaced before the first addition holds nothing yet: the sum takes the threads there are then.
      await assert.rejects(pool.crashThreadForTest(1, 'exit'));
      await sum.add(await update(1));
      await assert.rejects(pool.crashThreadForTest(1, 'exit'));
      await assert.rejects(sum.add(await update(2)), (err: Error) => err instanceof HePoolFailure && /the HE thread 1 died holding part of the sum/.test(err.message));
      await assert.rejects(sum.read(), /the HE thread 1 died holding part of the sum/);
    } finally {
      await pool.close();
    }
  });
});
