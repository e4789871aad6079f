/**
 * CIFAR-10's binary batches (`data_batch_1.bin` …): records of one label byte and 3,072 pixel bytes,
 * the red plane, then green, then blue, each 32 x 32 row by row. Read into [32, 32, 3], in [0, 1].
 */
import { readFileSync } from 'node:fs';
import { DataFileError, type LabelledData } from './labelled';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export function readCifarBatches(files: string[]): LabelledData {
  const batches = files.map((file) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new DataFileError(`${file}: cannot read it: ${(err as Error).message}`);
    }
    if (bytes.length === 0 || bytes.length % RECORD !== 0) {
      throw new DataFileError(`${file}: ${bytes.length} bytes is not a whole number of CIFAR-10 records (${RECORD} bytes each): truncated, or not a CIFAR-10 binary batch`);
    }
    for (let at = 0; at < bytes.length; at += RECORD) {
      if (bytes[at] > 9) throw new DataFileError(`${file}: record ${at / RECORD} has label ${bytes[at]}; CIFAR-10 labels are 0-9`);
    }
    return bytes;
  });
  const size = batches.reduce((n, b) => n + b.length / RECORD, 0);
  const features = new Float32Array(size * 3 * PLANE);
  const labels = new Uint8Array(size);
  let sample = 0;
  for (const bytes of batches) {
    for (let at = 0; at < bytes.length; at += RECORD, sample++) {
      labels[sample] = bytes[at];
      const out = sample * 3 * PLANE;
      for (let pixel = 0; pixel < PLANE; pixel++) {
        for (let channel = 0; channel < 3; channel++) features[out + pixel * 3 + channel] = bytes[at + 1 + channel * PLANE + pixel] / 255;
      }
    }
  }
  return { features, shape: [SIDE, SIDE, 3], labels, size, classNames: CIFAR10_CLASSES };
}
