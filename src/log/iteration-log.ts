/**
 * The per-round JSON log of the original design, one file per node and experiment:
 * `{"iteration": [{"start_time", "end_time", "byte_received", "byte_send", ...}]}`.
 * Rewritten atomically after every round, so a crash loses at most the round in flight.
 * A round's bytes are everything since the previous round ended: a request's bytes are read off the
 * socket before its handler runs, so a window opened by the handler would miss the request itself.
 * A node that restarts carries on the file it finds: the rounds before its crash stay.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomic';
import { diffTotals, type WireMeter, type WireTotals } from '../net/wire-meter';
import type { LinkCounter, LinkTotals } from '../net/link-counters';

export interface IterationEntry {
  round: number;
  start_time: string;
  end_time: string;
  byte_received: number;
  byte_send: number;
  [extra: string]: unknown;
}

export class IterationLog {
  readonly file: string;
  private readonly entries: IterationEntry[];
  private open?: { round: number; startedAt: Date };
  /** Hears each finished round's entry (a worker ships it to the aggregator). */
  onEntry?: (entry: IterationEntry) => void;
  private since: WireTotals;
  private linkSince?: LinkTotals;

  constructor(
    logsDir: string,
    nodeId: string,
    experiment: string,
    private readonly meter: WireMeter,
    /** The kernel's counters of this node's interface, where it has one of its own. */
    private readonly link?: LinkCounter,
  ) {
    this.file = join(logsDir, `${nodeId}_${experiment}.json`);
    this.since = meter.totals();
    this.linkSince = link?.();
    this.entries = readEntries(this.file);
  }

  /** Drops the entries after `round` (a resumed aggregator runs those rounds again). */
  keepRounds(upTo: number): void {
    const kept = this.entries.filter((e) => e.round <= upTo);
    if (kept.length === this.entries.length && existsSync(this.file)) return;
    this.entries.splice(0, this.entries.length, ...kept);
    this.flush();
  }

  beginRound(round: number): void {
    this.open = { round, startedAt: new Date() };
  }

  /** Closes the open round with its byte counts and any extra fields (phase timings, accuracy). */
  endRound(extra: Record<string, unknown> = {}): IterationEntry | undefined {
    if (!this.open) return undefined;
    const now = this.meter.totals();
    const wire = diffTotals(now, this.since);
    this.since = now;
    const entry: IterationEntry = {
      round: this.open.round,
      start_time: this.open.startedAt.toISOString(),
      end_time: new Date().toISOString(),
      byte_received: wire.received,
      byte_send: wire.sent,
      // The whole process, HE worker threads and their wasm heaps included: flat round after round or leaking.
      rss_bytes: process.memoryUsage().rss,
      ...this.linkBytes(),
      ...extra,
    };
    this.entries.push(entry);
    this.open = undefined;
    this.flush();
    this.onEntry?.(entry);
    return entry;
  }

  /** The same window as the node's own counts, by the kernel: `link_byte_received`, `link_byte_send`. */
  private linkBytes(): Record<string, number> {
    const now = this.link?.();
    const since = this.linkSince;
    this.linkSince = now;
    if (!now || !since) return {};
    return { link_byte_received: now.received - since.received, link_byte_send: now.sent - since.sent };
  }

  get rounds(): readonly IterationEntry[] {
    return this.entries;
  }

  flush(): void {
    writeFileAtomic(this.file, JSON.stringify({ iteration: this.entries }, null, 1));
  }
}

function readEntries(file: string): IterationEntry[] {
  if (!existsSync(file)) return [];
  try {
    const { iteration } = JSON.parse(readFileSync(file, 'utf8'));
    return Array.isArray(iteration) ? iteration : [];
  } catch {
    return []; // written atomically, so only a hand-edited file fails to parse; it is rewritten whole
  }
}
