/**
 * config.json's `events`: what happens to the testbed's machines, and when. I/O-free: which events
 * are due as the experiment goes, whom each names, and how each is told; the testbed driver
 * (schedule-runner.ts) carries them out.
 */
import { namesNode } from '../config/address';
import { ROLES, type LabEvent } from '../config/schema';

/** Where the experiment stands, as the aggregator's status says it. */
export interface Progress {
  /** The round in hand. */
  round: number;
  /** Whether that round has opened (false while the aggregator is idle before it). */
  opened: boolean;
  /** Seconds since round 1 opened; undefined before. */
  elapsed_s?: number;
}

/** The events due now and not yet carried out (by their index in the schedule), in the schedule's order. */
export function dueEvents(events: readonly LabEvent[], carried: ReadonlySet<number>, progress: Progress): number[] {
  const openedUpTo = progress.opened ? progress.round : progress.round - 1;
  return events.flatMap((event, index) => {
    if (carried.has(index)) return [];
    const due = event.at_round !== undefined ? event.at_round <= openedUpTo : progress.elapsed_s !== undefined && event.at_s! <= progress.elapsed_s;
    return due ? [index] : [];
  });
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

/** One line of events.json: an event carried out (or a stopped node let go), when, and what came of it. */
export interface EventRecord {
  /** Its index in config.json's `events`. */
  index: number;
  do: LabEvent['do'] | 'continue';
  on: string;
  targets: string[];
  /** The round in hand when it was carried out. */
  round: number;
  /** Wall-clock time, and seconds since round 1 opened. */
  time: string;
  elapsed_s: number;
  /** As config.json said it. */
  at_round?: number;
  at_s?: number;
  for_s?: number;
  rate_mbit?: number;
  cpu?: number;
  /** Whether it could be carried out on every target; what happened, or why not. */
  ok: boolean;
  detail: string;
}

/** A record in a round line's, a table cell's or a chart label's words: "kill 127.0.1.3:5000", "stop client (failed)". */
export const recordWords = (e: EventRecord) => `${e.do} ${e.targets.join(' ') || e.on}${e.ok ? '' : ' (failed)'}`;
