/**
 * Run inside the aggregator's namespace for the schedule, which runs outside (where the cgroups
 * and every namespace are in reach): prints the aggregator's round (GET /dashboard/round) as one JSON
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
    // The schedule checks what it reads (readState): this only carries it across the namespace.
    process.stdout.write(JSON.stringify((await fetchPublicJson(address, '/dashboard/round', 2000, ca)) ?? null) + '\n');
    await new Promise((r) => setTimeout(r, Number(pollMs)));
  }
}

void main(process.argv.slice(2));
