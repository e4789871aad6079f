/**
 * When a round's updates arrived where they were taken, kept by whoever collects them (a switch, or
 * the aggregator for its direct clients and the sums of its switches): who held the round, and for
 * how long. Waits add up the tree: a sum from below arrives late by what that switch waited for
 * clients that never came, and each client's arrival is the one its own switch saw.
 */
export class Arrivals {
  private openedAt = 0;
  /** The latest moment an update in the sum was ready: its arrival, less what its switch waited. */
  private lastUseful = 0;
  /** Whether a sum from below waited for updates that never came. */
  private waitedBelow = false;
  /** Each client's arrival, in ms after the opening (as its own switch saw it). */
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
   * `waitedMs` after its last update, saying when each arrived there (`arrivedMs`, after it opened).
   */
  took(now: number, clients: readonly string[], waitedMs = 0, arrivedMs?: readonly number[]): void {
    this.lastUseful = Math.max(this.lastUseful, now - waitedMs);
    if (waitedMs > 0) this.waitedBelow = true;
    const since = Math.round(now - waitedMs - this.openedAt);
    clients.forEach((client, i) => this.at.set(client, arrivedMs?.[i] ?? since));
  }

  /** Each of `clients`' arrival, for the sum that goes up (meta.arrived_ms). */
  of(clients: readonly string[]): number[] {
    return clients.map((client) => this.at.get(client) ?? 0);
  }

  /** How long, until `now`, the sum waited for updates that never came (here, `missing`, or below). */
  waitedUntil(now: number, missing: boolean): number {
    return missing || this.waitedBelow ? Math.max(0, Math.round(now - this.lastUseful)) : 0;
  }

  /** The last client in the sum and how long after the median one it came; none with fewer than two. */
  slowest(): { client: string; ms: number } | undefined {
    if (this.at.size < 2) return undefined;
    const sorted = [...this.at].sort((a, b) => a[1] - b[1]);
    const median = sorted[Math.floor((sorted.length - 1) / 2)][1];
    const [client, last] = sorted[sorted.length - 1];
    return { client, ms: Math.round(last - median) };
  }
}
