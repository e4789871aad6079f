/**
 * A node's samples, from the source the config names: the shipped digits, or files on its own
 * machine in one of the readers' formats. What is read is checked against what the model is built
 * for (data.shape, data.classes), so a wrong file stops the node before round 1, naming the file.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inputOf, type DataFiles } from '../config/data-schema';
import type { Settings } from '../config/schema';
import { readCifarBatches } from './formats/cifar';
import { readCsv } from './formats/csv';
import { readIdxPair } from './formats/idx';
import { DataFileError, maxLabel, type LabelledData } from './formats/labelled';
import { readPngFolder } from './formats/png-folder';
import { loadMnist, subset, type Dataset } from './mnist';
import { clientSlice, holdOut, testIndices, testSlice } from './partition';

type DataSettings = Settings['data'];

export interface Loaded {
  data: Dataset;
  /** Where it came from, for the log: the files, and what was done to them. */
  from: string;
  classNames: string[];
}

/** What a sample is called where a run is described: the shipped digits, or a lab's own samples. */
export const sampleNoun = (data: Pick<DataSettings, 'source'>) => (data.source === 'mnist' ? 'digits' : 'samples');

/** The files a node reads: its own (`others[addr].data`), else data.path, `{index}` filled in. */
export function filesFor(settings: DataSettings, own: DataFiles | undefined, index?: number): DataFiles {
  const fill = (path?: string) => (path === undefined || index === undefined ? path : path.replaceAll('{index}', String(index)));
  return { path: fill(own?.path ?? settings.path), labels_path: fill(own?.labels_path ?? settings.labels_path) };
}

/** Whether a node's files are its own (a path per node, or {index} in the path): it then trains on all of them. */
export const ownFiles = (settings: DataSettings, own: DataFiles | undefined) => settings.source !== 'mnist' && (!!own?.path || !!settings.path?.includes('{index}'));

/**
 * How long a file read stays with the process for its other clients: several in one worker read one
 * file once. Only in a process of several nodes (shareReads): elsewhere it would only hold memory.
 */
const SHARED_READ_MS = 60_000;
let sharing = false;
const recentReads = new Map<string, Loaded>();

/** This process serves several nodes (main.js --nodes): a file one reads is kept a minute for the others. */
export function shareReads(): void {
  sharing = true;
}

export function loadSource(settings: DataSettings, files: DataFiles): Loaded {
  if (settings.source === 'mnist' || !sharing) return readSource(settings, files); // the digits are kept by loadMnist
  // The file as it is now: one replaced since is read again.
  const stamp = [files.path, files.labels_path].map((path) => (path ? statSync(path, { throwIfNoEntry: false }) : undefined)).map((s) => s && [s.mtimeMs, s.size, s.ino]);
  const key = JSON.stringify([settings, files, stamp]);
  const recent = recentReads.get(key);
  if (recent) return recent;
  const loaded = readSource(settings, files);
  recentReads.set(key, loaded);
  setTimeout(() => recentReads.delete(key), SHARED_READ_MS).unref();
  return loaded;
}

function readSource(settings: DataSettings, files: DataFiles): Loaded {
  if (settings.source === 'mnist') {
    const digits = loadMnist();
    return { data: digits, from: 'the mnist package (10,000 digits)', classNames: Array.from({ length: 10 }, (_, i) => String(i)) };
  }
  // The config's checks see to a path for every node; a node config without one says so rather than crash.
  if (files.path === undefined) throw new DataFileError(`data.path: no file to read with source "${settings.source}" (data.path, or this node's own others[addr].data.path)`);
  const path = files.path;
  if (settings.source === 'idx' && files.labels_path === undefined) throw new DataFileError(`${path}: data.labels_path is needed with source "idx"`);
  const read = readerFor(settings, path, files.labels_path!);
  checkFits(read.data, inputOf(settings), path);
  return { data: { images: read.data.features, labels: read.data.labels, size: read.data.size }, from: read.from, classNames: read.data.classNames };
}

function readerFor(settings: DataSettings, path: string, labels: string): { data: LabelledData; from: string } {
  switch (settings.source) {
    case 'idx':
      return { data: readIdxPair(path, labels), from: `IDX ${path} + ${labels}` };
    case 'cifar':
      return { data: readCifarBatches(batchFiles(path)), from: `CIFAR-10 batches ${path}` };
    case 'png': {
      const channels = settings.shape?.[2] === 3 ? 3 : settings.shape?.[2] === 1 ? 1 : undefined;
      return { data: readPngFolder(path, settings.class_names, channels), from: `PNG folder ${path}` };
    }
    case 'csv': {
      const table = readCsv(path, settings.label_column, settings.class_names);
      const { columns, mean, std } = table.standardisation;
      const stated = columns.map((c, i) => `${c} ${mean[i].toPrecision(4)}±${std[i].toPrecision(4)}`);
      const shown = stated.length > 6 ? `${stated.slice(0, 6).join(', ')}, … (${stated.length} columns)` : stated.join(', ');
      const delimiter = table.delimiter === '\t' ? 'tabs' : `"${table.delimiter}"`;
      return { data: table, from: `CSV ${path} (cells between ${delimiter}), label "${settings.label_column}", each column standardised with this file's mean±std: ${shown}` };
    }
    default:
      throw new DataFileError(`source "${settings.source}" has no reader`);
  }
}

/** A batch file, or a folder of them (`*.bin`, sorted). */
function batchFiles(path: string): string[] {
  if (!existsSync(path) || !statSync(path).isDirectory()) return [path];
  const files = readdirSync(path).filter((f) => f.endsWith('.bin')).sort();
  if (!files.length) throw new DataFileError(`${path}: no .bin batches in the folder`);
  return files.map((f) => join(path, f));
}

function checkFits(data: LabelledData, input: { shape: number[]; classes: number }, path: string): void {
  if (data.shape.join('x') !== input.shape.join('x')) {
    throw new DataFileError(`${path}: its samples have shape [${data.shape.join(', ')}], but data.shape is [${input.shape.join(', ')}] (what the model is built for)`);
  }
  const top = maxLabel(data.labels);
  if (top >= input.classes) throw new DataFileError(`${path}: has label ${top} (class "${data.classNames[top]}"), but data.classes is ${input.classes}`);
}

export interface ClientData {
  train: Dataset;
  /** Its share for federated evaluation (key at the clients). */
  test: Dataset;
  from: string;
  classNames: string[];
}

/**
 * A client's samples. Files of its own: a seeded tenth held out for federated evaluation, the rest
 * to train on. One source shared by all (the digits, or one file on every machine): the held-out
 * set first, then slice `index` of `clients` of the rest (iid, dirichlet or classes).
 */
export function clientData(settings: DataSettings, own: DataFiles | undefined, clients: number, index: number): ClientData {
  if (ownFiles(settings, own) && settings.train_size !== undefined) throw new DataFileError('data.train_size slices one shared data set; with files of its own a client trains on all of them');
  const loaded = loadSource(settings, filesFor(settings, own, index));
  const { data } = loaded;
  if (ownFiles(settings, own)) {
    const { test, train } = holdOut(data.size, Math.max(1, Math.round(data.size / 10)), settings.seed);
    return { train: subset(data, train), test: subset(data, test), from: `${loaded.from} (its own; ${train.length} to train on, ${test.length} held out)`, classNames: loaded.classNames };
  }
  const slice = clientSlice(data, settings, clients, index);
  if (!slice.length) {
    const pool = settings.train_size ?? data.size - settings.test_size;
    throw new DataFileError(`slice ${index} of ${clients} (${settings.split} split) holds none of the ${pool} samples trained on: too few for ${clients} clients (see data.train_size and data.test_size)`);
  }
  return {
    train: subset(data, slice),
    test: subset(data, testSlice(data, settings, clients, index)),
    from: `${loaded.from}, slice ${index} of ${clients} (${settings.split})${settings.train_size === undefined ? '' : ` of the ${settings.train_size} trained on`}`,
    classNames: loaded.classNames,
  };
}

/** The aggregator's held-out set: data.test's files, else the held-out part of the shared source. */
export function heldOutData(settings: DataSettings): { test: Dataset; from: string } {
  if (settings.test) {
    const loaded = loadSource(settings, settings.test);
    return { test: loaded.data, from: loaded.from };
  }
  const loaded = loadSource(settings, filesFor(settings, undefined));
  return { test: subset(loaded.data, testIndices(loaded.data, settings)), from: `${loaded.from}, ${settings.test_size} held out (seed ${settings.seed})` };
}
