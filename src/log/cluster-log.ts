/**
 * The aggregator's side of central logging: logs/cluster/<experiment>/ holds, for every worker, a copy
 * of its iteration log (`<node>_<experiment>.json`, the worker's own format plus who it is) and its
 * warnings and errors (`<node>.log`). The dashboard and the report read per-node costs from here.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../net/errors';
import { writeFileAtomic } from '../files/atomic';
import { parseAddress } from '../config/address';
import type { LogBatch } from './central';
import { nodeIdFor } from './logger';
import type { IterationEntry } from './iteration-log';

export const CLUSTER_LOGS_DIR = 'cluster';

/**
 * What one worker may have kept here: its round records and their bytes, its warning and error lines
 * and theirs, the runs (boots) it numbers them in. Far beyond an honest worker's (one record of about
 * a kilobyte a round's opening), so a worker that ships without end, or ships records padded to the
 * batch's limit, fills neither memory nor disk.
 */
export const WORKER_LOG_LIMITS = { iterations: 20_000, iterationBytes: 32 * 2 ** 20, lines: 20_000, lineBytes: 32 * 2 ** 20, boots: 64 };

export type WorkerRole = 'client' | 'switch';

export interface NodeRecords {
  node: string;
  address: string;
  role: WorkerRole;
  iteration: IterationEntry[];
}

export class ClusterLog {
  readonly dir: string;
  /** Each worker's records, by address: a worker's files are named by its address, whatever id it gives itself. */
  private readonly nodes = new Map<string, NodeRecords>();
  /** The last sequence number taken from each worker boot: a resent batch is not written twice. */
  private readonly lastSeq = new Map<string, number>();
  /** Each worker's boots, and what it has kept here, by address. */
  private readonly boots = new Map<string, Set<string>>();
  private readonly kept = new Map<string, { lines: number; lineBytes: number; iterationBytes: number }>();

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
    for (const records of loadRecords(this.dir, experiment)) {
      this.nodes.set(records.address, records);
      this.keptBy(records.address).iterationBytes = records.iteration.reduce((sum, entry) => sum + JSON.stringify(entry).length, 0);
    }
  }

  /**
   * POST /a/logs, from `batch.address` (the caller checks it is the worker's own). Returns how many
   * entries were new. Its files are named by that address (host-port): a worker that gives another's
   * id cannot write into the other's, nor keep the other's out.
   */
  receive(batch: LogBatch): { taken: number; duplicates: number } {
    if (batch.experiment !== this.experiment) {
      throw new HttpError(409, 'wrong experiment', `these logs are for ${batch.experiment}; this aggregator runs ${this.experiment}`);
    }
    if (this.workers.get(batch.address) !== batch.role) {
      throw new HttpError(403, 'forbidden', `${batch.address} is not a ${batch.role} of experiment ${this.experiment}`);
    }
    const { address } = batch;
    this.countBoot(address, batch.boot);
    const bootKey = `${address}/${batch.boot}`;
    const after = this.lastSeq.get(bootKey) ?? -1;
    const fresh = batch.entries.filter((e) => e.seq > after);
    if (!fresh.length) return { taken: 0, duplicates: batch.entries.length };

    const records = this.nodes.get(address) ?? { node: fileIdOf(address), address, role: batch.role, iteration: [] };
    const entries = fresh.flatMap((e) => (e.kind === 'iteration' ? [e.entry as IterationEntry] : []));
    const entryBytes = entries.reduce((sum, entry) => sum + JSON.stringify(entry).length, 0);
    const lines = fresh.flatMap((e) => (e.kind === 'log' ? [`${e.time} ${e.level} [${records.node}] ${e.message.replace(/\n/g, '\n    ')}\n`] : []));
    const lineBytes = lines.reduce((sum, line) => sum + line.length, 0);
    const kept = this.keptBy(address);
    const limits = WORKER_LOG_LIMITS;
    if (
      records.iteration.length + entries.length > limits.iterations ||
      kept.iterationBytes + entryBytes > limits.iterationBytes ||
      kept.lines + lines.length > limits.lines ||
      kept.lineBytes + lineBytes > limits.lineBytes
    ) {
      const has = `${records.iteration.length} round records (${kept.iterationBytes} bytes) and ${kept.lines} lines (${kept.lineBytes} bytes)`;
      throw new HttpError(413, 'too many log entries', `${address} has shipped ${has}; at most ${limits.iterations} records, ${limits.lines} lines and ${limits.iterationBytes} bytes of each are kept`);
    }
    this.lastSeq.set(bootKey, Math.max(...fresh.map((e) => e.seq)));
    this.nodes.set(address, records);
    Object.assign(kept, { lines: kept.lines + lines.length, lineBytes: kept.lineBytes + lineBytes, iterationBytes: kept.iterationBytes + entryBytes });
    if (lines.length) appendFileSync(join(this.dir, `${records.node}.log`), lines.join(''));
    if (entries.length) {
      records.iteration.push(...entries);
      const { node, role, iteration } = records;
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

  private keptBy(address: string) {
    let kept = this.kept.get(address);
    if (!kept) this.kept.set(address, (kept = { lines: 0, lineBytes: 0, iterationBytes: 0 }));
    return kept;
  }

  private countBoot(address: string, boot: string): void {
    const boots = this.boots.get(address) ?? new Set<string>();
    if (!boots.has(boot) && boots.size >= WORKER_LOG_LIMITS.boots) throw new HttpError(409, 'conflict', `${address} has shipped from ${WORKER_LOG_LIMITS.boots} runs already`);
    boots.add(boot);
    this.boots.set(address, boots);
  }
}

/** A worker's files here: its address, file-safe (`127.0.1.3:5000` -> `127.0.1.3-5000`). */
function fileIdOf(address: string): string {
  const { host, port } = parseAddress(address);
  return nodeIdFor(host, port);
}

function loadRecords(dir: string, experiment: string): NodeRecords[] {
  const suffix = `_${experiment}.json`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(suffix))
    .flatMap((file) => {
      try {
        const { node, address, role, iteration } = JSON.parse(readFileSync(join(dir, file), 'utf8'));
        return typeof node === 'string' && typeof address === 'string' && Array.isArray(iteration) ? [{ node, address, role, iteration }] : [];
      } catch {
        return []; // written atomically: only a hand-edited file fails, and it is rewritten whole
      }
    });
}
