/** The digits the mnist package ships, read by scanning their bytes (src/data/mnist.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { CLASSES, IMAGE_SIZE, loadMnist, readDigitFile } from '../../../src/data/mnist';

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

  it('scans spaces and long fractions exactly, and leaves anything else to JSON.parse', () => {
    assert.deepEqual([...readDigitFile(bytes('{"data":[ 0 ,\n0.1, 1,0.333333333333333, 12.5 ]}\n'))], [0, 0.1, 1, 0.333333333333333, 12.5]);
    for (const text of ['{"data":[1e-3,2]}', '{"data":[-0.5]}', '{"data":[0.1234567890123456]}', '{"other":1,"data":[1]}', '{"data":[]}']) {
      assert.deepEqual([...readDigitFile(bytes(text))], JSON.parse(text).data, text);
    }
    assert.throws(() => readDigitFile(bytes('{"data":[1,]}')), SyntaxError);
  });

  it('holds 10,000 digits of 784 pixels in [0, 1], each class present', () => {
    const { images, labels, size } = loadMnist();
    assert.equal(size, 10_000);
    assert.equal(images.length, size * IMAGE_SIZE);
    assert.ok(images.every((v) => v >= 0 && v <= 1));
    assert.deepEqual(new Set(labels), new Set(Array.from({ length: CLASSES }, (_, d) => d)));
  });
});
