/**
 * Finding who spoils the round's sum, when the sum is all anyone may read. An update made under
 * another key, or with garbage in its slots, makes the whole sum unreadable, and the sum does not
 * say whose it was: with the key at the clients the aggregator reads nothing, and with it at the
 * aggregator it reads only sums of several clients. So the search works in both key modes the same
 * way, by what each round's sum is made of: the nodes in it (its clients, and the switches their
 * updates passed through).
 *
 * A sum that cannot be read holds a spoiler: the suspects are the nodes in every unreadable sum
 * since the search began. Each opening after an unreadable sum leaves about half of them out (their
 * clients are benched: they sit the opening out); when its sum cannot be read either, the suspects
 * that sat out are cleared. A sum that can be read clears no client: a spoiler may spoil only now and
 * then, and would have an honest client named by sitting out the sums that named it; but it clears
 * the switches it went through (a switch spoiling selectively can hurt only its own subtree, which
 * it carries anyway), and the next opening benches the suspects that were in it, to try the others.
 * A node is named once it is the one suspect left and has spoiled at least two sums: it is then left
 * out of the experiment. Suspects no bench can tell apart (two clients under a switch that forwards
 * two updates or none) are left out with the switch whose subtree holds them. Evidence that
 * contradicts itself (two spoilers) starts the search over; a few readable sums in a row (the spoiler
 * stopped) end it.
 */
import type { Topology } from '../../topology/tree';

/** What a bench may be: of `pool` (the clients that could be in the next opening), at most `room`, and `viable` (every switch keeps enough to forward, or none). */
export interface BenchRoom {
  pool: readonly string[];
  room: number;
  viable(bench: readonly string[]): boolean;
}

/** What the search says after a round's sum. */
export interface SearchStep {
  /** The nodes that may have spoiled the sums (none: no search under way). */
  suspects: string[];
  /** Clients to leave out of the next opening, to tell the suspects apart. */
  benched: string[];
  /**
   * The spoiler, found: how many unreadable sums it was in, and why the last could not be read. When
   * the suspects cannot be told apart (a switch forwarding two updates or none), the switch whose
   * subtree holds them all, and who they are (`among`).
   */
  found?: { node: string; spoiled: number; last: string; among?: string[] };
}

/** Readable sums in a row after which the search ends: the spoiler, if any, has stopped. */
const QUIET_SUMS = 3;

export class SuspectSearch {
  private suspects?: Set<string>;
  /** Readable sums since the last unreadable one. */
  private quiet = 0;
  /** How many unreadable sums each suspect was in, since the search began. */
  private readonly spoiled = new Map<string, number>();
  private bench: string[] = [];
  /** Why the last unreadable sum could not be read. */
  private last = '';

  constructor(private readonly topology: Topology) {}

  /** Clients left out of the next opening. */
  get benched(): readonly string[] {
    return this.bench;
  }

  /**
   * A sum of these clients' updates could not be read. `room`: the clients that could be in the next
   * opening, and which of them may sit it out (the round keeping its quorum, every switch able to forward).
   */
  unreadable(clients: readonly string[], room: BenchRoom, why: string): SearchStep {
    [this.last, this.quiet] = [why, 0];
    const nodes = this.nodesOf(clients);
    const narrowed = this.suspects && new Set([...this.suspects].filter((node) => nodes.has(node)));
    if (!narrowed?.size) this.spoiled.clear();
    this.suspects = narrowed?.size ? narrowed : nodes;
    for (const node of this.suspects) this.spoiled.set(node, (this.spoiled.get(node) ?? 0) + 1);
    return this.next(room, room.pool);
  }

  /** A sum of these clients' updates could be read: the switches it went through did not spoil it. */
  readable(clients: readonly string[], room: BenchRoom): SearchStep {
    if (!this.suspects) return { suspects: [], benched: [] };
    if (++this.quiet >= QUIET_SUMS) return this.end({ suspects: [], benched: [] });
    for (const node of this.nodesOf(clients)) if (this.topology.isSwitch(node)) this.suspects.delete(node);
    // The suspects that sat it out are the ones to try: the next bench is taken from the clients that were in.
    return this.next(room, clients);
  }

  /** The opening failed for want of updates (the bench may have cost it its quorum): the next goes without a bench. */
  stalled(): void {
    this.bench = [];
  }

  /** `benchable`: the clients the next bench may take. */
  private next(room: BenchRoom, benchable: readonly string[]): SearchStep {
    const suspects = [...this.suspects!];
    if (!suspects.length) return this.end({ suspects: [], benched: [] });
    if (suspects.length === 1) {
      const [node] = suspects;
      const spoiled = this.spoiled.get(node) ?? 0;
      // Spoiled once, it is let in again to see: a second unreadable sum names it, a readable one clears it.
      if (spoiled >= 2) return this.end({ suspects, benched: [], found: { node, spoiled, last: this.last } });
      this.bench = [];
      return { suspects, benched: [] };
    }
    // After a readable sum the bench is taken from its clients; when none of them can be, from anyone.
    this.bench = this.split(suspects, room, benchable);
    if (!this.bench.length && benchable !== room.pool) this.bench = this.split(suspects, room, room.pool);
    if (!this.bench.length) {
      // No bench tells them apart: once each spoiled twice, the subtree that holds them all is left out.
      const holder = this.topology.switchOver(suspects);
      const spoiled = Math.min(...suspects.map((node) => this.spoiled.get(node) ?? 0));
      if (holder && spoiled >= 2) return this.end({ suspects, benched: [], found: { node: holder, spoiled, last: this.last, among: suspects.filter((n) => n !== holder) } });
    }
    return { suspects, benched: [...this.bench] };
  }

  private end(step: SearchStep): SearchStep {
    this.suspects = undefined;
    this.quiet = 0;
    this.spoiled.clear();
    this.bench = [];
    return step;
  }

  /**
   * Clients to bench so that about half the suspects are out of the next sum, and some are in:
   * suspects are taken in turn (a client, or every client beneath a switch), each one that keeps the
   * bench within the room, and some suspect in, until half are out.
   */
  private split(suspects: string[], { pool, room, viable }: BenchRoom, benchable: readonly string[]): string[] {
    const outOf = (bench: string[]) => {
      const inSum = this.nodesOf(pool.filter((c) => !bench.includes(c)));
      return suspects.filter((s) => !inSum.has(s)).length;
    };
    // A suspect's clients; then every client beneath a switch over some suspect (two clients under a
    // switch that forwards two or none sit out together, or not at all).
    const units = [...suspects.map((node) => this.clientsOf(node)), ...this.topology.switches.map((sw) => this.clientsOf(sw)).filter((clients) => clients.some((c) => suspects.includes(c)))];
    let bench: string[] = [];
    for (const unit of units) {
      const clients = unit.filter((c) => pool.includes(c));
      if (!clients.length || !clients.every((c) => benchable.includes(c))) continue;
      const more = [...new Set([...bench, ...clients])];
      if (more.length > room || !viable(more) || outOf(more) === suspects.length) continue;
      bench = more;
      if (outOf(bench) >= suspects.length / 2) break;
    }
    return bench;
  }

  private clientsOf(node: string): string[] {
    return this.topology.isClient(node) ? [node] : this.topology.clientsBeneath(node);
  }

  /** The clients, and the switches their updates pass through. */
  private nodesOf(clients: readonly string[]): Set<string> {
    return new Set(clients.flatMap((client) => [client, ...this.topology.chainOf(client)]));
  }
}
