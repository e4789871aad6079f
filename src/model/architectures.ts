/**
 * The large built-in models, for labs that study vision at the scale of millions of parameters:
 *   cifar_cnn  the Keras CIFAR-10 example's shape: two pairs of 3x3 convolutions (32, then 64
 *              filters, "same" padding), each pair pooled 2x2, then 256 units: 1,116,970
 *              parameters on 32x32x3 images (870,634 on 28x28 digits);
 *   resnet18   ResNet-18 (He et al. 2016): a 3x3 stem of 64 filters pooled 2x2, then four stages of
 *              two basic blocks (64, 128, 256, 512 filters; each later stage halves the side), batch
 *              norm after every convolution, global average pooling: 11,183,562 parameters for 10
 *              classes of 3-channel images (11,182,410 of 1 channel), whatever the image's side.
 *              The 2x2 pool after the stem (where ResNet on CIFAR keeps the full side) costs no
 *              parameters and leaves every later layer a quarter of the arithmetic.
 * Their parameters are counted without building them (size.ts), from the same constants and block
 * list the builders use; the tests check the two agree.
 */
import * as tf from '@tensorflow/tfjs';
import { CIFAR_FILTERS, CIFAR_UNITS, imageShape, projects, resnetBlocks, type ImageInput, type LargeArchitecture } from './size';

/** Draws a layer's initial kernel: seeded, one seed after another, so every node builds the same model. */
type Initializer = (before: 'relu' | 'softmax') => ReturnType<typeof tf.initializers.heNormal>;

/** The model, taking flat rows (as every built-in does) of `input.shape`. */
export function buildLarge(name: LargeArchitecture, input: ImageInput, init: Initializer): tf.LayersModel {
  const [height, width, channels] = imageShape(input, name);
  const rows = tf.input({ shape: [height * width * channels] });
  const images = tf.layers.reshape({ targetShape: [height, width, channels] }).apply(rows) as tf.SymbolicTensor;
  const features = name === 'cifar_cnn' ? cifarFeatures(images, init) : resnetFeatures(images, init);
  const output = tf.layers.dense({ units: input.classes, activation: 'softmax', kernelInitializer: init('softmax') }).apply(features) as tf.SymbolicTensor;
  return tf.model({ inputs: rows, outputs: output, name });
}

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;

function cifarFeatures(images: tf.SymbolicTensor, init: Initializer): tf.SymbolicTensor {
  let x = images;
  for (const filters of CIFAR_FILTERS) {
    for (let i = 0; i < 2; i++) x = apply(tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init('relu') }), x);
    x = apply(tf.layers.maxPooling2d({ poolSize: 2 }), x);
  }
  x = apply(tf.layers.flatten(), x);
  return apply(tf.layers.dense({ units: CIFAR_UNITS, activation: 'relu', kernelInitializer: init('relu') }), x);
}

function resnetFeatures(images: tf.SymbolicTensor, init: Initializer): tf.SymbolicTensor {
  const normalized = (filters: number, size: number, stride: number, x: tf.SymbolicTensor) => {
    const convolved = apply(tf.layers.conv2d({ filters, kernelSize: size, strides: stride, padding: 'same', useBias: false, kernelInitializer: init('relu') }), x);
    return apply(tf.layers.batchNormalization(), convolved);
  };
  const relu = (x: tf.SymbolicTensor) => apply(tf.layers.activation({ activation: 'relu' }), x);
  let x = apply(tf.layers.maxPooling2d({ poolSize: 2 }), relu(normalized(64, 3, 1, images)));
  for (const block of resnetBlocks()) {
    const residual = normalized(block.out, 3, 1, relu(normalized(block.out, 3, block.stride, x)));
    const shortcut = projects(block) ? normalized(block.out, 1, block.stride, x) : x;
    x = relu(apply(tf.layers.add(), [residual, shortcut]));
  }
  return apply(tf.layers.globalAveragePooling2d({}), x);
}
