/**
 * The aggregator's side of central logging: logs/cluster/<experiment>/ holds, for every worker, a copy
 * of its iteration log (`<node>_<experiment>.json`, the worker's own format plus who it is) and its
 * warnings and errors (`<node>.log`). The dashboard and the report read per-node costs from here.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../net/errors';
import { writeFileAtomic } from '../files/atomic';
import type { LogBatch } from './central';
import type { IterationEntry } from './iteration-log';

export const CLUSTER_LOGS_DIR = 'cluster';

export type WorkerRole = 'client' | 'switch';

export interface NodeRecords {
  node: string;
  address: string;
  role: WorkerRole;
  iteration: IterationEntry[];
}

export class ClusterLog {
  readonly dir: string;
  private readonly nodes = new Map<string, NodeRecords>();
  /** The last sequence number taken from each worker boot: a resent batch is not written twice. */
  private readonly lastSeq = new Map<string, number>();

  /**
   * @param workers every worker of the experiment, by address, with its role: nobody else may write here.
   * @param resume  keep the records of the rounds before a crash; otherwise an earlier run's go.
   */
  constructor(
    logsDir: string,
    private readonly experiment: string,
    private readonly workers: ReadonlyMap<string, WorkerRole>,
    resume: boolean,
  ) {
    this.dir = join(logsDir, CLUSTER_LOGS_DIR, experiment);
    if (!resume) rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    for (const records of loadRecords(this.dir, experiment)) this.nodes.set(records.node, records);
  }

  /** POST /a/logs. Returns how many entries were new. */
  receive(batch: LogBatch): { taken: number; duplicates: number } {
    if (batch.experiment !== this.experiment) {
      throw new HttpError(409, 'wrong experiment', `these logs are for ${batch.experiment}; this aggregator runs ${this.experiment}`);
    }
    if (this.workers.get(batch.address) !== batch.role) {
      throw new HttpError(403, 'forbidden', `${batch.address} is not a ${batch.role} of experiment ${this.experiment}`);
    }
    const records = this.recordsOf(batch);
    const bootKey = `${batch.node}/${batch.boot}`;
    const after = this.lastSeq.get(bootKey) ?? -1;
    const fresh = batch.entries.filter((e) => e.seq > after);
    if (!fresh.length) return { taken: 0, duplicates: batch.entries.length };
    this.lastSeq.set(bootKey, Math.max(...fresh.map((e) => e.seq)));

    const lines: string[] = [];
    for (const entry of fresh) {
      if (entry.kind === 'iteration') records.iteration.push(entry.entry as IterationEntry);
      else lines.push(`${entry.time} ${entry.level} [${batch.node}] ${entry.message.replace(/\n/g, '\n    ')}\n`);
    }
    if (lines.length) appendFileSync(join(this.dir, `${batch.node}.log`), lines.join(''));
    if (fresh.some((e) => e.kind === 'iteration')) {
      const { node, address, role, iteration } = records;
      writeFileAtomic(join(this.dir, `${node}_${this.experiment}.json`), JSON.stringify({ node, address, role, iteration }, null, 1));
    }
    return { taken: fresh.length, duplicates: batch.entries.length - fresh.length };
  }

  /**
   * Waits (at most timeoutMs) until each of `addresses` has shipped its entry for `round`: a worker
   * ships a round's entry only after the aggregator answered it, so the last one arrives after the end.
   */
  async settle(round: number, addresses: readonly string[], timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const shipped = new Set(this.records().filter((r) => r.iteration.some((e) => e.round >= round)).map((r) => r.address));
      const waiting = addresses.filter((a) => !shipped.has(a));
      if (!waiting.length || Date.now() >= deadline) return waiting;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  records(): NodeRecords[] {
    return [...this.nodes.values()].sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }));
  }

  private recordsOf(batch: LogBatch): NodeRecords {
    let records = this.nodes.get(batch.node);
    if (!records || records.address !== batch.address) {
      records = { node: batch.node, address: batch.address, role: batch.role, iteration: records?.iteration ?? [] };
      this.nodes.set(batch.node, records);
    }
    return records;
  }
}

function loadRecords(dir: string, experiment: string): NodeRecords[] {
  const suffix = `_${experiment}.json`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(suffix))
    .flatMap((file) => {
      try {
        const { node, address, role, iteration } = JSON.parse(readFileSync(join(dir, file), 'utf8'));
        return typeof node === 'string' && Array.isArray(iteration) ? [{ node, address, role, iteration }] : [];
      } catch {
        return []; // written atomically: only a hand-edited file fails, and it is rewritten whole
      }
    });
}
