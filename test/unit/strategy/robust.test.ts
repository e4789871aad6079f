/**
 * The robust rules on cases worked by hand (one parameter each unless said), with the tie rules of
 * numpy's median and Flower's aggregate.py (flwr/server/strategy/aggregate.py): aggregate_median,
 * aggregate_trimmed_avg (scipy's trim_mean: ⌊β·n⌋ cut at each end), aggregate_krum (n − f − 2
 * neighbours, at least one; Multi-Krum averages by samples), aggregate_bulyan (θ = n − 2f picks by
 * Krum, then the β = θ − 2f values nearest the median).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bulyan, bulyanChoice, coordinateMedian, krumChoice, krumScores, multiKrum, trimmedMean, weightedMean, type ClientUpdate } from '../../../src/strategy/robust';

const updates = (values: number[][], weights = values.map(() => 1)): ClientUpdate[] => values.map((v, i) => ({ values: Float32Array.from(v), weight: weights[i] }));
const one = (...values: number[]) => updates(values.map((v) => [v]));

describe('robust aggregation rules', () => {
  it('takes the median of each parameter; of an even number, the mean of the middle two', () => {
    assert.deepEqual([...coordinateMedian(updates([[1, 40], [5, 10], [3, 20]]))], [3, 20]);
    assert.deepEqual([...coordinateMedian(one(1, 2, 3, 10))], [2.5]);
  });

  it('cuts ⌊β·n⌋ values at each end before the mean: β 0.25 of 4 cuts one, β 0.2 of 4 none', () => {
    assert.deepEqual([...trimmedMean(one(1, 2, 3, 10), 0.25)], [2.5]);
    assert.deepEqual([...trimmedMean(one(1, 2, 3, 10), 0.2)], [4]);
    assert.throws(() => trimmedMean(one(1, 2), 0.5), /the fraction cut at each end is in \[0, 0\.5\), not 0\.5/);
  });

  it('scores each update by its n − f − 2 nearest: of 0, 1, 3, 100 with f 0, Krum takes 1; Multi-Krum of 2 averages 1 and 0 by samples', () => {
    const four = updates([[0], [1], [3], [100]], [3, 1, 1, 1]);
    // Two neighbours each: 0 → 1 + 9, 1 → 1 + 4, 3 → 4 + 9, 100 → 97² + 99².
    assert.deepEqual(krumScores(four, 0), [10, 5, 13, 9409 + 9801]);
    assert.deepEqual([...multiKrum(four, 0)], [1]);
    assert.deepEqual(krumChoice(four, 0, 2), [1, 0]);
    assert.deepEqual([...multiKrum(four, 0, 2)], [(0 * 3 + 1 * 1) / 4]);
    // With f 1, one neighbour: 0 and 1 tie at 1; the earlier is taken.
    assert.deepEqual(krumChoice(four, 1), [0]);
  });

  it('keeps one Byzantine update of seven out with Bulyan (f 1): Krum picks 3, 4, 2, 5, 1 and the three nearest the median 3 average to 3', () => {
    const seven = one(1, 2, 3, 4, 5, 6, 1000);
    assert.deepEqual(bulyanChoice(seven, 1), [2, 3, 1, 4, 0], 'the values 3, 4, 2, 5, 1 (ties to the earlier)');
    assert.deepEqual([...bulyan(seven, 1)], [3]);
    // Two parameters, the second where the picks decide: nearest its median (30) of 10, 20, 30, 40, 50 are 20, 30, 40.
    assert.deepEqual([...bulyan(updates([[1, 50], [2, 40], [3, 10], [4, 30], [5, 20], [6, 1e6], [1000, -1e6]]), 1)], [3, 30]);
    assert.ok(weightedMean(seven)[0] > 100, 'the plain mean follows the outlier');
    assert.throws(() => bulyan(one(1, 2, 3, 4, 5, 6), 1), /Bulyan needs n ≥ 4f \+ 3: 6 updates with f = 1/);
  });

  it('refuses updates of different lengths, and none at all', () => {
    assert.throws(() => coordinateMedian(updates([[1, 2], [3]])), /the updates differ in length/);
    assert.throws(() => coordinateMedian([]), /no update to aggregate/);
  });
});
