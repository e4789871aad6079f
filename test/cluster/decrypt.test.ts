/**
 * `main.js decrypt` and `main.js eval --he-key` as a user runs them: a round saved encrypted the way
 * the aggregator saves it when the clients hold the key comes back as the average the clients' updates
 * make, within CKKS error; wrong keys, wrong files and empty folders are refused by name.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseExperimentConfig } from '../../src/config/load';
import type { ExperimentConfig } from '../../src/config/schema';
import { testbedConfig } from '../../src/config/testbed';
import { loadMnist, subset } from '../../src/data/mnist';
import { clientSlice } from '../../src/data/partition';
import { readSecretKey, startSession, writeSecretKey } from '../../src/he/keys';
import { initBackend } from '../../src/model/backend';
import { buildModel, getFlatWeights, modelId, setFlatWeights, train } from '../../src/model/model';
import { loadModel, saveModel } from '../../src/model/store';
import { ExperimentOutputs, type RoundMetrics } from '../../src/outputs';
import { decryptedModel } from '../../src/orchestrator/decrypt-saved';
import { encode, Kind } from '../../src/wire/codec';
import { MAIN, node } from '../helpers/cluster';
import { tempDir } from '../helpers/temp-dir';

const EXPERIMENT = 'he-clients';
const SENDER = '127.0.9.4:5000';
/** Two clients report; a third was selected but never did, so the stored factor is not 1. */
const SAMPLES = [600, 400];
const SELECTED_SAMPLES = 1500;

const dir = tempDir('fl-decrypt-');
const outputs = new ExperimentOutputs(join(dir, 'outputs'), EXPERIMENT);
const keyFile = join(dir, 'keys', 'he-secret.json');
const roundDir = (round: number) => outputs.modelDir(round);

function experimentConfig(hiddenUnits: number): ExperimentConfig {
  const raw = testbedConfig({ base: '127.0.9', nodes: 4, switches: 1, experiment: EXPERIMENT, rounds: 5 }) as Record<string, any>;
  raw.he = { enabled: true, key_holder: 'clients' };
  raw.model.hidden_units = hiddenUnits;
  return parseExperimentConfig(raw);
}
const config = experimentConfig(32);

const metrics = (round: number): RoundMetrics => ({
  round, accuracy: 0, loss: 0, clients: 2, samples: 1000, round_ms: 0, selection_ms: 0, training_ms: 0, waiting_ms: 0,
  aggregation_ms: 0, evaluation_ms: 0, bytes_up: 0, bytes_down: 0, retries: 0, missing: ['127.0.9.3:5000'],
});

/** Two clients' trained weights from the same global model, on different digits. */
async function clientWeights(): Promise<Float32Array[]> {
  const all = loadMnist();
  const out: Float32Array[] = [];
  for (const [k, samples] of SAMPLES.entries()) {
    const model = buildModel(config.model, config.data.seed);
    const data = subset(all, clientSlice(all, config.data, 3, k).slice(0, samples)); // digits come grouped by class: take a client's mix
    await train(model, data, { epochs: 1, batchSize: 32, learningRate: 0.5, seed: k });
    out.push(getFlatWeights(model));
    model.dispose();
  }
  return out;
}

/**
 * What the aggregator keeps in clients mode: the switches' sum of updates each pre-scaled by
 * samples/selected samples, added without a key, and factor = selected / reported samples.
 */
async function encryptedRound(updates: Float32Array[], round: number, id: number): Promise<Buffer> {
  const clients = await startSession(config.he, updates[0].length, { secretKey: readSecretKey(config.he, keyFile) });
  const aggregator = await startSession(config.he, updates[0].length, {});
  try {
    const encrypted = await Promise.all(updates.map((u, k) => clients.pool.encrypt(u, SAMPLES[k] / SELECTED_SAMPLES)));
    const sum = await aggregator.pool.sum(encrypted);
    const factor = SELECTED_SAMPLES / SAMPLES.reduce((a, b) => a + b, 0);
    return encode({
      round, modelId: id, contributors: 0, weight: 0, sender: SENDER, kind: Kind.EncryptedModel,
      meta: { he: aggregator.id, factor }, parameters: new Float32Array(0), ciphertexts: sum, count: updates[0].length,
    });
  } finally {
    await Promise.all([clients.pool.close(), aggregator.pool.close()]);
  }
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
};

const cli = (...args: string[]) => node([MAIN, ...args], { timeout: 120_000 });
/** What eval prints after the folder's name: accuracy, loss, digits, seed, parameters, backend. */
const score = (stdout: string) => stdout.trim().replace(/^.*?: accuracy/, 'accuracy');

describe('decrypting a round saved encrypted (clients hold the HE key)', () => {
  let updates: Float32Array[];
  let average: Float32Array;
  let id: number;

  before(async () => {
    await initBackend(config.model.architecture);
    await writeSecretKey(config.he, keyFile);
    updates = await clientWeights();
    average = updates[0].map((_, i) => (SAMPLES[0] * updates[0][i] + SAMPLES[1] * updates[1][i]) / (SAMPLES[0] + SAMPLES[1]));
    const reference = buildModel(config.model, config.data.seed);
    id = modelId(reference);
    setFlatWeights(reference, average);
    await saveModel(reference, join(dir, 'plain')); // the same average, never encrypted
    reference.dispose();
    outputs.writeJson('config.json', config);
    for (const round of [3, 4]) await outputs.saveRound(round, { encrypted: await encryptedRound(updates, round, id) }, metrics(round));
  });

  it('writes model.json + weights.bin into the round folder, holding the weighted average within 1e-5', async () => {
    assert.deepEqual(readdirSync(roundDir(3)), ['model.he']);
    const result = await cli('decrypt', roundDir(3), '--he-key', keyFile);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`wrote ${join(roundDir(3), 'model.json')} and .*weights\\.bin: round 3's`));
    assert.deepEqual(readdirSync(roundDir(3)).sort(), ['model.he', 'model.json', 'weights.bin']);
    const model = await loadModel(roundDir(3));
    const weights = getFlatWeights(model);
    model.dispose();
    // The average is far from either client's weights, so 1e-5 tells a right factor from a wrong one.
    assert.ok(maxDiff(updates[0], average) > 1e-3 && maxDiff(updates[1], average) > 1e-3);
    assert.ok(maxDiff(weights, average) < 1e-5, `max difference ${maxDiff(weights, average)}`);
  });

  it('eval scores the decrypted folder, and eval --he-key the one holding only model.he, alike', async () => {
    const decrypted = await cli('eval', roundDir(3));
    assert.equal(decrypted.code, 0, decrypted.stderr);
    const inMemory = await cli('eval', roundDir(4), '--he-key', keyFile);
    assert.equal(inMemory.code, 0, inMemory.stderr);
    assert.deepEqual(readdirSync(roundDir(4)), ['model.he'], 'eval writes nothing');
    assert.equal(score(inMemory.stdout), score(decrypted.stdout));
    const plain = await cli('eval', join(dir, 'plain'), '--config', join(outputs.dir, 'config.json'));
    assert.equal(plain.code, 0, plain.stderr);
    const accuracy = (text: string) => /accuracy ([\d.]+)%/.exec(text)![1];
    assert.equal(accuracy(decrypted.stdout), accuracy(plain.stdout));
    assert.ok(Number(accuracy(plain.stdout)) > 50, plain.stdout); // a trained model, not chance
  });

  it('eval without --he-key on an encrypted folder says how to open it', async () => {
    const result = await cli('eval', roundDir(4));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /holds only model\.he .*--he-key/);
  });

  it('refuses a key made for other HE parameters, naming it, and writes nothing', async () => {
    const other = join(dir, 'keys', 'other-params.json');
    await writeSecretKey({ ...config.he, poly_modulus_degree: 8192 }, other);
    const result = await cli('decrypt', roundDir(4), '--he-key', other);
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`${other} holds a key for HE parameters`), result.stderr);
    assert.deepEqual(readdirSync(roundDir(4)), ['model.he']);
  });

  it('refuses a key for the same parameters that is not the clients’ one (keygen run again)', async () => {
    const again = join(dir, 'keys', 'again.json');
    await writeSecretKey(config.he, again);
    const result = await cli('decrypt', roundDir(4), '--he-key', again);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`model\\.he does not decrypt to weights with ${again}: .*; ${keyFile} opens it \\(--he-key ${keyFile}\\)`));
    assert.deepEqual(readdirSync(roundDir(4)), ['model.he']);
  });

  it('refuses a model.he that is not an encrypted model, naming the file', async () => {
    const folder = roundDir(5);
    mkdirSync(folder, { recursive: true });
    const plaintext = encode({ round: 5, modelId: id, contributors: 0, weight: 0, sender: SENDER, kind: Kind.Model, parameters: average });
    writeFileSync(join(folder, 'model.he'), plaintext);
    const result = await cli('decrypt', folder, '--he-key', keyFile);
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`${join(folder, 'model.he')}: not an encrypted model`), result.stderr);
    assert.match(result.stderr, /expected EncryptedModel \(6\), got kind 1/);
    assert.ok(!existsSync(join(folder, 'model.json')));
  });

  it("refuses a model.he whose model is not the config's (other hidden units), naming both files", async () => {
    const otherConfig = join(dir, 'hidden-128.json');
    writeFileSync(otherConfig, JSON.stringify(experimentConfig(128)));
    const result = await cli('decrypt', roundDir(4), '--he-key', keyFile, '--config', otherConfig, '--out', join(dir, 'never'));
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`${join(roundDir(4), 'model.he')}: not an encrypted model of the experiment in ${otherConfig}`), result.stderr);
    assert.match(result.stderr, /model id \d+ is not this experiment's/);
    assert.ok(!existsSync(join(dir, 'never')));
  });

  it('refuses a folder with neither model.he nor model.json, in decrypt and in eval', async () => {
    const empty = roundDir(9);
    mkdirSync(empty, { recursive: true });
    const decrypt = await cli('decrypt', empty, '--he-key', keyFile);
    assert.equal(decrypt.code, 1);
    assert.ok(decrypt.stderr.includes(`${empty}: no model.he or model.json here`), decrypt.stderr);
    const evaluation = await cli('eval', empty, '--he-key', keyFile);
    assert.equal(evaluation.code, 1);
    assert.ok(evaluation.stderr.includes(`${empty}: no model.json or model.he here`), evaluation.stderr);
  });

  it('leaves no tensors behind, decrypted or refused', async () => {
    const source = { dir: roundDir(4), keyFile, config, configFile: join(outputs.dir, 'config.json') };
    const stranger = join(dir, 'keys', 'stranger.json');
    await writeSecretKey(config.he, stranger);
    const before = tf.memory().numTensors;
    const { model } = await decryptedModel(source);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
    await assert.rejects(decryptedModel({ ...source, keyFile: stranger }), /does not decrypt to weights/);
    assert.equal(tf.memory().numTensors, before);
  });
});
