/**
 * The TensorFlow.js backend: tfjs-node where a user has installed it (an optional peer dependency:
 * native and fastest), otherwise WebAssembly, otherwise plain JavaScript. $FL_BACKEND picks one by name.
 * The wasm build has no Conv2DBackpropFilter kernel; a CNN on wasm trains with the composed kernel
 * of conv-gradient.ts instead.
 */
import * as tf from '@tensorflow/tfjs';
import type { Settings } from '../config/schema';
import { registerConvFilterKernel } from './conv-gradient';
import { plainWasmMatMuls } from './wasm-matmul';

const CANDIDATES: [string, () => void][] = [
  ['tensorflow', () => require('@tensorflow/tfjs-node')],
  [
    'wasm',
    () => {
      require('@tensorflow/tfjs-backend-wasm');
      plainWasmMatMuls();
    },
  ],
  ['cpu', () => undefined],
];

/** Kernels a convolutional model needs to train (Conv2DBackpropFilter is composed where missing). */
const CONV_TRAINING_KERNELS = ['Conv2DBackpropInput', 'MaxPoolGrad'];

async function tryBackend(name: string, load: () => void, kernels: string[]): Promise<boolean> {
  try {
    load();
    if (!(await tf.setBackend(name))) return false;
    await tf.ready();
    return kernels.every((kernel) => tf.getKernel(kernel, name) !== undefined);
  } catch {
    return false;
  }
}

const chosen = new Map<string, Promise<string>>();

async function choose(kernels: string[], preferred = process.env.FL_BACKEND): Promise<string> {
  for (const [name, load] of CANDIDATES) {
    if (preferred && preferred !== name) continue;
    if (await tryBackend(name, load, kernels)) return name;
  }
  const need = kernels.length ? ` with ${kernels.join(', ')}` : '';
  throw new Error(`no TensorFlow.js backend${need} could start${preferred ? ` (FL_BACKEND=${preferred})` : ''}`);
}

/** Starts the fastest backend that can train `architecture`, once per process and architecture, and names it. */
export function initBackend(model: Settings['model']['architecture'] = 'mlp'): Promise<string> {
  // A model from a file may convolve: it gets what the CNNs get.
  const architecture = model === 'mlp' || model === 'tabular' ? 'mlp' : 'cnn';
  const kernels = architecture === 'cnn' ? CONV_TRAINING_KERNELS : [];
  if (architecture === 'cnn') registerConvFilterKernel();
  let backend = chosen.get(architecture);
  if (!backend) {
    backend = choose(kernels);
    chosen.set(architecture, backend);
  }
  return backend.then(async (name) => {
    if (tf.getBackend() !== name) await tf.setBackend(name);
    return name;
  });
}
