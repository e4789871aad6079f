/**
 * IDX files, the format MNIST, Fashion-MNIST, EMNIST and KMNIST ship in, gzipped or not: a magic
 * number (two zero bytes, a type byte, the number of dimensions), the dimensions as big-endian
 * 32-bit counts, then the data. Images are scaled to [0, 1]; a label file holds one byte each.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataFileError, maxLabel, type LabelledData } from './labelled';

const TYPES: Record<number, { bytes: number; read: (view: DataView, at: number) => number }> = {
  0x08: { bytes: 1, read: (v, at) => v.getUint8(at) },
  0x09: { bytes: 1, read: (v, at) => v.getInt8(at) },
  0x0b: { bytes: 2, read: (v, at) => v.getInt16(at) },
  0x0c: { bytes: 4, read: (v, at) => v.getInt32(at) },
  0x0d: { bytes: 4, read: (v, at) => v.getFloat32(at) },
  0x0e: { bytes: 8, read: (v, at) => v.getFloat64(at) },
};

export interface IdxArray {
  type: number;
  dims: number[];
  values: Float64Array | Uint8Array;
}

function contents(file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new DataFileError(`${file}: cannot read it: ${(err as Error).message}`);
  }
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (err) {
    throw new DataFileError(`${file}: gzipped, but it does not unzip (${(err as Error).message}): truncated?`);
  }
}

export function readIdx(file: string): IdxArray {
  const bytes = contents(file);
  const magic = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const type = TYPES[bytes[2]];
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !type || bytes[3] === 0) {
    throw new DataFileError(`${file}: not an IDX file (magic 0x${magic.toString(16).padStart(8, '0')}; IDX starts 0x0000, a type byte 08-0e, the number of dimensions)`);
  }
  const rank = bytes[3];
  if (bytes.length < 4 + rank * 4) throw new DataFileError(`${file}: truncated in its header (${bytes.length} bytes for ${rank} dimensions)`);
  const dims = Array.from({ length: rank }, (_, i) => bytes.readUInt32BE(4 + i * 4));
  const count = dims.reduce((a, b) => a * b, 1);
  const start = 4 + rank * 4;
  const expected = start + count * type.bytes;
  if (bytes.length < expected) {
    throw new DataFileError(`${file}: truncated: its header says ${dims.join(' x ')} values (${expected} bytes), the file has ${bytes.length}`);
  }
  if (bytes[2] === 0x08) return { type: 0x08, dims, values: new Uint8Array(bytes.buffer, bytes.byteOffset + start, count) };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = type.read(view, start + i * type.bytes);
  return { type: bytes[2], dims, values };
}

/** An images file ([n, rows, cols] or [n, rows, cols, channels]) and its labels file ([n]). */
export function readIdxPair(imagesFile: string, labelsFile: string): LabelledData {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dims.length === 1 && labels.dims.length > 1) throw new DataFileError(`${labelsFile}: holds ${labels.dims.join(' x ')} values and ${imagesFile} ${images.dims[0]}: are the two files swapped?`);
  if (images.dims.length < 2) throw new DataFileError(`${imagesFile}: holds ${images.dims.length} dimension; images need a count and a shape`);
  if (labels.dims.length !== 1) throw new DataFileError(`${labelsFile}: a labels file has one dimension, this one ${labels.dims.length} (${labels.dims.join(' x ')}): are the two files swapped?`);
  const [size, ...rest] = images.dims;
  if (labels.dims[0] !== size) throw new DataFileError(`${labelsFile}: ${labels.dims[0]} labels for the ${size} images of ${imagesFile}`);
  const shape = rest.length === 2 ? [...rest, 1] : rest;
  const scale = images.type === 0x08 ? 1 / 255 : 1;
  const features = Float32Array.from(images.values, (v) => v * scale);
  const out = Uint8Array.from(labels.values);
  if (labels.values.some((v) => v < 0 || v > 255 || !Number.isInteger(v))) throw new DataFileError(`${labelsFile}: labels must be whole numbers 0-255`);
  const classes = maxLabel(out) + 1;
  return { features, shape, labels: out, size, classNames: Array.from({ length: classes }, (_, i) => String(i)) };
}
