/** The process's TensorFlow.js work one piece at a time, in the order asked, with each wait measured. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inTurn } from '../../../src/model/turns';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('turns on the shared backend', () => {
  it('runs work one at a time in the order asked; each waits for those before it, and a failure frees the turn', async () => {
    const log: string[] = [];
    const job = (name: string, ms: number, fail = false) => async () => {
      log.push(`${name} starts`);
      await sleep(ms);
      log.push(`${name} ends`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
    const first = inTurn(job('a', 80));
    const second = inTurn(job('b', 40, true));
    const third = inTurn(job('c', 10));
    const [a, b, c] = await Promise.allSettled([first, second, third]);
    assert.deepEqual(log, ['a starts', 'a ends', 'b starts', 'b ends', 'c starts', 'c ends']);
    assert.equal(a.status === 'fulfilled' && a.value.waitedMs < 40, true, 'the first waits for nobody');
    assert.equal(b.status, 'rejected');
    assert.ok(c.status === 'fulfilled' && c.value.value === 'c');
    // The third waited for both before it: 80 + 40 ms of their work.
    assert.ok(c.status === 'fulfilled' && c.value.waitedMs >= 115, `waited ${c.status === 'fulfilled' && c.value.waitedMs} ms`);
  });
});
