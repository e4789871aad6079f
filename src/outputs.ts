/**
 * outputs/<experiment>/: the global model of every round, metrics.json and metrics.csv,
 * and the config used, so an experiment can be read and repeated later.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './files/atomic';
import { saveModel } from './model/store';
import { z } from 'zod';

/** What the testbed's schedule did, beside the metrics (written by the testbed driver, read by the report and the dashboard). */
export const EVENTS_FILE = 'events.json';

/** How long a round and each of its stages took (the aggregator's round clock measures them). */
export interface RoundTimings {
  round_ms: number;
  selection_ms: number;
  /** Training and reporting, until the median client's update was in. */
  training_ms: number;
  /** From the median client's update to the last that made the sum: the round held by its slowest clients. */
  straggling_ms?: number;
  /** The client whose update came last, when it came later than the median one. */
  held_by?: string;
  /** Spent waiting for selected clients whose updates never came (down, hung, too late). */
  waiting_ms: number;
  aggregation_ms: number;
  evaluation_ms: number;
}

export interface RoundMetrics extends RoundTimings {
  round: number;
  accuracy: number;
  loss: number;
  clients: number;
  samples: number;
  bytes_up: number;
  bytes_down: number;
  /** The kernel's count of the aggregator's link in the same window, where it has a link of its own. */
  link_bytes_up?: number;
  link_bytes_down?: number;
  retries: number;
  /** Selected clients whose updates are not in the round's sum (they died, or were too late). */
  missing: string[];
  /** Clients config.json has attack whose updates are in the round (robustness studies). */
  attackers?: string[];
  /** With the key at the clients, when not every client asked could score the model: how many did (accuracy and loss are theirs). */
  scored_by?: { clients: number; of: number };
  /** With `dp` on: the privacy spent after this round (ε at dp.delta). */
  epsilon?: number;
  /** With `dp` on: the noised models released so far (one a round, more when a round ran again after the clients decrypted its model). */
  dp_releases?: number;
}

export const ENCRYPTED_MODEL_FILE = 'model.he';

/** outputs/<experiment>/models/round-NNN -> outputs/<experiment>/config.json */
export function configBeside(modelDir: string): string {
  return join(dirname(dirname(resolve(modelDir))), 'config.json');
}

const COLUMNS: (keyof RoundMetrics)[] = [
  'round', 'accuracy', 'loss', 'clients', 'samples', 'round_ms', 'selection_ms', 'training_ms', 'straggling_ms', 'held_by',
  'waiting_ms', 'aggregation_ms', 'evaluation_ms', 'bytes_up', 'bytes_down', 'retries', 'missing', 'attackers', 'scored_by', 'epsilon', 'dp_releases',
];
const csvCell = (value: unknown) => {
  if (Array.isArray(value)) return value.join(' ');
  if (value && typeof value === 'object' && 'of' in value) {
    const { clients, of } = value as { clients: number; of: number }; // scored_by
    return `${clients}/${of}`;
  }
  return value === undefined ? '' : String(value);
};

export class ExperimentOutputs {
  readonly dir: string;
  readonly rows: RoundMetrics[] = [];

  constructor(outputsDir: string, experiment: string) {
    this.dir = join(outputsDir, experiment);
    mkdirSync(this.dir, { recursive: true });
  }

  writeJson(name: string, value: unknown): void {
    writeFileAtomic(join(this.dir, name), JSON.stringify(value, null, 2) + '\n');
  }

  /** Starting over: the rounds of an earlier run of this experiment go (and what an earlier schedule did). */
  clearRounds(): void {
    rmSync(join(this.dir, 'models'), { recursive: true, force: true });
    rmSync(join(this.dir, EVENTS_FILE), { force: true });
    this.rows.length = 0;
  }

  /** What the testbed's schedule has done so far; none when it has no schedule, or its record cannot be read. */
  events(): EventRecord[] {
    return readEvents(this.dir);
  }

  /** Resuming: the rounds a checkpoint vouches for, and only those, become the metrics again. */
  restoreRounds(rows: RoundMetrics[]): void {
    this.rows.splice(0, this.rows.length, ...rows);
    this.writeMetrics();
  }

  modelDir(round: number): string {
    return join(this.dir, 'models', `round-${String(round).padStart(3, '0')}`);
  }

  /** The round's model (or, when only clients hold the HE key, its encrypted wire message) and metrics. */
  async saveRound(round: number, global: { model: tf.LayersModel } | { encrypted: Buffer }, metrics: RoundMetrics): Promise<void> {
    if ('model' in global) await saveModel(global.model, this.modelDir(round));
    else writeFileAtomic(join(this.modelDir(round), ENCRYPTED_MODEL_FILE), global.encrypted);
    this.rows.push(metrics);
    this.writeMetrics();
  }

  private writeMetrics(): void {
    this.writeJson('metrics.json', { rounds: this.rows });
    const csv = [COLUMNS.join(','), ...this.rows.map((row) => COLUMNS.map((c) => csvCell(row[c])).join(','))].join('\n') + '\n';
    writeFileAtomic(join(this.dir, 'metrics.csv'), csv);
  }
}

/**
 * One line of events.json: an event of the testbed's schedule carried out (or a stopped node let
 * go), when, and what came of it. The testbed driver writes it; the aggregator reads it back as
 * untrusted (anyone with the folder can write it): each record checked, the odd one left out.
 */
const eventRecordSchema = z.object({
  /** Its index in config.json's `events`. */
  index: z.number().int().min(0),
  do: z.enum(['kill', 'stop', 'start', 'link', 'cpu', 'continue']),
  on: z.string().max(200),
  targets: z.array(z.string().max(200)).max(1000),
  /** The round in hand when it was carried out. */
  round: z.number().int().min(0).max(100_000),
  /** Wall-clock time, and seconds since round 1 opened. */
  time: z.string().max(40),
  elapsed_s: z.number(),
  /** As config.json said it. */
  at_round: z.number().optional(),
  at_s: z.number().optional(),
  for_s: z.number().optional(),
  rate_mbit: z.number().optional(),
  cpu: z.number().optional(),
  /** Whether it could be carried out on every target; what happened, or why not. */
  ok: z.boolean(),
  detail: z.string().max(2000),
});
export type EventRecord = z.infer<typeof eventRecordSchema>;

/** outputs/<experiment>/events.json's records; none when it is absent or unreadable (the driver writes it whole, atomically). */
export function readEvents(experimentDir: string): EventRecord[] {
  const file = join(experimentDir, EVENTS_FILE);
  if (!existsSync(file)) return [];
  try {
    const events: unknown = JSON.parse(readFileSync(file, 'utf8')).events;
    return Array.isArray(events) ? events.slice(0, 10_000).flatMap((e) => { const parsed = eventRecordSchema.safeParse(e); return parsed.success ? [parsed.data] : []; }) : [];
  } catch {
    return [];
  }
}

/** A record in a round line's, a table cell's or a chart label's words: "kill 127.0.1.3:5000", "stop client (failed)". */
export const recordWords = (e: EventRecord) => `${e.do} ${e.targets.join(' ') || e.on}${e.ok ? '' : ' (failed)'}`;
