/** What every benchmark shares: medians, timing, progress lines on stderr, numbers as the tables print them. */
import { resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
export const log = (line: string) => process.stderr.write(`${line}\n`);
/** A number as RESULTS.md prints it: thousands separated, `digits` after the point. */
export const fixed = (value: number, digits = 0) => value.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const megabytes = (bytes: number, digits = 2) => fixed(bytes / 1e6, digits);

export async function timed<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

/** Medians, per key, of `repeats` runs of fn. */
export async function medians<K extends string>(repeats: number, fn: () => Promise<Record<K, number>> | Record<K, number>): Promise<Record<K, number>> {
  const runs: Record<K, number>[] = [];
  for (let r = 0; r < repeats; r++) runs.push(await fn());
  return Object.fromEntries(Object.keys(runs[0]).map((k) => [k, median(runs.map((run) => run[k as K]))])) as Record<K, number>;
}
