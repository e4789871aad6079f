/** Central DP-FedAvg's pieces: the clip, the noise, the budget in rounds. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dpSchema } from '../../../src/config/schema';
import { seededRandom } from '../../../src/data/random';
import { dequantizeValues, quantizedMeta, quantizeValues } from '../../../src/wire/quantized';
import { addGaussianNoise, changeNorm, clientNoise, clipChange, dpClip, noiseRoomProblem, noiseShareStd, noiseStd, PrivacyLedger, describeBudget, epsilonAfter, plannedRounds, releaseCost } from '../../../src/privacy/dp';
import { epsilonFromRdp, DEFAULT_ORDERS } from '../../../src/privacy/rdp';

const dp = (raw: Record<string, unknown>) => dpSchema.parse({ mode: 'central', clip: 1, noise_multiplier: 1, ...raw });

describe('central DP-FedAvg', () => {
  it('clips a change longer than the clip to it, and leaves a shorter one as it is', () => {
    const global = Float32Array.from([1, 1]);
    assert.deepEqual([...clipChange(global, Float32Array.from([4, 5]), 1)], [1.600000023841858, 1.7999999523162842]); // change (3, 4), norm 5, to (0.6, 0.8)
    const short = Float32Array.from([1.1, 1]);
    assert.equal(clipChange(global, short, 1), short);
  });

  it('leaves no clipped change longer than the clip, float32 rounding included', () => {
    const random = seededRandom(5);
    for (let trial = 0; trial < 20; trial++) {
      const global = Float32Array.from({ length: 101_770 }, () => random() - 0.5);
      const trained = Float32Array.from(global, (w) => w + (random() - 0.5) * 0.1);
      assert.ok(changeNorm(global, clipChange(global, trained, 0.5)) <= 0.5, `trial ${trial}`);
    }
  });

  it('clips a quantized change short of dp.clip by what rounding can add, so the rounded change stays within dp.clip (and would not without)', () => {
    // A step of 1/150: a change of length 1 over 10,000 values is 1.5 steps in each.
    const values = 10_000;
    const he = { enabled: false, key_holder: 'aggregator' as const, poly_modulus_degree: 4096, coeff_modulus_bits: [], scale_bits: 0, quantize: { bits: 8, clip: 127 / 150, clients: 1 } };
    const meta = quantizedMeta(he.quantize, values);
    const unit = meta.units[0][1];
    const clip = dpClip(dp({ clip: 1 }), he, values);
    assert.ok(Math.abs(1 - clip - unit * Math.sqrt(values)) < 1e-12, `clipped to ${clip}, a step ${unit}`);
    // Unbiased rounding keeps each value on average, and lengthens the vector by its variance: at 1.5
    // steps a value, 10,000·u²/4 on the squared length, 17 standard deviations (100·u·v) above 0.
    const global = new Float32Array(values);
    const lengthAfterRounding = (to: number) => {
      const trained = Float32Array.from({ length: values }, () => 1);
      const change = clipChange(global, trained, to);
      return changeNorm(global, dequantizeValues(quantizeValues(change, meta), meta));
    };
    assert.ok(lengthAfterRounding(clip) <= 1, `rounded: ${lengthAfterRounding(clip)}`);
    assert.ok(lengthAfterRounding(1) > 1, 'clipped to dp.clip itself, rounding takes it past');
  });

  it('adds noise of the standard deviation asked, mean 0 (seeded here; the aggregator draws from crypto)', () => {
    const sum = new Float64Array(200_001);
    addGaussianNoise(sum, 3, seededRandom(11));
    const mean = sum.reduce((s, v) => s + v, 0) / sum.length;
    const sd = Math.sqrt(sum.reduce((s, v) => s + (v - mean) ** 2, 0) / sum.length);
    // Five standard errors: 3/√n ≈ 0.0067 for the mean, 3/√(2n) ≈ 0.0047 for the deviation.
    assert.ok(Math.abs(mean) < 0.034, `mean ${mean}`);
    assert.ok(Math.abs(sd - 3) < 0.024, `standard deviation ${sd}`);
    const drawn = new Float64Array(4);
    addGaussianNoise(drawn, 1);
    assert.ok(drawn.every((v) => v !== 0), 'the default draws from crypto');
  });

  it('sizes distributed noise shares so that the fewest updates a round closes with sum to the central noise', () => {
    const settings = dp({ mode: 'distributed', clip: 0.5, noise_multiplier: 2 });
    // 12 clients a round, min_report_fraction 0.5: selection may close with 6, training with 3 of them.
    const share = noiseShareStd(settings, { min_report_fraction: 0.5 }, 12);
    assert.equal(share, (2 * 2 * 0.5) / Math.sqrt(3));
    assert.equal(noiseShareStd(settings, { clients_per_round: 4, min_report_fraction: 1 }, 12), 2 / Math.sqrt(4));
    // Three clients' shares, summed, have the central standard deviation σ = z·2C = 2 (seeded; five standard errors, 2/√(2n)).
    const random = seededRandom(23);
    const sum = new Float64Array(100_000);
    for (let client = 0; client < 3; client++) {
      const sent = new Float32Array(sum.length);
      addGaussianNoise(sent, share, random);
      sent.forEach((v, i) => (sum[i] += v));
    }
    const sd = Math.sqrt(sum.reduce((s, v) => s + v * v, 0) / sum.length);
    assert.ok(Math.abs(sd - noiseStd(settings)) < 5 * (2 / Math.sqrt(2 * sum.length)), `standard deviation ${sd}`);
  });

  it('keeps a ledger of released models: ε by releases, and whether another fits the budget', () => {
    const settings = { dp: dp({ noise_multiplier: 2, max_epsilon: epsilonAfter({ dp: dp({ noise_multiplier: 2 }) }, 3) }) };
    const ledger = new PrivacyLedger(settings, 1);
    ledger.release();
    assert.deepEqual([ledger.released, ledger.epsilon], [2, epsilonAfter(settings, 2)]);
    assert.equal(ledger.affordsAnother(), true);
    ledger.release();
    assert.equal(ledger.affordsAnother(), false);
  });

  it('accounts each round as the Gaussian mechanism (q 1): ε after r rounds is that of RDP r·α/(2z²)', () => {
    const settings = { dp: dp({ noise_multiplier: 2 }) };
    const rdp = DEFAULT_ORDERS.map((alpha) => (30 * alpha) / (2 * 4));
    assert.equal(epsilonAfter(settings, 30), epsilonFromRdp(DEFAULT_ORDERS, rdp, 1e-5).epsilon);
    assert.ok(epsilonAfter(settings, 31) > epsilonAfter(settings, 30));
  });

  it('stops before the round that would spend more than max_epsilon, and says so', () => {
    const budget = dp({ noise_multiplier: 2, max_epsilon: 5 });
    const planned = plannedRounds({ rounds: 100, dp: budget });
    assert.ok(planned > 0 && planned < 100, `${planned}`);
    assert.ok(epsilonAfter({ dp: budget }, planned) <= 5 && epsilonAfter({ dp: budget }, planned + 1) > 5);
    assert.match(describeBudget({ rounds: 100, dp: budget })!, new RegExp(`after ${planned} rounds: dp\\.max_epsilon 5 stops the run there, before round ${planned + 1} of 100`));
    assert.equal(plannedRounds({ rounds: 100, dp: dp({}) }), 100, 'no budget, every round');
    assert.equal(plannedRounds({ rounds: 100 }), 100);
  });
});

describe('distributed DP under quantized HE: the distributed discrete Gaussian', () => {
  const distributed = dp({ mode: 'distributed', clip: 1, noise_multiplier: 1 });
  const sealed = (quantize?: { bits: number; clip: number; clients: number; noise_reserve?: number }) => ({ enabled: true, key_holder: 'aggregator' as const, poly_modulus_degree: 8192, coeff_modulus_bits: [60, 60, 60, 38], scale_bits: 45, ...(quantize ? { quantize } : {}) });

  it('is drawn in whole steps as a client encrypts under quantized HE, and added to its floats otherwise', () => {
    const headcount = { min_report_fraction: 1 };
    assert.deepEqual(clientNoise({ dp: distributed, he: sealed({ bits: 16, clip: 1, clients: 4, noise_reserve: 4 }), ...headcount }, 4), { std: 1, inSteps: true });
    assert.deepEqual(clientNoise({ dp: distributed, he: sealed(), ...headcount }, 4), { std: 1, inSteps: false });
    assert.deepEqual(clientNoise({ dp: distributed, he: { ...sealed({ bits: 16, clip: 1, clients: 4 }), enabled: false }, ...headcount }, 4), { std: 1, inSteps: false });
    assert.equal(clientNoise({ dp: dp({}), he: sealed(), ...headcount }, 4), undefined, 'central: the aggregator adds it');
  });

  it("costs the Gaussian's RDP plus Kairouz et al.'s τ·d (Proposition 14), with τ worked by hand for two and three clients", () => {
    // Two clients, 2 bits (a slot of 3 bits: 2^2 − 1 − 2 = 1 step from 0 to the clip and the room), clip 1, room 0.5:
    // a step of 1.5. A client's least noise: σ/√2 = 2/√2 in a share of ½, so 0.7071/1.5 = 0.4714 steps.
    const two = releaseCost({ dp: distributed, he: sealed({ bits: 2, clip: 1, clients: 2, noise_reserve: 0.5 }) });
    const steps2 = 2 / Math.sqrt(2) / 2 / 1.5;
    // τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1)); n 2: 10·exp(−π²·0.4714²) = 10·exp(−2.193) = 1.1155; d at most 2^32.
    assert.ok(Math.abs(steps2 - 0.4714) < 1e-4);
    assert.ok(Math.abs(two.slack / 2 ** 32 - 1.1155) < 1e-4, `${two.slack / 2 ** 32}`);
    assert.equal(two.multiplier, 1);
    // Three clients, 4 bits: a slot of 6 bits, 2^5 − 1 − 3 = 28 steps for 1 + 0.5; σ/√3 in a share of ⅓: 0.3849/(1.5/28) = 7.185 steps.
    const three = releaseCost({ dp: distributed, he: sealed({ bits: 4, clip: 1, clients: 3, noise_reserve: 0.5 }) });
    const steps3 = 2 / Math.sqrt(3) / 3 / (1.5 / 28);
    const tau3 = 10 * (Math.exp(-2 * Math.PI ** 2 * steps3 ** 2 * (1 / 2)) + Math.exp(-2 * Math.PI ** 2 * steps3 ** 2 * (2 / 3)));
    assert.equal(three.slack, tau3 * 2 ** 32);
    assert.ok(three.slack < 1e-200, 'seven steps of noise: τ·d near exp(−509)·2^32, and the sum costs what the Gaussian does');
    // Central, or noise on floats: the Gaussian itself.
    assert.equal(releaseCost({ dp: dp({}), he: sealed({ bits: 2, clip: 1, clients: 2 }) }).slack, 0);
    assert.equal(releaseCost({ dp: distributed, he: sealed() }).slack, 0);
  });

  it('bounds τ for any headcount without a term per client: a billion clients cost no more than ten thousand terms', () => {
    const huge = releaseCost({ dp: distributed, he: sealed({ bits: 2, clip: 1, clients: 1e9, noise_reserve: 1e-12 }) });
    assert.ok(huge.slack > 0 && Number.isFinite(huge.slack));
  });

  it("refuses room for the noise that is not what the node's dp makes (a config pushed otherwise), and room where no noise is drawn", () => {
    const settings = (noise_reserve?: number, mode: 'central' | 'distributed' = 'distributed') => ({ dp: dp({ mode, clip: 1, noise_multiplier: 1 }), he: sealed({ bits: 16, clip: 1, clients: 4, ...(noise_reserve === undefined ? {} : { noise_reserve }) }), min_report_fraction: 1 });
    // σ = 2 over 4 updates at least: 8·2/4 = 4.
    assert.equal(noiseRoomProblem(settings(4), 4), undefined);
    assert.equal(noiseRoomProblem(settings(undefined, 'central'), 4), undefined);
    assert.equal(noiseRoomProblem(settings(1e-9), 4), 'he.quantize.noise_reserve: 1e-9, but dp makes it 4 (it is filled in from dp when config.json is read)');
    assert.match(noiseRoomProblem(settings(undefined), 4)!, /^he\.quantize\.noise_reserve: none, but dp makes it 4/);
    assert.match(noiseRoomProblem(settings(4, 'central'), 4)!, /^he\.quantize\.noise_reserve: 4, but dp makes it none/);
  });

  it('accounts the slack at every order, each round: ε is that of RDP r·(α/(2z²) + slack)', () => {
    const settings = { dp: distributed, he: sealed({ bits: 2, clip: 1, clients: 2, noise_reserve: 0.5 }) };
    const { slack } = releaseCost(settings);
    const rdp = DEFAULT_ORDERS.map((alpha) => 3 * (alpha / 2 + slack));
    assert.equal(epsilonAfter(settings, 3), epsilonFromRdp(DEFAULT_ORDERS, rdp, 1e-5).epsilon);
    assert.ok(epsilonAfter(settings, 3) > epsilonAfter({ dp: distributed, he: sealed() }, 3));
    assert.throws(() => epsilonAfter({ dp: distributed }, 3), /distributed DP is accounted by how its noise is drawn/);
  });
});
