/**
 * An authenticated fuzzer: client 1's identity (its own token book) sends real wire messages,
 * bit-flipped, to every route of every node: switch sums, models and openings made for the round in
 * progress, its own updates of the round before (what it says for the round in progress is its own
 * to say), its check-ins, and the notices only others may send. Seeded: the same messages and flips
 * every time. Used by test/cluster/fuzz.test.ts and the bench's adversarial section.
 */
import { readFileSync } from 'node:fs';
import { parseExperimentConfig } from '../../src/config/load';
import { seededRandom } from '../../src/data/random';
import { heParams, readSecretKey } from '../../src/he/keys';
import { HePool } from '../../src/he/pool';
import { buildModel, modelId, type ModelSettings } from '../../src/model/model';
import { expectedParameterCount } from '../../src/model/size';
import { NODE_HEADER, type TokenBook } from '../../src/net/identity';
import { encode, Kind, WIRE_CONTENT_TYPE } from '../../src/wire/codec';
import { get, type Testbed } from './cluster';

export interface FuzzAnswer {
  message: string;
  target: string;
  status: number;
  reason: string;
  at: number;
}

/** Flips `count` random bits of a copy of `bytes`. */
export function flip(bytes: Buffer, count: number, random: () => number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < count; i++) {
    const at = Math.floor(random() * out.length);
    out[at] ^= 1 << Math.floor(random() * 8);
  }
  return out;
}

/** Fuzzes `testbed`'s run while `running` says so, `requests` at most; every answer. */
export async function fuzz(testbed: Testbed, keyHolder: 'aggregator' | 'clients', running: () => boolean, requests = 2000): Promise<FuzzAnswer[]> {
  const random = seededRandom(23);
  const config = parseExperimentConfig(JSON.parse(readFileSync(testbed.configFile, 'utf8')));
  const [self, other] = testbed.addresses('client');
  const [sw] = testbed.addresses('switch');
  const [aggregator] = testbed.addresses('aggregator');
  const clients = testbed.addresses('client');
  const book = JSON.parse(readFileSync(testbed.tokenFile(self), 'utf8')) as TokenBook;
  const headers = { Authorization: `Bearer ${book.token}`, [NODE_HEADER]: self };
  const spec = config.model as ModelSettings;
  const parameters = expectedParameterCount(spec);
  const model = buildModel(spec, config.data.seed);
  const id = modelId(model);
  model.dispose();
  // The run's own key: the aggregator's public key (a client may fetch it, once it is made), or the clients' secret key.
  const publicKey = async () => {
    for (;;) {
      const res = await fetch(`http://${aggregator}/a/he/public-key`, { headers });
      if (res.ok) return new Uint8Array(await res.arrayBuffer());
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const keys = keyHolder === 'aggregator' ? { publicKey: await publicKey() } : { secretKey: readSecretKey(config.he, testbed.keyFile) };
  const pool = await HePool.start(heParams(config.he), keys);
  const ciphertexts = await pool.encrypt(Float32Array.from({ length: parameters }, () => (random() - 0.5) * 0.1), 0.25);
  await pool.close();
  const samples = (await get(self, '/c/status', testbed.token)).body.samples as number;
  const otherConfig = (await get(other, '/config', testbed.token)).body;

  let current = { round: 1, attempt: 'x:1.0' };
  const refresh = async () => {
    const status = (await get(aggregator, '/a/status', testbed.token).catch(() => undefined))?.body;
    if (status?.attempt) current = { round: status.round, attempt: status.attempt };
  };
  const wire = (kind: Kind, sender: string, contributors: number, weight: number, meta: Record<string, unknown>, opening = current) =>
    encode({ kind, round: opening.round, modelId: id, contributors, weight, sender, meta: { ...meta, attempt: opening.attempt }, parameters: new Float32Array(0), ciphertexts, count: parameters });
  /** The round before the one in progress (or, in round 1, an opening of another run). */
  const before = () => (current.round > 1 ? { round: current.round - 1, attempt: `${current.attempt.split(':')[0]}:${current.round - 1}.0` } : { round: 1, attempt: 'gone:1.0' });
  const instructions = () => ({ epochs: 1, batchSize: 32, learningRate: 0.5, attempt: current.attempt, fit: { share: 0.25 } });
  const weights = Object.fromEntries(clients.map((c) => [c, samples]));
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  // Each real message, and the routes it is sent to.
  const messages: [string, () => Buffer, string, string[]][] = [
    ['update', () => wire(Kind.EncryptedUpdate, self, 1, samples, { he: pool.id }, before()), WIRE_CONTENT_TYPE, [`${sw}/s/receive`, `${aggregator}/a/receive`]],
    ['sum', () => wire(Kind.EncryptedSum, sw, 2, 2 * samples, { he: pool.id, clients: [self, other] }), WIRE_CONTENT_TYPE, [`${aggregator}/a/receive`, `${sw}/s/receive`]],
    ['model', () => (keyHolder === 'clients' ? wire(Kind.EncryptedModel, aggregator, 0, 0, { ...instructions(), he: pool.id, factor: 1, model_tag: 'm' }) : encode({ kind: Kind.Model, round: current.round, modelId: id, contributors: 0, weight: 0, sender: aggregator, meta: instructions(), parameters: new Float32Array(parameters) })), WIRE_CONTENT_TYPE, [`${other}/c/round`, `${sw}/s/model`, `${other}/c/evaluate`, `${sw}/s/evaluate?clients=${other}`]],
    ['opening', () => json({ round: current.round, attempt: current.attempt, clients, weights, samples: 4 * samples, deadline_ms: 60_000, parameters, model_id: id }), 'application/json', [`${sw}/s/round`]],
    // Without the class counts it checked in with first: a contradiction, as a flipped count would be.
    ['check-in', () => json({ client: self, samples, model: id, shape: [28, 28, 1], ticket: 'ab'.repeat(16) }), 'application/json', [`${aggregator}/a/checkin`]],
    ['notice', () => json({ round: current.round, attempt: current.attempt, switch: sw, clients: [self], reason: 'fuzz' }), 'application/json', [`${aggregator}/a/withheld`, `${sw}/s/withheld`]],
    ['drop', () => json({ round: current.round, attempt: current.attempt, client: other }), 'application/json', [`${sw}/s/drop`]],
    ['stand-by', () => json({ round: current.round, attempt: current.attempt }), 'application/json', [`${other}/c/standby`]],
    // In another node's name: a check-in for client 2 (another model: it would be marked failed), its config replaced.
    ['check-in for another', () => json({ client: other, samples, model: id + 1 }), 'application/json', [`${aggregator}/a/checkin`]],
    ['config', () => json({ ...otherConfig, experiment: 'hijacked' }), 'application/json', [`${other}/config`]],
  ];
  const answers: FuzzAnswer[] = [];
  // The requests are made in order from the seed, then sent two at a time.
  const send = async (name: string, target: string, type: string, body: Buffer) => {
    const res = await fetch(`http://${target}`, { method: 'POST', headers: { ...headers, 'Content-Type': type }, body }).catch((err: Error) => ({ status: 0, text: async () => err.message }));
    answers.push({ message: name, target, status: res.status, reason: (await res.text()).slice(0, 300), at: Date.now() });
  };
  for (let i = 0; i < requests && running(); i += 2) {
    if (i % 20 === 0) await refresh();
    const pair = [0, 1].map(() => {
      const [name, make, type, targets] = messages[Math.floor(random() * messages.length)];
      const target = targets[Math.floor(random() * targets.length)];
      // One in ten goes as made; the rest with 1 to 8 bits flipped.
      const body = random() < 0.1 ? make() : flip(make(), 1 + Math.floor(random() * 8), random);
      return send(name, target, type, body);
    });
    await Promise.all(pair);
  }
  return answers;
}
