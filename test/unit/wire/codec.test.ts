/** The binary wire codec: every field round-trips, and damaged messages are refused with a reason. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { byteLength, decode, encode, encodeParts, HEADER_BYTES, Kind, WireError } from '../../../src/wire/codec';

const message = (parameters = Float32Array.from([1.5, -2, 3.25])) => ({
  kind: Kind.Update,
  round: 7,
  modelId: 0xdeadbeef,
  contributors: 1,
  weight: 667,
  sender: '127.0.1.3:5000',
  meta: { epochs: 2 },
  parameters,
});

describe('wire codec', () => {
  it('round-trips every field, with float32 payload and a small header', () => {
    const encoded = encode(message());
    assert.deepEqual(decode(encoded), { ...message(), count: 3 });
    assert.equal(encoded.length, HEADER_BYTES + 16 + 12 + 3 * 4); // sender padded to 16, metadata 12, payload 12
  });

  it('decodes from an unaligned buffer', () => {
    const encoded = encode(message());
    const shifted = Buffer.alloc(encoded.length + 1).subarray(1);
    encoded.copy(shifted);
    assert.deepEqual(decode(shifted).parameters, message().parameters);
  });

  it('round-trips a list of ciphertexts for the encrypted kinds', () => {
    const ciphertexts = [Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5, 6, 7, 8])];
    const encrypted = { ...message(new Float32Array(0)), kind: Kind.EncryptedUpdate, ciphertexts, count: 101_770, meta: { he: 'abc' } };
    const back = decode(encode(encrypted));
    assert.deepEqual(back.ciphertexts, ciphertexts);
    assert.equal(back.count, 101_770);
    assert.equal(back.parameters.length, 0);
    const damaged = encode(encrypted);
    damaged.writeUInt32LE(9, damaged.length - 8 - 4 * 2 - 4); // the ciphertext count
    assert.throws(() => decode(damaged), /ciphertext count of 9/);
    assert.throws(() => encode({ ...encrypted, ciphertexts: undefined }), /needs ciphertexts/);
  });

  it('gives a message in parts, a head and views of its arrays (not copies), the same bytes joined; encode makes a buffer of its own', () => {
    const ciphertexts = [Uint8Array.from([1, 2, 3]), new Uint8Array(new ArrayBuffer(16), 4, 5).fill(9)];
    const encrypted = { ...message(new Float32Array(0)), kind: Kind.EncryptedSum, ciphertexts, count: 10, meta: { he: 'abc' } };
    const plain = message(Float32Array.from([1, -2, 3.5, 4]));
    for (const [what, m, arrays] of [['encrypted', encrypted, ciphertexts], ['plaintext', plain, [plain.parameters]]] as const) {
      const parts = encodeParts(m);
      const whole = encode(m);
      assert.deepEqual(Buffer.concat(parts), whole, what);
      assert.equal(byteLength(parts), whole.length, what);
      // The payload's parts share the arrays' memory: a change to one shows in the part.
      const views = parts.slice(-arrays.length);
      views.forEach((part, i) => {
        assert.equal(part.buffer, arrays[i].buffer, `${what}: part ${i} is a view`);
        assert.equal(part.byteOffset, arrays[i].byteOffset, what);
        assert.equal(part.length, arrays[i].byteLength, what);
      });
      assert.deepEqual(decode(Buffer.concat(parts)), decode(whole), what);
    }
    // Small messages too: a buffer of its own, not a slice of Node's shared pool (callers may hand its .buffer on).
    const small = encode(message());
    assert.equal(small.byteOffset, 0);
    assert.equal(small.buffer.byteLength, small.length);
  });

  it("round-trips a bundle of updates (one vector per update), and refuses one whose contributors do not fill the payload", () => {
    const bundle = { ...message(Float32Array.from([1, 2, 3, 4, 5, 6])), kind: Kind.UpdateBundle, contributors: 2, count: 3, meta: { clients: ['a', 'b'], weights: [1, 2] } };
    const back = decode(encode(bundle));
    assert.deepEqual([back.count, back.contributors, [...back.parameters]], [3, 2, [1, 2, 3, 4, 5, 6]]);
    const damaged = encode(bundle);
    damaged.writeUInt32LE(3, 20); // three updates claimed, two sent
    assert.throws(() => decode(damaged), /cannot hold 9 float32/);
    assert.throws(() => encode({ ...bundle, contributors: 3 }), /a bundle of 3 updates of 3 parameters holds 9 values, not 6/);
  });

  const corrupt: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['a truncated body', (b) => b.subarray(0, b.length - 4), /announces \d+ bytes, the body has/],
    ['trailing bytes', (b) => Buffer.concat([b, Buffer.alloc(4)]), /announces/],
    ['a bad magic', (b) => (b.writeUInt32LE(0, 0), b), /bad magic/],
    ['another version', (b) => (b.writeUInt8(9, 4), b), /wire version 9/],
    ['an unknown kind', (b) => (b.writeUInt8(77, 5), b), /unknown message kind 77/],
    ['a count that disagrees with the payload', (b) => (b.writeUInt32LE(4, 12), b), /cannot hold 4 float32/],
    ['a negative weight', (b) => (b.writeDoubleLE(-1, 24), b), /weight must be/],
    ['less than a header', () => Buffer.alloc(10), /40-byte header/],
  ];
  for (const [name, damage, reason] of corrupt) {
    it(`refuses ${name}`, () => assert.throws(() => decode(damage(encode(message()))), (e: Error) => e instanceof WireError && reason.test(e.message)));
  }
});
