/**
 * 12. What an attack costs with the defences on: the demo's shape (12 clients, 2 switches, HE) on
 * loopback, each attack in a run of its own beside a run without one, the same seed. Seconds lost
 * are the run's round time (summed over its rounds, retries included) less the quiet run's; accuracy
 * is the last round's. The attacks: client 1's credentials used for forged and bit-flipped messages
 * to every route (test/helpers/fuzzer.ts), and a client whose updates are spoiled after they are
 * made (test/helpers/rogue-worker.ts): under another key, with noise in its slots, claiming a
 * million times its weight.
 *   npm run bench -- adversarial   only this section, the others kept from bench/results.json
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RoundMetrics } from '../src/outputs';
import { ROOT as TEST_ROOT, runExperiment, Testbed } from '../test/helpers/cluster';
import { fuzz, type FuzzAnswer } from '../test/helpers/fuzzer';
import { fixed as n, log } from './common';

type KeyHolder = 'aggregator' | 'clients';

export interface AttackRow {
  attack: string;
  key_holder: KeyHolder;
  rounds: number;
  /** Rounds' time summed (s), retries in it. */
  total_s: number;
  /** Less the quiet run's of the same key mode. */
  lost_s: number;
  /** Openings run again, over the run. */
  retries: number;
  final_accuracy: number;
  /** Less the quiet run's, in points. */
  accuracy_change: number;
  /** Who the aggregator left out, and when. */
  left_out: string;
  /** The fuzz's answers by status (forged and bit-flipped messages). */
  answers?: Record<string, number>;
}

export interface AdversarialResults {
  command: string;
  clients: number;
  rows: AttackRow[];
}

const ROGUE = join(TEST_ROOT, 'dist', 'test', 'helpers', 'rogue-worker.js');

interface Attack {
  attack: string;
  keyHolder: KeyHolder;
  rogue?: 'other-key' | 'garbage' | 'heavy';
  fuzz?: boolean;
}

const ATTACKS: Attack[] = [
  { attack: 'none', keyHolder: 'aggregator' },
  { attack: "client 1's credentials: forged and bit-flipped messages to every route", keyHolder: 'aggregator', fuzz: true },
  { attack: 'a client encrypting under a key of its own', keyHolder: 'aggregator', rogue: 'other-key' },
  { attack: "a client adding noise to its update's slots", keyHolder: 'aggregator', rogue: 'garbage' },
  { attack: 'a client claiming a million times its weight', keyHolder: 'aggregator', rogue: 'heavy' },
  { attack: 'none', keyHolder: 'clients' },
  { attack: 'a client encrypting under a key of its own', keyHolder: 'clients', rogue: 'other-key' },
];

async function attackRun(attack: Attack, rounds: number, index: number): Promise<Omit<AttackRow, 'lost_s' | 'accuracy_change'>> {
  const experiment = `adversarial-${index}`;
  log(`  ${attack.attack}, the key at the ${attack.keyHolder}`);
  const testbed = new Testbed({ nodes: 15, switches: 2, rounds, experiment, base: '127.0.6', trainSize: 'all' }, (config) => {
    config.he = { enabled: true, key_holder: attack.keyHolder };
  });
  try {
    if ((await testbed.up()).code !== 0) throw new Error(`${experiment}: the testbed did not start`);
    if (attack.rogue) await testbed.replaceWorker(testbed.addresses('client')[1], [ROGUE, attack.rogue]);
    let running = true;
    const run = runExperiment(testbed, 900_000, ['--log-level', 'warn']).finally(() => (running = false));
    const fuzzed = attack.fuzz ? await fuzzWhenRunning(testbed, attack.keyHolder, () => running) : undefined;
    const { code, output } = await run;
    const answers = fuzzed && countAnswers(fuzzed, testbed.addresses('aggregator')[0]);
    if (code !== 0) throw new Error(`${experiment}: the aggregator exited with ${code}\n${output}`);
    const rows: RoundMetrics[] = JSON.parse(readFileSync(join(testbed.outputs, experiment, 'metrics.json'), 'utf8')).rounds;
    const leftOut = [...output.matchAll(/^round (\d+): (\S+) is left out of the experiment/gm)].map((m) => `${m[2]} (round ${m[1]})`);
    return {
      attack: attack.attack,
      key_holder: attack.keyHolder,
      rounds: rows.length,
      total_s: rows.reduce((s, r) => s + r.round_ms, 0) / 1000,
      retries: rows.reduce((s, r) => s + r.retries, 0),
      final_accuracy: rows.at(-1)!.accuracy,
      left_out: [...new Set(leftOut)].join(', ') || 'nobody',
      ...(answers ? { answers } : {}),
    };
  } finally {
    await testbed.down();
  }
}

/** The fuzz, once the aggregator answers. */
async function fuzzWhenRunning(testbed: Testbed, keyHolder: KeyHolder, running: () => boolean): Promise<FuzzAnswer[]> {
  const [aggregator] = testbed.addresses('aggregator');
  while (running() && !(await fetch(`http://${aggregator}/health`).then((r) => r.ok, () => false))) await new Promise((r) => setTimeout(r, 100));
  return fuzz(testbed, keyHolder, running, 4000);
}

/**
 * The fuzz's answers by status. Requests to the aggregator after its last answer found it gone (the
 * run had ended; a crash fails the run); any other unanswered request, or a 5xx, is a bug.
 */
function countAnswers(answers: FuzzAnswer[], aggregator: string): Record<string, number> {
  const lastAnswer = Math.max(0, ...answers.filter((a) => a.target.startsWith(aggregator) && a.status !== 0).map((a) => a.at));
  const afterRun = (a: FuzzAnswer) => a.status === 0 && a.target.startsWith(aggregator) && a.at >= lastAnswer;
  const bugs = answers.filter((a) => (a.status === 0 && !afterRun(a)) || a.status >= 500);
  if (bugs.length) throw new Error(`the fuzz found ${bugs.length} bugs: ${bugs.slice(0, 5).map((a) => `${a.message} to ${a.target}: ${a.status} ${a.reason}`).join('; ')}`);
  return answers.reduce<Record<string, number>>((counts, a) => {
    const key = afterRun(a) ? 'no answer, after the run' : String(a.status);
    return (counts[key] = (counts[key] ?? 0) + 1), counts;
  }, {});
}

export async function adversarialCosts(quick: boolean, command: string): Promise<AdversarialResults> {
  const rounds = quick ? 4 : 8;
  const measured: Omit<AttackRow, 'lost_s' | 'accuracy_change'>[] = [];
  for (const [i, attack] of ATTACKS.entries()) measured.push(await attackRun(attack, rounds, i));
  const quiet = (keyHolder: KeyHolder) => measured.find((r) => r.key_holder === keyHolder && r.attack === 'none')!;
  const rows = measured.map((r) => ({
    ...r,
    lost_s: Math.round((r.total_s - quiet(r.key_holder).total_s) * 100) / 100,
    accuracy_change: Math.round((r.final_accuracy - quiet(r.key_holder).final_accuracy) * 10_000) / 100,
  }));
  return { command, clients: 12, rows };
}

export function formatAdversarial(a: AdversarialResults | undefined): string[] {
  if (!a) return [];
  const rounds = a.rows[0].rounds;
  const spoilers = a.rows.filter((r) => r.retries > 0);
  const rows = a.rows.map((r) => {
    const answers = r.answers ? ` (answers: ${Object.entries(r.answers).map(([status, count]) => `${count} × ${status}`).join(', ')})` : '';
    return `| ${r.attack}${answers} | ${r.key_holder} | ${n(r.total_s, 1)} | ${r.attack === 'none' ? '' : `${r.lost_s >= 0 ? '+' : ''}${n(r.lost_s, 1)}`} | ${r.retries} | ${n(r.final_accuracy * 100, 2)}% | ${r.attack === 'none' ? '' : `${r.accuracy_change >= 0 ? '+' : ''}${n(r.accuracy_change, 2)}`} | ${r.left_out} |`;
  });
  return [
    '## 12. What an attack costs, with the defences on',
    '',
    `Made by \`${a.command}\`. ${a.clients} clients on 2 switches, HE, ${rounds} rounds, on loopback; each attack in a run of its own`,
    'beside a run without one, the same seed. Seconds: the rounds\' time summed, openings run again included. The attacker is',
    "client 2 (a rogue: it trains and encrypts as the others do, then spoils what it sends; test/helpers/rogue-worker.ts), or client 1's",
    'credentials (forged and bit-flipped real messages to every route, as fast as they are answered; test/helpers/fuzzer.ts).',
    '',
    '| attack | key at the | rounds (s) | lost (s) | openings run again | final accuracy | change (points) | left out |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `A rogue that spoils its updates costs the openings run again while the aggregator searches for it among the ${a.clients} clients`,
    `(${spoilers.map((r) => r.retries).join(', ')} in the runs above), then its data; one claiming more weight is refused at its switch`,
    'each round and goes on missing, as it declines at once. The forged and flipped messages are refused (400 unreadable, 403',
    'not this caller, 409 not now, 429 one at a time) and cost the rounds the CPU to refuse them.',
    '',
  ];
}
