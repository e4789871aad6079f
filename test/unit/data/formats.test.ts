/** Each reader on real files made from the shipped digits, and each on a broken file: an error naming the path. */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readCifarBatches } from '../../../src/data/formats/cifar';
import { readCsv } from '../../../src/data/formats/csv';
import { readIdx, readIdxPair } from '../../../src/data/formats/idx';
import { classHistogram, DataFileError } from '../../../src/data/formats/labelled';
import { pngProblem, readPngFolder } from '../../../src/data/formats/png-folder';
import { IMAGE_SIZE } from '../../../src/data/mnist';
import { pooledRows, someDigits, writeCifar, writeCsv, writeIdx, writePng, writePngFolder } from '../../../src/data/sample-files';
import { tempDir } from '../../helpers/temp-dir';

const dir = tempDir('fl-formats-');
const digits = someDigits(60);
const close = (a: number, b: number, tolerance: number) => Math.abs(a - b) <= tolerance;
const rejects = (read: () => unknown, pattern: RegExp) => assert.throws(read, (err: Error) => err instanceof DataFileError && pattern.test(err.message), String(pattern));

describe('IDX', () => {
  for (const gzip of [false, true]) {
    it(`reads the digits back from IDX${gzip ? ' (gzipped)' : ''}: same labels, same pixels to 1/255`, () => {
      const files = writeIdx(join(dir, gzip ? 'idx-gz' : 'idx'), digits, gzip);
      const data = readIdxPair(files.images, files.labels);
      assert.equal(data.size, 60);
      assert.deepEqual(data.shape, [28, 28, 1]);
      assert.deepEqual([...data.labels], [...digits.labels]);
      assert.ok(data.features.every((v, i) => close(v, digits.images[i], 0.5 / 255 + 1e-6)));
      assert.deepEqual(classHistogram(data.labels, 10), new Array(10).fill(6));
    });
  }

  it('names a truncated file, a wrong magic number, swapped files and a count mismatch', () => {
    const { images, labels } = writeIdx(join(dir, 'idx-bad'), digits);
    const whole = readFileSync(images);
    const cut = join(dir, 'idx-bad', 'cut');
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    rejects(() => readIdx(cut), new RegExp(`${cut}: truncated: its header says 60 x 28 x 28 values`));
    const wrong = join(dir, 'idx-bad', 'wrong');
    writeFileSync(wrong, Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), whole.subarray(4)]));
    rejects(() => readIdx(wrong), new RegExp(`${wrong}: not an IDX file \\(magic 0x504b0304`));
    rejects(() => readIdxPair(labels, images), /holds 60 x 28 x 28 values and .* 60: are the two files swapped\?/);
    const fewer = writeIdx(join(dir, 'idx-fewer'), someDigits(50));
    rejects(() => readIdxPair(images, fewer.labels), /50 labels for the 60 images/);
    const gz = writeIdx(join(dir, 'idx-gz-cut'), digits, true);
    writeFileSync(gz.images, readFileSync(gz.images).subarray(0, 200));
    rejects(() => readIdx(gz.images), /gzipped, but it does not unzip .*truncated\?/);
  });
});

describe('CSV', () => {
  it('reads 7x7 pooled digits: 49 standardised features, labels, and the standardisation it used', () => {
    const data = readCsv(writeCsv(join(dir, 'pooled.csv'), digits));
    assert.equal(data.size, 60);
    assert.deepEqual(data.shape, [49]);
    assert.deepEqual([...data.labels], [...digits.labels]);
    const raw = pooledRows(digits);
    const column = 24; // the middle block: never constant
    const mean = raw.reduce((s, r) => s + r[column], 0) / 60;
    assert.ok(close(data.standardisation.mean[column], mean, 1e-9));
    assert.ok(close(data.features[column], (raw[0][column] - mean) / data.standardisation.std[column], 1e-5));
    const columnMean = Array.from({ length: 60 }, (_, r) => data.features[r * 49 + column]).reduce((a, b) => a + b, 0) / 60;
    assert.ok(close(columnMean, 0, 1e-5));
  });

  it('numbers class names in sorted order', () => {
    const file = join(dir, 'names.csv');
    writeFileSync(file, 'x,species\n1,versicolor\n2,setosa\n3,versicolor\n');
    const data = readCsv(file, 'species');
    assert.deepEqual(data.classNames, ['setosa', 'versicolor']);
    assert.deepEqual([...data.labels], [1, 0, 1]);
  });

  it('numbers names by data.class_names when given, so a file missing a class numbers the rest alike; names one not listed', () => {
    const file = join(dir, 'some-classes.csv');
    writeFileSync(file, 'x,species\n1,virginica\n2,versicolor\n');
    const names = ['setosa', 'versicolor', 'virginica'];
    assert.deepEqual([...readCsv(file, 'species', names).labels], [2, 1], 'sorted as found it would be [1, 0]');
    writeFileSync(file, 'x,species\n1,virginca\n');
    rejects(() => readCsv(file, 'species', names), /class "virginca" is not one of data.class_names \(setosa, versicolor, virginica\)/);
    const folder = writePngFolder(join(dir, 'png-some'), someDigits(3)); // digit-0, digit-1, digit-2
    const all = Array.from({ length: 10 }, (_, d) => `digit-${9 - d}`); // a config may order them as it likes
    assert.deepEqual([...new Set(readPngFolder(folder, all).labels)].sort(), [7, 8, 9]);
  });

  it('names the file and line of a missing label, a cell that is not a number, a short row, a missing label column', () => {
    const file = join(dir, 'bad.csv');
    writeFileSync(file, 'a,b,label\n1,2,0\n3,4,\n');
    rejects(() => readCsv(file), new RegExp(`${file}:3: the label \\("label"\\) is missing`));
    writeFileSync(file, 'a,b,label\n1,2,0\n3,x7,1\n');
    rejects(() => readCsv(file), new RegExp(`${file}:3: column "b" is "x7", not a number`));
    writeFileSync(file, 'a,b,label\n1,2\n');
    rejects(() => readCsv(file), new RegExp(`${file}:2: 2 cells, the header has 3`));
    rejects(() => readCsv(file, 'class'), /no column "class" in the header \(a, b, label\); name the label column with data.label_column/);
  });

  it('reads what spreadsheets write: a byte-order mark, CRLF, quoted names holding the delimiter, semicolons or tabs', () => {
    const file = join(dir, 'excel.csv');
    writeFileSync(file, '\uFEFF"sepal; length";"width";species\r\n5.1;3.5;"setosa"\r\n7.0;3.2;"versi; color"\r\n');
    const table = readCsv(file, 'species');
    assert.equal(table.delimiter, ';');
    assert.deepEqual(table.standardisation.columns, ['sepal; length', 'width']);
    assert.deepEqual(table.classNames, ['setosa', 'versi; color']);
    assert.deepEqual([...table.labels], [0, 1]);
    writeFileSync(file, 'a\tb\tlabel\n1\t2\t0\n3\t4\t1\n');
    assert.equal(readCsv(file).delimiter, '\t');
    assert.equal(readCsv(file).size, 2);
    writeFileSync(file, 'a,b,label\n1,"2,0\n');
    rejects(() => readCsv(file), new RegExp(`${file}(:\\d+)?: not a readable CSV table \\(.*quote`, 'i'));
  });
});

describe('CIFAR-10 binary batches', () => {
  it('reads padded, coloured digits back into 32x32x3, two batches in order', () => {
    const first = writeCifar(join(dir, 'data_batch_1.bin'), someDigits(20));
    const second = writeCifar(join(dir, 'data_batch_2.bin'), digits);
    const data = readCifarBatches([first, second]);
    assert.equal(data.size, 80);
    assert.deepEqual(data.shape, [32, 32, 3]);
    assert.deepEqual([...data.labels.subarray(20)], [...digits.labels]);
    // Digit 0 of the second batch, pixel (14, 14) of the digit is (16, 16) here; red plane untinted.
    const n = 20;
    const red = data.features[n * 3072 + (16 * 32 + 16) * 3];
    assert.ok(close(red, digits.images[14 * 28 + 14], 0.5 / 255 + 1e-6));
    assert.equal(data.features[n * 3072], 0, 'the padding is black');
  });

  it('names a truncated batch and a label out of range', () => {
    const file = join(dir, 'short.bin');
    writeFileSync(file, readFileSync(writeCifar(join(dir, 'whole.bin'), someDigits(3))).subarray(0, 3073 * 2 + 5));
    rejects(() => readCifarBatches([file]), new RegExp(`${file}: 6151 bytes is not a whole number of CIFAR-10 records`));
    const bytes = readFileSync(join(dir, 'whole.bin'));
    bytes[3073] = 12;
    writeFileSync(file, bytes);
    rejects(() => readCifarBatches([file]), /record 1 has label 12; CIFAR-10 labels are 0-9/);
  });
});

describe('a folder of PNG images', () => {
  it('reads one grey channel per digit, classes from the sub-folders', () => {
    const data = readPngFolder(writePngFolder(join(dir, 'png'), digits));
    assert.equal(data.size, 60);
    assert.deepEqual(data.shape, [28, 28, 1]);
    assert.deepEqual(data.classNames, Array.from({ length: 10 }, (_, d) => `digit-${d}`));
    assert.deepEqual(classHistogram(data.labels, 10), new Array(10).fill(6));
    // Files sort by name within a class: digit n of class c is the c-th, (n/10)-th written.
    const firstOfClass3 = 3;
    const at = data.labels.indexOf(3);
    assert.ok(data.features.subarray(at * IMAGE_SIZE, (at + 1) * IMAGE_SIZE).every((v, i) => close(v, digits.images[firstOfClass3 * IMAGE_SIZE + i], 0.5 / 255 + 1e-6)));
  });

  it('names the image whose size differs, and a folder with no classes', () => {
    const folder = join(dir, 'mixed');
    writePngFolder(folder, someDigits(4));
    writePng(join(folder, 'digit-1', 'zz-big.png'), 32, 32, () => 0);
    rejects(() => readPngFolder(folder), new RegExp(`${join(folder, 'digit-1', 'zz-big.png')}: 32x32, but .* is 28x28; every image must have the same size`));
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    rejects(() => readPngFolder(empty), /no sub-folders; put each class's PNG images in a sub-folder/);
    writeFileSync(join(folder, 'digit-0', 'broken.png'), 'not a png');
    rejects(() => readPngFolder(folder), /broken\.png: not a PNG file \(9 bytes, without the PNG signature at the start/);
  });

  it('says what is wrong with a broken PNG, not what the decoder says of its streams', () => {
    const folder = join(dir, 'broken');
    writePngFolder(folder, someDigits(2));
    const file = join(folder, 'digit-0', readdirSync(join(folder, 'digit-0'))[0]);
    const whole = readFileSync(file);
    // Cut short (a copy that stopped half-way): the decoder would say "There are some read requests waitng on finished stream".
    writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
    rejects(() => readPngFolder(folder), /: cut short: it ends inside its IDAT chunk \(\d+ of \d+ bytes there; was it copied whole\?\)/);
    // A byte flipped in the image data: its chunk's checksum no longer matches.
    const flipped = Buffer.from(whole);
    const idat = flipped.indexOf('IDAT');
    flipped[idat + 10] ^= 0xff;
    writeFileSync(file, flipped);
    rejects(() => readPngFolder(folder), /: corrupt: its IDAT chunk at byte \d+ fails its checksum/);
    // Whole but for the closing chunk (the decoder may take it or not: what is wrong is said either way).
    assert.match(pngProblem(whole.subarray(0, whole.length - 12))!, /^cut short: it ends after \d+ chunks without the closing IEND chunk/);
    assert.match(pngProblem(whole.subarray(0, whole.length - 2))!, /^cut short: it ends inside its IEND chunk \(0 of 0 bytes there/);
    assert.equal(pngProblem(whole), undefined, 'a whole PNG: nothing to say');
  });
});
