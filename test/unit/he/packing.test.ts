/** How ciphertext lists cross to and from the HE threads (src/he/packing.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handBack, pack, unpack } from '../../../src/he/packing';

describe('ciphertexts crossing to and from an HE thread', () => {
  it('go to a thread in one buffer and come out as the same bytes, each its own length', () => {
    const list = [Uint8Array.from([1, 2, 3]), new Uint8Array(0), Uint8Array.from([9])];
    const packed = pack(list);
    assert.equal(packed.packed.byteLength, 4);
    assert.deepEqual(unpack(packed), list);
  });

  it('come back moved, each buffer once, whatever else the answer holds', () => {
    const shared = new Uint8Array(8);
    const answer = [shared.subarray(0, 4), shared.subarray(4), new Uint8Array(2), 'done', 3, undefined];
    const moved = handBack(answer);
    assert.equal(moved.length, 2, 'two views of one buffer move it once');
    // As a thread's postMessage would move them: a buffer named twice, or a value that is not one, fails the transfer.
    const received = structuredClone(answer, { transfer: moved });
    assert.equal(shared.byteLength, 0, 'the thread keeps no copy: its buffer was moved');
    assert.deepEqual(received.slice(3), ['done', 3, undefined]);
    assert.equal((received[0] as Uint8Array).buffer, (received[1] as Uint8Array).buffer);
  });
});
