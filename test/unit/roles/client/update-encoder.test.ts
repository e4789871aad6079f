/** A client's update as it goes on the wire (src/roles/client/update-encoder.ts): in parts, its values never copied into a message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Settings } from '../../../../src/config/schema';
import { UpdateEncoder } from '../../../../src/roles/client/update-encoder';
import { decode, Kind } from '../../../../src/wire/codec';

describe("a client's update", () => {
  it('goes out as a head and a view of the trained weights themselves, which decode as sent', async () => {
    const weights = Float32Array.from({ length: 1000 }, (_, i) => i / 1000);
    const he = { enabled: false, key_holder: 'aggregator' } as Settings['he'];
    const source = { round: 3, attempt: 's:3.0', sender: '127.0.0.2:5000', modelId: 7, samples: 40, weights, global: new Float32Array(1000), share: 0.5 };
    const { update } = await new UpdateEncoder(he, [1000]).encode(source, undefined);
    assert.equal(update.length, 2, 'a head and the payload');
    // A joined message (codec's encode) would be a model's copy more per update held until it is sent.
    assert.equal(update[1].buffer, weights.buffer, 'the payload is a view of the weights, not a copy');
    const message = decode(Buffer.concat(update));
    assert.equal(message.kind, Kind.Update);
    assert.deepEqual(message.parameters, weights);
  });
});
