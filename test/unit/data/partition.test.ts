/** The shipped digits and how they are split: held-out set, disjoint slices, IID and skewed splits. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLASSES, loadMnist } from '../../../src/data/mnist';
import { holdOut, partition } from '../../../src/data/partition';
import { dataSchema } from '../../../src/config/data-schema';
import { DataFileError } from '../../../src/data/formats/labelled';
import { clientData } from '../../../src/data/source';

describe('data splits', () => {
  const data = loadMnist();

  it('loads the 10,000 real digits of the mnist package, every class present', () => {
    assert.equal(data.size, 10_000);
    assert.equal(new Set(data.labels).size, CLASSES);
    assert.ok(data.images.every((v) => v >= 0 && v <= 1));
  });

  it('holds out a test set no client trains on, the same for the same seed', () => {
    const split = holdOut(data.size, 2000, 42);
    assert.equal(split.test.length, 2000);
    assert.equal(new Set([...split.test, ...split.train]).size, data.size);
    assert.deepEqual(holdOut(data.size, 2000, 42), split);
    assert.notDeepEqual(holdOut(data.size, 2000, 43).test, split.test);
  });

  it('trains on train_size of the rest when it is given, the held-out set unchanged', () => {
    const all = holdOut(data.size, 2000, 42);
    const some = holdOut(data.size, 2000, 42, 3000);
    assert.deepEqual(some.test, all.test);
    assert.deepEqual(some.train, all.train.slice(0, 3000));
    assert.equal(holdOut(data.size, 2000, 42, 8000).train.length, 8000);
    assert.throws(() => holdOut(data.size, 2000, 42, 8001), /train_size 8001 with test_size 2000 needs 10001 samples; the data set has 10000/);
  });

  it('gives each client its slice of train_size, and names a slice left empty', () => {
    const settings = dataSchema.parse({ train_size: 30 });
    assert.equal(clientData(settings, undefined, 3, 2).train.size, 10);
    assert.match(clientData(settings, undefined, 3, 2).from, /slice 2 of 3 \(iid\) of the 30 trained on/);
    assert.throws(() => clientData({ ...settings, train_size: 2 }, undefined, 3, 2), (err) => err instanceof DataFileError && /slice 2 of 3 \(iid split\) holds none of the 2 samples trained on: too few for 3 clients/.test(err.message));
  });

  for (const split of ['iid', 'dirichlet', 'classes'] as const) {
    it(`${split}: disjoint slices from the training set, repeatable from the seed`, () => {
      const { train: pool } = holdOut(data.size, 2000, 42);
      const settings = { split, alpha: 0.3, classes_per_client: 2, seed: 42 };
      const slices = partition(pool, data.labels, 12, settings);
      assert.equal(slices.length, 12);
      const all = slices.flat();
      assert.equal(new Set(all).size, all.length, 'slices overlap');
      const poolSet = new Set(pool);
      assert.ok(all.every((i) => poolSet.has(i)), 'a slice holds a test sample');
      assert.deepEqual(partition(pool, data.labels, 12, settings), slices);
    });
  }

  it('iid gives equal slices with every class; the skewed splits do not', () => {
    const { train: pool } = holdOut(data.size, 2000, 42);
    const classesIn = (slice: number[]) => new Set(slice.map((i) => data.labels[i])).size;
    const iid = partition(pool, data.labels, 12, { split: 'iid', alpha: 1, classes_per_client: 2, seed: 1 });
    assert.ok(iid.every((s) => s.length === Math.floor(pool.length / 12) && classesIn(s) === 10));
    const shards = partition(pool, data.labels, 12, { split: 'classes', alpha: 1, classes_per_client: 2, seed: 1 });
    assert.ok(shards.every((s) => classesIn(s) <= 4), 'two shards of sorted data span at most a few classes');
    const dirichlet = partition(pool, data.labels, 12, { split: 'dirichlet', alpha: 0.1, classes_per_client: 2, seed: 1 });
    const sizes = dirichlet.map((s) => s.length);
    assert.ok(Math.max(...sizes) > 2 * Math.min(...sizes), `alpha 0.1 should skew sizes: ${sizes}`);
    assert.equal(sizes.reduce((a, b) => a + b, 0), pool.length);
  });
});
