/** Real processes on loopback: the launcher scripts and main.js, run as a user would run them. */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { formatConfig, testbedConfig, type TestbedShape } from '../../src/config/testbed';
import { Credentials } from '../../src/net/identity';
import type { RoundMetrics } from '../../src/outputs';
import { tempDir } from './temp-dir';

export const ROOT = resolve(__dirname, '..', '..', '..');
export const MAIN = join(ROOT, 'main.js');
export const SCRIPTS = join(ROOT, 'dist', 'scripts');
const run = promisify(execFile);

/** A /24 on loopback no other test file or the demo (127.0.1.x) uses at the same time. */
export function freeSubnet(): string {
  return `127.${100 + Math.floor(Math.random() * 150)}.${1 + Math.floor(Math.random() * 250)}`;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export async function node(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      timeout: options.timeout ?? 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export const script = (name: string, args: string[], options?: Parameters<typeof node>[1]) =>
  node([join(SCRIPTS, `${name}.js`), ...args], options);

/** The digits a test's clients train on unless it says otherwise (see Testbed). */
export const QUICK_TRAIN_SIZE = 4000;

/** A testbed folder: its config, and the state dir the launcher keeps its token and pids in. */
export class Testbed {
  readonly dir = tempDir('fl-testbed-');
  readonly state = join(this.dir, 'state');
  readonly logs = join(this.dir, 'logs');
  readonly outputs = join(this.dir, 'outputs');
  readonly configFile = join(this.dir, 'config.json');
  readonly base: string;
  readonly config: { others: Record<string, { type: string }> } & Record<string, unknown>;
  private aggregators: ChildProcess[] = [];
  /** Workers started in place of the launcher's (replaceWorker); down stops them too. */
  private replaced: ChildProcess[] = [];

  /**
   * `trainSize`: the digits the clients train on, all together (data.train_size): by default half of
   * the 8,000 not held out, as a test of the protocol needs no more and training is most of a
   * cluster test's work; 'all' where accuracy itself is measured, where something must land while
   * rounds go on or at a round's stage (shorter training would narrow the window), where clients read
   * files, and in the benchmarks.
   */
  constructor(shape: Partial<TestbedShape> & { nodes: number; switches: number; trainSize?: number | 'all' }, edit?: (config: Record<string, unknown>) => void) {
    this.base = shape.base ?? freeSubnet();
    const config = testbedConfig({ ...shape, base: this.base });
    const trainSize = shape.trainSize ?? QUICK_TRAIN_SIZE;
    if (trainSize !== 'all') (config.data as Record<string, unknown>).train_size = trainSize;
    edit?.(config);
    this.config = config as Testbed['config'];
    writeFileSync(this.configFile, formatConfig(config));
  }

  get token(): string {
    return readFileSync(join(this.state, 'token'), 'utf8').trim();
  }

  /** The headers of a call made as the node at `address`, with the token its book holds. */
  as(address: string): Record<string, string> {
    return Credentials.fromSecret(this.token, address).headers();
  }

  /** The token book the launcher wrote for the worker at `address`. */
  tokenFile(address: string): string {
    return join(this.state, 'tokens', `${address.replace(':', '-')}.json`);
  }

  addresses(type?: string): string[] {
    return Object.entries(this.config.others)
      .filter(([, entry]) => !type || entry.type === type)
      .map(([address]) => address);
  }

  /** The pid of a worker the launcher started, from its pid file. */
  pidOf(address: string): number {
    const id = address.replace(':', '-');
    return Number(readFileSync(join(this.state, 'pids', `${id}.pid`), 'utf8'));
  }

  /**
   * The worker at `address` replaced by another program run with the launcher's arguments for it
   * (its token book, its key, its TLS folder): `program` and its own arguments go first. Resolves
   * once the new process answers /health.
   */
  async replaceWorker(address: string, program: string[]): Promise<ChildProcess> {
    this.kill(address);
    const [host, port] = address.split(':');
    const id = address.replace(':', '-');
    const isClient = this.config.others[address].type === 'client';
    const he = this.config.he as { enabled?: boolean; key_holder?: string } | undefined;
    const key = isClient && he?.enabled && he.key_holder === 'clients' ? ['--he-key', this.keyFile] : [];
    const tls = this.config.tls === true ? ['--tls-dir', join(this.state, 'tls', id)] : [];
    const args = [...program, '--host', host, '--port', port, '--logs', this.logs, '--id', id, '--token-file', this.tokenFile(address), ...key, ...tls];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.replaced.push(child);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    await waitFor(async () => (await fetch(`http://${address}/health`).then((r) => r.ok, () => false)) || child.exitCode !== null, 30_000);
    if (child.exitCode !== null) throw new Error(`the replacement of ${address} exited: ${output}`);
    return child;
  }

  /** Kills a worker outright, as a crash or a pulled plug would: no handler runs. */
  kill(address: string): void {
    process.kill(this.pidOf(address), 'SIGKILL');
  }

  /** `main.js agg` in the background with output kept live; `exited` resolves with its exit code. */
  launchAggregator(extra: string[] = []): LaunchedAggregator {
    const child = spawn(
      process.execPath,
      [MAIN, 'agg', '--config', this.configFile, '--token-file', join(this.state, 'token'), '--logs', this.logs, '--outputs', this.outputs, ...extra],
      { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.aggregators.push(child);
    const launched = { child, output: '', exited: new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))) };
    child.stdout!.on('data', (d) => (launched.output += d));
    child.stderr!.on('data', (d) => (launched.output += d));
    return launched;
  }

  /**
   * `env` reaches the workers too: the launcher starts them with its own environment. Run in the
   * testbed's folder, as a user runs it in a project: the clients' key, when they hold one, is its keys/he-secret.json.
   */
  up(env?: NodeJS.ProcessEnv): Promise<Result> {
    return script('testbed', ['up', '--config', this.configFile, '--state', this.state, '--logs', this.logs], { env, cwd: this.dir });
  }

  /** The clients' HE key `up` handed them. */
  get keyFile(): string {
    return join(this.dir, 'keys', 'he-secret.json');
  }

  down(): Promise<Result> {
    for (const child of [...this.aggregators, ...this.replaced]) child.kill('SIGTERM');
    return script('testbed', ['down', '--state', this.state], { cwd: this.dir });
  }

  /** Starts `main.js agg`, resolving once the push summary is printed (or it exits); `output` stays live. */
  startAggregator(extra: string[] = []): Promise<{ child: ChildProcess; readonly output: string; exitCode: number | null }> {
    const child = spawn(process.execPath, [MAIN, 'agg', '--config', this.configFile, '--token-file', join(this.state, 'token'), '--logs', this.logs, ...extra], {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.aggregators.push(child);
    let output = '';
    return new Promise((resolve) => {
      const check = () => {
        if (/\d+ configured, \d+ refused, \d+ unreachable/.test(output) && /\n$/.test(output)) {
          setTimeout(() => resolve({ child, get output() { return output; }, exitCode: child.exitCode }), 300);
        }
      };
      child.stdout!.on('data', (d) => ((output += d), check()));
      child.stderr!.on('data', (d) => ((output += d), check()));
      child.on('exit', (code) => resolve({ child, get output() { return output; }, exitCode: code }));
    });
  }
}

export interface LaunchedAggregator {
  child: ChildProcess;
  output: string;
  exited: Promise<number | null>;
}

/** `auth`: a bearer token (the cluster token: the operator), or the headers of a node's call (`testbed.as(address)`). */
export async function get(address: string, path: string, auth?: string | Record<string, string>): Promise<{ status: number; body: any }> {
  const headers = typeof auth === 'string' ? { Authorization: `Bearer ${auth}` } : (auth ?? {});
  const res = await fetch(`http://${address}${path}`, { headers });
  return { status: res.status, body: await res.json() };
}

export async function post(address: string, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${address}${path}`, { method: 'POST', body, headers });
  return { status: res.status, body: await res.json() };
}

export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `main.js agg` for a testbed to the end of its experiment. */
export function runExperiment(testbed: Testbed, timeoutMs = 15 * 60_000, extra: string[] = []): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    [MAIN, 'agg', '--config', testbed.configFile, '--token-file', join(testbed.state, 'token'), '--logs', testbed.logs, '--outputs', testbed.outputs, '--log-level', 'warn', ...extra],
    { cwd: testbed.dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

/** The testbed up, its experiment run to a clean end (both asserted), and what it left: the aggregator's output, metrics.json's rows, the report. */
export async function completedRun(testbed: Testbed, experiment: string, timeoutMs: number): Promise<{ output: string; rows: RoundMetrics[]; report: string }> {
  assert.equal((await testbed.up()).code, 0);
  return finishedRun(testbed, experiment, timeoutMs);
}

/**
 * Another experiment on a testbed that is up, its workers started once: its config is the testbed's
 * with `changes` (the new aggregator pushes each worker its part), run to a clean end.
 */
export function runAgain(testbed: Testbed, experiment: string, changes: Record<string, unknown>, timeoutMs: number): Promise<{ output: string; rows: RoundMetrics[]; report: string }> {
  writeFileSync(testbed.configFile, formatConfig({ ...testbed.config, ...changes, experiment }));
  return finishedRun(testbed, experiment, timeoutMs);
}

async function finishedRun(testbed: Testbed, experiment: string, timeoutMs: number): Promise<{ output: string; rows: RoundMetrics[]; report: string }> {
  const run = await runExperiment(testbed, timeoutMs, ['--log-level', 'info']);
  assert.equal(run.code, 0, run.output);
  const outputs = join(testbed.outputs, experiment);
  const rows: RoundMetrics[] = JSON.parse(readFileSync(join(outputs, 'metrics.json'), 'utf8')).rounds;
  return { output: run.output, rows, report: readFileSync(join(outputs, 'report.html'), 'utf8') };
}
