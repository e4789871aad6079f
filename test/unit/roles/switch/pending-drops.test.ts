/** Drops that wait while a client's update is being added at a switch. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PendingDrops } from '../../../../src/roles/switch/pending-drops';

describe('pending drops', () => {
  it('apply at once when nothing of the client is being added', () => {
    assert.equal(new PendingDrops<string>().park('c1', 'drop c1'), false);
  });

  it('wait for the update being added: moot if it made it, applied if it did not', () => {
    const made = new PendingDrops<string>();
    made.begin(['c1']);
    assert.equal(made.park('c1', 'drop c1'), true);
    assert.deepEqual(made.end(['c1'], true), []);
    const failed = new PendingDrops<string>();
    failed.begin(['c1']);
    failed.park('c1', 'drop c1');
    assert.deepEqual(failed.end(['c1'], false), ['drop c1']);
    assert.equal(failed.park('c1', 'again'), false, 'nothing is being added for it any more');
  });

  it('wait for the last of several requests for the same client (a duplicate, or a stranger under its name), and are moot if any made it', () => {
    const twice = new PendingDrops<string>();
    twice.begin(['c1']);
    twice.park('c1', 'drop c1');
    twice.begin(['c1']); // the same update again, while the first is being added
    assert.deepEqual(twice.end(['c1'], false), [], 'one request is still out: the drop still waits');
    assert.deepEqual(twice.end(['c1'], false), ['drop c1'], 'none made it: the drop applies');
    const oneMade = new PendingDrops<string>();
    oneMade.begin(['x']);
    oneMade.begin(['x']);
    oneMade.park('x', 'drop x');
    assert.deepEqual(oneMade.end(['x'], true), []);
    assert.deepEqual(oneMade.end(['x'], false), [], 'x made it with the other request');
  });

  it('keep each client of a sum from below apart', () => {
    const drops = new PendingDrops<string>();
    drops.begin(['c2', 'c3']);
    drops.park('c3', 'drop c3');
    assert.deepEqual(drops.end(['c2', 'c3'], false), ['drop c3']);
  });
});
