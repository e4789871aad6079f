/** What every reader of a data set returns: samples as floats, their shape, and integer labels. */
export interface LabelledData {
  /** Row-major, `shape`'s product of floats per sample. */
  features: Float32Array;
  /** One sample's shape: [features] for a table, [height, width, channels] for images. */
  shape: number[];
  labels: Uint8Array;
  size: number;
  /** Class names by label, where the source names them (a folder per class); else "0", "1", … */
  classNames: string[];
}

export class DataFileError extends Error {}

export const sampleSize = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Samples of each class, by label. */
export function classHistogram(labels: Uint8Array, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}
