/**
 * The wasm backend's matrix products with a transposed operand run about ten times slower than the
 * same product on operands transposed first (3.7 ms against 0.06 + 0.32 ms for [784, 32]ᵀ·[32, 128]
 * on this project's machines): the plain product goes to XNNPACK, the transposed one does not. Every
 * gradient of a dense layer is such a product (dW = xᵀ·dy, dx = dy·Wᵀ), and so is the filter gradient
 * of conv-gradient.ts. This wraps the two kernels so that a transposed operand is transposed first,
 * by the wasm Transpose kernel: the same values (the same products, summed alike), in half the
 * training time of an MLP (bench/RESULTS.md, "Training step").
 */
import * as tf from '@tensorflow/tfjs';

const KERNELS = ['BatchMatMul', '_FusedMatMul'];

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

let wrapped = false;

/** Once per process, after the wasm backend's kernels are registered (its module imported). */
export function plainWasmMatMuls(): void {
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (wrapped || !transpose) return;
  wrapped = true;
  for (const name of KERNELS) {
    const original = tf.getKernel(name, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      ...original,
      kernelFunc: (args) => {
        const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
        if (!transposeA && !transposeB) return original.kernelFunc(args);
        const made: tf.TensorInfo[] = [];
        // The last two axes swapped, by the backend's own kernel: no engine op, nothing on a tape.
        const flipped = (x: tf.TensorInfo) => {
          const rank = x.shape.length;
          const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
          const out = transpose.kernelFunc({ inputs: { x }, attrs: { perm }, backend }) as tf.TensorInfo;
          made.push(out);
          return out;
        };
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const backend = args.backend as tf.KernelBackend;
        const inputs = { ...args.inputs, a: transposeA ? flipped(a) : a, b: transposeB ? flipped(b) : b };
        try {
          return original.kernelFunc({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
        } finally {
          for (const t of made) backend.disposeData(t.dataId);
        }
      },
    });
  }
}
