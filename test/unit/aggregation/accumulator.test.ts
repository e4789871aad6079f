/** The accumulators switches and the aggregator share: sums in sender order, real CKKS additions, refusals that change nothing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EncryptedAccumulator, PlaintextAccumulator, type Gate } from '../../../src/aggregation/accumulator';
import { Ckks } from '../../../src/he/ckks';
import { HePool } from '../../../src/he/pool';
import { sessionsFor } from '../../helpers/he';

const open: Gate = { check: () => undefined, commit: (store) => store() };
/** As the round machine refuses: before slow work (check), or when handed the report (commit). */
const refusing: Gate = {
  check: () => {
    throw new Error('refused');
  },
  commit: () => {
    throw new Error('refused');
  },
};

describe('accumulators', () => {
  it('plaintext: sums in sender order whatever the arrival order, and keeps nothing a gate refused', async () => {
    const sums = await Promise.all(
      [['a', 'b'], ['b', 'a']].map(async (order) => {
        const acc = new PlaintextAccumulator(2);
        for (const sender of order) {
          const values = sender === 'a' ? Float32Array.from([0.1, 0.2]) : Float32Array.from([0.3, 0.7]);
          await acc.add({ round: 1, sender, values, weight: 3, contributors: 1, preScaled: false }, open);
        }
        await assert.rejects(acc.add({ round: 1, sender: 'c', values: Float32Array.from([9, 9]), weight: 1, contributors: 1, preScaled: false }, refusing), /refused/);
        return (await acc.total())!;
      }),
    );
    assert.deepEqual(sums[0], sums[1]);
    assert.equal(sums[0].weight, 6);
    assert.ok(sums[0].kind === 'plain' && Math.abs(sums[0].sum[1] - 2.7) < 1e-6);
  });

  it("plaintext: keeps a switch's bundle as its clients' own updates, summed in client order as if they had come directly", async () => {
    const updates = { a: Float32Array.from([0.1, 0.2]), b: Float32Array.from([0.3, 0.7]), c: Float32Array.from([-1, 2]) };
    const flat = new PlaintextAccumulator(2);
    for (const [sender, values] of Object.entries(updates)) await flat.add({ round: 1, sender, values, weight: 2, contributors: 1, preScaled: false }, open);
    const tree = new PlaintextAccumulator(2);
    const bundle = ['c', 'a'].map((client) => ({ client, weight: 2, values: updates[client as 'a' | 'c'] }));
    await tree.add({ round: 1, sender: 'b', values: updates.b, weight: 2, contributors: 1, preScaled: false }, open);
    await tree.add({ round: 1, sender: 's1', weight: 4, contributors: 2, preScaled: true, bundle }, open);
    assert.deepEqual(await tree.total(), await flat.total());
    const total = (await tree.total())!;
    assert.ok(total.kind === 'plain');
    assert.deepEqual(total.updates.map((u) => [u.client, u.weight, [...u.values]]), Object.entries(updates).map(([c, v]) => [c, 2, [...v]]));
    await assert.rejects(tree.add({ round: 1, sender: 's2', weight: 2, contributors: 1, preScaled: true, bundle: [{ client: 'd', weight: 2, values: updates.a }] }, refusing), /refused/);
    assert.deepEqual(await tree.total(), await flat.total(), 'a refused bundle keeps none of its updates');
  });

  describe('encrypted', () => {
    const params = { enabled: true, key_holder: 'aggregator' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
    const sessions = sessionsFor(params, 5000);
    const values = (v: number) => new Float32Array(5000).fill(v);

    it('adds ciphertexts it cannot read; only accepted ones count; one that does not parse is a 400', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'aggregator');
      await acc.add({ round: 1, sender: 's1', weight: 30, contributors: 2, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(0.25), 0.5) }, open);
      await assert.rejects(acc.add({ round: 1, sender: 's9', weight: 1, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(5)) }, refusing));
      await acc.add({ round: 1, sender: 's2', weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(1), 0.5) }, open);
      const junk = (await sessions.keyed.pool.encrypt(values(1))).map(() => Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
      await assert.rejects(acc.add({ round: 1, sender: 's3', weight: 1, contributors: 1, preScaled: true, ciphertexts: junk }, open), (err: { status?: number }) => err.status === 400);
      // Its first ciphertext loads and is added, the second does not: the first is taken out again.
      const [good] = await sessions.keyed.pool.encrypt(values(7));
      await assert.rejects(acc.add({ round: 1, sender: 's4', weight: 1, contributors: 1, preScaled: true, ciphertexts: [good, ...junk.slice(1)] }, open), (err: { status?: number }) => err.status === 400);
      const total = (await acc.total())!;
      assert.equal(total.kind, 'encrypted');
      assert.deepEqual([total.weight, total.contributors], [40, 3]);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[0] - 0.625) < 1e-6 && Math.abs(sum[4999] - 0.625) < 1e-6, `decrypted ${sum[0]}, ${sum[4999]}`);
      acc.reset();
      assert.equal(await acc.total(), undefined);
    });

    it('adds updates side by side; a second copy from a sender whose first is being added is refused before any HE work; one the round refuses once added is subtracted out exactly', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'switch');
      const arrival = async (sender: string, value: number) => ({ round: 2, sender, weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(value), 0.1) });
      const [a, b, twice, c, d] = await Promise.all([arrival('a', 1), arrival('b', 2), arrival('b', 4), arrival('c', 8), arrival('d', 16)]);
      const checked: string[] = [];
      /** As the switch's round judges: before the HE work (check), and when handed the update (commit); c's round moves on meanwhile. */
      const gate = (sender: string): Gate => ({
        check: () => void checked.push(sender),
        commit: (store) => {
          if (sender === 'c') throw Object.assign(new Error('round 2 is over'), { status: 409 });
          store();
        },
      });
      const outcomes = await Promise.allSettled([a, b, twice, c, d].map((u) => acc.add(u, gate(u.sender))));
      assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
      assert.match(String((outcomes[2] as PromiseRejectedResult).reason?.reason), /b already sent its update for round 2/);
      assert.match(String((outcomes[3] as PromiseRejectedResult).reason), /round 2 is over/);
      assert.deepEqual(checked, ['a', 'b', 'c', 'd'], 'the second b never reached the round, nor the HE threads');
      const total = (await acc.total())!;
      assert.deepEqual([total.weight, total.contributors], [30, 3]);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[0] - 1.9) < 1e-6 && Math.abs(sum[4999] - 1.9) < 1e-6, `a, b and d only (not c's 0.8): decrypted ${sum[0]}, ${sum[4999]}`);
    });

    it('an update being added when a new round opens is judged again for it: it counts once, or not at all', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'switch');
      const ciphertexts = await sessions.keyed.pool.encrypt(values(1), 0.5);
      let checks = 0;
      const gate: Gate = { check: () => void checks++, commit: (store) => store() };
      const adding = acc.add({ round: 3, sender: 'a', weight: 10, contributors: 1, preScaled: true, ciphertexts }, gate);
      acc.reset(); // while it is in the HE threads
      await adding;
      assert.equal(checks, 2, 'judged before the HE work, and again once it found the round reset');
      const total = (await acc.total())!;
      assert.equal(total.contributors, 1);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[0] - 0.5) < 1e-6, `once, not twice: decrypted ${sum[0]}`);
      // The round moves on while b is being added, and refuses it: nothing of b stays in the new round's sum.
      const movesOn: Gate = { check: () => acc.reset(), commit: () => { throw new Error('round 3 is over'); } };
      await assert.rejects(acc.add({ round: 3, sender: 'b', weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(100), 0.5) }, movesOn), /round 3 is over/);
      await acc.add({ round: 4, sender: 'e', weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(2), 0.5) }, open);
      const after = (await acc.total())!;
      const alone = await sessions.keyed.pool.decrypt((after as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(alone[0] - 1) < 1e-6, `e alone, not b's 50 too: decrypted ${alone[0]}`);
    });

    it('a total asked for while a new round begins says so rather than read the new one; a closed accumulator takes nothing more', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'switch');
      const ciphertexts = await sessions.keyed.pool.encrypt(values(1));
      const adding = acc.add({ round: 5, sender: 'a', weight: 1, contributors: 1, preScaled: true, ciphertexts }, open);
      const reading = acc.total();
      acc.reset();
      await adding;
      await assert.rejects(reading, /a new round began while this one was being summed/);
      acc.close();
      await assert.rejects(acc.add({ round: 6, sender: 'b', weight: 1, contributors: 1, preScaled: true, ciphertexts }, open), (err: { status?: number }) => err.status === 503);
    });

    it('a range lost with its thread makes the total fail, naming why, rather than be short', async () => {
      const params = { poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
      const keyed = await HePool.start(params, await Ckks.generateKeys(params));
      const pool = await HePool.start(params, {}, 2, { testHooks: true });
      try {
        const acc = new EncryptedAccumulator({ pool, id: pool.id, chunks: pool.chunksFor(5000) }, 'switch');
        const arrivals = await Promise.all([1, 2].map(async (v) => ({ round: 1, sender: `c${v}`, weight: 1, contributors: 1, preScaled: true, ciphertexts: await keyed.encrypt(values(v)) })));
        await Promise.all(arrivals.map((a) => acc.add(a, open))); // each split between the two threads
        await assert.rejects(pool.crashThreadForTest(1, 'exit'));
        await assert.rejects(acc.total(), /the HE thread 1 died holding part of the sum/);
      } finally {
        await Promise.all([keyed.close(), pool.close()]);
      }
    });
  });
});
