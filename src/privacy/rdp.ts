/**
 * Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar and Zhang 2019,
 * "Rényi Differential Privacy of the Sampled Gaussian Mechanism"), as Google's dp_accounting and
 * Opacus compute it: RDP at each order, added up over the rounds, then the smallest ε at the target
 * δ over the orders (the conversion of Canonne, Kamath and Steinke 2020, Proposition 12).
 *
 * Client-level DP-FedAvg (McMahan et al. 2018) is this mechanism with the round's clients as the
 * sample; privacy/dp.ts claims no sampling (q = 1): its clients are not drawn at random.
 */

/** The orders Opacus tries by default (dp_accounting's examples use them too). */
export const DEFAULT_ORDERS: readonly number[] = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, x) => 12 + x)];

/** RDP of one step of the Poisson-subsampled Gaussian at each order: `q` the sampling rate, `sigma` the noise multiplier. */
export function subsampledGaussianRdp(q: number, sigma: number, orders: readonly number[]): number[] {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`the sampling rate is a probability, not ${q}`);
  if (!(sigma >= 0)) throw new RangeError(`the noise multiplier is at least 0, not ${sigma}`);
  return orders.map((alpha) => {
    if (!(alpha > 1)) throw new RangeError(`an RDP order is above 1, not ${alpha}`);
    if (q === 0) return 0;
    if (sigma === 0 || alpha === Infinity) return Infinity;
    if (q === 1) return alpha / (2 * sigma * sigma);
    const logA = Number.isInteger(alpha) ? logAInteger(q, sigma, alpha) : logAFractional(q, sigma, alpha);
    return logA / (alpha - 1);
  });
}

/**
 * The smallest ε that RDP `rdp` at `orders` gives at `delta`, and the order it is found at:
 * ε = rdp + log(1 − 1/α) − log(δ·α)/(α − 1), or 0 when the KL bound alone gives δ.
 */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`δ is in (0, 1), not ${delta}`);
  let best = { epsilon: Infinity, order: orders[0] };
  orders.forEach((alpha, i) => {
    const r = rdp[i];
    const epsilon = delta * delta + Math.expm1(-r) > 0 ? 0 : alpha > 1.01 ? r + Math.log1p(-1 / alpha) - Math.log(delta * alpha) / (alpha - 1) : Infinity;
    if (epsilon < best.epsilon) best = { epsilon, order: alpha };
  });
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** RDP added up over the rounds: `compose` after each, `epsilon` for the budget spent so far. */
export class RdpAccountant {
  private readonly rdp: number[];

  constructor(private readonly orders: readonly number[] = DEFAULT_ORDERS) {
    this.rdp = orders.map(() => 0);
  }

  /**
   * `steps` rounds that sampled each client with probability `q` and added noise of multiplier `sigma`.
   * `slack`: RDP each step adds at every order beyond the Gaussian's (a discrete Gaussian's, see
   * privacy/dp.ts releaseCost); its bound holds without sampling only, so it needs q = 1.
   */
  compose(q: number, sigma: number, steps = 1, slack = 0): void {
    if (slack !== 0 && q !== 1) throw new RangeError('a slack beside the Gaussian is bounded for q = 1 only');
    if (!(slack >= 0)) throw new RangeError(`the slack is at least 0, not ${slack}`);
    subsampledGaussianRdp(q, sigma, this.orders).forEach((r, i) => (this.rdp[i] += (r + slack) * steps));
  }

  epsilon(delta: number): { epsilon: number; order: number } {
    return epsilonFromRdp(this.orders, this.rdp, delta);
  }
}

/** log(a + b) from log a and log b. */
function logAdd(a: number, b: number): number {
  const [high, low] = a > b ? [a, b] : [b, a];
  return high === -Infinity ? -Infinity : high + Math.log1p(Math.exp(low - high));
}

/** log A_α for integer α: a finite sum (Mironov et al. 2019, section 3.3). */
function logAInteger(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  let logBinom = 0; // log C(α, i)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const term = logBinom + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, term);
  }
  return logA;
}

const MAX_FRACTIONAL_TERMS = 1000;

/** log A_α for fractional α: two series, each summed until its terms no longer count (section 3.3). */
function logAFractional(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let coef = 1; // C(α, i), generalized: it changes sign past α
  let [last0, last1] = [-Infinity, -Infinity];
  for (let i = 0; i < MAX_FRACTIONAL_TERMS; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i;
    const logCoef = Math.log(Math.abs(coef));
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    // Each term taken with its size, as dp_accounting now does (it used to subtract the negative
    // ones, as Opacus still does): an upper bound that cannot cancel to nonsense in floating point.
    logA0 = logAdd(logA0, logS0);
    logA1 = logAdd(logA1, logS1);
    const total = logAdd(logA0, logA1);
    // Done when both series shrink and their terms no longer count beside the total.
    if (logS0 < last0 && logS1 < last1 && Math.max(logS0, logS1) < total - 30) return total;
    [last0, last1] = [logS0, logS1];
  }
  return Infinity; // no convergence: the order is left out of the ε (as there)
}

/**
 * log erfc(x), also where erfc underflows: for x ≥ 0, erfc(x) = t·exp(−x² + P(t)) with t = 1/(1 + x/2),
 * P a Chebyshev fit (Numerical Recipes' erfcc, relative error below 1.2e-7), so the log is taken
 * before the exponential; for x < 0, erfc(x) = 2 − erfc(−x).
 */
export function logErfc(x: number): number {
  if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
  const t = 1 / (1 + 0.5 * x);
  const poly =
    -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return Math.log(t) - x * x + poly;
}
