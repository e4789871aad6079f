/**
 * 13. Strategies, attackers and privacy side by side: 12 clients on loopback, each holding a
 * Dirichlet(0.3) share of the digits (label skew), the same seed in every run.
 * - every strategy for 30 rounds, in plaintext (the clients reporting to the aggregator directly),
 *   and the linear ones under 8-bit quantized HE with the key at the aggregator (2 switches);
 * - 2 and 3 of the 12 clients attacking (sign flip ×4, Gaussian σ 0.5, label flip): FedAvg against
 *   each robust rule, each told the attackers' number (f), every client in every round;
 * - DP-FedAvg at z 0.5, 1, 2 (clip 1, δ 1e-5), central and distributed, plaintext and HE (central:
 *   the key at the aggregator; distributed: at the clients): ε after 30 rounds and accuracy.
 * The plaintext linear strategies are drawn side by side by `compare` into bench/strategies/.
 *   npm run bench -- strategies   only this section, the others kept from bench/results.json
 */
import { cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RoundMetrics } from '../src/outputs';
import { writeComparison } from '../src/report/compare';
import { runExperiment, Testbed } from '../test/helpers/cluster';
import { fixed as n, log, ROOT } from './common';

const CLIENTS = 12;
const LINEAR = ['fedavg', 'fedavgm', 'fedprox', 'scaffold', 'fedadam', 'fedyogi', 'fedadagrad'];
const ROBUST = ['fedmedian', 'fedtrimmedavg', 'krum', 'multikrum', 'bulyan'];
const ATTACKS = [
  { kind: 'sign_flip', scale: 4 },
  { kind: 'gaussian', scale: 0.5 },
  { kind: 'label_flip' },
];
const SIDE_BY_SIDE = ['fedavg', 'fedprox', 'scaffold', 'fedadam', 'fedmedian'];
/** Where the comparison page goes, beside RESULTS.md. */
export const COMPARE_DIR = 'strategies';

export interface StrategyRow {
  strategy: string;
  mode: 'plaintext' | 'quantized HE';
  final_accuracy: number;
  /** The first round at 90% or more; undefined when none reached it. */
  rounds_to_90?: number;
  round_s: number;
  mb_per_round: number;
}

export interface AttackRow {
  rule: string;
  attackers: number;
  attack: string;
  final_accuracy?: number;
  /** Why the config was refused, when it was (Bulyan with f 3 needs 15 clients). */
  refused?: string;
}

export interface PrivacyRow {
  noise_multiplier: number;
  mode: 'central' | 'distributed';
  he: boolean;
  epsilon: number;
  final_accuracy: number;
}

export interface StrategiesResults {
  command: string;
  rounds: number;
  attack_rounds: number;
  strategies: StrategyRow[];
  attacks: AttackRow[];
  privacy: PrivacyRow[];
}

interface RunShape {
  experiment: string;
  rounds: number;
  switches: number;
  edit: (config: Record<string, any>) => void;
}

/** One run on 12 clients of Dirichlet(0.3) data; its rows, and (with `keep`) its outputs copied there for compare. */
async function run(shape: RunShape, keep?: string): Promise<RoundMetrics[]> {
  const testbed = new Testbed({ nodes: CLIENTS + 1 + shape.switches, switches: shape.switches, rounds: shape.rounds, experiment: shape.experiment, base: '127.0.7', trainSize: 'all' }, (config) => {
    config.data = { ...(config.data as object), split: 'dirichlet', alpha: 0.3 };
    config.min_report_fraction = 1;
    shape.edit(config);
  });
  try {
    if ((await testbed.up()).code !== 0) throw new Error(`${shape.experiment}: the testbed did not start`);
    const { code, output } = await runExperiment(testbed, 1_800_000, ['--log-level', 'warn']);
    if (code !== 0) throw new Error(`${shape.experiment}: the aggregator exited with ${code}\n${output}`);
    const outputs = join(testbed.outputs, shape.experiment);
    if (keep) cpSync(outputs, join(keep, shape.experiment), { recursive: true });
    return JSON.parse(readFileSync(join(outputs, 'metrics.json'), 'utf8')).rounds;
  } finally {
    await testbed.down();
  }
}

/** The robust rules' parameters for f attackers (or assumed) among 12, every client in every round. */
const robustTraining = (strategy: string, f: number) => ({ strategy, num_malicious_clients: f, ...(strategy === 'multikrum' ? { num_clients_to_keep: CLIENTS - f } : {}) });

async function strategyRows(rounds: number, keep: string): Promise<StrategyRow[]> {
  const rows: StrategyRow[] = [];
  const modes = [
    ...[...LINEAR, ...ROBUST].map((strategy) => ({ strategy, mode: 'plaintext' as const })),
    ...LINEAR.map((strategy) => ({ strategy, mode: 'quantized HE' as const })),
  ];
  for (const { strategy, mode } of modes) {
    log(`  ${strategy}, ${mode}`);
    const sealed = mode === 'quantized HE';
    const metrics = await run(
      {
        experiment: sealed ? `${strategy}-quantized-he` : strategy,
        rounds,
        switches: sealed ? 2 : 0,
        edit: (config) => {
          config.training = { ...config.training, ...(ROBUST.includes(strategy) ? robustTraining(strategy, 2) : { strategy }) };
          config.he = sealed ? { enabled: true, key_holder: 'aggregator', quantize: { bits: 8 } } : { enabled: false };
        },
      },
      !sealed && SIDE_BY_SIDE.includes(strategy) ? keep : undefined,
    );
    const reached = metrics.find((r) => r.accuracy >= 0.9);
    rows.push({
      strategy,
      mode,
      final_accuracy: metrics.at(-1)!.accuracy,
      ...(reached ? { rounds_to_90: reached.round } : {}),
      round_s: metrics.reduce((s, r) => s + r.round_ms, 0) / 1000 / metrics.length,
      mb_per_round: metrics.reduce((s, r) => s + r.bytes_up + r.bytes_down, 0) / 1e6 / metrics.length,
    });
  }
  return rows;
}

async function attackRows(rounds: number): Promise<AttackRow[]> {
  const rows: AttackRow[] = [];
  for (const attackers of [2, 3]) {
    for (const attack of ATTACKS) {
      for (const rule of ['fedavg', ...ROBUST]) {
        const name = attack.kind === 'label_flip' ? 'label flip' : attack.kind === 'sign_flip' ? 'sign flip ×4' : 'Gaussian σ 0.5';
        if (rule === 'bulyan' && CLIENTS < 4 * attackers + 3) {
          rows.push({ rule, attackers, attack: name, refused: `needs n ≥ 4f + 3 = ${4 * attackers + 3}` });
          continue;
        }
        log(`  ${rule}, ${attackers} attacking with ${name}`);
        const metrics = await run({
          experiment: `${rule}-${attack.kind}-${attackers}`,
          rounds,
          switches: 0,
          edit: (config) => {
            config.training = { ...config.training, ...(rule === 'fedavg' ? { strategy: rule } : robustTraining(rule, attackers)) };
            config.he = { enabled: false };
            const clients = Object.keys(config.others).filter((a) => config.others[a].type === 'client');
            for (const address of clients.slice(-attackers)) config.others[address].attack = attack;
          },
        });
        rows.push({ rule, attackers, attack: name, final_accuracy: metrics.at(-1)!.accuracy });
      }
    }
  }
  return rows;
}

async function privacyRows(rounds: number): Promise<PrivacyRow[]> {
  const rows: PrivacyRow[] = [];
  for (const z of [0.5, 1, 2]) {
    for (const mode of ['central', 'distributed'] as const) {
      for (const he of [false, true]) {
        log(`  DP ${mode}, z ${z}, ${he ? 'HE' : 'plaintext'}`);
        const metrics = await run({
          experiment: `dp-${mode}-${z}-${he ? 'he' : 'plain'}`,
          rounds,
          // Central under HE: the key at the aggregator, behind switches; distributed: the key at the clients.
          switches: he && mode === 'central' ? 2 : 0,
          edit: (config) => {
            config.he = he ? { enabled: true, key_holder: mode === 'central' ? 'aggregator' : 'clients' } : { enabled: false };
            config.dp = { mode, clip: 1, noise_multiplier: z, delta: 1e-5 };
          },
        });
        rows.push({ noise_multiplier: z, mode, he, epsilon: metrics.at(-1)!.epsilon!, final_accuracy: metrics.at(-1)!.accuracy });
      }
    }
  }
  return rows;
}

export async function strategyComparison(quick: boolean, command: string): Promise<StrategiesResults> {
  const rounds = quick ? 3 : 30;
  const attackRounds = quick ? 2 : 10;
  const keep = join(ROOT, 'bench', COMPARE_DIR, 'runs');
  rmSync(keep, { recursive: true, force: true });
  mkdirSync(keep, { recursive: true });
  log(' every strategy');
  const strategies = await strategyRows(rounds, keep);
  await writeComparison(SIDE_BY_SIDE.map((s) => join(keep, s)), join(ROOT, 'bench', COMPARE_DIR));
  rmSync(keep, { recursive: true, force: true });
  log(' attackers');
  const attacks = await attackRows(attackRounds);
  log(' differential privacy');
  const privacy = await privacyRows(rounds);
  return { command, rounds, attack_rounds: attackRounds, strategies, attacks, privacy };
}

const percent = (value: number | undefined) => (value === undefined ? '—' : `${n(value * 100, 1)}%`);

export function formatStrategies(s: StrategiesResults | undefined): string[] {
  if (!s) return [];
  const byMode = (strategy: string, mode: StrategyRow['mode']) => s.strategies.find((r) => r.strategy === strategy && r.mode === mode);
  const strategyLines = [...LINEAR, ...ROBUST].map((strategy) => {
    const [plain, sealed] = [byMode(strategy, 'plaintext'), byMode(strategy, 'quantized HE')];
    const cells = (r: StrategyRow | undefined) => (r ? `${percent(r.final_accuracy)} | ${r.rounds_to_90 ?? 'not in the run'} | ${n(r.round_s, 2)} | ${n(r.mb_per_round, 1)}` : 'refused: reads each update | | |');
    return `| ${strategy} | ${cells(plain)} | ${cells(sealed)} |`;
  });
  const rules = ['fedavg', ...ROBUST];
  const attackLines = [2, 3].flatMap((attackers) =>
    [...new Set(s.attacks.map((a) => a.attack))].map((attack) => {
      const cell = (rule: string) => {
        const row = s.attacks.find((a) => a.rule === rule && a.attackers === attackers && a.attack === attack);
        return row?.refused ? `refused (${row.refused})` : percent(row?.final_accuracy);
      };
      return `| ${attackers} of ${CLIENTS} | ${attack} | ${rules.map(cell).join(' | ')} |`;
    }),
  );
  const plain = (strategy: string) => byMode(strategy, 'plaintext')!;
  const krum = s.attacks.filter((a) => a.rule === 'krum' && a.final_accuracy !== undefined).map((a) => a.final_accuracy!);
  const privacyLines = s.privacy.map((p) => `| ${p.noise_multiplier} | ${p.mode} | ${p.he ? `HE, key at the ${p.mode === 'central' ? 'aggregator' : 'clients'}` : 'plaintext'} | ${n(p.epsilon, 2)} | ${percent(p.final_accuracy)} |`);
  return [
    '## 13. Strategies, attackers and privacy',
    '',
    `Made by \`${s.command}\`. ${CLIENTS} clients on loopback, each with a Dirichlet(0.3) share of the digits (label skew), MLP of 101,770`,
    'parameters, 1 epoch at learning rate 0.5, every client in every round, the same seed in every run. Plaintext runs have the',
    'clients report to the aggregator directly; quantized HE (8 bits, the key at the aggregator) goes through 2 switches. The robust',
    `rules assume f = 2 here. Side by side (accuracy, time, bytes, phases): [strategies/compare.html](${COMPARE_DIR}/compare.html).`,
    '',
    `| strategy | plaintext: accuracy after ${s.rounds} | rounds to 90% | s a round | MB a round | quantized HE: accuracy | rounds to 90% | s a round | MB a round |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...strategyLines,
    '',
    `Attackers: the last 2 or 3 clients send their change reversed ×4, Gaussian noise (σ 0.5) as their change, or train on flipped`,
    `labels (9 − label); accuracy after ${s.attack_rounds} rounds, plaintext, each rule told f = the attackers' number.`,
    '',
    `| attackers | attack | ${rules.join(' | ')} |`,
    `| --- | --- | ${rules.map(() => '---').join(' | ')} |`,
    ...attackLines,
    '',
    `Differential privacy (DP-FedAvg, clip 1, δ 1e-5): ε after ${s.rounds} rounds (each round the Gaussian mechanism, no sampling`,
    'amplification claimed) and the accuracy it leaves.',
    '',
    '| z | mode | where | ε | accuracy |',
    '| --- | --- | --- | --- | --- |',
    ...privacyLines,
    '',
    'What the tables show:',
    `- FedAdam reaches 90% first (round ${plain('fedadam').rounds_to_90 ?? '—'}, FedAvg round ${plain('fedavg').rounds_to_90 ?? '—'}). Quantized HE costs the linear strategies a point at most, but`,
    `  SCAFFOLD ${percent(byMode('scaffold', 'quantized HE')?.final_accuracy)} against ${percent(plain('scaffold').final_accuracy)}: its control variate is rounded to 8 bits too, and that error enters`,
    '  every local step, K·η times over (README, "SCAFFOLD"). At this learning rate (0.5, 1 epoch) SCAFFOLD trails FedAvg: its control variates, a',
    '  round old, correct steps that are already long. On clients holding two digits each at 0.05 and 2 epochs it leads FedAvg by',
    '  about 10 points (test/cluster/strategies.test.ts).',
    `- Krum keeps one client's update a round: on label-skewed clients that is one client's model (${percent(plain('krum').final_accuracy)} after ${s.rounds} rounds`,
    `  without attackers, ${krum.length ? [...new Set(krum.map((a) => percent(a)))].join(' to ') : '—'} after ${s.attack_rounds} with them). Multi-Krum, averaging the n − f it ranks first, stays`,
    '  near 90% under every attack here; the coordinate-wise rules blunt the sign flip without stopping it on skewed clients.',
    '- DP at 12 clients: the noise on each averaged weight is z·2C/12 against changes clipped to norm 1 over 101,770 weights;',
    '  DP-FedAvg is made for thousands of clients a round. Distributed in plaintext spends the same ε on the models released, but',
    '  there the aggregator reads each update with one client\'s share of the noise (README, "Differential privacy").',
    '',
  ];
}
