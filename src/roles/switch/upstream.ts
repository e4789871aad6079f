/**
 * A switch's one message upstream each round: the weighted sum of what it took (plain or
 * encrypted), naming the clients in it, or for a robust rule each update it took, unsummed; or, with too few updates, a notice that it forwards nothing,
 * so the level above stops waiting for it at once. Each ends the switch's round in its iteration log.
 */
import type { Total } from '../../aggregation/accumulator';
import type { SwitchNodeConfig } from '../../config/node-config';
import type { IterationLog } from '../../log/iteration-log';
import type { Logger } from '../../log/logger';
import { describeFailure, type Peers } from '../../net/peers';
import { upstreamRoute } from '../../topology/tree';
import { byteLength, encodeParts, Kind, WIRE_CONTENT_TYPE } from '../../wire/codec';
import { forwardsEachUpdate } from '../../wire/receive';
import { heldFields, type ArrivalSnapshot } from '../arrivals';

export interface UpstreamIo {
  config: SwitchNodeConfig;
  peers: Peers;
  logger: Logger;
  signal: AbortSignal;
  iterations: IterationLog;
}

/** What the round took, and what it cost this switch. */
export interface Forwarded {
  round: number;
  attempt: string;
  modelId: number;
  parameters: number;
  /** The clients whose updates are in the sum, and the selected ones that are not. */
  clients: string[];
  missing: string[];
  total: Total;
  /** The HE parameters' id, for an encrypted sum. */
  he?: string;
  /** Spent after the last update that made the sum, waiting for the missing; adding ciphertexts; since the round opened. */
  waitedMs: number;
  /** When each client's update arrived (here, or at the switch below that took it), and who came last. */
  arrivals: ArrivalSnapshot;
  heSumMs?: number;
  collectMs: number;
  aggregateStart: number;
}

/** The least a switch leaves between its deadline and the one above it: opening, upload and the sum above take time. */
const MIN_MARGIN_MS = 50;

export class Upstream {
  /** How long the last sum took to go up (the upload, and the level above taking it). */
  private lastUploadMs = 0;

  constructor(private readonly io: UpstreamIo) {}

  /**
   * This switch's deadline within the one the level above gave it: early enough that its sum is
   * up, and added there, before the level above stops waiting. A tenth of the time, or twice what
   * the last upload took when that is more, but never more than half (one slow upload must not leave
   * the clients no time to train); each level below takes its own margin off again.
   */
  deadlineWithin(aboveMs: number): number {
    const margin = Math.max(MIN_MARGIN_MS, Math.ceil(aboveMs / 10), Math.min(2 * this.lastUploadMs, Math.floor(aboveMs / 2)));
    return Math.max(1, aboveMs - margin);
  }

  async forward(sum: Forwarded): Promise<void> {
    const { config, peers, signal, logger, iterations } = this.io;
    let update: Buffer[];
    try {
      update = this.message(sum);
    } catch (err) {
      // What cannot be encoded does not go up: the level above hears why at once, not at its deadline.
      return this.withhold({ round: sum.round, attempt: sum.attempt, from: sum.clients, missing: sum.missing, reason: `its sum could not be encoded: ${(err as Error).message}` });
    }
    const aggregateMs = performance.now() - sum.aggregateStart;
    let outcome = 'accepted';
    const uploadStart = performance.now();
    try {
      await peers.post(config.upstream, upstreamRoute(config, 'receive'), update, { headers: { 'Content-Type': WIRE_CONTENT_TYPE }, signal });
      this.lastUploadMs = performance.now() - uploadStart;
    } catch (err) {
      const failure = describeFailure(err);
      outcome = failure.reason;
      logger.warn(`round ${sum.round}: ${config.upstream} did not take the sum: ${outcome}`);
      // Refused for what it is (not as late): it will not be taken however long the level above waits; it hears so.
      if (failure.kind === 'refused' && failure.status! < 500 && failure.status !== 409) {
        await this.notify({ round: sum.round, attempt: sum.attempt, from: sum.clients, reason: `its sum was refused: ${outcome}` }).catch(() => undefined);
      }
    }
    // Held by its slowest client no longer than it collected, less its wait for the missing.
    const slowest = sum.arrivals.slowest(sum.collectMs - sum.waitedMs);
    iterations.endRound({
      clients_reported: sum.total.contributors,
      missing: sum.missing,
      samples: sum.total.weight,
      aggregate_ms: Math.round(aggregateMs),
      ...(sum.heSumMs !== undefined ? { he_sum_ms: Math.round(sum.heSumMs) } : {}),
      collect_ms: Math.round(sum.collectMs),
      waiting_ms: sum.waitedMs,
      ...heldFields(slowest),
      update_bytes: byteLength(update),
      outcome,
    });
  }

  /** Nothing goes up: the level above hears why. */
  async withhold(notice: { round: number; attempt: string; from: string[]; missing: string[]; reason: string }): Promise<void> {
    const { config, iterations } = this.io;
    let outcome = `withheld: ${notice.reason}`;
    try {
      await this.notify(notice);
    } catch (err) {
      outcome += `; ${config.upstream} did not take the notice: ${describeFailure(err).reason}`;
    }
    iterations.endRound({ clients_reported: 0, missing: notice.missing, outcome });
  }

  /** Tells the level above this switch forwards nothing this round, and why. */
  private notify({ round, attempt, from, reason }: { round: number; attempt: string; from: string[]; reason: string }): Promise<unknown> {
    const { config, peers, signal } = this.io;
    return peers.post(config.upstream, upstreamRoute(config, 'withheld'), { round, attempt, switch: config.address, clients: from, reason: reason.slice(0, 500) }, { signal });
  }

  /**
   * The weighted sum as a wire message, in parts (codec's encodeParts: the sum is not copied into it):
   * which clients are in it (the aggregator checks them and names the missing ones), and how long
   * this switch waited after the last of them for ones that never came.
   */
  private message({ round, attempt, modelId, parameters, clients, total, he, waitedMs, arrivals }: Forwarded): Buffer[] {
    const base = { round, modelId, sender: this.io.config.address, contributors: total.contributors, weight: total.weight };
    const meta = { attempt, clients, waited_ms: waitedMs, ages_ms: arrivals.agesOf(clients) };
    if (total.kind === 'plain' && forwardsEachUpdate(this.io.config.settings)) {
      // A robust rule reads each update: they go up as the clients sent them, in the order they are named.
      const values = new Float32Array(parameters * total.updates.length);
      total.updates.forEach((u, i) => values.set(u.values, i * parameters));
      const named = total.updates.map((u) => u.client);
      const bundled = { ...meta, clients: named, ages_ms: arrivals.agesOf(named), weights: total.updates.map((u) => u.weight) };
      return encodeParts({ ...base, kind: Kind.UpdateBundle, meta: bundled, parameters: values, count: parameters });
    }
    if (total.kind === 'encrypted') {
      return encodeParts({ ...base, kind: Kind.EncryptedSum, meta: { ...meta, he }, parameters: new Float32Array(0), ciphertexts: total.ciphertexts, count: parameters });
    }
    return encodeParts({ ...base, kind: Kind.WeightedSum, meta, parameters: Float32Array.from(total.sum) });
  }
}
