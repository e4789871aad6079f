/** The digits the mnist package ships, read by scanning their bytes (src/data/mnist.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { CLASSES, readDigitFile } from '../../../src/data/mnist';

const DIGITS = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
const bytes = (text: string) => new TextEncoder().encode(text);

describe('mnist', () => {
  it('reads every digit file to the very doubles JSON.parse gives', () => {
    for (let digit = 0; digit < CLASSES; digit++) {
      const file = readFileSync(join(DIGITS, `${digit}.json`));
      const expected = (JSON.parse(file.toString('utf8')) as { data: number[] }).data;
      const scanned = readDigitFile(file);
      assert.ok(scanned instanceof Float64Array, `${digit}.json was scanned, not parsed`);
      assert.equal(scanned.length, expected.length);
      const differs = expected.findIndex((v, i) => !Object.is(v, scanned[i]));
      assert.equal(differs, -1, `${digit}.json at ${differs}: ${scanned[differs]}, JSON says ${expected[differs]}`);
    }
  });

  it('scans spaces and fractions of up to 15 digits exactly, and leaves anything else to JSON.parse', () => {
    const scanned = readDigitFile(bytes('{"data":[ 0 ,\n0.1, 1,0.33333333333333, 12.5 ]}\n'));
    assert.ok(scanned instanceof Float64Array);
    assert.deepEqual([...scanned], [0, 0.1, 1, 0.33333333333333, 12.5]);
    assert.deepEqual([...readDigitFile(bytes('{"data":[]}'))], []);
    // 16 digits: 9999999999999999 is no double (it rounds to 10^16), so a scan would say 1.
    for (const text of ['{"data":[0.9999999999999999]}', '{"data":[1e-3,2]}', '{"data":[-0.5]}', '{"other":1,"data":[1]}']) {
      const parsed = readDigitFile(bytes(text));
      assert.ok(Array.isArray(parsed), `${text} went to JSON.parse`);
      assert.deepEqual(parsed, JSON.parse(text).data, text);
    }
  });

  it('refuses what JSON refuses', () => {
    for (const text of ['{"data":[1,]}', '{"data":[01]}', '{"data":[.5]}', '{"data":[1.]}', '{"data":[1 2]}', '{"data":[,1]}', '{"data":[1,,2]}', '{"data":\f[1]}', '{"data":[1]']) {
      assert.throws(() => readDigitFile(bytes(text)), SyntaxError, text);
    }
  });
});
