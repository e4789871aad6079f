/**
 * config.json's `events`: what happens to the testbed's machines, and when. I/O-free: which events
 * are due as the experiment goes, whom each names, and how each is told; the testbed driver
 * (schedule-runner.ts) carries them out.
 */
import { namesNode } from '../config/address';
import { ROLES, type LabEvent } from '../config/schema';
export type { EventRecord } from '../outputs';

/** Where the experiment stands, as the aggregator's status says it. */
export interface Progress {
  /** The round in hand. */
  round: number;
  /** Whether that round has opened (false while the aggregator is idle before it). */
  opened: boolean;
  /** Seconds since round 1 opened; undefined before. */
  elapsed_s?: number;
}

/**
 * The events due now and not yet carried out (by their index in the schedule), in the order they
 * fell due (rounds before times; the schedule's order among equals): a round that went by between
 * two looks still kills before it starts again.
 */
export function dueEvents(events: readonly LabEvent[], carried: ReadonlySet<number>, progress: Progress): number[] {
  const openedUpTo = progress.opened ? progress.round : progress.round - 1;
  const due = events.flatMap((event, index) => {
    if (carried.has(index)) return [];
    const now = event.at_round !== undefined ? event.at_round <= openedUpTo : progress.elapsed_s !== undefined && event.at_s! <= progress.elapsed_s;
    return now ? [index] : [];
  });
  const when = (e: LabEvent) => [e.at_round ?? Infinity, e.at_s ?? 0];
  return due.sort((a, b) => when(events[a])[0] - when(events[b])[0] || when(events[a])[1] - when(events[b])[1] || a - b);
}

/** The nodes an event's `on` names: every node of a role, one node by address, or every node on an IP. */
export function targetsOf(event: LabEvent, nodes: readonly { address: string; role: string }[]): string[] {
  if ((ROLES as readonly string[]).includes(event.on)) return nodes.filter((n) => n.role === event.on).map((n) => n.address);
  return nodes.filter((n) => namesNode(event.on, n.address)).map((n) => n.address);
}

/** "stop 127.0.1.3:5000 for 10 s", "link of client to 5 Mbit/s": an event in a log line's words. */
export function describeEvent(event: LabEvent, targets: readonly string[]): string {
  const who = targets.length === 1 ? targets[0] : `${event.on} (${targets.length}: ${targets.join(', ')})`;
  switch (event.do) {
    case 'stop':
      return `stop ${who} for ${event.for_s} s`;
    case 'link':
      return `link of ${who} to ${event.rate_mbit} Mbit/s`;
    case 'cpu':
      return `cpu of ${who} to ${event.cpu} of a core`;
    default:
      return `${event.do} ${who}`;
  }
}

/** When an event was due, in words: "at round 3", "at 20 s". */
export const dueAt = (event: LabEvent) => (event.at_round !== undefined ? `at round ${event.at_round}` : `at ${event.at_s} s`);
