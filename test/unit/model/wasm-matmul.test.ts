/** The wasm matrix products with a transposed operand, transposed first (src/model/wasm-matmul.ts). */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initBackend } from '../../../src/model/backend';
import { seededRandom } from '../../../src/data/random';

const random = seededRandom(7);
const values = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 2 - 1), shape);

/** `f` on the cpu backend (the reference, without the wrap), then on wasm: both results, as arrays. */
async function onBoth(f: () => tf.Tensor): Promise<{ cpu: Float32Array; wasm: Float32Array }> {
  await tf.setBackend('cpu');
  const cpu = tf.tidy(f).dataSync() as Float32Array;
  await initBackend();
  const wasm = tf.tidy(f).dataSync() as Float32Array;
  return { cpu, wasm };
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const worst = actual.reduce((max, v, i) => Math.max(max, Math.abs(v - expected[i])), 0);
  assert.ok(worst < 1e-4, `${what}: off by ${worst}`);
}

describe('wasm matrix products with a transposed operand', () => {
  it('are the plain products on operands transposed first, for every flag, batched and fused alike', async () => {
    assert.equal(await initBackend(), 'wasm');
    const a = values([3, 5, 7]);
    const b = values([3, 7, 4]);
    const bias = values([4]);
    for (const [ta, tb] of [[true, false], [false, true], [true, true], [false, false]]) {
      const left = ta ? tf.transpose(a, [0, 2, 1]) : a;
      const right = tb ? tf.transpose(b, [0, 2, 1]) : b;
      const flags = `transposeA ${ta}, transposeB ${tb}`;
      const batched = await onBoth(() => tf.matMul(left, right, ta, tb));
      assertClose(batched.wasm, batched.cpu, `batched, ${flags}`);
      assert.deepEqual(batched.wasm, tf.matMul(a, b).dataSync(), `${flags}: the very product of the plain operands`);
      // Fused as a dense layer is, on one matrix (wasm's fused product differs from cpu's on batches, unwrapped too).
      const [a2, b2] = [left, right].map((m) => tf.slice(m, [0, 0, 0], [1, ...m.shape.slice(1)]).reshape(m.shape.slice(1)) as tf.Tensor2D);
      const fused = await onBoth(() => tf.fused.matMul({ a: a2, b: b2, transposeA: ta, transposeB: tb, bias, activation: 'relu' }));
      assertClose(fused.wasm, fused.cpu, `fused with a bias and relu, ${flags}`);
    }
  });

  it("gives a dense layer's gradients as the cpu backend does", async () => {
    const x = values([32, 50]);
    const w = values([50, 16]);
    const dy = values([32, 16]);
    const gradients = () => {
      const [dx, dw] = tf.grads((input: tf.Tensor, weights: tf.Tensor) => tf.mul(tf.matMul(input, weights), dy).sum())([x, w]);
      return tf.concat([dx.flatten(), dw.flatten()]);
    };
    const { cpu, wasm } = await onBoth(gradients);
    assertClose(wasm, cpu, 'dx and dW');
  });

  it('frees the transposed copies it makes', async () => {
    await initBackend();
    const a = values([64, 32]);
    const b = values([64, 16]);
    tf.matMul(a, b, true, false).dispose(); // the first call may allocate what the backend keeps
    const before = tf.backend().numDataIds();
    for (let i = 0; i < 5; i++) tf.matMul(a, b, true, false).dispose();
    assert.equal(tf.backend().numDataIds(), before);
  });
});
