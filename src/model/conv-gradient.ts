/**
 * The wasm backend lacks the Conv2DBackpropFilter kernel, so a CNN cannot train on it as shipped.
 * This registers that kernel, built from ops wasm has: the filter gradient is, for each kernel
 * offset (i, j), the matching slice of the input times the output gradient:
 * dW[i, j] = slice(x, i, j)ᵀ · dy, K² matmuls of [N·H'·W', C_in]ᵀ[N·H'·W', C_out].
 * A kernel, not a gradient, so that every op reaching it has it: Conv2D's gradient, and the fused
 * convolution's (a layer without activation, as a ResNet's convolutions before their batch norm).
 */
import * as tf from '@tensorflow/tfjs';

interface Conv2DAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dataFormat?: string;
  dilations?: number | [number, number];
}

const pair = (v: number | [number, number] | undefined, fallback: number): [number, number] =>
  v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : v;

function filterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], attrs: Conv2DAttrs): tf.Tensor4D {
  const [kh, kw, cin, cout] = filterShape;
  const [sh, sw] = pair(attrs.strides, 1);
  const [, oh, ow] = dy.shape;
  let input = x;
  if (attrs.pad === 'same') {
    const padH = Math.max((oh - 1) * sh + kh - x.shape[1], 0);
    const padW = Math.max((ow - 1) * sw + kw - x.shape[2], 0);
    input = tf.pad(x, [[0, 0], [Math.floor(padH / 2), padH - Math.floor(padH / 2)], [Math.floor(padW / 2), padW - Math.floor(padW / 2)], [0, 0]]);
  } else if (typeof attrs.pad === 'number' && attrs.pad > 0) {
    input = tf.pad(x, [[0, 0], [attrs.pad, attrs.pad], [attrs.pad, attrs.pad], [0, 0]]);
  }
  const batch = x.shape[0];
  const dyRows = tf.reshape(dy, [batch * oh * ow, cout]);
  const slices: tf.Tensor2D[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const patch = tf.stridedSlice(input, [0, i, j, 0], [batch, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, cin], [1, sh, sw, 1]);
      slices.push(tf.matMul(tf.reshape(patch, [batch * oh * ow, cin]), dyRows, true, false));
    }
  }
  return tf.reshape(tf.stack(slices), [kh, kw, cin, cout]);
}

let registered = false;

/** Makes convolutions trainable on the wasm backend (NHWC, no dilation), where Conv2DBackpropFilter is missing. */
export function registerConvFilterKernel(): void {
  if (registered || tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  registered = true;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs }) => {
      const { x, dy } = inputs as { x: tf.Tensor4D; dy: tf.Tensor4D };
      const conv = attrs as unknown as Conv2DAttrs & { filterShape: number[] };
      if (conv.dataFormat && conv.dataFormat !== 'NHWC') throw new Error('this Conv2DBackpropFilter supports NHWC only');
      // The engine takes a returned tensor as the kernel's output; everything in between is freed here.
      return tf.tidy(() => filterGradient(x, dy, conv.filterShape, conv));
    },
  });
}
