/**
 * The aggregator's eye on its workers: every heartbeat it asks each worker's /health which config it
 * runs. A worker that stops answering is reported down: at once when nothing listens, after
 * MISSED_HEARTBEATS unanswered heartbeats when it is silent (a hung or overloaded machine), or more
 * when it said a step of its training holds it silent longer (silenceAllowed). One that
 * answers without a config (a restarted process, a rebooted machine) is given its own again and
 * reported up. One whose role failed to start is reported failed, with its reason. One that runs
 * another config was re-configured on purpose (push-config): it is left alone, and counted down.
 */
import { configFingerprint } from '../config/fingerprint';
import type { NodeConfig } from '../config/node-config';
import { describeFailure, type Health, type Peers } from '../net/peers';
import { pushConfig } from './push';

export interface WatchOptions {
  intervalMs: number;
  requestMs: number;
  /** A round's deadline (timeouts.round_ms): no worker's silence is allowed half of it. */
  roundMs?: number;
  onDown: (address: string, reason: string) => void;
  /** `resumed`: the same process answers again (it had hung), not one started anew. */
  onUp: (address: string, how: string, resumed: boolean) => void;
  /** Its role cannot work (GET /health says "failed"): the reason is the worker's own. */
  onFailed: (address: string, reason: string) => void;
}

type WorkerHealth = 'up' | 'down' | 'failed' | 'configuring';

/** Heartbeats in a row without an answer before a worker that does not refuse connections counts as down. */
export const MISSED_HEARTBEATS = 3;
/** The longest step a worker may say holds it silent (a batch that takes longer wants a smaller batch_size). */
export const MAX_STEP_MS = 120_000;
const STEP_MARGIN = 3;

/**
 * Heartbeats a worker may miss: MISSED_HEARTBEATS, or more when it said a step of its training holds
 * it silent longer (GET /health's step_ms, a number it chose: believed up to MAX_STEP_MS): three times
 * that step and one heartbeat more. Three, as a step measured alone takes twice as long once another
 * process trains beside it on the machine (measured: ResNet-18's batch, 18.6 s alone, held a client
 * 25-35 s in a round); one more, since a step can start just after it answered.
 */
export function silenceAllowed(stepMs: unknown, intervalMs: number, roundMs = Infinity): number {
  const step = typeof stepMs === 'number' && Number.isFinite(stepMs) && stepMs > 0 ? Math.min(stepMs, MAX_STEP_MS) : 0;
  // Within half a round, so a worker that hung is let go of before its round's deadline.
  const longest = Math.max(MISSED_HEARTBEATS, Math.floor(roundMs / 2 / intervalMs));
  return Math.min(longest, Math.max(MISSED_HEARTBEATS, Math.ceil((STEP_MARGIN * step) / intervalMs) + 1));
}

const isHealthReport = (answer: unknown): answer is Health =>
  !!answer && typeof answer === 'object' && !Array.isArray(answer) && (typeof (answer as Health).config === 'string' || (answer as Health).config === null);

interface Watched {
  config: NodeConfig;
  fingerprint: string;
  state: WorkerHealth;
  /** Heartbeats since it last answered. */
  missed: number;
  /** A check still out: a hung worker holds one open until its timeout. */
  checking: boolean;
  /** Heartbeats it may miss before it counts as down (silenceAllowed, from its last answer). */
  allowed: number;
}

export class WorkerWatch {
  private readonly workers: Watched[];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly peers: Peers,
    configs: NodeConfig[],
    private readonly options: WatchOptions,
  ) {
    this.workers = configs.map((config) => ({ config, fingerprint: configFingerprint(config), state: 'up', missed: 0, checking: false, allowed: MISSED_HEARTBEATS }));
  }

  start(): void {
    this.timer ??= setInterval(() => this.workers.forEach((w) => this.heartbeat(w)), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** What the config push found, so the first heartbeats do not report it again. */
  seed(address: string, state: 'up' | 'down' | 'failed'): void {
    const worker = this.workers.find((w) => w.config.address === address);
    if (worker) worker.state = state;
  }

  private heartbeat(worker: Watched): void {
    if (worker.checking) {
      // The last check is still out: this heartbeat went unanswered too.
      this.missedOne(worker, 'no answer');
      return;
    }
    worker.checking = true;
    // check() handles its own failures; what it reports is handled by callbacks that do not throw.
    void this.check(worker)
      .catch(() => undefined)
      .finally(() => (worker.checking = false));
  }

  private missedOne(worker: Watched, reason: string): void {
    worker.missed++;
    if (worker.missed >= worker.allowed) {
      const silent = ((worker.missed * this.options.intervalMs) / 1000).toFixed(1);
      this.markDown(worker, `${reason}: silent for ${worker.missed} heartbeats (${silent} s)`);
    }
  }

  private async check(worker: Watched): Promise<void> {
    // Longer than a few heartbeats is a miss anyway; the check stays out and later heartbeats count it.
    const timeout = Math.min(this.options.requestMs, this.options.intervalMs * MISSED_HEARTBEATS);
    try {
      const health = await this.peers.health(worker.config.address, timeout);
      // An answer that is not a health report (whatever answers at the worker's address) counts as none.
      if (!isHealthReport(health)) return this.missedOne(worker, 'it answered with something that is not a health report');
      worker.missed = 0;
      worker.allowed = silenceAllowed(health.step_ms, this.options.intervalMs, this.options.roundMs);
      if (health.config === worker.fingerprint) {
        if (health.status === 'failed') return this.markFailed(worker, health.error ?? 'its role failed to start');
        return this.markUp(worker, 'answering again', true);
      }
      if (health.config === null) return await this.reconfigure(worker);
      this.markDown(worker, `it runs another config now (experiment ${health.experiment})`);
    } catch (err) {
      const failure = describeFailure(err);
      // Nothing listening is certain at once; a silent machine may only be slow.
      if (failure.reason === 'ECONNREFUSED') this.markDown(worker, failure.reason);
      else this.missedOne(worker, failure.reason);
    }
  }

  private async reconfigure(worker: Watched): Promise<void> {
    // Restarted between two checks: whatever it was doing for the round in flight is lost.
    this.markDown(worker, 'restarted without its config');
    worker.state = 'configuring';
    const outcome = await pushConfig(this.peers, worker.config, { deadlineMs: this.options.requestMs, requestMs: this.options.requestMs });
    if (outcome.result === 'configured') this.markUp(worker, `back without a config; configured again (${outcome.detail})`, false);
    else if (outcome.result === 'failed') this.markFailed(worker, outcome.detail);
    else worker.state = 'down';
  }

  private markDown(worker: Watched, reason: string): void {
    if (worker.state === 'down' || worker.state === 'configuring') return;
    worker.state = 'down';
    this.options.onDown(worker.config.address, reason);
  }

  private markFailed(worker: Watched, reason: string): void {
    if (worker.state === 'failed') return;
    worker.state = 'failed';
    this.options.onFailed(worker.config.address, reason);
  }

  private markUp(worker: Watched, how: string, resumed: boolean): void {
    if (worker.state === 'up') return;
    worker.state = 'up';
    this.options.onUp(worker.config.address, how, resumed);
  }
}
