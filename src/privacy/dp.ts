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
 * With he.quantize (central only), rounding moves each value by less than a step: clients clip to
 * dp.clip less the longest that can make (dpClip), so the rounded change is within dp.clip still.
 * A round's clients are picked first come, not sampled at random, so no amplification by sampling is
 * claimed: each round is the Gaussian mechanism itself (q = 1).
 */
import { randomBytes } from 'node:crypto';
import type { DpSettings, Settings } from '../config/schema';
import { fewestUpdates } from '../config/quorum';
import { roundingReach } from '../he/quantized';
import { RdpAccountant } from './rdp';

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
  return `he.quantize.bits: ${he.quantize!.bits} bits round a client's update by up to ${reach.toPrecision(3)} in length (a step in each of ${parameters} values), more than half dp.clip ${dp.clip}, which clients clip to less that length: use more bits, a smaller he.quantize.clip, or a larger dp.clip`;
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

/** Uniform in [0, 1) from crypto, drawn in blocks. */
function secureUniform(): () => number {
  let block = randomBytes(0);
  let at = 0;
  return () => {
    if (at + 6 > block.length) [block, at] = [randomBytes(6 * 4096), 0];
    const value = block.readUIntBE(at, 6) / 2 ** 48;
    at += 6;
    return value;
  };
}

/** The noise on a round's sum: z times the sensitivity 2C. */
export const noiseStd = (dp: DpSettings): number => dp.noise_multiplier * 2 * dp.clip;

/**
 * Distributed: the noise each client adds, σ/√m, m the fewest updates a round closes with (a quorum
 * of a quorum of the clients a round selects), so every sum a round can close with holds σ at least.
 */
export function noiseShareStd(dp: DpSettings, settings: Pick<Settings, 'clients_per_round' | 'min_report_fraction'>, clients: number): number {
  return noiseStd(dp) / Math.sqrt(fewestUpdates(settings.clients_per_round ?? clients, settings.min_report_fraction));
}

/** ε at the config's δ after `rounds` rounds. */
export function epsilonAfter(dp: DpSettings, rounds: number): number {
  const accountant = new RdpAccountant();
  accountant.compose(1, dp.noise_multiplier, rounds);
  return accountant.epsilon(dp.delta).epsilon;
}

/** How many of `rounds` fit within `max_epsilon` (all of them without a budget). */
export function roundsWithinBudget(dp: DpSettings, rounds: number): number {
  if (dp.max_epsilon === undefined) return rounds;
  let fit = 0;
  while (fit < rounds && epsilonAfter(dp, fit + 1) <= dp.max_epsilon) fit++;
  return fit;
}

/** plannedRounds by its settings: the dashboard and the round line ask every poll and every round. */
const planned = new Map<string, number>();

/** The rounds an experiment runs: its `rounds`, or fewer when its DP budget runs out first. */
export function plannedRounds({ rounds, dp }: Pick<Settings, 'rounds' | 'dp'>): number {
  if (!dp) return rounds;
  const key = JSON.stringify([rounds, dp.noise_multiplier, dp.delta, dp.max_epsilon]);
  if (!planned.has(key)) planned.set(key, roundsWithinBudget(dp, rounds));
  return planned.get(key)!;
}

/**
 * The noised models an experiment has released, and the ε they spent. A round releases one; with
 * the key at the clients a round run again after they decrypted its model (none could score it, or
 * it was corrupt) released one more, so the budget is counted in releases, not rounds.
 */
export class PrivacyLedger {
  constructor(
    private readonly dp: DpSettings,
    private releases = 0,
  ) {}

  /** The ledger of a run whose rounds done are `rows` (a resumed one): the last row's count, or one a round. */
  static fromRows(dp: DpSettings, rows: readonly { dp_releases?: number }[]): PrivacyLedger {
    return new PrivacyLedger(dp, rows.at(-1)?.dp_releases ?? rows.length);
  }

  get released(): number {
    return this.releases;
  }

  release(): void {
    this.releases++;
  }

  get epsilon(): number {
    return epsilonAfter(this.dp, this.releases);
  }

  /** Whether one more release keeps within dp.max_epsilon. */
  affordsAnother(): boolean {
    return this.dp.max_epsilon === undefined || epsilonAfter(this.dp, this.releases + 1) <= this.dp.max_epsilon;
  }
}

/** What the run line says of privacy: ε per round and, with a budget that cuts the run short, where it stops. */
export function describeBudget(settings: Pick<Settings, 'rounds' | 'dp'>): string | undefined {
  const { dp, rounds } = settings;
  if (!dp) return undefined;
  const planned = plannedRounds(settings);
  const spent = `ε ${epsilonAfter(dp, planned).toFixed(2)} at δ ${dp.delta} after ${planned} rounds`;
  return planned < rounds ? `${spent}: dp.max_epsilon ${dp.max_epsilon} stops the run there, before round ${planned + 1} of ${rounds}` : spent;
}
