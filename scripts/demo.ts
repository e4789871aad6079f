/**
 * `npm run demo`: the 15-node reference testbed on loopback (127.0.1.1 … 127.0.1.15, port 5000),
 * workers started by the launcher, configured by `main.js agg`, every node's role shown, then stopped.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { loadExperimentConfig } from '../src/config/load';
import { down, up } from './testbed';

const ROOT = resolve(__dirname, '..', '..');
const CONFIG = join(ROOT, 'config.local.json');
const STATE = join(ROOT, '.testbed');

async function main(): Promise<number> {
  console.log('starting 14 workers on 127.0.1.1-14:5000 ...');
  if ((await up({ config: CONFIG, state: STATE, timeout: 30_000, logs: join(ROOT, 'logs') })) !== 0) return 1;

  const agg = spawn(process.execPath, [join(ROOT, 'main.js'), 'agg', '--config', CONFIG, '--token-file', join(STATE, 'token'), '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () => agg.kill('SIGTERM');
  process.once('SIGINT', stop);
  let output = '';
  const ready = await new Promise<boolean>((done) => {
    agg.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      output += chunk;
      if (/configured, \d+ refused/.test(output)) done(true);
    });
    agg.on('exit', () => done(false));
  });

  if (ready) {
    console.log('\nnode                  role        health');
    const config = loadExperimentConfig(CONFIG);
    for (const address of Object.keys(config.others)) {
      const health = await fetch(`http://${address}/health`).then((r) => r.json() as Promise<{ role: string; status: string }>);
      console.log(`${address.padEnd(21)} ${String(health.role).padEnd(11)} ${health.status}`);
    }
  }
  stop();
  await new Promise((r) => agg.once('exit', r));
  await down({ state: STATE, timeout: 5000 });
  return ready ? 0 : 1;
}

main().then((code) => (process.exitCode = code));
