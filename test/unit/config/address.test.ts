/** Node addresses as config.json writes them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalAddress, parseAddress } from '../../../src/config/address';

describe('addresses', () => {
  it('reads IP and IP:port, port 5000 by default', () => {
    assert.deepEqual(parseAddress('10.0.0.1'), { host: '10.0.0.1', port: 5000 });
    assert.deepEqual(parseAddress('127.0.1.2:6000'), { host: '127.0.1.2', port: 6000 });
    assert.equal(canonicalAddress('localhost'), 'localhost:5000');
  });
  for (const bad of ['', '1.2.3.256', '1.2.3.4:0', '1.2.3.4:99999', '1.2.3.4:x', 'a:b:c', 'bad host']) {
    it(`refuses "${bad}"`, () => assert.throws(() => parseAddress(bad)));
  }
});
