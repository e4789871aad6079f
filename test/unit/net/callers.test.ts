/** The refusal log: each distinct refusal once, a budget per node, what a caller sent kept on one line. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Response } from 'express';
import type { Logger } from '../../../src/log/logger';
import { oneTaskAtATime, refusalLogger } from '../../../src/net/callers';
import { HttpError } from '../../../src/net/errors';

function logged() {
  const lines: string[] = [];
  const log = refusalLogger({ warn: (line: string) => lines.push(line) } as unknown as Logger);
  const refuse = (node: string | undefined, reason: string) =>
    log({ method: 'POST', url: '/a/checkin', headers: {} } as never, { locals: node ? { caller: { node } } : {} } as unknown as Response, new HttpError(403, 'forbidden', reason));
  return { lines, refuse };
}

describe('the refusal log', () => {
  it('logs a refusal once, and one node filling its budget leaves another its own', () => {
    const { lines, refuse } = logged();
    refuse('10.0.0.1:5000', 'client names 10.0.0.2:5000');
    refuse('10.0.0.1:5000', 'client names 10.0.0.2:5000');
    assert.equal(lines.length, 1);
    for (let i = 0; i < 1000; i++) refuse('10.0.0.1:5000', `client names made-up-${i}`);
    const flooder = lines.length;
    assert.ok(flooder < 200, `${flooder} lines for one node`);
    assert.match(lines.at(-1)!, /refusals of 10\.0\.0\.1:5000 logged: further ones are answered, not logged/);
    refuse('10.0.0.3:5000', 'sender names 10.0.0.4:5000');
    assert.equal(lines.length, flooder + 1);
    assert.match(lines.at(-1)!, /from 10\.0\.0\.3:5000: sender names 10\.0\.0\.4:5000/);
  });

  it('keeps what a caller sent on one line: it cannot write lines of its own into the log', () => {
    const { lines, refuse } = logged();
    refuse('10.0.0.1:5000', 'client names x\n2026-12-05T00:00:00Z warn round 3: 10.0.0.2:5000 is left out of the experiment');
    assert.equal(lines.length, 1);
    assert.ok(!lines[0].includes('\n'));
    assert.match(lines[0], /client names x\\n2026/);
  });
});

describe('one task at a time', () => {
  it('refuses (429) a second task while the first runs, whoever has hung up, and takes the next once it ends, failed or not', async () => {
    const once = oneTaskAtATime('busy scoring');
    let finish!: (value: string) => void;
    const first = once(() => new Promise<string>((resolve) => (finish = resolve)));
    await assert.rejects(once(async () => 'second'), (err: HttpError) => err.status === 429 && err.reason === 'busy scoring');
    finish('first');
    assert.equal(await first, 'first');
    await assert.rejects(once(async () => Promise.reject(new Error('failed'))), /failed/);
    assert.equal(await once(async () => 'third'), 'third');
  });
});
