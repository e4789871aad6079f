/**
 * Models on disk in TensorFlow.js's layers format: `model.json` plus `weights.bin`. tfjs-node reads
 * them with `tf.loadLayersModel('file://…/model.json')`; without it, `loadModel(dir)` here does.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomic';

const WEIGHTS_FILE = 'weights.bin';

/**
 * What LayersModel.save writes (its topology, its weights' names, shapes and types, their values back
 * to back), the values written a tensor at a time: save() reads every tensor and joins them, two
 * copies of the model at the end of each round, when a model of tens of megabytes is held most.
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  const { weights } = model; // getNamedWeights' order, which save() writes in
  const odd = weights.find((w) => w.dtype !== 'float32');
  if (odd) throw new Error(`weight ${odd.originalName} is ${odd.dtype}: the layers models here hold float32`);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(
    join(dir, WEIGHTS_FILE),
    (function* () {
      for (const weight of weights) {
        const values = weight.read().dataSync() as Float32Array;
        yield new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      }
    })(),
  );
  const manifest = {
    modelTopology: model.toJSON(null, false),
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: weights.map((w) => ({ name: w.originalName, shape: w.shape, dtype: w.dtype })) }],
  };
  writeFileAtomic(join(dir, 'model.json'), JSON.stringify(manifest));
}

/** An IOHandler over a folder written by saveModel: `tf.loadLayersModel(fromDir(dir))`. */
export function fromDir(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      const groups = manifest.weightsManifest as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
      // tensorflowjs_converter shards the weights (4 MB files, several groups): they are read in order, as one.
      const bytes = Buffer.concat(groups.flatMap((group) => group.paths.map((path) => readFileSync(join(dir, path)))));
      return {
        modelTopology: manifest.modelTopology,
        weightSpecs: groups.flatMap((group) => group.weights),
        weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      };
    },
  };
}

export const loadModel = (dir: string) => tf.loadLayersModel(fromDir(dir));
