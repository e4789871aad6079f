/**
 * When a round's updates arrived where they were taken, kept by whoever collects them (a switch, or
 * the aggregator for its direct clients and the sums of its switches): who held the round, and for
 * how long. A sum says, as ages back from the moment it went up, how long it waited for clients that
 * never came (meta.waited_ms) and when each of its clients' updates arrived (meta.ages_ms), so no two
 * clocks are compared: each level takes them back from the sum's own arrival. Waits add up the tree.
 * What a switch says of its clients' timing is its own word, bounded by this level's round.
 */
export class Arrivals {
  private openedAt = 0;
  /** The latest moment an update in the sum was ready: its arrival, less what its switch waited. */
  private lastUseful = 0;
  /** Whether a sum from below waited for updates that never came. */
  private waitedBelow = false;
  /** Each client's arrival, in ms after the opening. */
  private readonly at = new Map<string, number>();

  /** A round (or a new attempt of it) opened at `now`. */
  open(now: number): void {
    this.openedAt = now;
    this.lastUseful = now;
    this.waitedBelow = false;
    this.at.clear();
  }

  /**
   * Updates of `clients` made the sum at `now`: a client's own, or a switch's sum that had waited
   * `waitedMs` after its last update, its clients' updates having arrived `agesMs` before it went up
   * (without them: as long ago as it waited). Ages past this round's opening count from the opening.
   */
  took(now: number, clients: readonly string[], waitedMs = 0, agesMs?: readonly number[]): void {
    const since = now - this.openedAt;
    const back = (ms: number) => Math.min(Math.max(0, ms), since);
    const waited = back(waitedMs);
    this.lastUseful = Math.max(this.lastUseful, now - waited);
    if (waited > 0) this.waitedBelow = true;
    clients.forEach((client, i) => this.at.set(client, Math.round(since - back(agesMs?.[i] ?? waited))));
  }

  /** How long, until `now`, the sum waited for updates that never came (here, `missing`, or below). */
  waitedUntil(now: number, missing: boolean): number {
    return missing || this.waitedBelow ? Math.max(0, Math.round(now - this.lastUseful)) : 0;
  }

  /** What the sum that goes up at `now` says of its clients' timing. */
  snapshot(now: number): ArrivalSnapshot {
    const since = now - this.openedAt;
    const at = new Map(this.at);
    const last = this.last();
    return {
      agesOf: (clients) => clients.map((client) => Math.max(0, Math.round(since - (at.get(client) ?? since)))),
      slowest: (limit = Infinity) => last && held(last, limit),
    };
  }

  /** The last client in the sum and how long after the median one it came (at most `limit`); none with fewer than two. */
  slowest(limit = Infinity): { ms: number; client?: string } | undefined {
    const last = this.last();
    return last && held(last, limit);
  }

  private last(): { client: string; ms: number } | undefined {
    if (this.at.size < 2) return undefined;
    const sorted = [...this.at].sort((a, b) => a[1] - b[1]);
    const median = sorted[Math.floor((sorted.length - 1) / 2)][1];
    const [client, last] = sorted[sorted.length - 1];
    return { client, ms: last - median };
  }
}

/** A sum's account of its clients' timing, taken as it goes up (later openings do not change it). */
export interface ArrivalSnapshot {
  /** How long before the sum went up each of `clients`' updates arrived (meta.ages_ms). */
  agesOf(clients: readonly string[]): number[];
  slowest(limit?: number): { ms: number; client?: string } | undefined;
}

/** What a round's entry says of its slowest client (RoundTimings' straggling_ms and held_by); nothing with fewer than two. */
export function heldFields(slowest: { ms: number; client?: string } | undefined): { straggling_ms?: number; held_by?: string } {
  if (!slowest) return {};
  return { straggling_ms: slowest.ms, ...(slowest.client ? { held_by: slowest.client } : {}) };
}

/** The slowest client named only when it held the round at all. */
function held({ client, ms }: { client: string; ms: number }, limit: number): { ms: number; client?: string } {
  const within = Math.max(0, Math.min(limit, Math.round(ms)));
  return within > 0 ? { ms: within, client } : { ms: within };
}
