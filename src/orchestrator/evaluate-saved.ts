/**
 * `main.js eval <model dir>`: a saved global model scored on its experiment's held-out digits; a round
 * saved encrypted (clients held the HE key: only model.he) is decrypted in memory with --he-key.
 */
import type * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadExperimentConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { heldOutData, sampleNoun } from '../data/source';
import { initBackend } from '../model/backend';
import { evaluate, parameterCount } from '../model/model';
import { loadModel } from '../model/store';
import { configBeside, ENCRYPTED_MODEL_FILE } from '../outputs';
import { decryptedModel } from './decrypt-saved';


export interface EvaluateOptions {
  /** The experiment's config; default outputs/<experiment>/config.json beside the round. */
  config?: string;
  /** The clients' HE secret key, read only when the folder holds model.he and no model.json. */
  heKey?: string;
}

/** model.json if the folder has one (plaintext, or decrypted already), else its model.he decrypted with the key. */
async function modelIn(dir: string, config: ExperimentConfig, configFile: string, heKey?: string): Promise<tf.LayersModel> {
  if (existsSync(join(dir, 'model.json'))) return loadModel(dir);
  if (!heKey) throw new Error(`${dir}: holds only ${ENCRYPTED_MODEL_FILE} (encrypted; the clients hold the HE key): pass --he-key FILE, or run \`node main.js decrypt ${dir} --he-key FILE\``);
  return (await decryptedModel({ dir, keyFile: heKey, config, configFile })).model;
}

export async function evaluateSaved(modelDir: string, options: EvaluateOptions = {}): Promise<string> {
  if (!existsSync(join(modelDir, 'model.json')) && !existsSync(join(modelDir, ENCRYPTED_MODEL_FILE))) {
    throw new Error(`${modelDir}: no model.json or ${ENCRYPTED_MODEL_FILE} here (expected a folder like outputs/<experiment>/models/round-020)`);
  }
  const configFile = options.config ?? configBeside(modelDir);
  const config = loadExperimentConfig(configFile);
  const backend = await initBackend(config.model.architecture);
  const model = await modelIn(modelDir, config, configFile, options.heKey);
  try {
    const { test } = heldOutData(config.data);
    const { accuracy, loss } = evaluate(model, test);
    return `${modelDir}: accuracy ${(accuracy * 100).toFixed(2)}%, loss ${loss.toFixed(4)} on ${test.size} held-out ${sampleNoun(config.data)} (seed ${config.data.seed}; ${parameterCount(model)} parameters; backend ${backend})`;
  } finally {
    model.dispose();
  }
}
