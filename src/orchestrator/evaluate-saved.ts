/** `main.js eval <model dir>`: a saved global model scored on its experiment's held-out digits. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadExperimentConfig } from '../config/load';
import { loadMnist, subset } from '../data/mnist';
import { testIndices } from '../data/partition';
import { initBackend } from '../model/backend';
import { evaluate, parameterCount } from '../model/model';
import { loadModel } from '../model/store';

/** outputs/<experiment>/models/round-NNN -> outputs/<experiment>/config.json */
export function configBeside(modelDir: string): string {
  return join(dirname(dirname(resolve(modelDir))), 'config.json');
}

export async function evaluateSaved(modelDir: string, configFile = configBeside(modelDir)): Promise<string> {
  if (!existsSync(join(modelDir, 'model.json'))) throw new Error(`${modelDir}: no model.json here (expected a folder like outputs/<experiment>/models/round-020)`);
  const config = loadExperimentConfig(configFile);
  const backend = await initBackend(config.model.architecture);
  const model = await loadModel(modelDir);
  const data = loadMnist();
  const test = subset(data, testIndices(data, config.data));
  const { accuracy, loss } = evaluate(model, test);
  return `${modelDir}: accuracy ${(accuracy * 100).toFixed(2)}%, loss ${loss.toFixed(4)} on ${test.size} held-out digits (seed ${config.data.seed}; ${parameterCount(model)} parameters; backend ${backend})`;
}
