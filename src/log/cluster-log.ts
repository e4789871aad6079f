/**
 * The aggregator's side of central logging: logs/cluster/<experiment>/ holds, for every worker, a copy
 * of its iteration log (`<node>_<experiment>.json`, the worker's own format plus who it is) and its
 * warnings and errors (`<node>.log`). The dashboard and the report read per-node costs from here.
 *
 * Every batch taken is appended to the worker's journal (`<node>_<experiment>.jsonl`: who it is, then
 * its round records a line each and, after each batch's, the batch's mark: its boot and last sequence
 * number) before the batch is answered, so what a worker was told is written is on disk, and a batch
 * sent again to an aggregator resumed after a crash is known. The `.json` copy is made from it when
 * the records are settled for the report (and once more, that worker's alone, for a worker whose
 * last round came after that), and as the aggregator fails or stops: any other batch that comes
 * after the records settled (an aggregator that keeps serving) reaches the copy as it stops.
 * Rewriting that copy on every batch, or even once a second, cost the aggregator the worker's whole
 * record (up to the limit below) for each one-record batch a worker chose to send.
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from '../net/errors';
import { writeFileAtomic } from '../files/atomic';
import { parseAddress } from '../config/address';
import type { LogBatch } from './central';
import { nodeIdFor } from './logger';
import type { IterationEntry } from './iteration-log';

export const CLUSTER_LOGS_DIR = 'cluster';

/**
 * What one worker may have kept here: its round records and their bytes (as its journal holds them),
 * its warning and error lines and theirs, the runs (boots) it numbers them in. Far beyond an honest
 * worker's (one record of about a kilobyte a round's opening), so a worker that ships without end, or
 * ships records padded to the batch's limit, fills neither memory nor disk.
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
  /** Workers whose `.json` copy is behind their journal. */
  private readonly unwritten = new Set<string>();
  /** Workers whose entry of a round `settle` waited for came too late for it, with that round. */
  private readonly awaited = new Map<string, number>();
  /** Workers whose journal has its first line (who it is): until then, their first append writes it. */
  private readonly journaled = new Set<string>();

  /**
   * @param workers every worker of the experiment, by address, with its role: nobody else may write here.
   * @param resume  keep the records of the rounds before a crash; otherwise an earlier run's go.
   * @param warn    what a copy that could not be written is said to.
   */
  constructor(
    logsDir: string,
    private readonly experiment: string,
    private readonly workers: ReadonlyMap<string, WorkerRole>,
    resume: boolean,
    private readonly warn: (message: string) => void = () => undefined,
  ) {
    this.dir = join(logsDir, CLUSTER_LOGS_DIR, experiment);
    if (!resume) rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    for (const { records, marks } of loadRecords(this.dir, experiment)) {
      const { address } = records;
      const role = workers.get(address);
      if (!role) continue; // not a worker of this experiment now: nobody else may write here
      this.nodes.set(address, { ...records, role });
      const iterationBytes = records.iteration.reduce((sum, entry) => sum + Buffer.byteLength(journalLine(entry)), 0);
      Object.assign(this.keptBy(address), { iterationBytes, ...this.linesIn(join(this.dir, `${records.node}.log`)) });
      this.unwritten.add(address); // the copy may be behind: the run before may have crashed
      if (!marks) continue;
      this.journaled.add(address);
      for (const { boot, seq } of marks) this.took(address, boot, seq);
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
    this.checkBoot(address, batch.boot);
    const after = this.lastSeq.get(`${address}/${batch.boot}`) ?? -1;
    const fresh = batch.entries.filter((e) => e.seq > after);
    if (!fresh.length) return { taken: 0, duplicates: batch.entries.length };

    const records = this.nodes.get(address) ?? { node: fileIdOf(address), address, role: batch.role, iteration: [] };
    const entries = fresh.flatMap((e) => (e.kind === 'iteration' ? [e.entry as IterationEntry] : []));
    const journal = entries.map(journalLine).join('');
    const entryBytes = Buffer.byteLength(journal);
    const lines = fresh.flatMap((e) => (e.kind === 'log' ? [`${e.time} ${e.level} [${records.node}] ${logText(e.message)}\n`] : []));
    const lineBytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
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
    const seq = Math.max(...fresh.map((e) => e.seq));
    const mark = journalLine({ boot: batch.boot, seq });
    appendAll([
      [join(this.dir, `${records.node}.log`), lines.join('')],
      [this.fileOf(records, '.jsonl'), this.journalStart(records) + journal + mark],
    ], address);
    this.took(address, batch.boot, seq);
    this.nodes.set(address, records);
    Object.assign(kept, { lines: kept.lines + lines.length, lineBytes: kept.lineBytes + lineBytes, iterationBytes: kept.iterationBytes + entryBytes });
    records.iteration.push(...entries);
    this.journaled.add(address);
    if (entries.length) this.unwritten.add(address);
    // The round settle gave up waiting for, come late: in the copies at once, once.
    if (entries.some((entry) => entry.round >= (this.awaited.get(address) ?? Infinity)) && this.awaited.delete(address)) this.flush([address]);
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
      if (!waiting.length || Date.now() >= deadline) {
        // Settled for the last round and, at once, for a round a client missed: the last one is awaited.
        for (const late of waiting) this.awaited.set(late, Math.max(round, this.awaited.get(late) ?? 0));
        this.flush(); // the copies the report and the user read, up to date
        return waiting;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * Makes each worker's `.json` copy that is behind its journal, or those of `only` (settle; the
   * aggregator as it fails or stops). The journal keeps the records whatever happens here: a copy not
   * written is said, not thrown.
   */
  flush(only?: readonly string[]): void {
    for (const address of only?.filter((a) => this.unwritten.has(a)) ?? this.unwritten) {
      const { node, role, iteration } = this.nodes.get(address)!;
      try {
        writeFileAtomic(this.fileOf({ node }, '.json'), JSON.stringify({ node, address, role, iteration }, null, 1));
        this.unwritten.delete(address);
      } catch (err) {
        this.warn(`the copy of ${address}'s round records could not be written (its journal has them): ${(err as Error).message}`);
      }
    }
  }

  records(): NodeRecords[] {
    return [...this.nodes.values()].sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }));
  }

  /**
   * What a worker's next append starts with: on its journal's first, who it is and the records its
   * copy alone kept (an earlier version's, or a journal that could not be read); and a line break
   * when the journal ends in a line cut short (a crash, or an append not cut back), which it would
   * otherwise join and spoil.
   */
  private journalStart({ node, address, role, iteration }: NodeRecords): string {
    const file = this.fileOf({ node }, '.jsonl');
    const start = endsCut(file) ? '\n' : '';
    return this.journaled.has(address) ? start : start + journalLine({ node, address, role }) + iteration.map(journalLine).join('');
  }

  /** What a worker's `.log` here holds, as its limits count it: its entries (a message's later lines are indented) and bytes. */
  private linesIn(file: string): { lines: number; lineBytes: number } {
    let text: Buffer;
    try {
      text = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn(`${file} could not be read; its lines are not counted: ${(err as Error).message}`);
      return { lines: 0, lineBytes: 0 };
    }
    let lines = 0;
    for (let at = 0; at < text.length; at = text.indexOf(0x0a, at) + 1 || text.length) if (text[at] !== 0x20 && text[at] !== 0x0a) lines++;
    return { lines, lineBytes: text.length };
  }

  private fileOf({ node }: Pick<NodeRecords, 'node'>, extension: '.json' | '.jsonl'): string {
    return join(this.dir, `${node}_${this.experiment}${extension}`);
  }

  private keptBy(address: string) {
    let kept = this.kept.get(address);
    if (!kept) this.kept.set(address, (kept = { lines: 0, lineBytes: 0, iterationBytes: 0 }));
    return kept;
  }

  /** A batch of `boot` taken, up to `seq` (or read back from its mark): later ones start after it, and the boot counts. */
  private took(address: string, boot: string, seq: number): void {
    this.lastSeq.set(`${address}/${boot}`, seq);
    this.boots.set(address, (this.boots.get(address) ?? new Set<string>()).add(boot));
  }

  /** A boot is counted once a batch of it is taken: one refused, or with nothing new, changes nothing. */
  private checkBoot(address: string, boot: string): void {
    const boots = this.boots.get(address) ?? new Set<string>();
    if (!boots.has(boot) && boots.size >= WORKER_LOG_LIMITS.boots) throw new HttpError(409, 'conflict', `${address} has shipped from ${WORKER_LOG_LIMITS.boots} runs already`);
  }
}

/** A worker's files here: its address, file-safe (`127.0.1.3:5000` -> `127.0.1.3-5000`). */
function fileIdOf(address: string): string {
  const { host, port } = parseAddress(address);
  return nodeIdFor(host, port);
}

const journalLine = (value: object) => `${JSON.stringify(value)}\n`;

/**
 * A worker's message as its line in the `.log`: its own line breaks indented under it, and every
 * other control character (a terminal's escapes, U+2028 too) written out, so it passes for no line of
 * anyone else's, on screen or in the file.
 */
const logText = (message: string) =>
  message
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\n/g, '\n    ');

/**
 * Appends each text to its file, or none: on a failure each file is cut back to its length before, and
 * the batch is refused (503) with nothing taken. The worker sends it again, and it is written once.
 */
function appendAll(appends: [file: string, text: string][], address: string): void {
  const sizes = appends.map(([file]) => (existsSync(file) ? statSync(file).size : 0));
  try {
    for (const [file, text] of appends) if (text) appendFileSync(file, text);
  } catch (err) {
    appends.forEach(([file], i) => {
      try {
        if (existsSync(file)) truncateSync(file, sizes[i]);
      } catch {
        // A line cut short is skipped as the journal is read, and the next append starts after it (journalStart).
      }
    });
    throw new HttpError(503, 'logs not written', `the aggregator could not write the logs of ${address}: ${(err as Error).message}`);
  }
}

/** The mark after a batch's records in the journal: the worker's boot and the batch's last sequence number. */
type Mark = { boot: string; seq: number };
type Loaded = { records: NodeRecords; marks?: Mark[] };

/** Each worker's records, from its journal (or, kept by an earlier version or with no journal readable, its `.json` copy). */
function loadRecords(dir: string, experiment: string): Loaded[] {
  if (!existsSync(dir)) return [];
  const files = readdirSync(dir);
  const journals = files.filter((f) => f.endsWith(`_${experiment}.jsonl`)).flatMap((f) => readJournal(join(dir, f)) ?? []);
  const copies = files.filter((f) => f.endsWith(`_${experiment}.json`)).flatMap((f) => readCopy(join(dir, f)) ?? []);
  const fromJournals = new Set(journals.map(({ records }) => records.address));
  return [...journals, ...copies.filter((c) => !fromJournals.has(c.address)).map((records) => ({ records }))];
}

/** Who, then records and marks a line each; a line cut short (a crash as it was written) is skipped. */
function readJournal(file: string): Loaded | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = text.split('\n').flatMap((line) => {
    try {
      const value = line ? JSON.parse(line) : undefined;
      return value && typeof value === 'object' ? [value] : [];
    } catch {
      return [];
    }
  });
  const isWho = (value: any) => typeof value.node === 'string' && typeof value.address === 'string' && value.round === undefined;
  const isMark = (value: any): value is Mark => typeof value.boot === 'string' && Number.isInteger(value.seq) && value.round === undefined;
  const who = parsed.find(isWho);
  if (!who) return undefined;
  const iteration = parsed.filter((value) => !isWho(value) && !isMark(value));
  return { records: { node: who.node, address: who.address, role: who.role, iteration }, marks: parsed.filter(isMark) };
}

/** Whether `file` ends in a line cut short: not empty, and its last byte not a line break. */
function endsCut(file: string): boolean {
  try {
    const { size } = statSync(file);
    if (!size) return false;
    const last = Buffer.alloc(1);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, last, 0, 1, size - 1);
    } finally {
      closeSync(fd);
    }
    return last[0] !== 0x0a;
  } catch {
    return false; // none yet
  }
}

function readCopy(file: string): NodeRecords | undefined {
  try {
    const { node, address, role, iteration } = JSON.parse(readFileSync(file, 'utf8'));
    return typeof node === 'string' && typeof address === 'string' && Array.isArray(iteration) ? { node, address, role, iteration } : undefined;
  } catch {
    return undefined; // written atomically: only a hand-edited file fails
  }
}
