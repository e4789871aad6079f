/**
 * Who trains on what. Every node computes the same split from the same seed, so no data moves:
 * a held-out test set nobody trains on, and `client_number` slices of the rest.
 */
import type { Settings } from '../config/schema';
import type { Dataset } from './mnist';
import { dirichlet, seededRandom, shuffle } from './random';

export interface Split {
  test: number[];
  train: number[];
}

/** A seeded shuffle of all samples; the first `testSize` are held out, the next `trainSize` (else all the rest) trained on. */
export function holdOut(size: number, testSize: number, seed: number, trainSize?: number): Split {
  if (testSize >= size) throw new Error(`test_size ${testSize} leaves no training data (the data set has ${size} samples)`);
  if (trainSize !== undefined && testSize + trainSize > size) throw new Error(`train_size ${trainSize} with test_size ${testSize} needs ${testSize + trainSize} samples; the data set has ${size}`);
  const order = shuffle(Array.from({ length: size }, (_, i) => i), seededRandom(seed));
  return { test: order.slice(0, testSize), train: order.slice(testSize, trainSize === undefined ? size : testSize + trainSize) };
}

export type SplitSettings = Pick<Settings['data'], 'split' | 'alpha' | 'classes_per_client' | 'seed'>;

/** `clients` lists of sample indices, one per client slice. */
export function partition(train: readonly number[], labels: Uint8Array, clients: number, settings: SplitSettings): number[][] {
  const random = seededRandom(settings.seed ^ 0x5eed);
  switch (settings.split) {
    case 'iid':
      return equalSlices(train, clients);
    case 'dirichlet':
      return byDirichlet(train, labels, clients, settings.alpha, random);
    case 'classes':
      return byShards(train, labels, clients, settings.classes_per_client, random);
  }
}

/** Slice `index` of `clients` equal slices, as the original design cut its data. */
function equalSlices(train: readonly number[], clients: number): number[][] {
  const per = Math.floor(train.length / clients);
  return Array.from({ length: clients }, (_, i) => train.slice(i * per, (i + 1) * per));
}

function byClass(train: readonly number[], labels: Uint8Array): number[][] {
  const classes: number[][] = [];
  for (const index of train) (classes[labels[index]] ??= []).push(index);
  return classes.filter(Boolean);
}

/** Label skew: each class is shared among clients in proportions drawn from Dirichlet(alpha). */
function byDirichlet(train: readonly number[], labels: Uint8Array, clients: number, alpha: number, random: () => number): number[][] {
  const out: number[][] = Array.from({ length: clients }, () => []);
  for (const members of byClass(train, labels)) {
    const shares = dirichlet(alpha, clients, random);
    let start = 0;
    let cumulative = 0;
    shares.forEach((share, client) => {
      cumulative += share;
      const end = client === clients - 1 ? members.length : Math.round(cumulative * members.length);
      out[client].push(...members.slice(start, end));
      start = end;
    });
  }
  return out;
}

/** Each client gets `perClient` shards of label-sorted data, so it sees about that many classes. */
function byShards(train: readonly number[], labels: Uint8Array, clients: number, perClient: number, random: () => number): number[][] {
  const sorted = byClass(train, labels).flat();
  const shards = clients * perClient;
  const size = Math.floor(sorted.length / shards);
  const order = shuffle(Array.from({ length: shards }, (_, i) => i), random);
  return Array.from({ length: clients }, (_, client) =>
    order.slice(client * perClient, (client + 1) * perClient).flatMap((shard) => sorted.slice(shard * size, (shard + 1) * size)),
  );
}

/** The data a node needs: the test set, and for a client its own slice. */
export function clientSlice(data: Dataset, settings: Settings['data'], clients: number, index: number): number[] {
  const { train } = holdOut(data.size, settings.test_size, settings.seed, settings.train_size);
  return partition(train, data.labels, clients, settings)[index];
}

export function testIndices(data: Dataset, settings: Settings['data']): number[] {
  return holdOut(data.size, settings.test_size, settings.seed).test;
}

/** A client's share of the held-out digits, for federated evaluation: slice `index` of `clients`. */
export function testSlice(data: Dataset, settings: Settings['data'], clients: number, index: number): number[] {
  const test = testIndices(data, settings);
  const per = Math.floor(test.length / clients);
  return test.slice(index * per, (index + 1) * per);
}
