/** Checkpoints: files and their store (torn files found, the right one chosen, old ones pruned), and the aggregator's state in them. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { aggregatorCheckpoint, aggregatorState, asFloat32, CheckpointError, CheckpointStore, decodeCheckpoint, encodeCheckpoint, float32Bytes } from '../../src/checkpoint';
import { tempDir } from '../helpers/temp-dir';

const temp = () => tempDir('fl-ckpt-');

const weights = (seed: number, n = 1000) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));

describe('checkpoint files', () => {
  it('read back exactly what was written', () => {
    const global = weights(1);
    const bytes = encodeCheckpoint(4, { rows: [{ round: 4 }] }, { global: float32Bytes(global), extra: Uint8Array.from([1, 2, 3]) });
    const back = decodeCheckpoint(bytes);
    assert.equal(back.round, 4);
    assert.deepEqual(back.header, { rows: [{ round: 4 }] });
    assert.deepEqual(asFloat32(back.blobs.global), global);
    assert.deepEqual([...back.blobs.extra], [1, 2, 3]);
  });

  const damage: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['cut short (a torn write)', (b) => b.subarray(0, b.length - 100), /checksum mismatch/],
    ['one byte flipped', (b) => (b[b.length >> 1] ^= 0xff, b), /checksum mismatch/],
    ['empty', () => Buffer.alloc(0), /too short/],
    ['something else', () => Buffer.from('{"round": 3, "weights": [0.1, 0.2, 0.3, 0.4, 0.5]} and more text'), /bad magic/],
  ];
  for (const [name, harm, reason] of damage) {
    it(`are refused when ${name}`, () => {
      const bytes = encodeCheckpoint(2, {}, { global: float32Bytes(weights(2)) });
      assert.throws(() => decodeCheckpoint(harm(Buffer.from(bytes)), 'f.ckpt'), (err: Error) => err instanceof CheckpointError && reason.test(err.message));
    });
  }
});

describe('the checkpoint store', () => {
  it('keeps the last three, and passes over a damaged newest one to the one before', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    for (let round = 1; round <= 5; round++) store.save(round, { round }, { global: float32Bytes(weights(round)) });
    assert.deepEqual(readdirSync(store.dir).sort(), ['round-003.ckpt', 'round-004.ckpt', 'round-005.ckpt']);
    const newest = join(store.dir, 'round-005.ckpt');
    writeFileSync(newest, readFileSync(newest).subarray(0, 500));
    const { checkpoint, skipped } = store.latest();
    assert.equal(checkpoint!.round, 4);
    assert.deepEqual(asFloat32(checkpoint!.blobs.global), weights(4));
    assert.equal(skipped.length, 1);
    assert.match(skipped[0].reason, /round-005\.ckpt: checksum mismatch/);
  });

  it('past round 999 keeps the newest three and loads the newest, by round number not by name', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    for (let round = 998; round <= 1001; round++) store.save(round, { round }, { global: float32Bytes(weights(round)) });
    assert.deepEqual(readdirSync(store.dir).sort(), ['round-1000.ckpt', 'round-1001.ckpt', 'round-999.ckpt']);
    assert.deepEqual(store.files().map((f) => f.slice(store.dir.length + 1)), ['round-1001.ckpt', 'round-1000.ckpt', 'round-999.ckpt']);
    const { checkpoint, skipped } = store.latest();
    assert.equal(checkpoint!.round, 1001);
    assert.deepEqual(asFloat32(checkpoint!.blobs.global), weights(1001));
    assert.deepEqual(skipped, []);
  });

  it('leaves no temporary file behind', () => {
    const store = new CheckpointStore(join(temp(), 'checkpoints'));
    store.save(1, {}, { global: float32Bytes(weights(1)) });
    assert.deepEqual(readdirSync(store.dir), ['round-001.ckpt']);
  });
});

describe('checkpoint codec', () => {
  it("round-trips the aggregator's state, and names a blob the file lacks", () => {
    const header = { experiment: 'x', settings: { rounds: 3 }, rows: [{ round: 1 }], saved_at: 'now' };
    const saved = aggregatorCheckpoint({ header, global: { plain: Float32Array.from([1, 2, 3]) }, strategy: { velocity: Float32Array.from([0.5]) } });
    const state = aggregatorState(decodeCheckpoint(encodeCheckpoint(1, saved.header, saved.blobs)));
    assert.deepEqual(state.global, { plain: Float32Array.from([1, 2, 3]) });
    assert.deepEqual(state.strategy, { velocity: Float32Array.from([0.5]) });
    assert.deepEqual(state.header.rows, [{ round: 1 }]);
    const { 'strategy.velocity': _, ...lacking } = saved.blobs;
    assert.throws(() => aggregatorState(decodeCheckpoint(encodeCheckpoint(1, saved.header, lacking), 'f.ckpt')), (err) => err instanceof CheckpointError && /f\.ckpt: no blob "strategy\.velocity"/.test(err.message));
  });
});
