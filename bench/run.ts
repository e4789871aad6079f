/**
 * `npm run bench`: what encryption costs, measured on this machine, written to bench/RESULTS.md
 * (and bench/results.json). Medians of repeated runs; every number says what produced it.
 *   npm run bench -- [--rounds 50] [--quick]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { formatConfig, testbedConfig } from '../src/config/testbed';
import { heSchema } from '../src/config/schema';
import { Ckks } from '../src/he/ckks';
import { heParams } from '../src/he/keys';
import { HePool } from '../src/he/pool';
import type { RoundMetrics } from '../src/outputs';
import { down, up } from '../scripts/testbed';

const ROOT = resolve(__dirname, '..', '..');
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const log = (line: string) => process.stderr.write(`${line}\n`);

interface MicroRow {
  mode: string;
  parameters: number;
  bytes_per_parameter: number;
  times_float32: number;
  encrypt_params_per_s: number;
  sum12_params_per_s: number;
  decrypt_params_per_s: number;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

/** Encrypt, sum of 12 and decrypt at the default parameters, both key modes, medians of `repeats`. */
async function micro(repeats: number): Promise<MicroRow[]> {
  const params = heParams(heSchema.parse({ enabled: true }));
  const keys = await Ckks.generateKeys(params);
  const rows: MicroRow[] = [];
  for (const [mode, encryptKeys] of [['public key (aggregator)', { publicKey: keys.publicKey }], ['seeded (clients)', { secretKey: keys.secretKey }]] as const) {
    const encryptor = await HePool.start(params, encryptKeys);
    const adder = await HePool.start(params, {});
    const decryptor = await HePool.start(params, { secretKey: keys.secretKey });
    for (const parameters of [100_000, 1_000_000]) {
      log(`micro: ${mode}, ${parameters} parameters`);
      const update = Float32Array.from({ length: parameters }, (_, i) => 0.3 * Math.sin(i));
      const times = { encrypt: [] as number[], sum: [] as number[], decrypt: [] as number[] };
      let bytes = 0;
      await encryptor.encrypt(update.subarray(0, encryptor.slots * 4)); // threads and SEAL warmed up, not timed
      for (let r = 0; r < repeats; r++) {
        const [cipher, encryptMs] = await timed(() => encryptor.encrypt(update, 1 / 12));
        bytes = cipher.reduce((n, c) => n + c.length, 0);
        const [sum, sumMs] = await timed(() => adder.sum(Array.from({ length: 12 }, () => cipher)));
        const [, decryptMs] = await timed(() => decryptor.decrypt(sum, parameters));
        times.encrypt.push(encryptMs);
        times.sum.push(sumMs);
        times.decrypt.push(decryptMs);
      }
      const rate = (ms: number[]) => Math.round(parameters / (median(ms) / 1000));
      rows.push({
        mode,
        parameters,
        bytes_per_parameter: bytes / parameters,
        times_float32: bytes / parameters / 4,
        encrypt_params_per_s: rate(times.encrypt),
        sum12_params_per_s: rate(times.sum),
        decrypt_params_per_s: rate(times.decrypt),
      });
    }
    await Promise.all([encryptor, adder, decryptor].map((p) => p.close()));
  }
  return rows;
}

interface TestbedRun {
  name: string;
  rounds: number;
  round_s_median: number;
  bytes_per_round_at_aggregator: number;
  final_accuracy: number;
  update_bytes_per_parameter: number;
  rss_mb: Record<'client' | 'switch' | 'aggregator', { first: number; last: number; max: number }>;
}

/** One experiment on the 15-node loopback testbed, read back from outputs/ and every node's iteration log. */
async function testbedRun(name: string, rounds: number, he: Record<string, unknown>): Promise<TestbedRun> {
  log(`testbed: ${name}, ${rounds} rounds`);
  const dir = mkdtempSync(join(tmpdir(), 'fl-bench-'));
  const config = testbedConfig({ base: '127.0.1', nodes: 15, switches: 2, rounds, experiment: name }) as Record<string, unknown>;
  config.he = he;
  const file = join(dir, 'config.json');
  writeFileSync(file, formatConfig(config));
  const state = join(dir, 'state');
  const logs = join(dir, 'logs');
  if ((await up({ config: file, state, timeout: 60_000, logs, quiet: true })) !== 0) throw new Error('the testbed did not start');
  try {
    const agg = spawn(process.execPath, [join(ROOT, 'main.js'), 'agg', '--config', file, '--token-file', join(state, 'token'), '--logs', logs, '--outputs', join(dir, 'outputs'), '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    agg.stdout.on('data', (d: Buffer) => {
      const line = d.toString().split('\n').find((l) => l.startsWith('round '));
      if (line) log(`  ${line}`);
    });
    const code = await new Promise<number | null>((done) => agg.on('exit', done));
    if (code !== 0) throw new Error(`${name}: the aggregator exited with ${code}`);
  } finally {
    await down({ state, timeout: 5000 });
  }
  const metrics: RoundMetrics[] = JSON.parse(readFileSync(join(dir, 'outputs', name, 'metrics.json'), 'utf8')).rounds;
  const steady = metrics.slice(1); // round 1 also starts keys and threads
  const rss = { client: [] as number[][], switch: [] as number[][], aggregator: [] as number[][] };
  let updateBytes = 0;
  for (const fileName of readdirSync(logs).filter((f) => f.endsWith(`_${name}.json`))) {
    const address = fileName.split('_')[0].replace(/-(\d+)$/, ':$1');
    const type = (config.others as Record<string, { type: 'client' | 'switch' | 'aggregator' }>)[address].type;
    const { iteration } = JSON.parse(readFileSync(join(logs, fileName), 'utf8'));
    rss[type].push(iteration.map((e: { rss_bytes: number }) => e.rss_bytes / 1e6));
    if (type === 'client') updateBytes = iteration[iteration.length - 1].update_bytes;
  }
  const summarize = (series: number[][]) => ({
    first: Math.round(median(series.map((s) => s[0]))),
    last: Math.round(median(series.map((s) => s[s.length - 1]))),
    max: Math.round(Math.max(...series.flat())),
  });
  return {
    name,
    rounds,
    round_s_median: median(steady.map((m) => m.round_ms)) / 1000,
    bytes_per_round_at_aggregator: median(steady.map((m) => m.bytes_up + m.bytes_down)),
    final_accuracy: metrics[metrics.length - 1].accuracy,
    update_bytes_per_parameter: updateBytes / 101_770,
    rss_mb: { client: summarize(rss.client), switch: summarize(rss.switch), aggregator: summarize(rss.aggregator) },
  };
}

function report(command: string, microRows: MicroRow[], runs: TestbedRun[]): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const plain = runs.find((r) => r.name === 'plaintext');
  const lines = [
    '# Benchmarks',
    '',
    `Made by \`${command}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim()}.`,
    '',
    '## Homomorphic encryption at the default parameters (N=4096, {54,54}, scale 2^45), two threads',
    '',
    '| key mode | parameters | bytes/param | x float32 | encrypt (params/s) | sum of 12 (params/s) | decrypt (params/s) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...microRows.map(
      (r) =>
        `| ${r.mode} | ${r.parameters.toLocaleString('en')} | ${r.bytes_per_parameter.toFixed(1)} | ${r.times_float32.toFixed(2)}x | ${r.encrypt_params_per_s.toLocaleString('en')} | ${r.sum12_params_per_s.toLocaleString('en')} | ${r.decrypt_params_per_s.toLocaleString('en')} |`,
    ),
    '',
    'Medians of repeated runs; "sum of 12" parses, adds and re-serializes twelve updates (a switch\'s work).',
    '',
    '## The 15-node loopback testbed (12 clients, 2 switches, MLP with 101,770 parameters)',
    '',
    '| run | rounds | median round (s) | vs plaintext | MB per round at the aggregator | update bytes/param | final accuracy |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map(
      (r) =>
        `| ${r.name} | ${r.rounds} | ${r.round_s_median.toFixed(2)} | ${plain ? (r.round_s_median / plain.round_s_median).toFixed(2) + 'x' : '-'} | ${mb(r.bytes_per_round_at_aggregator)} | ${r.update_bytes_per_parameter.toFixed(1)} | ${(r.final_accuracy * 100).toFixed(2)}% |`,
    ),
    '',
    'Round 1 (keys, threads, first model) is left out of the median.',
    '',
    '## Memory: process RSS per round (MB, median over nodes of a role; from every node\'s iteration log)',
    '',
    '| run | client first → last (max) | switch first → last (max) | aggregator first → last (max) |',
    '| --- | --- | --- | --- |',
    ...runs.map((r) => {
      const cell = (x: { first: number; last: number; max: number }) => `${x.first} → ${x.last} (${x.max})`;
      return `| ${r.name} (${r.rounds} rounds) | ${cell(r.rss_mb.client)} | ${cell(r.rss_mb.switch)} | ${cell(r.rss_mb.aggregator)} |`;
    }),
    '',
  ];
  return lines.join('\n');
}

new Command()
  .name('bench')
  .option('--rounds <n>', 'rounds of the long encrypted run (memory over time)', (v: string) => Number(v), 50)
  .option('--quick', 'fewer repeats and rounds, for a smoke run')
  .action(async (flags: { rounds: number; quick?: boolean }) => {
    const command = `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
    const repeats = flags.quick ? 1 : 3;
    const microRows = await micro(repeats);
    const short = flags.quick ? 3 : 10;
    const runs = [
      await testbedRun('plaintext', short, { enabled: false }),
      await testbedRun('he-aggregator', flags.quick ? 3 : flags.rounds, { enabled: true, key_holder: 'aggregator' }),
      await testbedRun('he-clients', short, { enabled: true, key_holder: 'clients' }),
    ];
    const markdown = report(command, microRows, runs);
    writeFileSync(join(ROOT, 'bench', 'RESULTS.md'), markdown);
    writeFileSync(join(ROOT, 'bench', 'results.json'), JSON.stringify({ command, date: new Date().toISOString(), node: process.version, cores: cpus().length, micro: microRows, testbed: runs }, null, 2) + '\n');
    console.log(markdown);
  })
  .parseAsync();
