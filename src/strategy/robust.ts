/**
 * Robust aggregation rules over the clients' own updates (plaintext only: each rule must read every
 * update), as Flower implements them (flwr/server/strategy/aggregate.py) and the papers define them:
 * - coordinate-wise median (Yin et al. 2018): each parameter the median of the clients' values;
 * - trimmed mean (Yin et al. 2018): each parameter the mean with the ⌊β·n⌋ largest and smallest cut;
 * - Krum and Multi-Krum (Blanchard et al. 2017): the update(s) closest to their n − f − 2 nearest
 *   neighbours, f the Byzantine clients assumed, averaged by samples;
 * - Bulyan (El Mhamdi et al. 2018): θ = n − 2f updates chosen by Krum one at a time, then each
 *   parameter the mean of the β = θ − 2f values nearest its median. Needs n ≥ 4f + 3.
 */

/** One client's update: its values and the samples behind them. */
export interface ClientUpdate {
  values: Float32Array;
  weight: number;
}

function sameLength(updates: readonly ClientUpdate[]): number {
  if (!updates.length) throw new RangeError('no update to aggregate');
  const length = updates[0].values.length;
  if (updates.some((u) => u.values.length !== length)) throw new RangeError('the updates differ in length');
  return length;
}

/** Each parameter through `reduce` of the clients' values at it, sorted ascending. */
function coordinateWise(updates: readonly ClientUpdate[], reduce: (sorted: Float64Array) => number): Float32Array {
  const length = sameLength(updates);
  const out = new Float32Array(length);
  const column = new Float64Array(updates.length);
  for (let p = 0; p < length; p++) {
    for (let c = 0; c < updates.length; c++) column[c] = updates[c].values[p];
    column.sort();
    out[p] = reduce(column);
  }
  return out;
}

const median = (sorted: Float64Array) => {
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Each parameter the median of the clients' values (the mean of the middle two when their number is even). */
export function coordinateMedian(updates: readonly ClientUpdate[]): Float32Array {
  return coordinateWise(updates, median);
}

/** Each parameter the mean of the clients' values with the ⌊β·n⌋ largest and smallest cut, 0 ≤ β < 0.5. */
export function trimmedMean(updates: readonly ClientUpdate[], beta: number): Float32Array {
  if (!(beta >= 0 && beta < 0.5)) throw new RangeError(`the fraction cut at each end is in [0, 0.5), not ${beta}`);
  const cut = Math.floor(beta * updates.length);
  return coordinateWise(updates, (sorted) => {
    let sum = 0;
    for (let i = cut; i < sorted.length - cut; i++) sum += sorted[i];
    return sum / (sorted.length - 2 * cut);
  });
}

function squaredDistance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum;
}

/** The squared distance between every two updates. */
function distanceMatrix(updates: readonly ClientUpdate[]): number[][] {
  const distances = updates.map(() => new Array<number>(updates.length).fill(0));
  for (let i = 0; i < updates.length; i++) {
    for (let j = i + 1; j < updates.length; j++) distances[i][j] = distances[j][i] = squaredDistance(updates[i].values, updates[j].values);
  }
  return distances;
}

/** Krum scores of the updates `among` (indexes into `distances`): each one's summed distances to its n − f − 2 nearest in `among`, at least one (as Flower has it). */
function scoresAmong(distances: number[][], among: readonly number[], byzantine: number): number[] {
  if (among.length < 2) throw new RangeError('Krum compares updates: it needs two at least');
  const neighbours = Math.max(1, among.length - byzantine - 2);
  return among.map((i) =>
    among
      .filter((j) => j !== i)
      .map((j) => distances[i][j])
      .sort((x, y) => x - y)
      .slice(0, neighbours)
      .reduce((s, d) => s + d, 0),
  );
}

/** Positions in `scores` of the `keep` lowest, lowest first (ties: the earlier). */
function lowest(scores: readonly number[], keep: number): number[] {
  return scores
    .map((score, index) => ({ score, index }))
    .sort((a, b) => a.score - b.score || a.index - b.index)
    .slice(0, keep)
    .map((s) => s.index);
}

/** Each update's Krum score: the summed squared distances to its n − f − 2 nearest others (at least one, as Flower has it). */
export function krumScores(updates: readonly ClientUpdate[], byzantine: number): number[] {
  sameLength(updates);
  return scoresAmong(distanceMatrix(updates), updates.map((_, i) => i), byzantine);
}

/** The indexes of the `keep` updates with the lowest Krum scores, lowest first (ties: the earlier update). */
export function krumChoice(updates: readonly ClientUpdate[], byzantine: number, keep = 1): number[] {
  return lowest(krumScores(updates, byzantine), keep);
}

/** The mean of `updates`, weighted by their samples. */
export function weightedMean(updates: readonly ClientUpdate[]): Float32Array {
  const length = sameLength(updates);
  const total = updates.reduce((s, u) => s + u.weight, 0);
  if (!(total > 0)) throw new RangeError('no samples behind these updates');
  const out = new Float64Array(length);
  for (const { values, weight } of updates) for (let i = 0; i < length; i++) out[i] += values[i] * weight;
  return Float32Array.from(out, (v) => v / total);
}

/** Krum (`keep` 1: the chosen update itself) and Multi-Krum: the sample-weighted mean of the `keep` updates Krum chooses. */
export function multiKrum(updates: readonly ClientUpdate[], byzantine: number, keep = 1): Float32Array {
  const chosen = krumChoice(updates, byzantine, keep).map((i) => updates[i]);
  return keep === 1 ? Float32Array.from(chosen[0].values) : weightedMean(chosen);
}

/** Bulyan's first step: the indexes of the θ = n − 2f updates Krum picks one at a time from those left, with the same f (Flower's aggregate_bulyan). */
export function bulyanChoice(updates: readonly ClientUpdate[], byzantine: number): number[] {
  if (updates.length < 4 * byzantine + 3) throw new RangeError(`Bulyan needs n ≥ 4f + 3: ${updates.length} updates with f = ${byzantine}`);
  sameLength(updates);
  const theta = updates.length - 2 * byzantine;
  const distances = distanceMatrix(updates);
  const left = updates.map((_, index) => index);
  const chosen: number[] = [];
  while (chosen.length < theta) {
    const pick = left.length > 1 ? lowest(scoresAmong(distances, left, byzantine), 1)[0] : 0;
    chosen.push(...left.splice(pick, 1));
  }
  return chosen;
}

/** Bulyan: the updates bulyanChoice picks, then each parameter the mean of the θ − 2f values nearest its median. */
export function bulyan(updates: readonly ClientUpdate[], byzantine: number): Float32Array {
  const chosen = bulyanChoice(updates, byzantine).map((i) => updates[i]);
  const beta = chosen.length - 2 * byzantine;
  return coordinateWise(chosen, (sorted) => {
    const m = median(sorted);
    const nearest = Array.from(sorted)
      .sort((a, b) => Math.abs(a - m) - Math.abs(b - m) || a - b)
      .slice(0, beta);
    return nearest.reduce((s, v) => s + v, 0) / beta;
  });
}
