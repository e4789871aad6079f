/** Attacking clients: what each attack does to the change a client sends, seeded. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attackSchema, describeAttack } from '../../../../src/config/schema';
import { attackedData, attackedWeights } from '../../../../src/roles/client/attack';

const attack = (raw: unknown) => attackSchema.parse(raw);

describe('attacks', () => {
  const global = Float32Array.from([1, 1, 1]);
  const trained = Float32Array.from([2, 0, 1.5]);

  it('sign_flip sends the change reversed and scaled: global − scale·(trained − global)', () => {
    assert.deepEqual([...attackedWeights(attack({ kind: 'sign_flip', scale: 4 }), global, trained, 1)], [-3, 5, -1]);
    assert.deepEqual([...attackedWeights(attack({ kind: 'sign_flip' }), global, trained, 1)], [0, 2, 0.5], 'scale 1 by default');
  });

  it('constant sends a change of scale in every parameter', () => {
    assert.deepEqual([...attackedWeights(attack({ kind: 'constant', scale: -2 }), global, trained, 1)], [-1, -1, -1]);
  });

  it('gaussian sends a change of N(0, scale²) noise, the same for the same seed and round, another for another round', () => {
    const n = 200_000;
    const big = { global: new Float32Array(n), trained: new Float32Array(n) };
    const noisy = attackedWeights(attack({ kind: 'gaussian', scale: 0.5, seed: 3 }), big.global, big.trained, 7);
    const mean = noisy.reduce((s, v) => s + v, 0) / n;
    const sd = Math.sqrt(noisy.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
    // Seeded, so this cannot fail by chance; the bounds are 5 standard errors (σ/√n ≈ 0.0011 for the mean).
    assert.ok(Math.abs(mean) < 0.006, `mean ${mean}`);
    assert.ok(Math.abs(sd - 0.5) < 0.004, `standard deviation ${sd}`);
    assert.deepEqual(attackedWeights(attack({ kind: 'gaussian', scale: 0.5, seed: 3 }), big.global, big.trained, 7), noisy);
    assert.notDeepEqual(attackedWeights(attack({ kind: 'gaussian', scale: 0.5, seed: 3 }), big.global, big.trained, 8).subarray(0, 10), noisy.subarray(0, 10));
  });

  it('label_flip trains on labels read as classes − 1 − c, and sends what it trained', () => {
    const data = { images: new Float32Array(6), labels: Uint8Array.from([0, 3, 9]), size: 3 };
    assert.deepEqual([...attackedData(attack({ kind: 'label_flip' }), data, 10).labels], [9, 6, 0]);
    assert.equal(attackedData(undefined, data, 10), data);
    assert.equal(attackedWeights(attack({ kind: 'label_flip' }), global, trained, 1), trained);
  });

  it('names each attack in a few words, and refuses a scale that means nothing', () => {
    assert.equal(describeAttack(attack({ kind: 'sign_flip', scale: 4 })), 'sign_flip ×4');
    assert.equal(describeAttack(attack({ kind: 'gaussian', scale: 0.5, seed: 2 })), 'gaussian σ 0.5 (seed 2)');
    assert.throws(() => attack({ kind: 'label_flip', scale: 2 }), /label_flip takes no scale/);
    assert.throws(() => attack({ kind: 'gaussian', scale: 0 }), /the noise's standard deviation is above 0, not 0/);
    assert.throws(() => attack({ kind: 'backdoor' }));
  });
});
