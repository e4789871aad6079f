/** The wasm matrix products with a transposed operand, transposed first (src/model/wasm-matmul.ts). */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initBackend } from '../../../src/model/backend';
import { seededRandom } from '../../../src/data/random';

const random = seededRandom(7);
const values = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 2 - 1), shape);
const FLAGS = [
  [true, false],
  [false, true],
  [true, true],
] as const;

/** `f` on the cpu backend (the reference, without the wrap), then on wasm: both results, as arrays. */
async function onBoth(f: () => tf.Tensor): Promise<{ cpu: Float32Array; wasm: Float32Array }> {
  await tf.setBackend('cpu');
  const cpu = tf.tidy(() => f().dataSync() as Float32Array);
  await initBackend();
  const wasm = tf.tidy(() => f().dataSync() as Float32Array);
  return { cpu, wasm };
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const worst = actual.reduce((max, v, i) => Math.max(max, Math.abs(v - expected[i])), 0);
  assert.ok(worst < 1e-4, `${what}: off by ${worst}`);
}

/** The operands as a product with these flags wants them: each transposed where its flag says. */
const asFlagged = (a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean) => {
  const swap = (x: tf.Tensor) => tf.transpose(x, [...Array(x.rank - 2).keys(), x.rank - 1, x.rank - 2]);
  return [ta ? swap(a) : a, tb ? swap(b) : b];
};

describe('wasm matrix products with a transposed operand', () => {
  it("are, on one matrix, XNNPACK's plain product of the operands transposed first, bit for bit", async () => {
    assert.equal(await initBackend(), 'wasm');
    // Large enough that the loop's order of summing shows in the last bits (the same check fails unwrapped).
    const [a, b] = [values([64, 96]), values([96, 48])];
    const plain = tf.tidy(() => tf.matMul(a, b).dataSync());
    for (const [ta, tb] of FLAGS) {
      const product = tf.tidy(() => {
        const [left, right] = asFlagged(a, b, ta, tb);
        return tf.matMul(left, right, ta, tb).dataSync();
      });
      assert.deepEqual(product, plain, `transposeA ${ta}, transposeB ${tb}`);
    }
  });

  it('give what the cpu backend gives, batched and fused alike', async () => {
    const [a3, b3] = [values([3, 5, 7]), values([3, 7, 4])];
    const [a2, b2] = [values([5, 7]), values([7, 4])];
    const bias = values([4]);
    for (const [ta, tb] of FLAGS) {
      const flags = `transposeA ${ta}, transposeB ${tb}`;
      const batched = await onBoth(() => tf.matMul(...(asFlagged(a3, b3, ta, tb) as [tf.Tensor, tf.Tensor]), ta, tb));
      assertClose(batched.wasm, batched.cpu, `batched, ${flags}`);
      // Fused as a dense layer is, on one matrix: wasm's loop adds the bias wrongly, so its batched fused products are no reference.
      const fused = await onBoth(() => {
        const [left, right] = asFlagged(a2, b2, ta, tb);
        return tf.fused.matMul({ a: left as tf.Tensor2D, b: right as tf.Tensor2D, transposeA: ta, transposeB: tb, bias, activation: 'relu' });
      });
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
    const [a, b, row, bias] = [values([64, 32]), values([16, 32]), values([1, 32]), values([16])];
    const products: [string, () => tf.Tensor][] = [
      ['transposeA', () => tf.matMul(a, values([64, 16]), true, false)],
      ['fused, transposeB', () => tf.fused.matMul({ a, b, transposeB: true, bias, activation: 'relu' })],
      ['a row, transposeA', () => tf.matMul(row, values([1, 8]), true, false)],
    ];
    for (const [what, product] of products) {
      tf.dispose(tf.tidy(product)); // the first call may allocate what the backend keeps
      const before = tf.backend().numDataIds();
      for (let i = 0; i < 3; i++) tf.dispose(tf.tidy(product));
      assert.equal(tf.backend().numDataIds(), before, what);
    }
  });
});
