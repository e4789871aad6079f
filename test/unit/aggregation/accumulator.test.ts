/** The accumulators switches and the aggregator share: sums in sender order, real CKKS additions, refusals that change nothing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EncryptedAccumulator, PlaintextAccumulator, type Gate } from '../../../src/aggregation/accumulator';
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
        return acc.total()!;
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
    assert.deepEqual(tree.total(), flat.total());
    const total = tree.total()!;
    assert.ok(total.kind === 'plain');
    assert.deepEqual(total.updates.map((u) => [u.client, u.weight, [...u.values]]), Object.entries(updates).map(([c, v]) => [c, 2, [...v]]));
    await assert.rejects(tree.add({ round: 1, sender: 's2', weight: 2, contributors: 1, preScaled: true, bundle: [{ client: 'd', weight: 2, values: updates.a }] }, refusing), /refused/);
    assert.deepEqual(tree.total(), flat.total(), 'a refused bundle keeps none of its updates');
  });

  describe('encrypted', () => {
    const params = { enabled: true, key_holder: 'aggregator' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [54], scale_bits: 45 };
    const sessions = sessionsFor(params, 5000);
    const values = (v: number) => new Float32Array(5000).fill(v);

    it('adds ciphertexts it cannot read; only accepted ones count; one that does not parse is a 400', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'aggregator', false);
      await acc.add({ round: 1, sender: 's1', weight: 30, contributors: 2, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(0.25), 0.5) }, open);
      await assert.rejects(acc.add({ round: 1, sender: 's9', weight: 1, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(5)) }, refusing));
      await acc.add({ round: 1, sender: 's2', weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(1), 0.5) }, open);
      const junk = (await sessions.keyed.pool.encrypt(values(1))).map(() => Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
      await assert.rejects(acc.add({ round: 1, sender: 's3', weight: 1, contributors: 1, preScaled: true, ciphertexts: junk }, open), (err: { status?: number }) => err.status === 400);
      const total = acc.total()!;
      assert.equal(total.kind, 'encrypted');
      assert.deepEqual([total.weight, total.contributors], [40, 3]);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[4999] - 0.625) < 1e-6, `decrypted ${sum[4999]}`);
      acc.reset();
      assert.equal(acc.total(), undefined);
    });

    it('batched (a switch): updates that wait for a sum are added together; a sender twice in a batch, and one the round moved on from meanwhile, are refused', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'switch', true);
      const arrival = async (sender: string, value: number) => ({ round: 2, sender, weight: 10, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(value), 0.1) });
      const [a, b, c, twice] = await Promise.all([arrival('a', 1), arrival('b', 2), arrival('c', 3), arrival('b', 4)]);
      let checks = 0;
      /** b's round moves on while its batch is summed: it passes the check before the sum, and none after. */
      const movesOn: Gate = {
        check: () => {
          if (++checks > 1) throw Object.assign(new Error('round 2 is over'), { status: 409 });
        },
        commit: open.commit,
      };
      const added = [acc.add(a, open), acc.add(b, movesOn), acc.add(c, open), acc.add(twice, open)]; // a alone, then the rest in one batch
      const outcomes = await Promise.allSettled(added);
      assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected']);
      assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /round 2 is over/);
      assert.match(String((outcomes[3] as PromiseRejectedResult).reason?.reason), /b already sent its update for round 2/);
      assert.equal(checks, 3, 'b is judged before the sum, after it, and again alone');
      const total = acc.total()!;
      assert.deepEqual([total.weight, total.contributors], [20, 2]);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[0] - 0.4) < 1e-6, `a and c only: decrypted ${sum[0]}`);
    });

    it('batched: when taking one closes the round and the next is refused, the sum is made again from those taken', async () => {
      const acc = new EncryptedAccumulator(sessions.adder, 'switch', true);
      const arrival = async (sender: string, value: number, weight = 10) => ({ round: 1, sender, weight, contributors: 1, preScaled: true, ciphertexts: await sessions.keyed.pool.encrypt(values(value), 0.1) });
      const [c2, c1, s2] = await Promise.all([arrival('c2', 1), arrival('c1', 10, 20), arrival('s2', 100, 40)]);
      let closed = false;
      /** c1 completes the round (its switch dropped the client s2 names): s2, taken after it, is refused. */
      const round = (sender: string): Gate => ({
        check: () => undefined,
        commit: (store) => {
          if (closed) throw Object.assign(new Error('round 1 is not open here (forwarded)'), { status: 409 });
          store();
          if (sender === 'c1') closed = true;
        },
      });
      const added = [acc.add(c2, round('c2')), acc.add(c1, round('c1')), acc.add(s2, round('s2'))]; // c2 alone, then c1 and s2 in one batch
      const outcomes = await Promise.allSettled(added);
      assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled', 'rejected']);
      const total = acc.total()!;
      assert.deepEqual([total.weight, total.contributors], [30, 2]);
      const sum = await sessions.keyed.pool.decrypt((total as { ciphertexts: Uint8Array[] }).ciphertexts, 5000);
      assert.ok(Math.abs(sum[0] - 1.1) < 1e-6, `c2 and c1 only, not s2's 10: decrypted ${sum[0]}`);
    });
  });
});
