/**
 * The wasm backend hands a matrix product to XNNPACK only when neither operand is transposed and
 * both are single matrices (no batch); any other goes to a plain loop about ten times slower: xᵀ·dy
 * for x [32, 784] and dy [32, 128] took 3.7 ms, against 0.06 ms to transpose x and 0.32 ms for the
 * plain product (Node 20 here). Every gradient of a dense layer is such a product (dW = xᵀ·dy,
 * dx = dy·Wᵀ), and so is the filter gradient of conv-gradient.ts. This wraps the two kernels so that
 * a single matrix's transposed operand is transposed first, by the wasm Transpose kernel, and the
 * product goes to XNNPACK: an MLP of 128 hidden units trained 2,000 digits in 265 ms, not 460. The
 * values are XNNPACK's, as for any plain product: the last bits differ from the loop's, which sums
 * in another order.
 */
import * as tf from '@tensorflow/tfjs';

const KERNELS = ['BatchMatMul', '_FusedMatMul'];

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** One matrix, not a batch of them: XNNPACK's case (the kernel sees rank-3 operands, the batch first). */
const single = (x: tf.TensorInfo) => x.shape.slice(0, -2).every((n) => n === 1);

/** `x` with its last two axes swapped, by the backend's own kernel: no engine op, nothing on a tape. */
function lastTwoSwapped(transpose: tf.KernelConfig, x: tf.TensorInfo, backend: tf.KernelBackend): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
  return transpose.kernelFunc({ inputs: { x }, attrs: { perm }, backend }) as tf.TensorInfo;
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
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        if ((!transposeA && !transposeB) || !single(a) || !single(b)) return original.kernelFunc(args);
        const backend = args.backend as tf.KernelBackend;
        const made: tf.TensorInfo[] = [];
        const plain = (x: tf.TensorInfo, transposed: boolean) => {
          if (!transposed) return x;
          const copy = lastTwoSwapped(transpose, x, backend);
          made.push(copy);
          return copy;
        };
        try {
          const inputs = { ...args.inputs, a: plain(a, transposeA), b: plain(b, transposeB) };
          return original.kernelFunc({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
        } finally {
          for (const t of made) backend.disposeData(t.dataId);
        }
      },
    });
  }
}
