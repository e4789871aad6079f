/**
 * The discrete Gaussian sampler against its law, P(x) ∝ exp(−x²/2σ²) on the integers (Canonne, Kamath
 * and Steinke 2020). Seeded, so each check is one fixed draw; the bounds would fail a fair sampler
 * about once in a million draws.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../../src/data/random';
import { discreteGaussian } from '../../../src/privacy/discrete-gaussian';

/** The exact probabilities of N_Z(0, σ²) on [−reach, reach] (the tails beyond are below 1e-12 for the σ used). */
function exactPmf(sigma: number, reach: number): Map<number, number> {
  const weights = new Map<number, number>();
  let total = 0;
  for (let x = -reach * 4; x <= reach * 4; x++) total += Math.exp(-(x * x) / (2 * sigma * sigma));
  for (let x = -reach; x <= reach; x++) weights.set(x, Math.exp(-(x * x) / (2 * sigma * sigma)) / total);
  return weights;
}

describe('the discrete Gaussian', () => {
  it('σ 1.5: the counts of each integer fit the exact law (chi-square, 16 degrees of freedom)', () => {
    const sigma = 1.5;
    const draws = 200_000;
    const random = seededRandom(7);
    const counts = new Map<number, number>();
    for (let i = 0; i < draws; i++) {
      const x = discreteGaussian(sigma, random);
      assert.ok(Number.isInteger(x));
      const bin = Math.max(-8, Math.min(8, x)); // the tails beyond ±8 (P < 1e-6) in the end bins
      counts.set(bin, (counts.get(bin) ?? 0) + 1);
    }
    const pmf = exactPmf(sigma, 8);
    let chi = 0;
    for (const [x, p] of pmf) chi += ((counts.get(x) ?? 0) - draws * p) ** 2 / (draws * p);
    // 17 bins; the chi-square of 16 degrees of freedom passes 52.6 with probability 1e-5.
    assert.ok(chi < 52.6, `chi-square ${chi.toFixed(1)}`);
  });

  it('σ 1000: mean 0 and variance σ² within five standard errors', () => {
    const sigma = 1000;
    const draws = 100_000;
    const random = seededRandom(11);
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < draws; i++) {
      const x = discreteGaussian(sigma, random);
      sum += x;
      squares += x * x;
    }
    assert.ok(Math.abs(sum / draws) < (5 * sigma) / Math.sqrt(draws), `mean ${sum / draws}`);
    const variance = squares / draws;
    assert.ok(Math.abs(variance / sigma ** 2 - 1) < 5 * Math.sqrt(2 / draws), `variance ${variance}`);
  });

  it('σ 0, and any σ so small that P(±1) is 0 in a double, draws 0 (σ² may underflow: no loop for ever); a σ that is no finite non-negative number is refused', () => {
    for (const sigma of [0, 1e-170, 0.009]) assert.equal(discreteGaussian(sigma, Math.random), 0);
    // σ 0.3, above the floor: P(x ≠ 0) = 2e^(−1/0.18)/(1 + 2e^(−1/0.18) + …) = 0.00766, 153 of 20,000 (sd 12).
    const random = seededRandom(3);
    const moved = Array.from({ length: 20_000 }, () => discreteGaussian(0.3, random)).filter((x) => x !== 0).length;
    assert.ok(moved > 93 && moved < 213, `${moved} draws off 0`);
    for (const sigma of [-1, NaN, Infinity]) assert.throws(() => discreteGaussian(sigma, Math.random), /σ is finite and at least 0/);
  });
});
