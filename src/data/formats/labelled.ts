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

/** The largest label (a loop: spreading 200,000 labels into Math.max overflows the stack). */
export function maxLabel(labels: Uint8Array): number {
  let max = 0;
  for (const label of labels) if (label > max) max = label;
  return max;
}

/**
 * Class names to numbers: by the config's `data.class_names` when it gives them (so every client
 * numbers its own files alike, whatever classes each holds), else sorted as found.
 */
export function numberClasses(found: string[], classNames: readonly string[] | undefined, where: string): { index: Map<string, number>; names: string[] } {
  const names = classNames ? [...classNames] : [...new Set(found)].sort();
  const index = new Map(names.map((name, i) => [name, i]));
  const unknown = found.find((name) => !index.has(name));
  if (unknown !== undefined) throw new DataFileError(`${where}: class "${unknown}" is not one of data.class_names (${names.join(', ')})`);
  return { index, names };
}

/** Samples of each class, by label. */
export function classHistogram(labels: Uint8Array, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}
