/** Pushing each worker its config: concurrent, retried until a deadline, every answer reported. */
import type { Settings } from '../config/schema';
import type { NodeConfig } from '../config/node-config';
import { describeFailure, type Peers } from '../net/peers';
import { quorum, selectedPerRound } from '../config/quorum';
import type { Topology } from '../topology/tree';

export interface PushOutcome {
  address: string;
  type: NodeConfig['type'];
  /** `failed`: it took the config, but its role could not start (the detail says why, in the worker's words). */
  result: 'configured' | 'refused' | 'failed' | 'unreachable';
  /** For `configured`: mounted, replaced or unchanged. For the others: why. */
  detail: string;
  details?: unknown;
  attempts: number;
  ms: number;
}

export interface PushOptions {
  deadlineMs: number;
  /** Per-request timeout. */
  requestMs?: number;
  onOutcome?: (outcome: PushOutcome) => void;
  /** The first time a worker does not answer, when the push will try again (it may still be starting): the round need not wait for it meanwhile. */
  onUnreachable?: (address: string, reason: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** What a worker answers a config whose role it mounted but could not start (see RoleFailed). */
const ROLE_FAILED_STATUS = 422;

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Retries while the worker is not answering (or answers 5xx); a 4xx is its final word. */
export async function pushConfig(peers: Peers, config: NodeConfig, options: PushOptions): Promise<PushOutcome> {
  const started = Date.now();
  const sleep = options.sleep ?? pause;
  let backoff = 100;
  for (let attempts = 1; ; attempts++) {
    const elapsed = () => Date.now() - started;
    try {
      const remaining = Math.max(1, options.deadlineMs - elapsed());
      // A worker answers once its role has prepared (or failed to), or says it is still preparing.
      const answer = await peers.post<{ status: string; preparing?: boolean }>(config.address, '/config', config, {
        timeout: Math.min(options.requestMs ?? 30_000, remaining),
        headers: peers.configProofHeaders(config.address),
      });
      const detail = answer.preparing ? `${answer.status}; still preparing` : answer.status;
      return { address: config.address, type: config.type, result: 'configured', detail, attempts, ms: elapsed() };
    } catch (err) {
      const failure = describeFailure(err);
      const final = failure.kind === 'refused' && failure.status! < 500;
      if (final || elapsed() + backoff >= options.deadlineMs) {
        const failedToStart = failure.status === ROLE_FAILED_STATUS;
        const detail = failedToStart ? failure.reason : failure.status ? `${failure.status}: ${failure.reason}` : failure.reason;
        return {
          address: config.address,
          type: config.type,
          result: failedToStart ? 'failed' : final ? 'refused' : 'unreachable',
          detail,
          details: failure.details,
          attempts,
          ms: elapsed(),
        };
      }
      if (attempts === 1 && failure.kind === 'unreachable') options.onUnreachable?.(config.address, failure.reason);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2000);
    }
  }
}

export async function pushConfigs(peers: Peers, configs: NodeConfig[], options: PushOptions): Promise<PushOutcome[]> {
  return Promise.all(
    configs.map(async (config) => {
      const outcome = await pushConfig(peers, config, options);
      options.onOutcome?.(outcome);
      return outcome;
    }),
  );
}

/** The experiment cannot start: too few of its workers took their config (missingForExperiment says which). */
export class ExperimentNotReady extends Error {}

/**
 * Why the experiment cannot run with the workers that took their config, or [] when it can: a
 * round needs at least the quorum of its goal count (`min_report_fraction` of `clients_per_round`)
 * of clients that took their config and whose switch did too. Each worker that did not is named
 * with what it answered.
 */
export function missingForExperiment(topology: Topology, settings: Settings, outcomes: PushOutcome[]): string[] {
  const configured = new Set(outcomes.filter((o) => o.result === 'configured').map((o) => o.address));
  // A client takes part when it, and every switch its updates pass through, took the config.
  const usable = topology.clientsReaching(configured);
  const clients = topology.clients.length;
  const needed = quorum(selectedPerRound(settings, clients), settings.min_report_fraction);
  if (usable.length >= needed) return [];
  return [`${usable.length} of ${clients} clients can take part, but a round needs at least ${needed} (min_report_fraction of clients_per_round)`, ...goingOnWithout(outcomes)];
}

/** The workers that did not take their config, one line per kind and reason (15 clients without a key file make one line). */
export function goingOnWithout(outcomes: PushOutcome[]): string[] {
  const groups = new Map<string, { first: PushOutcome; addresses: string[] }>();
  for (const o of outcomes.filter((o) => o.result !== 'configured').sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }))) {
    const key = JSON.stringify([o.type, o.result, o.detail]);
    const group = groups.get(key) ?? groups.set(key, { first: o, addresses: [] }).get(key)!;
    group.addresses.push(o.address);
  }
  return [...groups.values()].map(({ first: { type, result, detail }, addresses }) => {
    const who = addresses.length === 1 ? `${type} ${addresses[0]}` : `${addresses.length} ${type === 'switch' ? 'switches' : 'clients'} (${addresses.join(', ')})`;
    return `${who} ${result}: ${detail}`;
  });
}

const MARK = { configured: 'ok ', refused: 'NO ', failed: 'NO ', unreachable: '?? ' } as const;

export function formatOutcome(o: PushOutcome): string {
  const what = o.result === 'configured' ? `configured (${o.detail})` : o.result === 'failed' ? `failed to start: ${o.detail}` : `${o.result}: ${o.detail}`;
  const retries = o.attempts > 1 ? ` after ${o.attempts} attempts, ${(o.ms / 1000).toFixed(1)} s` : '';
  const issues = Array.isArray(o.details) ? o.details.map((d) => `\n        ${String(d)}`).join('') : '';
  return `  ${MARK[o.result]} ${o.address.padEnd(21)} ${o.type.padEnd(10)} ${what}${retries}${issues}`;
}

export function summarize(outcomes: PushOutcome[]): string {
  const count = (r: PushOutcome['result']) => outcomes.filter((o) => o.result === r).length;
  const failed = count('failed') ? `, ${count('failed')} failed to start` : '';
  return `${count('configured')} configured, ${count('refused')} refused, ${count('unreachable')} unreachable${failed} (of ${outcomes.length} workers)`;
}
