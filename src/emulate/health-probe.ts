/**
 * Run inside a testbed namespace: waits until every address answers GET /health.
 *   health-probe <timeout-ms> <host:port> …     exit 0 when all answer; 1 naming those that did not
 */
async function answers(address: string): Promise<boolean> {
  try {
    return (await fetch(`http://${address}/health`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

async function main([timeout, ...addresses]: string[]): Promise<number> {
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
