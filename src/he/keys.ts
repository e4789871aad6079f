/**
 * Who holds which key:
 *   key_holder "aggregator": the aggregator makes the pair; clients fetch only the public key;
 *   key_holder "clients":   `main.js keygen` writes the secret key once; it is handed to the
 *                           clients out of band (the launchers copy it to client machines only).
 * Switches never hold a key, and in "clients" mode neither does the aggregator.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Settings } from '../config/schema';
import { writeFileAtomic } from '../files/atomic';
import { Ckks, paramsId, type HeParams, type KeyMaterial } from './ckks';
import { HePool } from './pool';

export const DEFAULT_KEY_FILE = 'keys/he-secret.json';

/** The HE parameters of an experiment; `tensorSizes` (the model's, in order) when he.quantize.clip is per tensor. */
export function heParams(he: Settings['he'], tensorSizes?: number[]): HeParams {
  const params: HeParams = { poly_modulus_degree: he.poly_modulus_degree, coeff_modulus_bits: he.coeff_modulus_bits, scale_bits: he.scale_bits };
  if (!he.quantize) return params;
  const { bits, clip, clients, noise_reserve } = he.quantize;
  if (clients === undefined || clip === undefined) throw new Error('he.quantize.clients and .clip are filled in when config.json is read; these settings did not come from it');
  return { ...params, quantize: { bits, clip, clients, ...(noise_reserve ? { noise_reserve } : {}) }, ...(tensorSizes ? { tensor_sizes: tensorSizes } : {}) };
}

interface KeyFile {
  params: HeParams;
  params_id: string;
  secret_key: string;
}

/** What a secret key depends on, readably: the ring and its primes. */
const keyRing = (params: Partial<HeParams>) => `N=${params.poly_modulus_degree}, coeff_modulus_bits ${JSON.stringify(params.coeff_modulus_bits)}`;

/** Makes a secret key for `he` and writes it, owner-only, to `file`. */
export async function writeSecretKey(he: Settings['he'], file: string): Promise<string> {
  const params = heParams(he);
  const { secretKey } = await Ckks.generateKeys(params);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const content: KeyFile = { params, params_id: paramsId(params), secret_key: Buffer.from(secretKey).toString('base64') };
  writeFileSync(file, JSON.stringify(content) + '\n', { mode: 0o600 });
  return content.params_id;
}

/**
 * The clients' key a launcher hands them: `file` (keygen's, by default) when it is there, made there
 * when it is not. One file, so the key that encrypted a run's models is the one `decrypt` reads.
 */
export async function ensureClientKey(he: Settings['he'], file = DEFAULT_KEY_FILE): Promise<{ file: string; made: boolean }> {
  if (existsSync(file)) {
    readSecretKey(he, file); // it must fit this experiment: refused now, naming the file, rather than by every client
    return { file: resolve(file), made: false };
  }
  await writeSecretKey(he, file);
  return { file: resolve(file), made: true };
}

export function readSecretKey(he: Settings['he'], file: string): Uint8Array {
  let content: KeyFile;
  try {
    content = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`this client needs the HE secret key (he.key_holder "clients"): cannot read ${resolve(file)}: ${(err as Error).message}. Make one with \`node main.js keygen\` and start clients with --he-key FILE`);
  }
  // A SEAL key fits any scale and packing of the same ring and primes: changing clients_per_round or
  // he.quantize must not orphan a key, nor the models it encrypted.
  const held = keyRing(content.params ?? {});
  const expected = keyRing(heParams(he));
  if (held !== expected) {
    throw new Error(`${file} holds a key for HE parameters ${held}; this experiment uses ${expected} (run keygen with this config)`);
  }
  return Buffer.from(content.secret_key, 'base64');
}

export interface HeSession {
  pool: HePool;
  id: string;
  /** Ciphertexts per model of `parameters` values. */
  chunks: number;
  /** Kept by an aggregator that made the pair, to hand to clients. */
  publicKey?: Uint8Array;
  /** Names the public key, so a client can tell the aggregator's pair changed. */
  keyId?: string;
}

export const publicKeyId = (publicKey: Uint8Array) => createHash('sha256').update(publicKey).digest('hex').slice(0, 16);

export async function startSession(he: Settings['he'], parameters: number, keys: KeyMaterial, tensorSizes?: number[]): Promise<HeSession> {
  const pool = await HePool.shared(heParams(he, tensorSizes), keys);
  const keyId = keys.publicKey && publicKeyId(keys.publicKey);
  return { pool, id: pool.id, chunks: pool.chunksFor(parameters), publicKey: keys.publicKey, keyId };
}

interface KeyPairFile {
  params_id: string;
  public_key: string;
  secret_key: string;
}

/**
 * The aggregator's session in "aggregator" mode. Its key pair is kept owner-only in `file`, beside
 * its checkpoints, so that a resumed aggregator can decrypt what clients encrypt with the public key
 * they already hold; `reuse` reads it back instead of making a new one.
 */
export async function startKeyHolderSession(he: Settings['he'], parameters: number, file: string, reuse: boolean, tensorSizes?: number[]): Promise<HeSession> {
  const id = paramsId(heParams(he));
  let keys: Required<KeyMaterial>;
  if (reuse && existsSync(file)) {
    const content: KeyPairFile = JSON.parse(readFileSync(file, 'utf8'));
    if (content.params_id !== id) throw new Error(`${file} holds keys for HE parameters ${content.params_id}; this experiment uses ${id}`);
    keys = { publicKey: Buffer.from(content.public_key, 'base64'), secretKey: Buffer.from(content.secret_key, 'base64') };
  } else {
    keys = await Ckks.generateKeys(heParams(he));
    const content: KeyPairFile = { params_id: id, public_key: Buffer.from(keys.publicKey).toString('base64'), secret_key: Buffer.from(keys.secretKey).toString('base64') };
    writeFileAtomic(file, JSON.stringify(content) + '\n', { durable: true, mode: 0o600 });
  }
  return startSession(he, parameters, keys, tensorSizes);
}
