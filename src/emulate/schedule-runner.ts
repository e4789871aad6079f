/**
 * The testbed driver's schedule: follows the experiment's rounds on the aggregator's public
 * dashboard state and carries out config.json's `events` as each falls due, through a
 * `MachineDriver` (the loopback testbed's or the emulated one's). Every event gets a log line and a
 * record in `<outputs>/<experiment>/events.json`, where the report and the dashboard read them.
 */
import { join } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolveNodeConfigs } from '../config/load';
import { z } from 'zod';
import type { ExperimentConfig, LabEvent } from '../config/schema';
import { writeFileAtomic } from '../files/atomic';
import { dueAt, describeEvent, dueEvents, targetsOf, type EventRecord, type Progress } from './schedule';

/** What a testbed can do to one node; each says what it did, or throws with why it could not. */
export interface MachineDriver {
  kill(address: string): Promise<string>;
  stop(address: string): Promise<string>;
  resume(address: string): Promise<string>;
  start(address: string): Promise<string>;
  link(address: string, rateMbit: number): Promise<string>;
  cpu(address: string, cores: number): Promise<string>;
}

/**
 * The schedule as `up` was given it, kept in the state folder: what the driver carries out does not
 * change when config.json is rewritten for another experiment on the same workers.
 */
export interface ScheduleSnapshot {
  experiment: string;
  events: LabEvent[];
  nodes: { address: string; role: string }[];
  aggregator: string;
}

export const scheduleFile = (state: string) => join(state, 'schedule.json');

export function writeScheduleSnapshot(state: string, config: ExperimentConfig): void {
  const nodes = [...resolveNodeConfigs(config).values()].map((n) => ({ address: n.address, role: n.type }));
  const snapshot: ScheduleSnapshot = { experiment: config.experiment, events: config.events ?? [], nodes, aggregator: nodes.find((n) => n.role === 'aggregator')!.address };
  writeFileAtomic(scheduleFile(state), JSON.stringify(snapshot, null, 1) + '\n');
}

export const readScheduleSnapshot = (state: string): ScheduleSnapshot => JSON.parse(readFileSync(scheduleFile(state), 'utf8'));

/** The aggregator's round (GET /dashboard/round), as it answered; undefined while it does not. Checked before use (readState). */
export type StateSource = () => Promise<unknown>;

/** What the schedule takes from an answer: public and unauthenticated, so each value is checked. */
const stateSchema = z.object({
  experiment: z.string().max(200),
  round: z.number().int().min(0).max(100_000),
  rounds: z.number().int().min(0).max(100_000).optional(),
  stage: z.string().max(40),
  finished: z.boolean().optional(),
});
type AggregatorState = z.infer<typeof stateSchema>;

/** An answer the schedule can act on: well formed, a round within the experiment's, never going back. */
function readState(answer: unknown, highest: number): AggregatorState | undefined {
  const parsed = stateSchema.safeParse(answer);
  if (!parsed.success) return undefined;
  const state = parsed.data;
  if ((state.rounds !== undefined && state.round > state.rounds) || state.round < highest) return undefined;
  return state;
}

export interface ScheduleRun {
  experiment: string;
  events: readonly LabEvent[];
  nodes: readonly { address: string; role: string }[];
  driver: MachineDriver;
  state: StateSource;
  /** Where the experiment's outputs go (`<outputs>/<experiment>/events.json`). */
  outputs: string;
  print: (line: string) => void;
  pollMs?: number;
  /** How long the aggregator may go unanswering, once seen, before the schedule ends. */
  goneAfterMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the schedule to its end (every event carried out and every stop let go, or the experiment over); the records. */
export async function runSchedule(run: ScheduleRun): Promise<EventRecord[]> {
  const { events, driver, print } = run;
  const pollMs = run.pollMs ?? 200;
  const file = join(run.outputs, run.experiment, 'events.json');
  const records: EventRecord[] = [];
  const save = () => {
    mkdirSync(join(run.outputs, run.experiment), { recursive: true });
    writeFileAtomic(file, JSON.stringify({ experiment: run.experiment, events: records }, null, 1) + '\n');
  };
  const carried = new Set<number>();
  const resumes: Promise<void>[] = [];
  let startedAt: number | undefined;
  let lastSeen = Date.now();
  let progress: Progress = { round: 0, opened: false };

  const record = (index: number, what: EventRecord['do'], targets: string[], results: PromiseSettledResult<string>[]) => {
    const event = events[index];
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${targets[i]}: ${(r.reason as Error).message}`] : []));
    const done = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const elapsed_s = startedAt === undefined ? 0 : (Date.now() - startedAt) / 1000;
    const { do: _do, on, ...said } = event;
    records.push({ index, do: what, on, targets, round: progress.round, time: new Date().toISOString(), elapsed_s: Number(elapsed_s.toFixed(2)), ...said, ok: failed.length === 0 && targets.length > 0, detail: [...done, ...failed].join('; ') || 'no node to act on' });
    save();
    const words = what === 'continue' ? `continue ${targets.join(', ')} (stopped ${(event as { for_s: number }).for_s} s)` : describeEvent(event, targets);
    print(`schedule: round ${progress.round}, ${elapsed_s.toFixed(1)} s: ${words}${failed.length ? `: FAILED ${failed.join('; ')}` : ''}`);
  };

  const carry = async (index: number) => {
    const event = events[index];
    const targets = targetsOf(event, run.nodes);
    const act = (address: string): Promise<string> => {
      switch (event.do) {
        case 'kill': return driver.kill(address);
        case 'stop': return driver.stop(address);
        case 'start': return driver.start(address);
        case 'link': return driver.link(address, event.rate_mbit);
        case 'cpu': return driver.cpu(address, event.cpu);
      }
    };
    record(index, event.do, targets, await Promise.allSettled(targets.map(act)));
    if (event.do === 'stop') {
      resumes.push(sleep(event.for_s * 1000).then(async () => record(index, 'continue', targets, await Promise.allSettled(targets.map((a) => driver.resume(a))))));
    }
  };

  print(`schedule: ${events.length} events for ${run.experiment}, waiting for its first round (records in ${file})`);
  try {
    while (carried.size < events.length) {
      const state = readState(await run.state(), progress.round);
      const ours = state?.experiment === run.experiment;
      if (ours) lastSeen = Date.now();
      else if (startedAt !== undefined && Date.now() - lastSeen > (run.goneAfterMs ?? 30_000)) break;
      if (ours) {
        const opened = state.stage !== 'idle';
        if (startedAt === undefined && opened) {
          startedAt = Date.now();
          save(); // a fresh record: nothing of an earlier run's schedule stays
        }
        progress = { round: state.round, opened, ...(startedAt !== undefined ? { elapsed_s: (Date.now() - startedAt) / 1000 } : {}) };
        for (const index of dueEvents(events, carried, progress)) {
          carried.add(index);
          await carry(index);
        }
        if (state.finished || state.stage === 'done') break;
      }
      await sleep(pollMs);
    }
  } finally {
    // Whatever ends the schedule, a node it stopped is let go at its time.
    await Promise.all(resumes);
  }
  const missed = events.map((_, i) => i).filter((i) => !carried.has(i));
  for (const i of missed) print(`schedule: not carried out, the experiment ended first: ${describeEvent(events[i], targetsOf(events[i], run.nodes))} ${dueAt(events[i])}`);
  return records;
}
