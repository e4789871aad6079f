/**
 * Run inside a testbed namespace: waits until every address answers GET /health.
 *   health-probe [--ca FILE] <timeout-ms> <host:port> …     exit 0 when all answer; 1 naming those that did not
 * With --ca, over HTTPS, the workers' certificates checked against that CA.
 */
import { readFileSync } from 'node:fs';
import { answersHealth } from '../net/health-check';

async function main(args: string[]): Promise<number> {
  const ca = args[0] === '--ca' ? readFileSync(args[1]) : undefined;
  const [timeout, ...addresses] = ca ? args.slice(2) : args;
  const answers = (address: string) => answersHealth(address, 1000, ca);
  const deadline = Date.now() + Number(timeout);
  let waiting = addresses;
  while (waiting.length && Date.now() < deadline) {
    const up = await Promise.all(waiting.map(answers));
    waiting = waiting.filter((_, i) => !up[i]);
    if (waiting.length) await new Promise((r) => setTimeout(r, 200));
  }
  if (waiting.length) console.log(`not answering after ${timeout} ms: ${waiting.join(', ')}`);
  return waiting.length ? 1 : 0;
}

void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
