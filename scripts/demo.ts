/**
 * `npm run demo`: the 15-node reference testbed on loopback (127.0.1.1 … 127.0.1.15, port 5000):
 * 12 clients and 2 switches started by the launcher, `main.js agg` running the experiment of
 * config.local.json on real MNIST digits, round-by-round accuracy and time, then a summary.
 *   npm run demo -- [--config FILE] [--rounds N] [--data idx|csv|cifar|png]
 * --data writes the shipped digits as files of that format (.testbed/data/<format>/) and runs on them.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError, loadExperimentConfig } from '../src/config/load';
import { loadMnist } from '../src/data/mnist';
import { sampleData } from '../src/data/sample-files';
import { down, up } from './testbed';

const ROOT = resolve(__dirname, '..', '..');
const STATE = join(ROOT, '.testbed');

const FORMATS = ['idx', 'csv', 'cifar', 'png'] as const;

async function main(flags: { config: string; rounds?: number; data?: (typeof FORMATS)[number] }): Promise<number> {
  if (flags.data && !FORMATS.includes(flags.data)) throw new Error(`--data: "${flags.data}" is not one of ${FORMATS.join(', ')}`);
  let configFile = resolve(flags.config);
  const config = loadExperimentConfig(configFile);
  if (flags.rounds || flags.data) {
    mkdirSync(STATE, { recursive: true }); // a fresh clone has no .testbed/ yet
    configFile = join(STATE, 'demo-config.json');
    const data = flags.data ? { ...config.data, ...sampleData(flags.data, join(STATE, 'data', flags.data), loadMnist()) } : config.data;
    if (flags.data) console.log(`wrote the 10,000 shipped digits as ${flags.data} files: ${data.path}`);
    const experiment = flags.data ? `${config.experiment}-${flags.data}` : config.experiment;
    writeFileSync(configFile, JSON.stringify({ ...config, experiment, data, rounds: flags.rounds ?? config.rounds }, null, 2));
  }
  const workers = Object.values(config.others).filter((e) => e.type !== 'aggregator').length;
  console.log(`starting ${workers} workers of ${flags.config} on loopback ...`);
  const started = await up({ config: configFile, state: STATE, timeout: 60_000, logs: join(ROOT, 'logs'), quiet: true });
  if (started !== 0) {
    await down({ state: STATE, timeout: 5000 });
    return 1;
  }

  const agg = spawn(process.execPath, [join(ROOT, 'main.js'), 'agg', '--config', configFile, '--token-file', join(STATE, 'token'), '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  const interrupt = () => agg.kill('SIGTERM');
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const code = await new Promise<number>((done) => agg.on('exit', (c) => done(c ?? 1)));
  await down({ state: STATE, timeout: 5000 });
  return code;
}

new Command()
  .name('demo')
  .option('--config <file>', 'the experiment to run', join(ROOT, 'config.local.json'))
  .option('--rounds <n>', 'override the number of rounds', (v: string) => Number(v))
  .option('--data <format>', `run on the shipped digits written as files: ${FORMATS.join(', ')}`)
  .action(async (flags) => {
    try {
      process.exitCode = await main(flags);
    } catch (err) {
      console.error(err instanceof ConfigError ? err.message : (err as Error).message);
      process.exitCode = 2;
    }
  })
  .parseAsync();
