/**
 * `main.js decrypt <round dir>`: with he.key_holder "clients" the aggregator holds no key, so a
 * round's folder keeps only model.he (the encrypted global model, the wire message the clients were
 * sent). Whoever holds the clients' secret key turns it back into a normal model here;
 * `main.js eval --he-key` does the same in memory.
 */
import type * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadExperimentConfig } from '../config/load';
import { inputOf } from '../config/data-schema';
import type { ExperimentConfig } from '../config/schema';
import { DEFAULT_KEY_FILE, readSecretKey, startSession, type HeSession } from '../he/keys';
import { initBackend } from '../model/backend';
import { modelParameters, vectorLength, vectorSizes, weightsOf } from '../model/layout';
import { createModel, modelId, setFlatWeights, tensorSizes } from '../model/model';
import { saveModel } from '../model/store';
import { HttpError } from '../net/errors';
import { configBeside, ENCRYPTED_MODEL_FILE } from '../outputs';
import { Kind, type Message } from '../wire/codec';
import { readMessage } from '../wire/receive';

/** Where an encrypted round comes from, named in every refusal so the user knows which file is wrong. */
export interface EncryptedSource {
  dir: string;
  keyFile: string;
  config: ExperimentConfig;
  configFile: string;
}

/**
 * Real weights sit well inside ±1; decrypting under another secret key of the same parameters gives
 * values spread over ±q/(2·scale) (hundreds), which SEAL cannot tell from a good decryption.
 */
const PLAUSIBLE_MEDIAN = 10;

const encryptedFile = (dir: string) => join(dir, ENCRYPTED_MODEL_FILE);

/** The folder's model.he, or why there is none to decrypt. */
function requireEncrypted(dir: string): string {
  const file = encryptedFile(dir);
  if (existsSync(file)) return file;
  const plain = existsSync(join(dir, 'model.json'));
  if (plain) throw new Error(`${dir}: holds a plaintext model (model.json), not model.he; nothing to decrypt`);
  throw new Error(`${dir}: no model.he or model.json here (decrypt expects a round folder like outputs/<experiment>/models/round-020)`);
}

/** The secret key, refused if it is missing or made for other HE parameters (readSecretKey names the file). */
function secretKeyFor(source: EncryptedSource, file: string): Uint8Array {
  if (!source.config.he.enabled) throw new Error(`${source.configFile}: he.enabled is false, so ${file} cannot be this experiment's model (pass its config with --config)`);
  if (!existsSync(source.keyFile)) throw new Error(`${file} is encrypted (the clients hold the HE key) and there is no key at ${source.keyFile}: pass the clients' key with --he-key FILE`);
  return readSecretKey(source.config.he, source.keyFile);
}

/** model.he checked against the experiment (kind, model id, size, HE parameters), each refusal naming the file. */
function readEncryptedModel(file: string, source: EncryptedSource, he: HeSession, expectedModelId: number): Message {
  let message: Message;
  try {
    message = readMessage(readFileSync(file), {
      kinds: [Kind.EncryptedModel],
      modelId: expectedModelId,
      parameters: vectorLength(source.config),
      he: { id: he.id, chunks: he.chunks },
    });
  } catch (err) {
    // readMessage speaks HTTP (it guards routes); here the same checks are about a file.
    if (err instanceof HttpError) throw new Error(`${file}: not an encrypted model of the experiment in ${source.configFile}: ${err.message}`);
    throw err;
  }
  const factor = Number(message.meta?.factor);
  if (!(factor > 0 && Number.isFinite(factor))) throw new Error(`${file}: an encrypted model needs a positive meta.factor, got ${String(message.meta?.factor)}`);
  return message;
}

/** Noise instead of weights (or a refusal to decode) means the key is the right kind but not the clients' one. */
function isPlausible(weights: Float32Array): boolean {
  const sorted = Float64Array.from(weights, Math.abs).sort();
  return sorted[sorted.length >> 1] <= PLAUSIBLE_MEDIAN;
}

/** The model's weights with one key file, or undefined when that key does not open it. */
async function decryptWith(source: EncryptedSource, model: tf.LayersModel, keyFile: string): Promise<{ weights: Float32Array; round: number } | undefined> {
  const file = encryptedFile(source.dir);
  const parameters = vectorLength(source.config);
  const he = await startSession(source.config.he, parameters, { secretKey: secretKeyFor({ ...source, keyFile }, file) }, vectorSizes(source.config, tensorSizes(model)));
  try {
    const message = readEncryptedModel(file, source, he, modelId(model));
    // The aggregator stores the sum of updates pre-scaled by 1/selected samples; factor turns it into the average.
    const vector = await he.pool.decrypt(message.ciphertexts!, parameters, Number(message.meta!.factor)).catch(() => undefined);
    const weights = vector && weightsOf(Float32Array.from(vector), modelParameters(source.config));
    return weights && isPlausible(weights) ? { weights, round: message.round } : undefined;
  } finally {
    await he.pool.close();
  }
}

/** Other key files a user may hold: beside the one given, and in the project's keys/. */
function otherKeyFiles(keyFile: string, he: ExperimentConfig['he']): string[] {
  const folders = [...new Set([dirname(resolve(keyFile)), resolve(dirname(DEFAULT_KEY_FILE))])];
  const files = folders.flatMap((folder) => (existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.json')).map((f) => join(folder, f)) : []));
  return files.filter((file) => resolve(file) !== resolve(keyFile) && fitsRing(he, file));
}

const fitsRing = (he: ExperimentConfig['he'], file: string) => {
  try {
    readSecretKey(he, file);
    return true;
  } catch {
    return false;
  }
};

/** The round's weights, decrypted and scaled back to the average; a key that does not open it is refused, naming one that does. */
async function decryptWeights(source: EncryptedSource, model: tf.LayersModel): Promise<{ weights: Float32Array; round: number }> {
  const opened = await decryptWith(source, model, source.keyFile);
  if (opened) return opened;
  const others = otherKeyFiles(source.keyFile, source.config.he);
  let opener: string | undefined;
  for (const other of others) if (!opener && (await decryptWith(source, model, other))) opener = other;
  const file = encryptedFile(source.dir);
  const hint = opener ? `; ${opener} opens it (--he-key ${opener})` : others.length ? `; nor do the other key files here (${others.join(', ')})` : '; no other key file of these HE parameters is here';
  throw new Error(`${file} does not decrypt to weights with ${source.keyFile}: the key fits the HE parameters but is not the one the clients encrypted with (was keygen run again?)${hint}`);
}

/**
 * The folder's encrypted model (its model.he, which the caller has seen exists) as a layers model;
 * the caller disposes it. Needs the TensorFlow.js backend set up.
 */
export async function decryptedModel(source: EncryptedSource): Promise<{ model: tf.LayersModel; round: number }> {
  // Built as every node builds it: its layer shapes are the model id the file must carry.
  const model = await createModel(source.config.model, source.config.data.seed, inputOf(source.config.data));
  try {
    const { weights, round } = await decryptWeights(source, model);
    setFlatWeights(model, weights);
    return { model, round };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

export interface DecryptOptions {
  /** Where model.json and weights.bin go; default the round folder itself, so `eval` finds them. */
  out?: string;
  /** The experiment's config; default outputs/<experiment>/config.json beside the round. */
  config?: string;
}

/** `main.js decrypt`: writes the decrypted model in TensorFlow.js's layers format and says where. */
export async function decryptSaved(dir: string, keyFile: string, options: DecryptOptions = {}): Promise<string> {
  requireEncrypted(dir); // before the config: an empty folder is the likelier mistake
  const configFile = options.config ?? configBeside(dir);
  const config = loadExperimentConfig(configFile);
  await initBackend(config.model.architecture);
  const out = options.out ?? dir;
  const { model, round } = await decryptedModel({ dir, keyFile, config, configFile });
  try {
    await saveModel(model, out);
  } finally {
    model.dispose();
  }
  const evalHint = resolve(out) === resolve(dir) && !options.config ? `node main.js eval ${out}` : `node main.js eval ${out} --config ${configFile}`;
  return `wrote ${join(out, 'model.json')} and ${join(out, 'weights.bin')}: round ${round}'s global model (${modelParameters(config)} parameters) decrypted with ${keyFile}; score it with \`${evalHint}\``;
}
