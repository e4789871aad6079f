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

/**
 * The better of two probes each way: what a link reaches is its rate, and a probe that lost the CPU
 * for part of its half second (200 Mbit/s read 143 once, beside a loaded suite) measured the machine.
 */
export async function measureLink(plan: TestbedPlan, machine: Machine, ms = 500): Promise<MeasuredRate> {
  const best = async (to: { ns: string; host: string }, fromNs: string) => Math.max(await stream(to, fromNs, ms), await stream(to, fromNs, ms));
  const up = await best({ ns: plan.bridgeNs, host: plan.probe }, machine.ns);
  const down = await best({ ns: machine.ns, host: machine.host }, plan.bridgeNs);
  return { up_mbit: up, down_mbit: down };
}

/** Mbit/s from a source in `fromNs` to a sink listening at `to`; a probe that fails or stalls is an error naming the link. */
async function stream(to: { ns: string; host: string }, fromNs: string, ms: number): Promise<number> {
  const probe = (ns: string, args: string[]) => spawn('ip', ['netns', 'exec', ns, process.execPath, PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sink = probe(to.ns, ['sink', to.host, String(PORT)]);
  let source: ReturnType<typeof probe> | undefined;
  let output = '';
  let errors = '';
  sink.stderr.on('data', (d) => (errors += d));
  const what = `measuring ${fromNs} -> ${to.ns}`;
  try {
    const result = await new Promise<string>((resolve, reject) => {
      const stalled = setTimeout(() => reject(new EmulateError(`${what}: no result within ${ms + 10_000} ms ${errors.trim()}`)), ms + 10_000);
      sink.on('error', reject);
      sink.stdout.on('data', (d) => {
        output += d;
        if (output !== 'listening\n' || source) return;
        source = probe(fromNs, ['source', to.host, String(PORT), String(ms)]);
        source.stderr!.on('data', (e) => (errors += e));
        source.on('close', (code) => code !== 0 && reject(new EmulateError(`${what}: the sending probe exited ${code}: ${errors.trim()}`)));
      });
      // 'close', not 'exit': the result line is read in full.
      sink.on('close', (code) => {
        clearTimeout(stalled);
        if (code === 0) resolve(output);
        else reject(new EmulateError(`${what}: the receiving probe exited ${code}: ${errors.trim()}`));
      });
    });
    const line = result.split('\n')[1];
    if (!line) throw new EmulateError(`${what}: the receiving probe printed no result`);
    const { bytes, ms: took } = JSON.parse(line) as { bytes: number; ms: number };
    return (bytes * 8) / (took / 1000) / 1e6;
  } finally {
    sink.kill('SIGKILL');
    source?.kill('SIGKILL');
  }
}
