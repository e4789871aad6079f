/**
 * Models on disk in TensorFlow.js's layers format: `model.json` plus `weights.bin`. tfjs-node reads
 * them with `tf.loadLayersModel('file://…/model.json')`; without it, `loadModel(dir)` here does.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomic';

const WEIGHTS_FILE = 'weights.bin';

export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = new Uint8Array(artifacts.weightData as ArrayBuffer);
      writeFileAtomic(join(dir, WEIGHTS_FILE), weights);
      const manifest = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: artifacts.weightSpecs }],
      };
      writeFileAtomic(join(dir, 'model.json'), JSON.stringify(manifest));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
    }),
  );
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
