/**
 * The aggregator's eye on its workers: every heartbeat it asks each worker's /health which config it
 * runs. A worker that stops answering is reported down; one that answers without a config (a
 * restarted process, a rebooted machine) is given its own again and reported up. One that runs
 * another config was re-configured on purpose (push-config): it is left alone, and counted down.
 */
import { configFingerprint } from '../config/fingerprint';
import type { NodeConfig } from '../config/schema';
import { describeFailure, type Peers } from '../net/peers';
import { pushConfig } from './push';

export interface WatchOptions {
  intervalMs: number;
  requestMs: number;
  onDown: (address: string, reason: string) => void;
  onUp: (address: string, how: string) => void;
}

type WorkerHealth = 'up' | 'down' | 'configuring';

/** Missed health checks in a row before a worker that does not refuse connections counts as down. */
const MISSES_BEFORE_DOWN = 3;

interface Watched {
  config: NodeConfig;
  fingerprint: string;
  state: WorkerHealth;
  misses: number;
  busy: boolean;
}

export class WorkerWatch {
  private readonly workers: Watched[];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly peers: Peers,
    configs: NodeConfig[],
    private readonly options: WatchOptions,
  ) {
    this.workers = configs.map((config) => ({ config, fingerprint: configFingerprint(config), state: 'up', misses: 0, busy: false }));
  }

  start(): void {
    this.timer ??= setInterval(() => this.workers.forEach((w) => void this.check(w)), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(worker: Watched): Promise<void> {
    if (worker.busy) return; // the previous check of this worker is still out
    worker.busy = true;
    try {
      const health = await this.peers.health(worker.config.address, Math.min(this.options.requestMs, 5000));
      worker.misses = 0;
      if (health.config === worker.fingerprint) return this.markUp(worker, 'answering again');
      if (health.config === null) return await this.reconfigure(worker);
      this.markDown(worker, `it runs another config now (experiment ${health.experiment})`);
    } catch (err) {
      const failure = describeFailure(err);
      // Nothing listening is certain at once; a silent machine may only be slow.
      worker.misses += failure.reason === 'ECONNREFUSED' ? MISSES_BEFORE_DOWN : 1;
      if (worker.misses >= MISSES_BEFORE_DOWN) this.markDown(worker, failure.reason);
    } finally {
      worker.busy = false;
    }
  }

  private async reconfigure(worker: Watched): Promise<void> {
    // Restarted between two checks: whatever it was doing for the round in flight is lost.
    this.markDown(worker, 'restarted without its config');
    worker.state = 'configuring';
    const outcome = await pushConfig(this.peers, worker.config, { deadlineMs: this.options.requestMs, requestMs: this.options.requestMs });
    if (outcome.result === 'configured') this.markUp(worker, `back without a config; configured again (${outcome.detail})`);
  }

  private markDown(worker: Watched, reason: string): void {
    if (worker.state === 'down' || worker.state === 'configuring') return;
    worker.state = 'down';
    this.options.onDown(worker.config.address, reason);
  }

  private markUp(worker: Watched, how: string): void {
    if (worker.state === 'up') return;
    worker.state = 'up';
    this.options.onUp(worker.config.address, how);
  }
}
