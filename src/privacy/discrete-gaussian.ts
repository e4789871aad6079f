/**
 * The discrete Gaussian N_Z(0, σ²): P(x) ∝ exp(−x²/2σ²) on the integers. Drawn by rejection from the
 * discrete Laplace, as Canonne, Kamath and Steinke give it ("The Discrete Gaussian for Differential
 * Privacy", NeurIPS 2020, Algorithms 2 and 3). Their sampler is exact in rational arithmetic; this
 * one, like TensorFlow Privacy's (used by Kairouz et al.'s distributed DP code), tests its
 * Bernoulli(exp(−x)) coins against doubles.
 */

/**
 * Below this σ every draw is 0 in doubles (P(±1) = exp(−1/2σ²) < exp(−5000)), and σ² could underflow
 * to 0, which would leave the rejection step accepting nothing, for ever.
 */
const ALWAYS_ZERO = 0.01;

/** One draw of N_Z(0, σ²); `uniform` gives [0, 1). σ below 0.01 gives 0. */
export function discreteGaussian(sigma: number, uniform: () => number): number {
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new RangeError(`a discrete Gaussian's σ is finite and at least 0, not ${sigma}`);
  if (sigma < ALWAYS_ZERO) return 0;
  const t = Math.floor(sigma) + 1;
  const variance = sigma * sigma;
  for (;;) {
    const y = discreteLaplace(t, uniform);
    const gap = Math.abs(y) - variance / t;
    if (uniform() < Math.exp(-(gap * gap) / (2 * variance))) return y;
  }
}

/** One draw of the discrete Laplace of scale t: P(x) ∝ exp(−|x|/t) (Algorithm 2, with s = 1). */
function discreteLaplace(t: number, uniform: () => number): number {
  for (;;) {
    const u = Math.floor(uniform() * t);
    if (!(uniform() < Math.exp(-u / t))) continue;
    let v = 0; // geometric: failures before the first Bernoulli(1 − e⁻¹) success
    while (uniform() < Math.exp(-1)) v++;
    const magnitude = u + t * v;
    const negative = uniform() < 0.5;
    if (negative && magnitude === 0) continue; // −0 and +0 are one point: drawn once
    return negative ? -magnitude : magnitude;
  }
}
