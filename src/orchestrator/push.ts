/** Pushing each worker its config: concurrent, retried until a deadline, every answer reported. */
import type { NodeConfig } from '../config/schema';
import { describeFailure, type Peers } from '../net/peers';

export interface PushOutcome {
  address: string;
  type: NodeConfig['type'];
  result: 'configured' | 'refused' | 'unreachable';
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
  sleep?: (ms: number) => Promise<void>;
}

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
      const answer = await peers.post<{ status: string }>(config.address, '/config', config, {
        timeout: Math.min(options.requestMs ?? 10_000, remaining),
      });
      return { address: config.address, type: config.type, result: 'configured', detail: answer.status, attempts, ms: elapsed() };
    } catch (err) {
      const failure = describeFailure(err);
      const final = failure.kind === 'refused' && failure.status! < 500;
      if (final || elapsed() + backoff >= options.deadlineMs) {
        const detail = failure.status ? `${failure.status}: ${failure.reason}` : failure.reason;
        return {
          address: config.address,
          type: config.type,
          result: final ? 'refused' : 'unreachable',
          detail,
          details: failure.details,
          attempts,
          ms: elapsed(),
        };
      }
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

/**
 * Why the experiment cannot run with the workers that took their config, or [] when it can:
 * every switch is needed, and at least the round's goal count of clients whose switch is up.
 */
export function missingForExperiment(configs: NodeConfig[], outcomes: PushOutcome[], aggregator: string): string[] {
  const configured = new Set(outcomes.filter((o) => o.result === 'configured').map((o) => o.address));
  configured.add(aggregator);
  const problems: string[] = [];
  for (const config of configs) {
    if (config.type === 'switch' && !configured.has(config.address)) {
      problems.push(`switch ${config.address} did not take its config; its clients (${config.clients.join(', ')}) cannot report`);
    }
  }
  const clients = configs.filter((c) => c.type === 'client');
  const usable = clients.filter((c) => configured.has(c.address) && configured.has(c.upstream));
  const settings = configs[0]?.settings;
  const goal = settings?.clients_per_round ?? clients.length;
  if (usable.length < goal) {
    problems.push(`${usable.length} of ${clients.length} clients can take part, but each round needs ${goal} (clients_per_round)`);
  }
  return problems;
}

const MARK = { configured: 'ok ', refused: 'NO ', unreachable: '?? ' } as const;

export function formatOutcome(o: PushOutcome): string {
  const what = o.result === 'configured' ? `configured (${o.detail})` : `${o.result}: ${o.detail}`;
  const retries = o.attempts > 1 ? ` after ${o.attempts} attempts, ${(o.ms / 1000).toFixed(1)} s` : '';
  const issues = Array.isArray(o.details) ? o.details.map((d) => `\n        ${String(d)}`).join('') : '';
  return `  ${MARK[o.result]} ${o.address.padEnd(21)} ${o.type.padEnd(10)} ${what}${retries}${issues}`;
}

export function summarize(outcomes: PushOutcome[]): string {
  const count = (r: PushOutcome['result']) => outcomes.filter((o) => o.result === r).length;
  return `${count('configured')} configured, ${count('refused')} refused, ${count('unreachable')} unreachable (of ${outcomes.length} workers)`;
}
