/**
 * Run inside the aggregator's namespace for the schedule, which runs outside (where the cgroups
 * and every namespace are in reach): prints the aggregator's public dashboard state as one JSON
 * line every poll ("null" while it does not answer), until its parent closes stdin.
 *   state-relay [--ca FILE] <poll-ms> <host:port>
 */
import { readFileSync } from 'node:fs';
import { fetchPublicJson } from '../net/health-check';

async function main(args: string[]): Promise<void> {
  const ca = args[0] === '--ca' ? readFileSync(args[1]) : undefined;
  const [pollMs, address] = ca ? args.slice(2) : args;
  let open = true;
  process.stdin.on('end', () => (open = false)).on('close', () => (open = false)).resume();
  while (open) {
    const state = (await fetchPublicJson(address, '/dashboard/state', 2000, ca)) as Record<string, unknown> | undefined;
    // What the schedule reads of it, not the whole page's state.
    const line = state ? { experiment: state.experiment, round: state.round, stage: state.stage, finished: state.finished } : null;
    process.stdout.write(JSON.stringify(line) + '\n');
    await new Promise((r) => setTimeout(r, Number(pollMs)));
  }
}

void main(process.argv.slice(2));
