/**
 * The rate a shaped link reaches, measured both ways between the machine's namespace and the
 * bridge's (whose own port is not shaped): a TCP stream for a moment, counted at the receiving end.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Machine, TestbedPlan } from './plan';
import { EmulateError } from './system';

const PROBE = join(__dirname, 'rate-probe.js');
const PORT = 5999;

export interface MeasuredRate {
  /** Mbit/s of payload the machine sent, and received. */
  up_mbit: number;
  down_mbit: number;
}

export async function measureLink(plan: TestbedPlan, machine: Machine, ms = 500): Promise<MeasuredRate> {
  const up = await stream({ ns: plan.bridgeNs, host: plan.probe }, machine.ns, ms);
  const down = await stream({ ns: machine.ns, host: machine.host }, plan.bridgeNs, ms);
  return { up_mbit: up, down_mbit: down };
}

/** Mbit/s from a source in `fromNs` to a sink listening at `to`. */
async function stream(to: { ns: string; host: string }, fromNs: string, ms: number): Promise<number> {
  const sink = spawn('ip', ['netns', 'exec', to.ns, process.execPath, PROBE, 'sink', to.host, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  sink.stderr.on('data', (d) => (errors += d));
  const done = new Promise<string>((resolve, reject) => {
    sink.stdout.on('data', (d) => {
      output += d;
      if (output === 'listening\n') startSource();
    });
    sink.on('exit', (code) => (code === 0 ? resolve(output) : reject(new EmulateError(`rate probe in ${to.ns} exited ${code}: ${errors.trim()}`))));
  });
  const startSource = () => {
    const source = spawn('ip', ['netns', 'exec', fromNs, process.execPath, PROBE, 'source', to.host, String(PORT), String(ms)], { stdio: 'ignore' });
    source.on('exit', (code) => code !== 0 && sink.kill());
  };
  const { bytes, ms: took } = JSON.parse((await done).split('\n')[1]) as { bytes: number; ms: number };
  return (bytes * 8) / (took / 1000) / 1e6;
}
