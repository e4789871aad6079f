/** Quantized plaintext updates (he.quantize with HE off): a byte or two a value on the wire. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExperimentConfig } from '../../../src/config/load';
import { decode, encode, Kind } from '../../../src/wire/codec';
import { quantizedMeta } from '../../../src/wire/quantized';

describe('quantized plaintext updates (he.quantize with HE off)', () => {
  const values = Float32Array.from({ length: 5000 }, (_, i) => 0.4 * Math.sin(i * 0.7));
  const base = { kind: Kind.QuantizedUpdate, round: 3, modelId: 7, contributors: 1, weight: 420, sender: '127.0.1.1:5000', parameters: values };

  for (const bits of [8, 16]) {
    it(`${bits} bits: ${bits / 8} byte(s) a value on the wire, read back within a unit, clipped at ±clip`, () => {
      const quantized = quantizedMeta({ bits, clip: [0.3, 0.25] }, values.length, [3000, 2000]);
      const body = encode({ ...base, meta: { attempt: 'a', quantized } });
      assert.ok(body.length >= values.length * (bits / 8) && body.length < values.length * (bits / 8) + 200, `${body.length} bytes for ${values.length} values`);
      const back = decode(body);
      assert.equal(back.kind, Kind.QuantizedUpdate);
      for (let i = 0; i < values.length; i++) {
        const clip = i < 3000 ? 0.3 : 0.25;
        const unit = clip / (2 ** (bits - 1) - 1);
        assert.ok(Math.abs(back.parameters[i] - Math.max(-clip, Math.min(clip, values[i]))) < unit + 1e-7, `value ${i}: ${back.parameters[i]} for ${values[i]}`);
      }
    });
  }

  it('a quantized update whose meta or payload does not add up is refused, naming why', () => {
    const quantized = quantizedMeta({ bits: 8, clip: 0.25 }, values.length);
    assert.throws(() => encode({ ...base, meta: {} }), /needs meta.quantized.bits/);
    assert.throws(() => encode({ ...base, meta: { quantized: { bits: 8, units: [[4000, 0.001]] } } }), /end at 4000, but the update has 5000 values/);
    // What another sender might put on the wire: a good message with its meta changed, byte for byte.
    const good = encode({ ...base, meta: { quantized } });
    const metaAt = 40 + Math.ceil(Buffer.byteLength(base.sender) / 4) * 4;
    const edited = (from: string, to: string) => {
      const body = Buffer.from(good);
      const meta = body.toString('utf8', metaAt, metaAt + body.readUInt32LE(36));
      assert.ok(meta.includes(from) && from.length === to.length, meta);
      body.write(meta.replace(from, to), metaAt, 'utf8');
      return body;
    };
    assert.equal(decode(good).parameters.length, values.length);
    assert.throws(() => decode(edited('"bits":8', '"bits":0')), /meta.quantized.bits between 2 and 16/);
    assert.throws(() => decode(edited('[[5000,', '[[4000,')), /end at 4000, but the update has 5000 values/);
    assert.throws(() => decode(edited('[[5000,0.0', '[[5000,-10')), /units positive/);
    assert.throws(() => decode(edited('"bits":8', '"bits":9')), /payload of 5000 bytes cannot hold 5000 9-bit values/);
  });

  it('more than 16 bits with HE off is a config error', () => {
    assert.throws(
      () =>
        parseExperimentConfig({
          he: { enabled: false, quantize: { bits: 20 } },
          others: { '127.0.0.1:5000': { type: 'aggregator' }, '127.0.1.1:5000': { type: 'client', client_number: 1, index: 0 } },
        }),
      /he.quantize.bits: 20; a plaintext update \(he.enabled false\) holds at most 16 bits a value/,
    );
  });
});
