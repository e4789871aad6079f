/**
 * The numbers the dashboard and the report show, from outputs/<experiment>/metrics.json (the
 * aggregator's rows) and the cluster log (every worker's iteration entries): one row per node and round.
 */
import type { IterationEntry } from '../log/iteration-log';
import type { NodeRecords } from '../log/cluster-log';
import type { RoundMetrics } from '../outputs';

/** `wait`: time a round spent waiting for clients whose updates never came (apart from training). */
export const PHASES = ['train', 'encrypt', 'send', 'straggle', 'wait', 'aggregate', 'decrypt', 'evaluate'] as const;
export type Phase = (typeof PHASES)[number];

export interface NodeRound {
  node: string;
  role: 'client' | 'switch' | 'aggregator';
  round: number;
  sent: number;
  received: number;
  /** The kernel's count of the node's link in the same window (headers, health checks and all), where it has one. */
  link?: { sent: number; received: number };
  /** Milliseconds per phase; a phase the node does not do is absent. */
  phases: Partial<Record<Phase, number>>;
}

const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

/** Which of a worker's iteration fields time which phase. */
function workerPhases(role: NodeRecords['role'], e: IterationEntry): NodeRound['phases'] {
  const phases: NodeRound['phases'] = {};
  const set = (phase: Phase, ...values: unknown[]) => {
    const present = values.map(num).filter((v): v is number => v !== undefined);
    if (present.length) phases[phase] = present.reduce((a, b) => a + b, 0);
  };
  if (role === 'client') {
    set('train', e.train_ms);
    set('encrypt', e.encrypt_ms);
    set('send', e.send_ms);
    set('decrypt', e.decrypt_ms);
  } else {
    set('aggregate', e.aggregate_ms, e.he_sum_ms);
    set('straggle', e.straggling_ms);
    set('wait', e.waiting_ms);
  }
  return phases;
}

/** The last entry of each round counts: a round retried under a new attempt replaces its first try. */
function lastPerRound(entries: readonly IterationEntry[]): IterationEntry[] {
  const byRound = new Map<number, IterationEntry>();
  for (const e of entries) byRound.set(e.round, e);
  return [...byRound.values()].sort((a, b) => a.round - b.round);
}

export function nodeRounds(aggregator: string, rows: readonly RoundMetrics[], workers: readonly NodeRecords[]): NodeRound[] {
  const out: NodeRound[] = rows.map((r) => ({
    node: aggregator,
    role: 'aggregator',
    round: r.round,
    // Updates come up to the aggregator; models go down from it.
    sent: r.bytes_down,
    received: r.bytes_up,
    ...(r.link_bytes_up === undefined ? {} : { link: { sent: r.link_bytes_down!, received: r.link_bytes_up } }),
    // Held by its slowest clients, then waiting for the missing: apart from the clients' own training.
    phases: { ...(num(r.straggling_ms) !== undefined ? { straggle: r.straggling_ms } : {}), ...(num(r.waiting_ms) !== undefined ? { wait: r.waiting_ms } : {}), aggregate: r.aggregation_ms, evaluate: r.evaluation_ms },
  }));
  for (const w of workers) {
    for (const e of lastPerRound(w.iteration)) {
      const link = num(e.link_byte_send) === undefined ? {} : { link: { sent: e.link_byte_send as number, received: e.link_byte_received as number } };
      out.push({ node: w.address, role: w.role, round: e.round, sent: e.byte_send, received: e.byte_received, ...link, phases: workerPhases(w.role, e) });
    }
  }
  return out;
}

export interface NodeTotals {
  node: string;
  role: NodeRound['role'];
  rounds: number;
  sent: number;
  received: number;
  /** Summed over the rounds the kernel counted (all of them, or none). */
  link?: { sent: number; received: number };
}

/** Each node's bytes over the whole experiment, its own count and (where it has a link of its own) the kernel's. */
export function nodeTotals(rows: readonly NodeRound[]): NodeTotals[] {
  const totals = new Map<string, NodeTotals>();
  for (const row of rows) {
    const t = totals.get(row.node) ?? { node: row.node, role: row.role, rounds: 0, sent: 0, received: 0, link: row.link && { sent: 0, received: 0 } };
    totals.set(row.node, t);
    t.rounds++;
    t.sent += row.sent;
    t.received += row.received;
    if (t.link && row.link) {
      t.link.sent += row.link.sent;
      t.link.received += row.link.received;
    } else t.link = undefined; // a round the kernel did not count: no total to compare
  }
  return [...totals.values()];
}

/** Each node's mean time per phase over the rounds given. */
export function meanPhases(rows: readonly NodeRound[]): { node: string; role: NodeRound['role']; phase: Phase; ms: number }[] {
  const sums = new Map<string, { role: NodeRound['role']; totals: Map<Phase, { ms: number; n: number }> }>();
  for (const row of rows) {
    const node = sums.get(row.node) ?? { role: row.role, totals: new Map() };
    sums.set(row.node, node);
    for (const [phase, ms] of Object.entries(row.phases) as [Phase, number][]) {
      const t = node.totals.get(phase) ?? { ms: 0, n: 0 };
      node.totals.set(phase, { ms: t.ms + ms, n: t.n + 1 });
    }
  }
  return [...sums].flatMap(([node, { role, totals }]) =>
    PHASES.filter((p) => totals.has(p)).map((phase) => ({ node, role, phase, ms: Math.round(totals.get(phase)!.ms / totals.get(phase)!.n) })),
  );
}

/**
 * The work each round threw away: the selected clients that trained but whose update is not in the
 * round's sum (too late for the straggler policy, or for a switch that had forwarded), with their
 * training time (client-seconds), from their own iteration entries.
 */
export function wastedWork(rows: readonly RoundMetrics[], workers: readonly NodeRecords[]): Map<number, { clients: string[]; ms: number }> {
  const trained = new Map(workers.filter((w) => w.role === 'client').map((w) => [w.address, new Map(lastPerRound(w.iteration).flatMap((e) => (num(e.train_ms) !== undefined ? [[e.round, e.train_ms as number]] : [])))]));
  return new Map(
    rows.map((r) => {
      const clients = r.missing.filter((c) => trained.get(c)?.has(r.round));
      return [r.round, { clients, ms: clients.reduce((sum, c) => sum + trained.get(c)!.get(r.round)!, 0) }];
    }),
  );
}

/**
 * How long each round's clients queued for a core they share with other clients of their process
 * (several clients in one worker train one at a time): the longest wait of the round, and whose.
 */
export function queueing(workers: readonly NodeRecords[]): Map<number, { ms: number; client: string }> {
  const longest = new Map<number, { ms: number; client: string }>();
  for (const w of workers.filter((w) => w.role === 'client')) {
    for (const e of lastPerRound(w.iteration)) {
      const ms = num(e.queue_ms);
      if (ms !== undefined && ms > (longest.get(e.round)?.ms ?? 0)) longest.set(e.round, { ms, client: w.address });
    }
  }
  return longest;
}
