/** The plaintext update buffer: weighted sums in sender order, the same bits whatever the arrival order. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UpdateBuffer } from '../../../src/aggregation/update-buffer';

describe('update buffer', () => {
  it('sums weight·values of plain updates and adds pre-scaled sums as they are', () => {
    const buffer = new UpdateBuffer(2);
    buffer.add('b', { values: Float32Array.from([1, 2]), weight: 10, contributors: 1, preScaled: false });
    buffer.add('a', { values: Float32Array.from([30, 40]), weight: 20, contributors: 3, preScaled: true });
    const total = buffer.total();
    assert.deepEqual([...total.sum], [40, 60]);
    assert.equal(total.weight, 30);
    assert.equal(total.contributors, 4);
    assert.deepEqual(total.senders, ['a', 'b']);
  });

  it('gives the same bits whatever order the updates arrive in', () => {
    const values = Array.from({ length: 6 }, (_, i) => Float32Array.from({ length: 1000 }, (_, j) => Math.sin(i * 1000 + j) * 1e-3 * (i + 1)));
    const sumIn = (order: number[]) => {
      const buffer = new UpdateBuffer(1000);
      for (const i of order) buffer.add(`c${i}`, { values: values[i], weight: 100 + i * 37, contributors: 1, preScaled: false });
      return buffer.total().sum;
    };
    assert.deepEqual(sumIn([0, 1, 2, 3, 4, 5]), sumIn([5, 3, 1, 0, 4, 2]));
  });

  it('refuses an update of the wrong size', () => {
    assert.throws(() => new UpdateBuffer(3).add('a', { values: new Float32Array(2), weight: 1, contributors: 1, preScaled: false }), /2 parameters, the model 3/);
  });
});
