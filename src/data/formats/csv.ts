/**
 * A table with a header row and a label column: every other column a numeric feature. Labels are
 * class numbers (0, 1, …) or names (sorted, then numbered). Features are standardised with the
 * mean and spread this file has, which the caller logs.
 */
import { readFileSync } from 'node:fs';
import { DataFileError, maxLabel, numberClasses, type LabelledData } from './labelled';

export interface Standardisation {
  columns: string[];
  mean: number[];
  std: number[];
}

export function readCsv(file: string, labelColumn = 'label', classNames?: readonly string[]): LabelledData & { standardisation: Standardisation; delimiter: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataFileError(`${file}: cannot read it: ${(err as Error).message}`);
  }
  const delimiter = delimiterOf(text);
  const rows = parseRows(text, file, delimiter);
  if (rows.length < 2) throw new DataFileError(`${file}: needs a header row and at least one row of data`);
  const header = rows[0];
  const labelAt = header.indexOf(labelColumn);
  if (labelAt < 0) throw new DataFileError(`${file}: no column "${labelColumn}" in the header (${header.join(', ')}); name the label column with data.label_column`);
  const columns = header.filter((_, i) => i !== labelAt);
  if (!columns.length) throw new DataFileError(`${file}: no feature columns beside "${labelColumn}"`);
  const size = rows.length - 1;
  const features = new Float32Array(size * columns.length);
  const rawLabels: string[] = [];
  for (let row = 0; row < size; row++) {
    const cells = rows[row + 1];
    const where = `${file}:${row + 2}`;
    if (cells.length !== header.length) throw new DataFileError(`${where}: ${cells.length} cells, the header has ${header.length}`);
    const label = cells[labelAt];
    if (label === '') throw new DataFileError(`${where}: the label ("${labelColumn}") is missing`);
    rawLabels.push(label);
    let column = 0;
    cells.forEach((cell, i) => {
      if (i === labelAt) return;
      const value = Number(cell);
      if (cell === '' || !Number.isFinite(value)) throw new DataFileError(`${where}: column "${header[i]}" is "${cell}", not a number`);
      features[row * columns.length + column++] = value;
    });
  }
  const { labels, names } = numberLabels(rawLabels, file, classNames);
  const standardisation = standardise(features, columns);
  return { features, shape: [columns.length], labels, size, classNames: names, standardisation, delimiter };
}

const DELIMITERS = [',', ';', '\t'];

/**
 * The header row's delimiter: the candidate it holds most of, outside quotes (a comma on a tie). One
 * delimiter for the whole file: a semicolon file may have decimal commas in quoted cells.
 */
export function delimiterOf(text: string): string {
  const header = (text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0] ?? '').replace(/"[^"]*"/g, '');
  const counts = DELIMITERS.map((d) => header.split(d).length - 1);
  return DELIMITERS[counts.indexOf(Math.max(...counts))];
}

/** The rows as cells, by csv-parse (quotes, a byte-order mark, CRLF); a malformed file names its line. */
function parseRows(text: string, file: string, delimiter: string): string[][] {
  // Loaded for a CSV only (a worker that reads the digits never needs it), and outside the try: a
  // missing package is not the file's fault.
  const { parse } = require('csv-parse/sync') as typeof import('csv-parse/sync');
  try {
    return parse(text, { bom: true, delimiter, skip_empty_lines: true, trim: true, relax_column_count: true }) as string[][];
  } catch (err) {
    const { lines, message } = err as { lines?: number; message: string };
    throw new DataFileError(`${file}${lines ? `:${lines}` : ''}: not a readable CSV table (${message})`);
  }
}

/** Whole numbers stay themselves (class 3 is label 3); names go through data.class_names, or are sorted and numbered. */
function numberLabels(raw: string[], file: string, classNames?: readonly string[]): { labels: Uint8Array; names: string[] } {
  if (!classNames && raw.every((l) => /^\d+$/.test(l))) {
    if (raw.some((l) => Number(l) > 255)) throw new DataFileError(`${file}: class numbers go up to 255`);
    const labels = Uint8Array.from(raw, Number);
    return { labels, names: Array.from({ length: maxLabel(labels) + 1 }, (_, i) => String(i)) };
  }
  const { index, names } = numberClasses(raw, classNames, file);
  if (names.length > 256) throw new DataFileError(`${file}: ${names.length} classes; at most 256`);
  return { labels: Uint8Array.from(raw, (l) => index.get(l)!), names };
}

/** In place: each column to mean 0 and standard deviation 1 (a constant column to 0). */
function standardise(features: Float32Array, columns: string[]): Standardisation {
  const width = columns.length;
  const rows = features.length / width;
  const mean = new Array<number>(width).fill(0);
  const std = new Array<number>(width).fill(0);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) mean[c] += features[r * width + c] / rows;
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) std[c] += (features[r * width + c] - mean[c]) ** 2 / rows;
  for (let c = 0; c < width; c++) std[c] = Math.sqrt(std[c]);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) features[r * width + c] = std[c] ? (features[r * width + c] - mean[c]) / std[c] : 0;
  return { columns, mean, std };
}
