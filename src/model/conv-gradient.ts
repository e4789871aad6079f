/**
 * The wasm backend lacks the Conv2DBackpropFilter kernel, so a CNN cannot train on it as shipped.
 * This registers Conv2D's gradient built from ops wasm has: the input gradient is a transposed
 * convolution, and the filter gradient is, for each kernel offset (i, j), the matching slice of the
 * input times the output gradient: dW[i, j] = slice(x, i, j)ᵀ · dy, a K² matmuls of [N·H'·W', C_in]ᵀ[N·H'·W', C_out].
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

/** Makes Conv2D trainable on backends without Conv2DBackpropFilter (NHWC, no dilation). */
export function registerConvGradient(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const conv = attrs as unknown as Conv2DAttrs;
      const [dh, dw] = pair(conv.dilations, 1);
      if (dh !== 1 || dw !== 1 || (conv.dataFormat && conv.dataFormat !== 'NHWC')) {
        throw new Error('this Conv2D gradient supports NHWC without dilation only');
      }
      const strides = pair(conv.strides, 1);
      return {
        x: () => tf.conv2dTranspose(dy as tf.Tensor4D, filter, x.shape, strides, conv.pad as 'valid' | 'same'),
        filter: () => filterGradient(x, dy as tf.Tensor4D, filter.shape, conv),
      };
    },
  });
}
