/**
 * Client-level DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language
 * Models"). Neighbouring runs differ in one client's data (replace-one: the clients themselves are
 * public, config.json names them, and so is who reported each round). Each client clips its change
 * to the model to L2 norm C and weighs 1, and the round's sum is n·global + Σ changes, so replacing
 * one client's data moves it by at most 2C: the sensitivity. The sum carries Gaussian noise of
 * standard deviation σ = z·2C, so z is the noise multiplier of the Gaussian mechanism:
 * - central: the aggregator adds it to the sum it reads;
 * - distributed: each client adds N(0, σ²/m) to what it sends, m the fewest updates a round can close
 *   with, so any sum a round closes with holds at least σ (more clients: more noise) and nobody, the
 *   aggregator included, reads an un-noised sum. Each client knows its own share: against a client
 *   (or a switch, in plaintext, reading its part of the sum) the noise left is smaller, and not
 *   accounted; under HE, switches read nothing.
 * With he.quantize, rounding moves each value by less than a step: clients clip to dp.clip less the
 * longest that can make (dpClip), so the rounded change is within dp.clip still. Distributed under
 * quantized HE, each client's share of the noise is drawn in whole steps of the packing, after
 * rounding: the distributed discrete Gaussian (Kairouz, Liu and Steinke 2021). Its sum is not
 * exactly Gaussian; their Proposition 14 bounds what that costs (releaseCost), and it is accounted.
 * A round's clients are picked first come, not sampled at random, so no amplification by sampling is
 * claimed: each round is the Gaussian mechanism itself (q = 1).
 */
import type { DpSettings, Settings } from '../config/schema';
import { fewestUpdates } from '../config/quorum';
import { packedUnit, roundingReach, widestClip } from '../he/quantized';
import { secureUniform } from './random';
import { RdpAccountant } from './rdp';

/** What accounting reads of an experiment's settings: its DP, and, distributed, its HE (how the noise is drawn). */
export type PrivacySettings = Pick<Settings, 'dp'> & { he?: Pick<Settings['he'], 'enabled' | 'quantize'> };

/**
 * The length a client clips its change to: dp.clip, less the most rounding can add to it when
 * he.quantize packs it (he/quantized.ts roundingReach), so what reaches the sum stays within dp.clip
 * and the sensitivity, and the accountant's ε, hold exactly.
 */
export const dpClip = (dp: DpSettings, he: Settings['he'], parameters: number): number => dp.clip - roundingReach(he, parameters);

/** Why a quantizing leaves DP too little of its clip (rounding could add more than half of it), or undefined. */
export function quantizedClipProblem(dp: DpSettings, he: Settings['he'], parameters: number): string | undefined {
  const reach = roundingReach(he, parameters);
  if (reach <= dp.clip / 2) return undefined;
  const room = he.quantize!.noise_reserve ? `; a step spans he.quantize.clip and the ${he.quantize!.noise_reserve.toPrecision(3)} kept for the noise` : '';
  return `he.quantize.bits: ${he.quantize!.bits} bits round a client's update by up to ${reach.toPrecision(3)} in length (a step in each of ${parameters} values${room}), more than half dp.clip ${dp.clip}, which clients clip to less that length: use more bits, a smaller he.quantize.clip, or a larger dp.clip`;
}

/** The weights a client sends: `global` plus its change to them, scaled down to L2 norm `clip` when longer. */
export function clipChange(global: Float32Array, trained: Float32Array, clip: number): Float32Array {
  let clipped = trained;
  // Rounding to float32 can leave the scaled change a hair longer than the clip: scale again until it is not.
  for (let norm = changeNorm(global, clipped), shrink = 1; norm > clip; norm = changeNorm(global, clipped), shrink *= 1 - 1e-6) {
    const factor = (clip / norm) * shrink;
    clipped = Float32Array.from(clipped, (value, i) => global[i] + (value - global[i]) * factor);
  }
  return clipped;
}

/** ‖trained − global‖₂, the length of a client's change. */
export function changeNorm(global: Float32Array, trained: Float32Array): number {
  let squares = 0;
  for (let i = 0; i < trained.length; i++) squares += (trained[i] - global[i]) ** 2;
  return Math.sqrt(squares);
}

/** Adds N(0, std²) to every value of `sum`, from the operating system's randomness (DP noise must not be predictable). */
export function addGaussianNoise(sum: Float64Array | Float32Array, std: number, random: () => number = secureUniform()): void {
  for (let i = 0; i < sum.length; i += 2) {
    // Box-Muller: two independent normals per two uniforms.
    const radius = std * Math.sqrt(-2 * Math.log(1 - random()));
    const angle = 2 * Math.PI * random();
    sum[i] += radius * Math.cos(angle);
    if (i + 1 < sum.length) sum[i + 1] += radius * Math.sin(angle);
  }
}

/** The noise on a round's sum: z times the sensitivity 2C. */
export const noiseStd = (dp: DpSettings): number => dp.noise_multiplier * 2 * dp.clip;

type Headcount = Pick<Settings, 'clients_per_round' | 'min_report_fraction'>;

/**
 * Distributed: the noise each client adds, σ/√m, m the fewest updates a round closes with (a quorum
 * of a quorum of the clients a round selects), so every sum a round can close with holds σ at least.
 */
export function noiseShareStd(dp: DpSettings, settings: Headcount, clients: number): number {
  return noiseStd(dp) / Math.sqrt(fewestUpdates(settings.clients_per_round ?? clients, settings.min_report_fraction));
}

/**
 * Where a client adds its share of distributed DP's noise: to its floats before it sends them, or,
 * under quantized HE, as a discrete Gaussian in whole steps as it encrypts (`inSteps`): noise added
 * before rounding would be clipped and rounded with the update, and its sum would be no known law.
 */
export function clientNoise(settings: Pick<Settings, 'dp' | 'he'> & Headcount, clients: number): { std: number; inSteps: boolean } | undefined {
  const { dp, he } = settings;
  if (dp?.mode !== 'distributed') return undefined;
  return { std: noiseShareStd(dp, settings, clients), inSteps: Boolean(he.enabled && he.quantize) };
}

/**
 * Distributed DP in whole steps: the room each value of a round's sum keeps for the clients' noise,
 * RESERVED_DEVIATIONS of its standard deviation. The sum is of shares (1/selected each): k reporters
 * of the selected add σ·√(k/m)/selected, at most σ/m (m ≤ k ≤ selected, m the fewest updates a round
 * closes with). A value past the room (about 1e-15 a value) carries into its neighbour: a worse
 * model, or the round refused as unreadable, never a weaker guarantee (the sum is noised before
 * anyone reads it).
 */
export function noiseReserve(dp: DpSettings, settings: Headcount, clients: number): number {
  return (RESERVED_DEVIATIONS * noiseStd(dp)) / fewestUpdates(settings.clients_per_round ?? clients, settings.min_report_fraction);
}

/**
 * Why a node's he.quantize.noise_reserve is not the room its dp makes (the config reader fills it in;
 * a config pushed otherwise would pack in other steps, or draw noise the room cannot hold), or undefined.
 */
export function noiseRoomProblem(settings: Pick<Settings, 'dp' | 'he'> & Headcount, clients: number): string | undefined {
  const room = settings.he.quantize?.noise_reserve;
  const expected = clientNoise(settings, clients)?.inSteps ? noiseReserve(settings.dp!, settings, clients) : undefined;
  if (room === expected) return undefined;
  return `he.quantize.noise_reserve: ${room ?? 'none'}, but dp makes it ${expected ?? 'none'} (it is filled in from dp when config.json is read)`;
}

/** 8σ: a value of the sum leaves its room with probability about 1e-15. */
const RESERVED_DEVIATIONS = 8;

/** τ's terms summed one by one; beyond, bounded together (he.quantize.clients has no ceiling). */
const EXACT_TERMS = 10_000;

/** The most values one vector on the wire holds (its count is 32 bits): the dimension the slack is bounded with. */
const MOST_VALUES = 2 ** 32;

/**
 * What one release costs in Rényi DP at order α: α/(2z²) + slack. The Gaussian's cost, z the noise
 * multiplier; `slack` 0 but for the distributed discrete Gaussian, where Kairouz et al. 2021
 * (Proposition 14, first bound) give α·‖Δ‖₂²/(2nσ_s²) + τ·d with τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ_s²·k/(k+1)),
 * σ_s a client's noise in steps, n the clients whose noise the sum holds. Here ‖Δ‖₂ ≤ 2C in the
 * sum's units (clip and rounding, dpClip) and nσ_s² ≥ (z·2C)² in the same units, so the first term
 * is at most the Gaussian's;
 * τ·d is bounded for every round at once: σ_s at its least (the widest clip's step, the least share,
 * 1/he.quantize.clients), n at its most (he.quantize.clients), d at the wire's most.
 */
export function releaseCost(settings: PrivacySettings): { multiplier: number; slack: number } {
  const { dp, he } = settings;
  if (!dp) throw new Error('no dp in these settings');
  const multiplier = dp.noise_multiplier;
  if (dp.mode === 'distributed' && !he) throw new Error('distributed DP is accounted by how its noise is drawn: these settings have no he');
  if (dp.mode !== 'distributed' || !he?.enabled || !he.quantize) return { multiplier, slack: 0 };
  const { clients, clip } = he.quantize;
  if (clients === undefined || clip === undefined) throw new Error('he.quantize.clip and .clients are filled in when config.json is read; these settings did not come from it');
  const leastShare = noiseStd(dp) / Math.sqrt(clients) / clients;
  const steps = leastShare / packedUnit({ ...he.quantize, clients }, widestClip(clip));
  // Each term is below the last one's limit exp(−2π²σ_s²): past EXACT_TERMS, that bounds the rest.
  let tau = 0;
  const exact = Math.min(clients - 1, EXACT_TERMS);
  for (let k = 1; k <= exact; k++) tau += Math.exp((-2 * Math.PI ** 2 * steps ** 2 * k) / (k + 1));
  tau += (clients - 1 - exact) * Math.exp(-2 * Math.PI ** 2 * steps ** 2);
  return { multiplier, slack: 10 * tau * MOST_VALUES };
}

/** ε at the config's δ after `releases` rounds released a noised model. */
export function epsilonAfter(settings: PrivacySettings, releases: number): number {
  const { dp } = settings;
  if (!dp) throw new Error('no dp in these settings');
  const { multiplier, slack } = releaseCost(settings);
  const accountant = new RdpAccountant();
  accountant.compose(1, multiplier, releases, slack);
  return accountant.epsilon(dp.delta).epsilon;
}

/** How many of `rounds` fit within `max_epsilon` (all of them without a budget). */
export function roundsWithinBudget(settings: PrivacySettings, rounds: number): number {
  const budget = settings.dp?.max_epsilon;
  if (budget === undefined) return rounds;
  let fit = 0;
  while (fit < rounds && epsilonAfter(settings, fit + 1) <= budget) fit++;
  return fit;
}

/** plannedRounds by its settings: the dashboard and the round line ask every poll and every round. */
const planned = new Map<string, number>();

/** The rounds an experiment runs: its `rounds`, or fewer when its DP budget runs out first. */
export function plannedRounds(settings: PrivacySettings & Pick<Settings, 'rounds'>): number {
  const { rounds, dp } = settings;
  if (!dp) return rounds;
  const key = JSON.stringify([rounds, dp.noise_multiplier, dp.delta, dp.max_epsilon, releaseCost(settings).slack]);
  if (!planned.has(key)) planned.set(key, roundsWithinBudget(settings, rounds));
  return planned.get(key)!;
}

/**
 * The noised models an experiment has released, and the ε they spent. A round releases one; with
 * the key at the clients a round run again after they decrypted its model (none could score it, or
 * it was corrupt) released one more, so the budget is counted in releases, not rounds.
 */
export class PrivacyLedger {
  constructor(
    private readonly settings: PrivacySettings,
    private releases = 0,
  ) {}

  /** The ledger of a run whose rounds done are `rows` (a resumed one): the last row's count, or one a round. */
  static fromRows(settings: PrivacySettings, rows: readonly { dp_releases?: number }[]): PrivacyLedger {
    return new PrivacyLedger(settings, rows.at(-1)?.dp_releases ?? rows.length);
  }

  get released(): number {
    return this.releases;
  }

  release(): void {
    this.releases++;
  }

  get epsilon(): number {
    return epsilonAfter(this.settings, this.releases);
  }

  /** Whether one more release keeps within dp.max_epsilon. */
  affordsAnother(): boolean {
    const budget = this.settings.dp?.max_epsilon;
    return budget === undefined || epsilonAfter(this.settings, this.releases + 1) <= budget;
  }
}

/** What the run line says of privacy: ε per round and, with a budget that cuts the run short, where it stops. */
export function describeBudget(settings: PrivacySettings & Pick<Settings, 'rounds'>): string | undefined {
  const { dp, rounds } = settings;
  if (!dp) return undefined;
  const planned = plannedRounds(settings);
  const spent = `ε ${epsilonAfter(settings, planned).toFixed(2)} at δ ${dp.delta} after ${planned} rounds`;
  return planned < rounds ? `${spent}: dp.max_epsilon ${dp.max_epsilon} stops the run there, before round ${planned + 1} of ${rounds}` : spent;
}
