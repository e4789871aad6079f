/**
 * 6. What a fault costs: one run of the 15-node testbed (HE, key at the aggregator, the default
 * timeouts: round_ms 300 s, heartbeat 2 s), with one fault injected mid-training in its own round:
 * a client killed, a switch hung (SIGSTOP until the round is over, then SIGCONT), a switch killed,
 * the aggregator killed and started again with --resume. Each killed process is started again at
 * once. Seconds lost = that round's time less the median normal round, and the same for the round
 * after it (a restarted client loads its data before it can be selected again).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseExperimentConfig } from '../src/config/load';
import { formatConfig, testbedConfig } from '../src/config/testbed';
import type { RoundMetrics } from '../src/outputs';
import { down, isAlive, up } from '../scripts/testbed';
import { log, median, ROOT } from './common';

export type FaultKind = 'dead client' | 'hung switch' | 'dead switch' | 'dead aggregator + resume';

export interface FaultRow {
  fault: FaultKind;
  round: number;
  round_s: number;
  /** The faulted round less a normal round. */
  lost_s: number;
  /** The round after it, less a normal round (null when it was the last). */
  next_lost_s: number | null;
  /** How many of the selected clients' updates the faulted round went without. */
  missing: number;
  /** How many times the faulted round started again (too few updates to count). */
  retries: number;
}

export interface FaultResults {
  /** Set when the section ran alone (`npm run bench -- faults`). */
  command?: string;
  heartbeat_s: number;
  normal_round_s: number;
  rows: FaultRow[];
}

const EXPERIMENT = 'faults';
const BASE = '127.0.4';

class Run {
  readonly dir = mkdtempSync(join(tmpdir(), 'fl-bench-faults-'));
  readonly state = join(this.dir, 'state');
  readonly logs = join(this.dir, 'logs');
  readonly outputs = join(this.dir, 'outputs');
  readonly file = join(this.dir, 'config.json');
  readonly config: Record<string, any>;
  private agg?: ChildProcess;
  /** The wall-clock time each round line was printed, by round (the last aggregator's). */
  readonly printedAt = new Map<number, number>();

  constructor(rounds: number) {
    this.config = testbedConfig({ base: BASE, nodes: 15, switches: 2, rounds, experiment: EXPERIMENT, he: true }) as Record<string, any>;
    writeFileSync(this.file, formatConfig(this.config));
  }

  addresses(type: string): string[] {
    return Object.entries(this.config.others as Record<string, { type: string }>).filter(([, e]) => e.type === type).map(([a]) => a);
  }

  pidOf(address: string): number {
    return Number(readFileSync(join(this.state, 'pids', `${address.replace(':', '-')}.pid`), 'utf8'));
  }

  async up(): Promise<void> {
    if ((await up({ config: this.file, state: this.state, timeout: 120_000, logs: this.logs, quiet: true })) !== 0) throw new Error('the faults testbed did not start');
  }

  startAggregator(resume = false): Promise<number | null> {
    const token = join(this.state, 'token');
    const args = [join(ROOT, 'main.js'), 'agg', '--config', this.file, '--token-file', token, '--logs', this.logs, '--outputs', this.outputs, '--log-level', 'warn'];
    this.agg = spawn(process.execPath, resume ? [...args, '--resume'] : args, { stdio: ['ignore', 'pipe', 'inherit'] });
    this.agg.stdout!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const round = /^round\s+(\d+)\//.exec(line)?.[1];
        if (round) this.printedAt.set(Number(round), Date.now());
        if (round || /^worker /.test(line)) log(`    ${line}`);
      }
    });
    return new Promise((done) => this.agg!.on('exit', done));
  }

  killAggregator(): void {
    this.agg?.kill('SIGKILL');
  }

  private async status(): Promise<{ round: number; stage: string; down: string[] } | undefined> {
    const [aggregator] = this.addresses('aggregator');
    const token = readFileSync(join(this.state, 'token'), 'utf8').trim();
    return fetch(`http://${aggregator}/a/status`, { headers: { Authorization: `Bearer ${token}` } })
      .then((r) => r.json() as Promise<{ round: number; stage: string; down: string[] }>)
      .catch(() => undefined);
  }

  /**
   * Waits until every worker is up again and a round selected after that, from `from` on, is training; returns that round.
   * Each fault then starts from a whole testbed, whatever the last one took to heal.
   */
  async nextTraining(from: number): Promise<number> {
    // The round in flight when the last worker came back was selected without it: the next one is whole.
    let healedIn: number | undefined;
    for (const deadline = Date.now() + 300_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      const status = await this.status();
      if (!status) continue;
      if (healedIn === undefined && status.down.length === 0) healedIn = status.round;
      if (healedIn !== undefined && status.round > healedIn && status.round >= from && status.stage === 'training') return status.round;
    }
    throw new Error(`no round from ${from} on reached training with every worker up`);
  }

  async roundDone(round: number): Promise<void> {
    while (!this.printedAt.has(round)) await new Promise((r) => setTimeout(r, 50));
  }

  metrics(): RoundMetrics[] {
    return JSON.parse(readFileSync(join(this.outputs, EXPERIMENT, 'metrics.json'), 'utf8')).rounds;
  }

  async down(): Promise<void> {
    this.killAggregator();
    await down({ state: this.state, timeout: 5000 });
  }
}

export async function faultCosts(quick: boolean): Promise<FaultResults> {
  // Two normal rounds between faults: one to recover in, one to measure a normal round by.
  const kinds: FaultKind[] = ['dead client', 'hung switch', 'dead switch', 'dead aggregator + resume'];
  const plan = kinds.slice(0, quick ? 2 : 4).map((fault) => ({ fault, round: 0 }));
  // Each fault in the first round from its slot on where every worker is up (a slot every 3 rounds, from round 3);
  // the rounds after the last leave room for a restarted worker to mount (rounds of under a second took 4 to heal).
  const rounds = 3 * plan.length + 12;
  log(`  faults: 12 clients, 2 switches, HE, ${rounds} rounds; ${plan.map((p) => p.fault).join(', ')}`);
  const run = new Run(rounds);
  const [victim] = run.addresses('client');
  const [switchA, switchB] = run.addresses('switch');
  let resumedOn: { round: number; startedAt: number } | undefined;
  await run.up();
  try {
    let exited = run.startAggregator();
    for (const [i, step] of plan.entries()) {
      const { fault } = step;
      const round = (step.round = await run.nextTraining(Math.max(3 * (i + 1), (plan[i - 1]?.round ?? 0) + 3)));
      log(`  round ${round}: ${fault}`);
      if (fault === 'dead client' || fault === 'dead switch') {
        const pid = run.pidOf(fault === 'dead client' ? victim : switchB);
        process.kill(pid, 'SIGKILL');
        while (isAlive(pid)) await new Promise((r) => setTimeout(r, 20)); // a kill lands a moment later
        await run.up(); // started again at once, as a supervisor would
      } else if (fault === 'hung switch') {
        process.kill(run.pidOf(switchA), 'SIGSTOP');
        await run.roundDone(round);
        process.kill(run.pidOf(switchA), 'SIGCONT');
      } else {
        const startedAt = run.printedAt.get(round - 1)!;
        run.killAggregator();
        await exited;
        resumedOn = { round, startedAt };
        exited = run.startAggregator(true);
      }
    }
    const code = await exited;
    if (code !== 0) throw new Error(`the faults run's aggregator exited with ${code}`);
  } finally {
    await run.down();
  }
  const rows = run.metrics();
  const faulted = new Set(plan.flatMap((p) => [p.round, p.round + 1]));
  const normal = median(rows.filter((r) => r.round > 1 && !faulted.has(r.round)).map((r) => r.round_ms)) / 1000;
  const secondsOf = (round: number) => rows[round - 1].round_ms / 1000;
  return {
    heartbeat_s: parseExperimentConfig(run.config).timeouts.heartbeat_ms / 1000,
    normal_round_s: normal,
    rows: plan.map(({ round, fault }) => {
      // A resumed round runs again from its start: its cost runs from the previous round's end, through the restart.
      const roundSeconds = fault === 'dead aggregator + resume' && resumedOn ? (run.printedAt.get(round)! - resumedOn.startedAt) / 1000 : secondsOf(round);
      const r2 = (v: number) => Math.round(v * 100) / 100;
      return { fault, round, round_s: r2(roundSeconds), lost_s: r2(roundSeconds - normal), next_lost_s: rows[round] ? r2(secondsOf(round + 1) - normal) : null, missing: rows[round - 1].missing.length, retries: rows[round - 1].retries };
    }),
  };
}
