/**
 * A folder of PNG images, one sub-folder per class (`cats/001.png`, `dogs/001.png`): classes are the
 * sub-folders' names, sorted. Every image must have the same size; grey images give one channel,
 * colour ones three (alpha is dropped). Pixels in [0, 1].
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import zlib from 'node:zlib';
import type { PNG } from 'pngjs';
import { DataFileError, numberClasses, type LabelledData } from './labelled';

/** Loaded for a folder of PNGs only: a worker that reads the digits never needs it. */
const pngjs = (): typeof import('pngjs') => require('pngjs');

/** `channels`: what the model takes (data.shape), so a client whose colour images happen to be all grey still gives 3. */
export function readPngFolder(dir: string, knownClasses?: readonly string[], channels?: 1 | 3): LabelledData {
  let folders: string[];
  try {
    folders = readdirSync(dir).filter((name) => statSync(join(dir, name)).isDirectory()).sort();
  } catch (err) {
    throw new DataFileError(`${dir}: cannot read the folder: ${(err as Error).message}`);
  }
  if (!folders.length) throw new DataFileError(`${dir}: no sub-folders; put each class's PNG images in a sub-folder named after it`);
  const { index, names: classNames } = numberClasses(folders, knownClasses, dir);
  const images: { file: string; label: number; png: PNG }[] = [];
  const { PNG: decoder } = pngjs(); // outside the try below: a missing package is not the file's fault
  folders.forEach((name) => {
    const label = index.get(name)!;
    for (const entry of readdirSync(join(dir, name)).filter((f) => f.toLowerCase().endsWith('.png')).sort()) {
      const file = join(dir, name, entry);
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        throw new DataFileError(`${file}: cannot read it: ${(err as Error).message}`);
      }
      try {
        images.push({ file, label, png: decoder.sync.read(bytes) });
      } catch (err) {
        throw new DataFileError(`${file}: ${pngProblem(bytes) ?? `its image data cannot be decoded (${(err as Error).message})`}`);
      }
    }
  });
  if (!images.length) throw new DataFileError(`${dir}: no .png files in its sub-folders (${classNames.join(', ')})`);
  const [first] = images;
  const odd = images.find((i) => i.png.width !== first.png.width || i.png.height !== first.png.height);
  if (odd) {
    throw new DataFileError(`${odd.file}: ${odd.png.width}x${odd.png.height}, but ${first.file} is ${first.png.width}x${first.png.height}; every image must have the same size`);
  }
  const { width, height } = first.png;
  const depth = channels ?? (images.every((i) => isGrey(i.png)) ? 1 : 3);
  const per = width * height * depth;
  const features = new Float32Array(images.length * per);
  images.forEach(({ png }, n) => {
    for (let p = 0; p < width * height; p++) {
      for (let c = 0; c < depth; c++) features[n * per + p * depth + c] = png.data[p * 4 + c] / 255;
    }
  });
  return { features, shape: [height, width, depth], labels: Uint8Array.from(images, (i) => i.label), size: images.length, classNames };
}

/** pngjs decodes every PNG to RGBA: grey when red, green and blue agree everywhere. */
function isGrey(png: PNG): boolean {
  for (let i = 0; i < png.data.length; i += 4) if (png.data[i] !== png.data[i + 1] || png.data[i] !== png.data[i + 2]) return false;
  return true;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * What is wrong with a PNG the decoder refused, in a user's words (the decoder's own text is about
 * its streams): not a PNG at all, cut short, or a chunk whose checksum does not match. Undefined when
 * its chunks look whole (the compressed data itself is then at fault).
 */
export function pngProblem(bytes: Buffer): string | undefined {
  if (bytes.length < SIGNATURE.length || !bytes.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    return `not a PNG file (${bytes.length} bytes, without the PNG signature at the start: another format named .png?)`;
  }
  let at = SIGNATURE.length;
  const seen: string[] = [];
  while (at < bytes.length) {
    if (at + 8 > bytes.length) return `cut short: it ends inside a chunk header at byte ${at} of ${bytes.length} (was it copied whole?)`;
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (at + 12 + length > bytes.length) return `cut short: it ends inside its ${type} chunk (${Math.min(length, bytes.length - at - 8)} of ${length} bytes there; was it copied whole?)`;
    if (zlib.crc32(bytes.subarray(at + 4, at + 8 + length)) !== bytes.readUInt32BE(at + 8 + length)) return `corrupt: its ${type} chunk at byte ${at} fails its checksum`;
    seen.push(type);
    at += 12 + length;
    if (type === 'IEND') break;
  }
  if (seen[0] !== 'IHDR') return 'corrupt: it does not begin with the IHDR chunk (the image\'s size and colour type)';
  if (!seen.includes('IDAT')) return 'has no image data (no IDAT chunk)';
  if (!seen.includes('IEND')) return `cut short: it ends after ${seen.length} chunks without the closing IEND chunk (was it copied whole?)`;
  return undefined;
}
