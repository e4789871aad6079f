/**
 * A worker's side of central logging: its iteration-log entries, warnings and errors, queued and sent
 * to the aggregator as rounds finish. A batch the aggregator did not take stays queued for the next try,
 * so an aggregator that was down for a while still gets everything (up to MAX_QUEUED entries). A batch it
 * refused (a 4xx) would be refused again: that one is dropped.
 */
import { randomBytes } from 'node:crypto';
import Transport from 'winston-transport';
import { describeFailure, type Peers } from '../net/peers';
import type { IterationEntry } from './iteration-log';
import type { LogBatch, ShippedEntry, UnnumberedEntry } from './central';

/** This process's run: the aggregator tells a resent batch from a new one by (boot, seq). */
export const BOOT_ID = randomBytes(6).toString('hex');
const MAX_QUEUED = 5000;
/** Warnings between rounds go out after this pause, gathered into one request. */
const LOG_FLUSH_DELAY_MS = 2000;
const SEND_TIMEOUT_MS = 10_000;
/** A role being replaced waits this long at most for its last records to go. */
const LAST_SEND_TIMEOUT_MS = 1000;
/**
 * 4xx answers that mean "not now" rather than "never": the batch is kept for the next try. 404: an
 * aggregator restarting (or its role being replaced) listens before its routes are mounted.
 */
const RETRY_STATUSES = new Set([404, 408, 429]);

export type ShipperIdentity = Omit<LogBatch, 'boot' | 'entries'> & { aggregator: string };

/** Hands the logger's warnings and errors to the shipper. */
class ShippingTransport extends Transport {
  constructor(private readonly ship: (entry: UnnumberedEntry) => void) {
    super({ level: 'warn' });
  }

  override log(info: { level: string; message: unknown; timestamp?: string }, done: () => void): void {
    if (info.level === 'warn' || info.level === 'error') {
      this.ship({ kind: 'log', level: info.level, time: info.timestamp ?? new Date().toISOString(), message: String(info.message) });
    }
    done();
  }
}

export class LogShipper {
  readonly transport: Transport = new ShippingTransport((entry) => this.queue(entry, LOG_FLUSH_DELAY_MS));
  private queued: ShippedEntry[] = [];
  private nextSeq = 0;
  private sending?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** Statuses of refused batches already warned about: one warning each, not one every round. */
  private readonly warned = new Set<number>();

  constructor(
    private readonly peers: Peers,
    private readonly identity: ShipperIdentity,
    /** Where the one warning about a refused batch goes (the node's logger). */
    private readonly warn: (message: string) => void = () => undefined,
  ) {}

  /** A round's entry: sent at once, with whatever else is waiting. */
  iteration(entry: IterationEntry): void {
    this.queue({ kind: 'iteration', entry: entry as Extract<UnnumberedEntry, { kind: 'iteration' }>['entry'] }, 0);
  }

  get pending(): number {
    return this.queued.length;
  }

  /** Sends what is queued; one request at a time, entries leave the queue only once the aggregator took them. */
  flush(timeoutMs = SEND_TIMEOUT_MS): Promise<void> {
    this.sending ??= this.send(timeoutMs).finally(() => (this.sending = undefined));
    return this.sending;
  }

  /** Last try for what is queued (bounded), then nothing more is sent. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    const pause = new Promise((resolve) => setTimeout(resolve, LAST_SEND_TIMEOUT_MS).unref());
    await Promise.race([this.sending, pause]); // a send to a silent aggregator must not hold the role up
    if (this.queued.length && !this.sending) await this.flush(LAST_SEND_TIMEOUT_MS);
    this.stopped = true;
  }

  private queue(entry: UnnumberedEntry, delayMs: number): void {
    if (this.stopped) return;
    this.queued.push({ ...entry, seq: this.nextSeq++ } as ShippedEntry);
    if (this.queued.length > MAX_QUEUED) this.queued.splice(0, this.queued.length - MAX_QUEUED);
    if (delayMs === 0) void this.flush();
    else this.timer ??= setTimeout(() => ((this.timer = undefined), void this.flush()), delayMs).unref();
  }

  private async send(timeoutMs: number): Promise<void> {
    while (this.queued.length && !this.stopped) {
      const entries = this.queued.slice(0, 1000);
      const { aggregator, ...identity } = this.identity;
      const batch: LogBatch = { ...identity, boot: BOOT_ID, entries };
      try {
        await this.peers.outOfBand(aggregator, '/a/logs', batch, timeoutMs);
      } catch (err) {
        const failure = describeFailure(err);
        const status = failure.status ?? 0;
        // Unreachable or 5xx: kept for the next round's try; saying so in the log would only queue more.
        if (failure.kind !== 'refused' || status < 400 || status >= 500 || RETRY_STATUSES.has(status)) return;
        if (!this.warned.has(status)) {
          this.warned.add(status);
          this.warn(
            `central log: the aggregator refused ${entries.length} log entries with ${status} (${failure.reason}); ` +
              `dropped them, as it would refuse them again (later batches refused with ${status} are dropped without another warning)`,
          );
        }
      }
      const last = entries[entries.length - 1].seq;
      this.queued = this.queued.filter((e) => e.seq > last);
    }
  }
}
